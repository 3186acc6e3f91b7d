"""The backend choice: a checkpoint opened in PyTorch, or exported and run in onnxruntime.

A checkpoint run with onnxruntime is exported once with dynamic height and width, so that images
keep their aspect ratio as with PyTorch, and kept in a cache (:func:`cache_dir`, under
``$XDG_CACHE_HOME/danet/onnx``) under a key made of the checkpoint's bytes and the export's
options (:func:`checkpoint_key`): later runs load the file instead of exporting (and, with
``int8``, calibrating) again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from torch import nn

from danet import __version__
from danet.deploy.export import GRAPH_VERSION, export_onnx
from danet.deploy.onnx_runtime import OnnxModel
from danet.model.checkpoint import CONFIG_NAME, TRAIN_STATE_NAME, WEIGHTS_NAME, resolve
from danet.model.danet import load
from danet.options import BACKENDS, Backend, check_choice


def open_model(
    checkpoint: str | Path,
    backend: Backend = "torch",
    int8: bool = False,
    device: str = "cpu",
    calibration: Sequence[str | Path] | None = None,
) -> nn.Module:
    """The model for ``danet predict``/``eval``: a :class:`danet.DANet`, or an :class:`OnnxModel`.

    ``checkpoint`` may be an ``.onnx`` file (onnxruntime only); any other checkpoint is exported
    for onnxruntime with dynamic height and width (int8 when ``int8``, see
    :mod:`danet.deploy.quantize`) into the cache (module docstring), once.
    """
    check_choice("backend", backend, BACKENDS)
    is_onnx = str(checkpoint).endswith(".onnx")
    if backend == "torch":
        if int8:
            raise ValueError("--int8 needs --backend onnxruntime")
        if is_onnx:
            raise ValueError(f"{checkpoint}: an ONNX file needs --backend onnxruntime")
        return load(checkpoint, map_location=device)
    if device not in ("cpu", "auto"):
        raise ValueError(f"--device {device}: --backend onnxruntime runs on the CPU")
    if is_onnx:
        if int8:
            raise ValueError(f"{checkpoint}: already exported; pass the int8 file without --int8")
        return OnnxModel(checkpoint)
    calibration_files = _describe_files(calibration)  # with GRAPH_VERSION: a new graph, a new key
    options = {
        "int8": int8,
        "dynamic": True,
        "calibration": calibration_files,
        "graph": GRAPH_VERSION,
    }
    cached = cache_dir() / f"{checkpoint_key(checkpoint, options)}.onnx"
    if not cached.is_file():
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(checkpoint, cached, dynamic=True, int8=int8, calibration=calibration)
        except PermissionError:  # a read-only cache: export for this run only
            with tempfile.TemporaryDirectory() as tmp:
                path = export_onnx(
                    checkpoint, Path(tmp) / "model.onnx", dynamic=True, int8=int8,
                    calibration=calibration,
                )  # fmt: skip
                return OnnxModel(path, origin=str(checkpoint))  # the session holds the weights
    return OnnxModel(cached, origin=str(checkpoint))


def cache_dir() -> Path:
    """Where exports for ``--backend onnxruntime`` are kept: ``$XDG_CACHE_HOME/danet/onnx``
    (``~/.cache/danet/onnx`` when it is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "danet" / "onnx"


def _describe_files(paths: Sequence[str | Path] | None) -> list[list[Any]] | None:
    """Calibration inputs as (resolved path, size, mtime): a changed file makes a new key."""
    if paths is None:
        return None
    described: list[list[Any]] = []
    for path in (Path(p).resolve() for p in paths):
        stat = path.stat() if path.exists() else None
        described.append([str(path), stat and stat.st_size, stat and stat.st_mtime_ns])
    return described


def checkpoint_key(checkpoint: str | Path, options: dict[str, Any]) -> str:
    """A hex digest of the checkpoint's files (weights and config), ``options``, and the versions
    of danet, torch and onnxruntime: equal keys mean an equal export."""
    path = resolve(checkpoint)
    if path.is_dir():  # the file load() reads
        weights = path / WEIGHTS_NAME
        path = weights if weights.is_file() else path / TRAIN_STATE_NAME
    files = [path, path.with_name(CONFIG_NAME)] if path.suffix == ".safetensors" else [path]
    digest = hashlib.sha256()
    for file in files:
        if file.is_file():
            digest.update(file.name.encode())
            with file.open("rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(chunk)
    versions = [__version__, torch.__version__, ort.__version__]
    digest.update(json.dumps([options, versions], sort_keys=True).encode())
    return digest.hexdigest()[:32]
