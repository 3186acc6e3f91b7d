"""``danet train``'s flags come from the recipe's schema: every setting has one, and ``--help``
with ``--config`` shows the recipe's value of each."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import assert_one_line

from danet.assets import CONFIGS_DIR
from danet.cli import build_parser, main
from danet.training.config import TrainConfig
from danet.utils.textfile import read_yaml


def _help(argv: list[str], capsys: pytest.CaptureFixture) -> dict[str, str]:
    """Each option's help text, whitespace collapsed, by flag (``--crop-size``)."""
    with pytest.raises(SystemExit):
        main(argv)
    options = capsys.readouterr().out.split("\n  --")[1:]
    return {"--" + o.split()[0]: " ".join(o.split("\n\n")[0].split()) for o in options}


def _as_shown(value: object) -> str:
    """How a recipe value reads on the command line (loss weights as NAME=W words)."""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return "none" if value is None else str(value)


def test_every_setting_of_the_camvid_recipe_has_a_flag_showing_its_value(
    capsys: pytest.CaptureFixture,
) -> None:
    helps = _help(["train", "--config", "camvid", "--help"], capsys)
    settings = read_yaml(CONFIGS_DIR / "camvid.yaml")
    recipe = TrainConfig.from_file("camvid")
    assert len(settings) >= 30
    for key in settings:
        flag = "--" + key.replace("_", "-")
        assert flag in helps, f"{key}: no flag"
        shown = _as_shown(getattr(recipe, key))
        assert f"camvid: {shown})" in helps[flag] or f"(default: {shown})" in helps[flag], (
            key,
            helps[flag],
        )
    # the affinity weight is a part of loss_weights, with its own flag
    assert helps["--affinity-weight"].endswith("(default: 0.0; --config camvid: 1.0)")


def test_every_recipe_field_has_a_flag_with_help() -> None:
    train = build_parser(["train"])._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    dests = {a.dest: a for a in train._actions}
    for f in dataclasses.fields(TrainConfig):
        assert f.name in dests, f.name
        assert dests[f.name].help and dests[f.name].default is None, f.name


def test_help_names_the_recipes_departures_from_the_paper(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--config", "camvid", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the paper's recipe, with these named departures: --affinity-weight 1.0" in text
    assert "--cam-variant original" in text and "--grad-clip-norm 10.0" in text


def test_a_bad_recipe_is_said_in_its_help_and_in_one_line_when_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, cli
) -> None:
    recipe = tmp_path / "deep.yaml"
    recipe.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(SystemExit):
        main(["train", "--config", str(recipe), "--help"])
    assert "could not be read" in " ".join(capsys.readouterr().out.split())
    code, _, err = cli(["train", "--config", str(recipe), "--data-root", str(tmp_path)])
    assert code == 2 and "nested more than" in assert_one_line(err, str(recipe))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--scale-range", "2", "1"], "--scale-range must be two numbers, low <= high"),
        (["--loss-weights", "outt=1"], "--loss-weights names unknown terms ['outt']"),
        (["--loss-weights", "out"], "--loss-weights must be a mapping"),
        (["--affinity-weight", "-1"], "--affinity-weight must be a number >= 0"),
        (["--eval-scales", "0"], "--eval-scales must be numbers > 0"),
        (["--output-stride", "4"], "argument --output-stride: invalid choice"),
        ([], "give --iters or --epochs"),
    ],
)
def test_flags_are_checked_by_the_schema_and_named(
    tmp_path: Path, cli, flags: list[str], message: str
) -> None:
    # no dataset at --data-root: each refusal comes before any data or model is touched
    argv = ["train", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]
    code, _, err = cli([*argv, *flags])
    assert code == 2 and message in assert_one_line(err), err
    assert not (tmp_path / "r").exists()


def test_a_recipe_error_names_the_file_and_its_key(tmp_path: Path, cli) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("iters: 5\nbatch_size: 0\n")
    code, _, err = cli(["train", "--config", str(recipe), "--data-root", str(tmp_path)])
    assert code == 2
    assert_one_line(err, f"{recipe}: batch_size must be an integer >= 1, not 0")


def test_loss_weights_flag_updates_the_recipes_weights() -> None:
    from danet.training.config import recipe_from_flags

    flags = {"loss_weights": ["aux=0", "pam=0.5"], "affinity_weight": "2", "data_root": "d"}
    cfg, _ = recipe_from_flags("camvid", flags)
    assert cfg.loss_weights == {
        "out": 1.0,
        "pam": 0.5,
        "cam": 1.0,
        "aux": 0.0,
        "affinity": 2.0,
        "lovasz": 1.0,
    }
