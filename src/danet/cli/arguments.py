"""Argument types and the flag groups that several commands share.

A type raises :class:`argparse.ArgumentTypeError`, so that a bad value is one line naming its
flag; the choices come from :mod:`danet.options` and the other light modules (no torch).
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from danet.data import DATASETS
from danet.options import BACKENDS, RESIZE_MODES
from danet.utils.bounds import INPUT_SIZE_RULE, MIN_INPUT_SIDE, input_size_ok

DEFAULT_CHECKPOINT = "camvid"  # the bundled model: the same default in every command


def _size(text: str) -> list[int]:
    """N or H,W (also HxW) as [H, W] (their range is the recipe's check)."""
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not N or H,W (integers)") from None
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r}: give N or H,W, two integers at most")
    return parts * 2 if len(parts) == 1 else parts


def input_size(text: str) -> list[int]:
    """A model's input size: H,W (or N) within danet.utils.bounds.INPUT_SIZE_RULE."""
    size = _size(text)
    if not input_size_ok(size):
        raise argparse.ArgumentTypeError(f"{text!r}: give {INPUT_SIZE_RULE}")
    return size


def side(text: str) -> int:
    """One side of an input size (export's --height/--width)."""
    value = int(text)
    if value < MIN_INPUT_SIDE:
        raise argparse.ArgumentTypeError(f"{value} must be at least {MIN_INPUT_SIDE}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def scale(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def opset(text: str) -> int:
    from torch.onnx import _constants

    low = _constants.ONNX_BASE_OPSET  # what danet's graph needs (Resize with sizes, ...)
    high = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET)
    value = int(text)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{value}: this torch exports opsets {low} to {high}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1 to 65535)")
    return value


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none (recipe flags show the recipe's)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        empty = action.default in (None, False, []) or action.default is argparse.SUPPRESS
        if empty or "default" in (action.help or ""):  # the help says its default itself
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), naming the flag."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def common_flags() -> argparse.ArgumentParser:
    """Flags every subcommand takes too, so that ``danet predict ... --debug`` works."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    return common


def command_parser(
    sub: argparse._SubParsersAction, name: str, help: str
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name, help=help, description=help, formatter_class=Formatter, parents=[common_flags()]
    )


def add_checkpoint(p: argparse.ArgumentParser, onnx: bool = False) -> None:
    """``--checkpoint``; ``onnx`` where the command also runs an exported ``.onnx`` file."""
    what = "bundled model name, model or run folder, model.safetensors or checkpoint.pt"
    if onnx:
        what += ", or an .onnx file (run by onnxruntime, without torch)"
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help=what)


def add_device(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    p.add_argument(
        "--device",
        default=default,
        help="'auto' (cuda when available, else cpu), 'cpu', 'cuda' or 'cuda:N'; "
        "the device used is printed",
    )


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress output, no device line")


def add_inference(p: argparse.ArgumentParser) -> None:
    """The flags of :class:`danet.utils.inference.InferenceSettings` that eval and predict share."""
    p.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=None,
        help="keep-aspect (default): short side to the input size's, with either backend (an "
        ".onnx file exported at a fixed size: fitted inside it and padded); squash: to exactly "
        "the input size; none: the image's own size",
    )
    p.add_argument("--scales", type=scale, nargs="+", default=[1.0], help="multi-scale factors")
    p.add_argument("--flip", action="store_true", help="average with the flipped image")
    p.add_argument(
        "--sliding-window",
        action="store_true",
        help="cover the image with input-size windows instead of resizing it",
    )


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="run the model in PyTorch, or export it to ONNX and run it in onnxruntime "
        "(default: onnxruntime for an .onnx file, which then loads no torch; else torch)",
    )
    p.add_argument("--int8", action="store_true", help="onnxruntime: static int8 (QDQ)")


def add_dataset(p: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--data-root`` and ``--split``, defaulting to the training run's."""
    p.add_argument(
        "--dataset",
        help=f"dataset layout: {', '.join(sorted(DATASETS))} (default: the run's, from "
        "run_config.json beside the checkpoint)",
    )
    p.add_argument("--data-root", help="the dataset's folder (default: the run's)")
    p.add_argument("--split", help="split to use (default: the run's val split, else 'val')")
