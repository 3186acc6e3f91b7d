"""``danet train``'s parser: a flag per recipe field, generated from the recipe's schema
(:mod:`danet.training.config`), whose help shows the built-in default and ``--config``'s value."""

from __future__ import annotations

import argparse
from typing import Any

from danet.assets import bundled_configs
from danet.cli.arguments import add_quiet, command_parser
from danet.cli.errors import one_line
from danet.training.config import TrainConfig, flag_name
from danet.training.config import specs as recipe_specs


def _shown(value: Any) -> str:
    """A recipe value as ``danet train --help`` shows it (loss weights as NAME=W words)."""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return "none" if value is None else str(value) if value != "" else "''"


def _recipe_flag(p: argparse._ActionsContainer, spec: Any, note: str) -> None:
    """The flag of one recipe field, generated from its schema (:mod:`danet.training.config`):
    the library converts and checks the text, so every flag takes what the recipe file takes."""
    kwargs: dict[str, Any] = {"default": None, "help": f"{spec.meta['help']} ({note})"}
    if spec.base == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
    elif spec.choices is not None:
        kwargs["choices"] = [str(c) for c in spec.choices]
    elif spec.base in ("floats", "weights"):
        kwargs["nargs"] = "+"
        kwargs["metavar"] = "NAME=W" if spec.base == "weights" else "X"
    elif spec.base == "size":
        kwargs["metavar"] = "H,W"
    p.add_argument(flag_name(spec.name), dest=spec.name, **kwargs)


def _train_recipe(argv: list[str]) -> tuple[str | None, TrainConfig | None, str | None]:
    """For ``danet train --config X --help`` only: X, its recipe, and why it could not be read.

    Any other command line reads its recipe when it runs, inside main's error handling."""
    if "train" not in argv or not {"-h", "--help"} & set(argv):
        return None, None, None
    name = _recipe_in(argv)
    if name is None:
        return None, None, None
    try:
        return name, TrainConfig.from_file(name), None
    except Exception as err:  # noqa: BLE001 - shown in the help; the run reports it properly
        return name, None, one_line(err)


def add_train(sub: argparse._SubParsersAction, argv: list[str]) -> None:
    name, given, problem = _train_recipe(argv)
    default = TrainConfig()
    p = command_parser(sub, "train", "train DANet with the paper's recipe, with the named departures "
                "that --config adds (its --help lists them); flags override --config")  # fmt: skip
    if given is not None:
        departures = ", ".join(f"{flag_name(k)} {_shown(v)}" for k, v in given.departures().items())
        p.description = (f"train DANet with --config {name}: the paper's recipe, with these named "
                         f"departures: {departures or 'none'}; flags override --config")  # fmt: skip
        p.epilog = (f"Values in parentheses: the built-in default and, where it differs, "
                    f"--config {name}'s, which is what runs.")  # fmt: skip
    else:
        p.epilog = ("Values in parentheses: the built-in defaults (the paper's recipe), what runs "
                    "without --config. 'danet train --config camvid --help' shows a recipe's "
                    "own values and its departures from the paper.")  # fmt: skip
        if problem:
            p.epilog += f" (--config {name} could not be read: {problem})"

    def note(ours: Any, theirs: Any) -> str:
        text = f"default: {_shown(ours)}"
        if given is not None and theirs != ours:
            text += f"; --config {name}: {_shown(theirs)}"
        return text

    p.add_argument(
        "--config", help=f"a bundled recipe ({', '.join(bundled_configs())}) or a YAML file"
    )
    group: argparse._ActionsContainer = p
    for spec in recipe_specs().values():
        if spec.meta["group"]:
            group = p.add_argument_group(f"recipe: {spec.meta['group']}")
        ours = getattr(default, spec.name)
        _recipe_flag(group, spec, note(ours, getattr(given, spec.name, ours)))
        if spec.name == "loss_weights":
            weights = (default.loss_weights, (given or default).loss_weights)
            weight = note(*(w.get("affinity", 0.0) for w in weights))
            group.add_argument("--affinity-weight", help="weight of the PAM affinity loss, "
                               f"loss_weights' 'affinity' (0: off) ({weight})")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in an --out that holds other files (a model, an earlier run)",
    )
    add_quiet(p)


def _recipe_in(argv: list[str]) -> str | None:
    """The value of ``--config`` in a ``danet train`` command line, for its ``--help``."""
    if "train" not in argv:
        return None
    for k, arg in enumerate(argv):
        if arg == "--config" and k + 1 < len(argv):
            return argv[k + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None
