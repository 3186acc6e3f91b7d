"""A checkpoint run in onnxruntime: exported once, with dynamic height and width, and cached.

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

from danet.deploy.export import GRAPH_VERSION, export_onnx
from danet.deploy.onnx_runtime import OnnxModel
from danet.model.checkpoint import CONFIG_NAME, TRAIN_STATE_NAME, WEIGHTS_NAME, resolve
from danet.model.danet import load
from danet.version import __version__


def onnx_model(
    checkpoint: str | Path,
    int8: bool = False,
    calibration: Sequence[str | Path] | None = None,
) -> OnnxModel:
    """A checkpoint exported for onnxruntime with dynamic height and width (int8 when ``int8``,
    see :mod:`danet.deploy.quantize`), from the cache (module docstring) when it was exported
    before. :func:`danet.load` calls it for ``backend="onnxruntime"``."""
    options = {  # with GRAPH_VERSION: a new graph, a new cache key
        "int8": int8,
        "dynamic": True,
        "calibration": _describe_files(calibration),
        "graph": GRAPH_VERSION,
    }
    cached = cache_dir() / f"{checkpoint_key(checkpoint, options)}.onnx"
    if cached.is_file():
        return OnnxModel(cached, origin=str(checkpoint))
    model = load(checkpoint)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, cached, dynamic=True, int8=int8, calibration=calibration)
    except PermissionError:  # a read-only cache: export for this run only
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(
                model, Path(tmp) / "model.onnx", dynamic=True, int8=int8, calibration=calibration
            )
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
