"""The handler of each command (``run_<command>``): it takes the parsed flags and calls one
library function, importing it (and torch) only when it runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from danet.cli.models import backend_of, opened_model, say_device, settings_from, torch_model
from danet.training.config import specs as recipe_specs
from danet.utils.atomic import remove_stale_temp_files
from danet.utils.writable import check_writable_dir, check_writable_file


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
