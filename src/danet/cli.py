"""The danet command: train, eval, predict, attention, export, demo, inspect, convert, explore.

Each command parses its flags and calls one library function. Bad input ends with a one-line
error that names the culprit and exit status 2 (``--debug`` shows the traceback). Building the
parser loads no torch: the choices come from :mod:`danet.options` and the other light modules,
and each command imports what it runs.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from danet.assets import bundled_configs
from danet.data import DATASETS
from danet.data.io import MAX_PIXELS
from danet.options import (
    AFFINITY_TARGETS,
    ATTENTIONS,
    BACKBONES,
    BACKENDS,
    CAM_VARIANTS,
    CLASS_WEIGHTINGS,
    DECODERS,
    LEGENDS,
    PAM_SCALES,
    PIXEL_SAMPLERS,
    PRECISIONS,
    RESIZE_MODES,
)
from danet.training.config import TrainConfig
from danet.utils.allocator import keep_freed_memory
from danet.utils.atomic import remove_stale_temp_files
from danet.utils.bounds import INPUT_SIZE_RULE, MIN_INPUT_SIDE, input_size_ok
from danet.utils.outputs import command_scope
from danet.utils.writable import check_writable_dir, check_writable_file

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
    p.add_argument("--scales", type=_scale, nargs="+", default=[1.0], help="multi-scale factors")
    p.add_argument("--flip", action="store_true", help="average with the flipped image")
    p.add_argument(
        "--sliding-window",
        action="store_true",
        help="cover the image with input-size windows instead of resizing it",
    )


def _add_train(sub: argparse._SubParsersAction, recipe_name: str | None = None) -> None:
    d = TrainConfig()
    given = None
    if recipe_name:
        try:
            given = TrainConfig.from_file(recipe_name)
        except (ValueError, OSError):  # a bad --config is reported when the command runs
            given = None
    p = _parser(sub, "train", "train DANet with the paper's recipe; flags override --config")
    p.epilog = (
        f"Values in parentheses: the built-in recipe's and, where it differs, --config "
        f"{recipe_name}'s, which is what runs."
        if given
        else "Values in parentheses: the built-in recipe's, what runs without --config. "
        "'danet train --config camvid --help' shows a recipe's own values."
    )

    def recipe(flag: str, text: str, **kwargs: Any) -> None:
        """A flag that overrides the recipe field of its name; its help shows the recipe's value
        (and that of the --config given, where it differs)."""
        field = flag[2:].replace("-", "_")
        default = getattr(d, field)
        note = f"default: {default}"
        if given is not None and getattr(given, field) != default:
            note += f"; --config {recipe_name}: {getattr(given, field)}"
        p.add_argument(flag, help=f"{text} ({note})", **kwargs)

    switch = dict(action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--config",
        help=f"a bundled recipe ({', '.join(bundled_configs())}) or a YAML file",
    )
    recipe("--dataset", f"dataset layout: {', '.join(sorted(DATASETS))}")
    p.add_argument("--data-root", help="the dataset's folder")
    recipe("--train-split", "training split")
    recipe("--val-split", "validation split; '' to skip validation")
    recipe("--out", "run folder (checkpoints, metrics.jsonl, curves.png)")
    recipe("--backbone", f"any timm CNN; the usual: {', '.join(BACKBONES)}")
    recipe("--output-stride", "8 (the paper), 16 or 32", type=int)
    recipe("--pretrained", "'imagenet', a weight file, or 'none' for random init")
    recipe("--init-weights", "start from this whole model (a bundled name or a model folder)")
    recipe("--attention", "attention modules", choices=ATTENTIONS)
    recipe("--cam-variant", "channel attention formula", choices=CAM_VARIANTS)
    recipe("--pam-reduction", "PAM query/key channel reduction", type=int)
    recipe("--pam-scale", "learned: softmax(s Q^T K), s learnt", choices=PAM_SCALES)
    p.add_argument("--affinity-weight", type=float, help="weight of the PAM affinity loss (0: off)")
    recipe(
        "--affinity-target",
        "the affinity loss's row target: mass on the query's class, or uniform over it",
        choices=AFFINITY_TARGETS,
    )
    recipe(
        "--affinity-exclude-radius",
        "keys within this Chebyshev distance of the query leave the affinity target",
        type=int,
    )
    recipe("--class-weighting", "class weights of the cross-entropy", choices=CLASS_WEIGHTINGS)
    recipe(
        "--pixel-sampler",
        "ohem: the cross-entropies average the hard pixels (mmsegmentation's OHEMPixelSampler)",
        choices=PIXEL_SAMPLERS,
    )
    recipe("--ohem-threshold", "ohem: a true-class probability below this is hard", type=float)
    recipe("--ohem-min-kept", "ohem: at least this many hard pixels per image", type=int)
    recipe("--reach-radius", "the 'local' radius of the validation's PAM reach figures", type=int)
    recipe(
        "--precision",
        "bf16: bfloat16 autocast; auto: bf16 on CUDA where supported, else fp32",
        choices=PRECISIONS,
    )
    recipe("--grad-clip-norm", "clip the gradients' total norm to this", type=float)
    recipe("--attention-lr-mult", "extra lr factor on attention params", type=float)
    recipe("--attention-weight-decay", "weight decay of gamma and scale", type=float)
    recipe("--aux-head", "FCN auxiliary head on c3", **switch)
    recipe(
        "--decoder",
        "stride4: a light decoder with the backbone's stride-4 features (a departure)",
        choices=DECODERS,
    )
    recipe("--input-size", "native H,W for eval/predict/export", type=_input_size)
    recipe("--crop-size", "training crop, N or H,W", type=_size)
    recipe("--base-size", "resize images to H,W before scaling", type=_size)
    recipe("--batch-size", "images per step", type=int)
    recipe("--workers", "data loader processes", type=int)
    recipe("--iters", "training steps", type=int)
    recipe("--epochs", "epochs, when --iters is not set", type=int)
    recipe("--lr", "base learning rate", type=float)
    recipe("--seed", "random seed", type=int)
    _add_device(p, default=None)
    recipe("--checkpoint-every", "steps between checkpoints", type=int)
    recipe("--eval-every", "steps between validations; 0: at the end", type=int)
    recipe("--amp", "float16 mixed precision on CUDA", **switch)
    recipe("--channels-last", "NHWC model and batches", **switch)
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
        default="torch",
        help="run the model in PyTorch, or export it to ONNX and run it in onnxruntime",
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
        "--resize",
        choices=RESIZE_MODES,
        default=None,
        help="keep-aspect (default): short side to the input size's, with either backend; "
        "squash (default for an .onnx file exported at a fixed size): to exactly the input "
        "size; none: the image's own size",
    )
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
    from danet import __version__

    parser = _Parser(prog="danet", description=__doc__.splitlines()[0], formatter_class=_Formatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"danet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub, _recipe_in(argv or []))
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
    """``danet train``: merge defaults, --config and flags, then train."""
    from danet.training.config import recipe_from_flags
    from danet.training.loop import train

    skip = {"config", "resume", "command", "debug", "quiet", "overwrite"}
    flags = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    cfg, given = recipe_from_flags(args.config, flags, args.resume)
    if not args.resume:
        say_device(cfg.device, args.quiet)
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out, --overwrite starts anew: give one")
    metrics = train(
        cfg, resume=args.resume, changes=given, quiet=args.quiet, overwrite=args.overwrite
    )
    if os.environ.get("RANK", "0") != "0":
        return
    if metrics and args.quiet:  # without --quiet, the last validation's line says it already
        print(f"val mIoU {100 * metrics['miou']:.2f}%  pixel acc {100 * metrics['pixel_acc']:.2f}%")
    print(f"model: {Path(cfg.out) / 'model.safetensors'} (use it with --checkpoint {cfg.out})")


def _evaluation(args: argparse.Namespace) -> dict[str, Any]:
    """What eval and inspect both pass on: the checkpoint, its split, the device, ``--json`` and
    ``--quiet``; ``--json`` is checked writable first (before the evaluation is spent) and a
    killed run's temp files beside it are removed."""
    if args.json:
        check_writable_file(args.json)
        remove_stale_temp_files(Path(args.json).parent, (Path(args.json).name,))
    return {
        "checkpoint": args.checkpoint,
        "dataset": args.dataset,
        "data_root": args.data_root,
        "split": args.split,
        "device": args.device,
        "json_path": args.json,
        "quiet": args.quiet,
    }


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    """``danet eval``: per-class table on stdout, JSON with the settings used."""
    from danet.training.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(
        **_evaluation(args),
        scales=args.scales,
        flip=args.flip,
        sliding_window=args.sliding_window,
        backend=args.backend,
        int8=args.int8,
        diagnostics=args.diagnostics,
    )


