"""The ``danet`` command: train | eval | predict | attention | export | demo.

Bad input ends with a one-line error that names the culprit and exit status 2 (``--debug`` shows
the traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from danet.writable import check_writable_dir, check_writable_file

EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, KeyError)
MAX_PIXELS = 4096 * 4096  # danet.data.io.MAX_PIXELS, without importing torch for --help


def _size(text: str) -> list[int]:
    parts = [int(p) for p in text.replace("x", ",").split(",")]
    return parts * 2 if len(parts) == 1 else parts


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


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train DANet with the paper's recipe")
    p.add_argument("--config", help="YAML recipe (configs/*.yaml); flags override it")
    p.add_argument("--dataset")
    p.add_argument("--data-root")
    p.add_argument("--train-split")
    p.add_argument("--val-split", help="'' to skip validation")
    p.add_argument("--out", help="run folder (checkpoints, metrics.jsonl, curves.png)")
    p.add_argument("--backbone")
    p.add_argument("--output-stride", type=int)
    p.add_argument("--pretrained", help="'imagenet', a weight file, or 'none'")
    p.add_argument("--attention", choices=("both", "pam", "cam", "none"))
    p.add_argument("--cam-variant", choices=("paper", "original"))
    p.add_argument("--aux-head", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--pam-reduction", type=int, help="PAM query/key channel reduction (paper: 8)")
    p.add_argument(
        "--pam-scale", choices=("none", "learned"), help="learned: softmax(s Q^T K), s learnt"
    )
    p.add_argument("--affinity-weight", type=float, help="weight of the PAM affinity loss (0: off)")
    p.add_argument("--attention-lr-mult", type=float, help="extra lr factor on attention params")
    p.add_argument("--attention-weight-decay", type=float, help="weight decay of gamma and scale")
    p.add_argument("--input-size", type=_size, help="native H,W for eval/predict/export")
    p.add_argument("--crop-size", type=_size, help="N or H,W")
    p.add_argument("--base-size", type=_size)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--iters", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch")
    p.add_argument("--int8", action="store_true", help="onnxruntime: static int8 (QDQ)")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="mIoU of a checkpoint on a dataset split")
    p.add_argument("--checkpoint", required=True, help="run folder, model folder, file or name")
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--scales", type=_scale, nargs="+", default=[1.0])
    p.add_argument("--flip", action="store_true")
    p.add_argument("--sliding-window", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write the metrics here")
    p.add_argument(
        "--diagnostics", action="store_true", help="also measure the attention (as danet inspect)"
    )
    _add_backend(p)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="label, colour and overlay PNGs for images/folders/videos")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--checkpoint", default="camvid")
    p.add_argument("--out", default="predictions")
    p.add_argument("--scales", type=_scale, nargs="+", default=[1.0])
    p.add_argument("--flip", action="store_true")
    p.add_argument("--sliding-window", action="store_true")
    p.add_argument("--batch-size", type=_positive_int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-pixels", type=_positive_int, default=None,
                   help=f"refuse larger images (default {MAX_PIXELS}, about 150 bytes a pixel)")  # fmt: skip
    _add_backend(p)


def _add_attention(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attention", help="draw position- and channel-attention maps")
    p.add_argument("image")
    p.add_argument("--checkpoint", default="camvid")
    p.add_argument("--points", nargs="+", default=[], help="pixels as x,y")
    p.add_argument("--channels", type=int, nargs="+", default=None)
    p.add_argument("--out", default="attention")
    p.add_argument("--device", default="cpu")


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write ONNX that onnxruntime runs")
    p.add_argument("--checkpoint", default="camvid")
    p.add_argument("--onnx", required=True)
    p.add_argument("--height", type=_positive_int)
    p.add_argument("--width", type=_positive_int)
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--opset", type=_opset, default=17)
    p.add_argument("--all-heads", action="store_true", help="also export the pam/cam logits")
    p.add_argument("--int8", action="store_true", help="onnxruntime static int8 (QDQ)")
    p.add_argument("--calibration", nargs="+", help="int8: images or folders of the dataset")


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="is the attention alive: PAM lift/entropy, CAM saturation, gammas, mIoU"
    )
    p.add_argument("--checkpoint", default="camvid", help="run folder, model folder, file or name")
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--max-images", type=int, help="only the first N images of the split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write the figures here")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="predict, attention maps and mIoU on the bundled samples")
    p.add_argument("--out", default="demo_out")
    p.add_argument("--checkpoint", default=None, help="default: the bundled camvid model")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``danet`` command."""
    parser = argparse.ArgumentParser(prog="danet", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_train,
        _add_eval,
        _add_predict,
        _add_attention,
        _add_export,
        _add_demo,
        _add_inspect,
    ):
        add(sub)
    return parser


