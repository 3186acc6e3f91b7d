"""The onnxruntime backend: a ``danet export`` file behind the interface that inference uses.

:class:`OnnxModel` reads everything it needs (class names, palette, mean/std, input size) from
the file's metadata, and its ``forward`` returns ``{"out": logits}`` as :class:`danet.DANet`'s
does, so that :func:`danet.inference.predict_probs`, ``danet predict`` and ``danet eval`` run it
unchanged. :func:`load_model` picks the backend for the CLI.

A checkpoint run with onnxruntime is exported once with dynamic height and width, so that images
keep their aspect ratio as with PyTorch, and kept in a cache (:func:`cache_dir`, under
``$XDG_CACHE_HOME/danet/onnx``) under a key made of the checkpoint's bytes and the export's
options: later runs load the file instead of exporting (and, with ``int8``, calibrating) again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

BACKENDS = ("torch", "onnxruntime")


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """All graph optimisations, ``threads`` intra-op threads (default: torch's thread count)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    return options


class OnnxModel(nn.Module):
    """Runs a ``danet export`` file with onnxruntime on the CPU; ``forward`` returns ``{"out": ...}``.

    A file exported at a fixed size takes only that size (``predict_probs`` resizes to the
    ``input_size`` it reports); batches are run one image at a time when the batch axis is fixed.
    """

    def __init__(
        self, path: str | Path, threads: int | None = None, origin: str | None = None
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.origin = origin or str(path)  # what error messages name
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such ONNX file")
        try:
            self.session = ort.InferenceSession(
                str(self.path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types
            raise ValueError(f"{self.path}: onnxruntime cannot load it ({err})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = {"class_names", "palette", "mean", "std", "input_size"} - set(meta)
        if missing:
            raise ValueError(f"{self.path}: not a danet export (metadata lacks {sorted(missing)})")
        self.mean, self.std = json.loads(meta["mean"]), json.loads(meta["std"])
        names = json.loads(meta["class_names"])
        self.config: dict[str, Any] = {
            **json.loads(meta.get("config", "{}")),
            "class_names": names,
            "palette": json.loads(meta["palette"]),
            "input_size": json.loads(meta["input_size"]),
            "num_classes": len(names),
        }
        graph_input = self.session.get_inputs()[0]
        self.input_name, self.input_shape = graph_input.name, list(graph_input.shape)

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return self.config["num_classes"]

    @property
    def class_names(self) -> list[str]:
        """The class names, in label order."""
        return list(self.config["class_names"])

    @property
    def fixed_size(self) -> bool:
        """Whether the file takes only its ``input_size`` (exported without ``--dynamic``)."""
        return all(isinstance(n, int) for n in self.input_shape[2:])

    def _check_size(self, x: torch.Tensor) -> None:
        for axis, (want, got) in enumerate(zip(self.input_shape[2:], x.shape[2:], strict=True)):
            if isinstance(want, int) and want != got:
                raise ValueError(
                    f"{self.origin}: exported for {self.input_shape[2]}x{self.input_shape[3]} "
                    f"inputs, got {x.shape[2]}x{x.shape[3]} (axis {axis + 2}); use scale 1.0, or "
                    "export with --dynamic"
                )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised (B, 3, H, W) float batch to ``{"out": (B, classes, H, W) logits}``."""
        self._check_size(x)
        array = x.detach().cpu().float().numpy()
        batches = [array[i : i + 1] for i in range(len(array))]
        if not isinstance(self.input_shape[0], int) or self.input_shape[0] == len(array):
            batches = [array]
        outs = [
            self.session.run(None, {self.input_name: np.ascontiguousarray(b)})[0] for b in batches
        ]
        return {"out": torch.from_numpy(np.concatenate(outs))}


def load_model(
    checkpoint: str | Path,
    backend: str = "torch",
    int8: bool = False,
    device: str = "cpu",
    calibration: Sequence[str | Path] | None = None,
) -> nn.Module:
    """The model for ``danet predict``/``eval``: a :class:`danet.DANet`, or an :class:`OnnxModel`.

    ``checkpoint`` may be an ``.onnx`` file (onnxruntime only); any other checkpoint is exported
    for onnxruntime with dynamic height and width (int8 when ``int8``, see :mod:`danet.quantize`)
    into the cache (module docstring), once.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
    is_onnx = str(checkpoint).endswith(".onnx")
    if backend == "torch":
        if int8:
            raise ValueError("--int8 needs --backend onnxruntime")
        if is_onnx:
            raise ValueError(f"{checkpoint}: an ONNX file needs --backend onnxruntime")
        from danet.checkpoint import load

        return load(checkpoint, map_location=device)
    if device not in ("cpu", "auto"):
        raise ValueError(f"--device {device}: --backend onnxruntime runs on the CPU")
    if is_onnx:
        if int8:
            raise ValueError(f"{checkpoint}: already exported; pass the int8 file without --int8")
        return OnnxModel(checkpoint)
    from danet.export import export_onnx

    options = {"int8": int8, "dynamic": True, "calibration": _describe_files(calibration)}
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
    from danet import __version__
    from danet.checkpoint import CONFIG_NAME, TRAIN_STATE_NAME, WEIGHTS_NAME, resolve

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