def run_inspect(args: argparse.Namespace) -> dict[str, Any]:
    """``danet inspect``: the attention diagnostics (and mIoU) of a checkpoint on a split."""
    from danet.training.evaluate import inspect_checkpoint

    return inspect_checkpoint(
        **_evaluation(args),
        max_images=args.max_images,
        reach_radius=args.reach_radius,
    )


def run_predict(args: argparse.Namespace) -> None:
    """``danet predict``."""
    from danet.inference.files import predict_command

    check_writable_dir(args.out)
    options = {k: v for k, v in vars(args).items() if k not in {"command", "debug", "quiet"}}
    predict_command(**options, progress=not args.quiet)


def run_attention(args: argparse.Namespace) -> None:
    """``danet attention``."""
    from danet.analysis.attention_maps import attention_figures, parse_points

    points = parse_points(args.points)
    check_writable_dir(args.out)
    written = attention_figures(
        args.checkpoint, args.image, points, args.out, args.channels, args.device
    )
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
    path = export_onnx(
        args.checkpoint,
        args.onnx,
        height,
        width,
        args.dynamic,
        args.opset,
        all_heads=args.all_heads,
        int8=args.int8,
        calibration=args.calibration,
        device=args.device,
    )
    if not args.quiet:
        print(f"wrote {path}")


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

    serve(args.checkpoint, args.compare, args.port, args.max_pixels, args.device)


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
}


def _one_line(err: BaseException) -> str:
    """The message of an error as one line: an OSError as "reason: file", else its first line."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}"
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _model_files(name_or_path: str) -> list[Path]:
    """The files a model is read from (bundled name, folder or file), for :func:`_note_inputs`."""
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
    """Resolve ``--device`` (train checks its recipe's) and say which device is used."""
    if getattr(args, "device", None) and args.command != "train":
        args.device = say_device(args.device, getattr(args, "quiet", False))


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


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
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
    own_signals = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if own_signals else None
    try:
        with command_scope():
            _note_inputs(args)
            _check_device(args)
            COMMANDS[args.command](args)
    except (*EXPECTED_ERRORS, OSError, RuntimeError) as err:
        # OSError: a full disk, a folder without write permission...; RuntimeError: a NaN loss,
        # another run holding the run folder, and what torch raises on bad input
        if args.debug:
            raise
        _report(f"danet {args.command}: error: {_one_line(err)}")
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