def run_train(args: argparse.Namespace) -> None:
    """``danet train``: merge defaults, --config and flags, then train."""
    from danet.config import TrainConfig
    from danet.engine import train

    cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    skip = {"config", "resume", "command", "debug"}
    overrides = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    if "affinity_weight" in overrides:
        overrides["loss_weights"] = {"affinity": overrides.pop("affinity_weight")}
    cfg = cfg.merge(overrides, origin="command line")
    if not args.resume and not cfg.data_root:
        raise ValueError("--data-root is required")
    # with --resume, every value given (flags, and the whole recipe of a --config) is checked
    # against the saved run: equal is fine, a change it cannot honour is an error
    given = cfg.to_dict() if args.config else {k: getattr(cfg, k) for k in overrides}
    metrics = train(cfg, resume=args.resume, changes=given if args.resume else None)
    if metrics:
        print(f"val mIoU {100 * metrics['miou']:.2f}%  pixel acc {100 * metrics['pixel_acc']:.2f}%")


def format_table(metrics: dict[str, Any], class_names: list[str]) -> str:
    """The per-class IoU table that ``danet eval`` prints."""
    width = max(len(n) for n in [*class_names, "mean"])
    lines = [f"{'class':<{width}}  IoU (%)"]
    for name, iou in zip(class_names, metrics["per_class_iou"], strict=True):
        lines.append(f"{name:<{width}}  {100 * iou:7.2f}")
    lines.append(f"{'mean':<{width}}  {100 * metrics['miou']:7.2f}")
    lines.append(f"pixel accuracy {100 * metrics['pixel_acc']:.2f}%")
    return "\n".join(lines)


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    """``danet eval``: per-class table on stdout, JSON with the settings used.

    Under torchrun each rank evaluates a share of the images; rank 0 prints and writes the result.
    """
    from danet.checkpoint import atomic_write
    from danet.data import build_dataset
    from danet.distributed import cleanup, init_distributed, is_main
    from danet.engine import evaluate
    from danet.onnx_runtime import load_model

    if args.json:
        check_writable_file(args.json)  # before the evaluation is spent
    if args.diagnostics and args.backend != "torch":
        raise ValueError("--diagnostics needs --backend torch (it hooks the attention modules)")
    _, _, device = init_distributed(args.device)
    try:
        model = load_model(args.checkpoint, args.backend, args.int8, str(device))
        dataset = build_dataset(args.dataset, args.data_root, args.split)
        if model.num_classes != dataset.num_classes:
            raise ValueError(
                f"{args.checkpoint}: checkpoint has {model.num_classes} classes but dataset "
                f"{args.dataset} has {dataset.num_classes}"
            )
        metrics = evaluate(
            model,
            dataset,
            args.scales,
            args.flip,
            args.sliding_window,
            device,
            diagnostics=args.diagnostics,
        )
        main_rank = is_main()
    finally:
        cleanup()
    names = list(dataset.class_names)
    result = {
        **metrics,
        "class_names": names,
        "checkpoint": str(args.checkpoint),
        "backend": args.backend + (" int8" if args.int8 else ""),
        "dataset": args.dataset,
        "split": args.split,
        "images": len(dataset),
        "scales": args.scales,
        "flip": args.flip,
        "sliding_window": args.sliding_window,
        "input_size": model.config.get("input_size"),
    }
    if main_rank:
        print(format_table(metrics, names))
    if args.json and main_rank:
        text = json.dumps(result, indent=2)
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(text))
    return result


