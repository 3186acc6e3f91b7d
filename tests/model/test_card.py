"""Model cards: each bundled model has one, it parses, and the README's table agrees with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import danet
from danet.assets import bundled_model_dir
from danet.model.card import CARD_NAME, model_card, read_card

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_row(name: str) -> list[str]:
    """The cells of the README models table's row for the bundled model ``name``."""
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| `{name}` (bundled)"):
            return [cell.strip() for cell in line.strip("|").split("|")]
    raise AssertionError(f"README.md's models table has no row for {name}")


@pytest.mark.parametrize("name", danet.bundled_models())
def test_every_bundled_model_has_a_card_the_readme_agrees_with(name: str) -> None:
    card = model_card(name)
    assert card is not None, f"{name} has no {CARD_NAME}"
    assert card.figures and card.iterations > 0 and card.code_version
    row = readme_row(name)
    model = danet.load(name)
    assert row[2] == str(model.config["output_stride"])
    assert row[3] == "x".join(map(str, model.config["input_size"]))
    cell = row[5]
    assert card.splits_text in cell
    for figure in card.figures:
        value = f"{figure.value:.2f}"
        if card.held_out(figure):
            assert value in cell and "held out" in cell
        else:  # training data: may be left out, never called held out
            assert value not in cell or "training data" in cell


def test_a_model_trained_on_val_calls_its_val_figure_training_data() -> None:
    card = model_card("camvid")
    assert card is not None and card.trained_on("val")
    sentence = card.on_split("val")
    sibling = next(f for f in card.figures if not f.of_this_model and f.split == "val")
    assert "training data" in sentence and f"{sibling.value:.2f}" in sentence
    own = next(f for f in card.figures if f.of_this_model and f.split == "val")
    assert not card.held_out(own) and "training data" in card.figure_text(own)


def test_a_model_not_trained_on_val_calls_it_held_out(tmp_path: Path) -> None:
    data = json.loads((bundled_model_dir("camvid") / CARD_NAME).read_text())
    path = tmp_path / CARD_NAME
    path.write_text(json.dumps({**data, "train_splits": ["train"]}))
    card = read_card(path)
    assert not card.trained_on("val")
    assert "held out" in card.on_split("val") and "training data" not in card.on_split("val")
    own = next(f for f in card.figures if f.of_this_model and f.split == "val")
    assert card.held_out(own) and "held out" in card.figure_text(own)


def test_no_card_for_what_is_not_a_bundled_model(
    tmp_path: Path, small_model: danet.DANet, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert model_card(str(tmp_path)) is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "camvid").mkdir()  # a folder named so, without a model: the bundled one is used
    assert model_card("camvid") is not None
    danet.save_model(small_model, tmp_path / "camvid")  # a model of that name here hides it
    assert danet.load("camvid").config["input_size"] == small_model.config["input_size"]
    assert model_card("camvid") is None
    assert model_card("../camvid") is None
    assert model_card("no-such-model") is None


@pytest.mark.parametrize(
    ("change", "culprit"),
    [
        ({"train_splits": []}, "train_splits"),
        ({"iterations": "many"}, "iterations"),
        ({"figures": [{"split": "val", "metric": "mIoU", "value": "x"}]}, "value"),
        ({"dataset": None}, "dataset"),
    ],
)
def test_a_malformed_card_is_refused_naming_the_key(
    tmp_path: Path, change: dict, culprit: str
) -> None:
    data = json.loads((bundled_model_dir("camvid") / CARD_NAME).read_text())
    path = tmp_path / CARD_NAME
    path.write_text(json.dumps({**data, **change}))
    with pytest.raises(ValueError, match=re.escape(culprit)):
        read_card(path)


def test_an_unreadable_card_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / CARD_NAME
    path.write_bytes(b'{"dataset": "CamVid\xff"}')
    with pytest.raises(ValueError, match=r"card.json: not UTF-8 text .*expected a model card"):
        read_card(path)
    path.write_text('{"dataset": "CamVid", "dataset": "VOC"}')
    with pytest.raises(ValueError, match="the key 'dataset' is given twice"):
        read_card(path)
