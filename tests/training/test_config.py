"""The recipe's schema: each field converted and checked once, rules between fields included,
and errors that name the field (and the recipe file)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from danet.training.config import RecipeError, TrainConfig, recipe_from_flags, specs


def test_every_field_declares_its_help_and_a_checkable_type() -> None:
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["help"], f.name
        assert specs()[f.name].expected, f.name


def test_a_built_config_is_checked_and_converted() -> None:
    cfg = TrainConfig(crop_size=128, batch_size="4", pretrained="none", grad_clip_norm="none")
    assert cfg.crop_size == [128, 128] and cfg.batch_size == 4
    assert cfg.pretrained is None and cfg.grad_clip_norm is None
    for bad, named in [({"ohem_threshold": 1.5}, "ohem_threshold must be a number from 0 to 1"),
                       ({"output_stride": 4}, "output_stride must be one of 8, 16, 32"),
                       ({"attention": "all"}, "attention must be one of both, pam, cam, none"),
                       ({"scale_range": [2.0, 1.0]}, "scale_range must be two numbers"),
                       ({"loss_weights": {"aux": -1}}, "loss_weights must be a mapping")]:  # fmt: skip
        with pytest.raises(RecipeError, match=f"^{named}"):
            TrainConfig(**bad)


def test_errors_name_fields_and_the_cli_gets_flags() -> None:
    with pytest.raises(RecipeError) as info:
        TrainConfig().merge({"warmup_iters": -2})
    assert str(info.value) == "warmup_iters must be an integer >= 0, not -2"
    assert info.value.for_flags() == "--warmup-iters must be an integer >= 0, not -2"
    with pytest.raises(RecipeError) as info:
        TrainConfig().merge({"warmup_iters": -2}, origin="r.yaml")
    assert info.value.for_flags() == "r.yaml: warmup_iters must be an integer >= 0, not -2"


def test_a_run_needs_a_length_checked_when_the_recipe_is_built() -> None:
    with pytest.raises(RecipeError, match="^give iters or epochs$") as info:
        TrainConfig(data_root="d").check_runnable()
    assert info.value.for_flags() == "give --iters or --epochs"
    with pytest.raises(RecipeError, match="give iters or epochs"):
        recipe_from_flags(None, {"data_root": "/nowhere"})
    assert recipe_from_flags(None, {"data_root": "d", "epochs": "2"})[0].epochs == 2


def test_a_recipe_file_refuses_duplicates_and_unknown_keys(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("iters: 5\nlr: 0.1\niters: 50\n")
    with pytest.raises(ValueError, match=r"'iters' is given twice \(lines 1 and 3\)"):
        TrainConfig.from_file(recipe)
    recipe.write_text("iters: 5\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"r.yaml: unknown recipe keys \['learning_rate'\]"):
        TrainConfig.from_file(recipe)


def test_departures_from_the_paper_are_named() -> None:
    assert TrainConfig().departures() == {}
    camvid = TrainConfig.from_file("camvid").departures()
    assert camvid["cam_variant"] == "original" and camvid["affinity_weight"] == 1.0
    assert camvid["affinity_target"] == "uniform"
    assert camvid["grad_clip_norm"] == 10.0
    assert camvid["loss_weights"] == {"lovasz": 1.0}
    assert TrainConfig().merge({"loss_weights": {"aux": 0.2}}).departures() == {}
