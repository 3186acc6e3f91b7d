"""How a command opens its model: ``--checkpoint`` in onnxruntime or PyTorch (``--backend``),
on ``--device``, with the inference flags as one settings object. Each loads what it needs."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any


def say_device(name: str, quiet: bool = False) -> str:
    """Resolve ``--device`` (``auto``: CUDA when available, else the CPU) and say on stdout which
    one is used (stderr stays for errors and progress)."""
    from danet.utils.device import resolve_device

    device = str(resolve_device(name))
    if not quiet:
        print(f"device: {device}")
    return device


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
    from danet.utils.distributed import process_group

    with process_group(args.device) as (_, _, device):
        yield load(args.checkpoint, map_location=device, backend=backend)


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