def run_inspect(args: argparse.Namespace) -> dict[str, Any]:
    """``danet inspect``: the attention diagnostics (and mIoU) of a checkpoint on a split."""
    import danet
    from danet.data import build_dataset
    from danet.engine import evaluate

    if args.json:
        check_writable_file(args.json)  # before the evaluation is spent
    model = danet.load(args.checkpoint, map_location=args.device)
    dataset = build_dataset(args.dataset, args.data_root, args.split)
    if model.num_classes != dataset.num_classes:
        raise ValueError(
            f"{args.checkpoint}: checkpoint has {model.num_classes} classes but dataset "
            f"{args.dataset} has {dataset.num_classes}"
        )
    if args.max_images is not None:
        if args.max_images < 1:
            raise ValueError(f"--max-images {args.max_images} must be at least 1")
        dataset.pairs = dataset.pairs[: args.max_images]
    metrics = evaluate(model, dataset, device=args.device, diagnostics=True)
    result = {
        **metrics["attention"],
        "miou": metrics["miou"],
        "pixel_acc": metrics["pixel_acc"],
        "checkpoint": str(args.checkpoint),
        "dataset": args.dataset,
        "split": args.split,
        "images": len(dataset),
        "input_size": model.config.get("input_size"),
    }
    width = max(len(k) for k in metrics["attention"])
    for key, value in metrics["attention"].items():
        print(f"{key:<{width}}  {value:.4f}")
    print(f"{'miou':<{width}}  {metrics['miou']:.4f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def run_predict(args: argparse.Namespace) -> None:
    """``danet predict``."""
    from danet.distributed import cleanup, init_distributed
    from danet.predict import predict_paths

    check_writable_dir(args.out)
    rank, world, device = init_distributed(args.device)  # under torchrun: a share per rank
    try:
        written = predict_paths(
            args.checkpoint,
            args.inputs,
            args.out,
            scales=args.scales,
            flip=args.flip,
            sliding_window=args.sliding_window,
            batch_size=args.batch_size,
            device=str(device),
            max_pixels=args.max_pixels,
            backend=args.backend,
            int8=args.int8,
        )
    finally:
        cleanup()
    where = f" (rank {rank} of {world})" if world > 1 else ""
    print(f"wrote {len(written) // 3} label/color/overlay PNG triples to {args.out}{where}")


def run_attention(args: argparse.Namespace) -> None:
    """``danet attention``."""
    from danet.visualize import attention_figures

    points = []
    for text in args.points:
        try:
            x, y = (int(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"--points: {text!r} is not x,y") from None
        points.append((x, y))
    check_writable_dir(args.out)
    written = attention_figures(
        args.checkpoint, args.image, points, args.out, args.channels, args.device
    )
    print("\n".join(str(path) for path in written))


def run_export(args: argparse.Namespace) -> None:
    """``danet export``."""
    from danet.export import export_onnx

    check_writable_file(args.onnx)
    path = export_onnx(
        args.checkpoint,
        args.onnx,
        args.height,
        args.width,
        args.dynamic,
        args.opset,
        all_heads=args.all_heads,
        int8=args.int8,
        calibration=args.calibration,
    )
    print(f"wrote {path}")


def run_demo(args: argparse.Namespace) -> None:
    """``danet demo``."""
    from danet.demo import run_demo as demo

    check_writable_dir(args.out)
    demo(args.out, args.checkpoint)


COMMANDS = {
    "train": run_train,
    "eval": run_eval,
    "predict": run_predict,
    "attention": run_attention,
    "export": run_export,
    "demo": run_demo,
    "inspect": run_inspect,
}


def _one_line(err: BaseException) -> str:
    """The message of an error as one line: an OSError as "reason: file", else its first line."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}"
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _check_device(args: argparse.Namespace) -> None:
    if getattr(args, "device", None) and args.command != "train":  # train checks its recipe's
        from danet.device import resolve_device

        args.device = str(resolve_device(args.device))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        _check_device(args)
        COMMANDS[args.command](args)
    except (*EXPECTED_ERRORS, OSError, RuntimeError) as err:
        # OSError: a full disk, a folder without write permission...; RuntimeError: a NaN loss,
        # another run holding the run folder, and what torch raises on bad input
        if args.debug:
            raise
        print(f"danet {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
