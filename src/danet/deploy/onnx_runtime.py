"""The onnxruntime backend: a ``danet export`` file behind the interface that inference uses.

:class:`OnnxModel` reads everything it needs (class names, palette, mean/std, input size) from
the file's metadata, and its ``forward`` returns ``{"out": logits}`` as :class:`danet.DANet`'s
does, so that :func:`danet.model.segment.predict_probs`, ``danet predict`` and ``danet eval``
run it unchanged. :mod:`danet.deploy.backend` picks the backend.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from danet.model.checkpoint import check_metadata
from danet.utils.atomic import parse_json
from danet.utils.readable import check_regular_file


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
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such ONNX file")
        check_regular_file(self.path, "ONNX file")  # a FIFO or a device: refused, never read
        try:
            self.session = ort.InferenceSession(
                str(self.path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types
            raise ValueError(f"{self.path}: onnxruntime cannot load it ({err})") from None
        self.mean, self.std, self.config = read_metadata(self.session, str(self.path))
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
        logits = np.concatenate(outs)
        if logits.ndim != 4 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"{self.origin}: the graph outputs {logits.shape} logits but the metadata names "
                f"{self.num_classes} classes; expected (batch, {self.num_classes}, height, width)"
            )
        return {"out": torch.from_numpy(logits)}


def _numbers(value: Any, count: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == count
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(v) for v in value)
    )


def read_metadata(
    session: ort.InferenceSession, origin: str
) -> tuple[list[float], list[float], dict[str, Any]]:
    """The mean, std and model config a ``danet export`` file carries, checked against its graph.

    Each value must be the JSON that export writes, the class count must be the graph's output
    channels, the palette 0-255 RGB, the std non-zero; anything else is a ValueError naming the
    file and the key.
    """
    meta = session.get_modelmeta().custom_metadata_map
    missing = {"class_names", "palette", "mean", "std", "input_size"} - set(meta)
    if missing:
        raise ValueError(f"{origin}: not a danet export (metadata lacks {sorted(missing)})")
    values = {
        key: parse_json(meta[key], f"{origin}: metadata {key!r}")
        for key in ("class_names", "palette", "mean", "std", "input_size", "config")
        if key in meta
    }
    mean, std = values["mean"], values["std"]
    for key, value in (("mean", mean), ("std", std)):
        if not _numbers(value, 3):
            raise ValueError(f"{origin}: metadata {key!r} must be 3 finite numbers, not {value!r}")
    if not all(v > 0 for v in std):
        raise ValueError(f"{origin}: metadata 'std' must be 3 numbers > 0, not {std!r}")
    config = values.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"{origin}: metadata 'config' must be a JSON object")
    names = values["class_names"]
    if not isinstance(names, list) or not names:
        raise ValueError(f"{origin}: metadata 'class_names' must be a non-empty list of names")
    config = {
        **config,
        "class_names": names,
        "palette": values["palette"],
        "input_size": values["input_size"],
        "num_classes": len(names),
    }
    check_metadata(config, len(names), f"{origin}: metadata")
    channels = session.get_outputs()[0].shape
    if len(channels) != 4:
        raise ValueError(f"{origin}: output 0 has shape {channels}; expected (B, classes, H, W)")
    if isinstance(channels[1], int) and channels[1] != len(names):
        raise ValueError(
            f"{origin}: the graph outputs {channels[1]} classes but its metadata names "
            f"{len(names)}; a danet export names one class per output channel"
        )
    return [float(v) for v in mean], [float(v) for v in std], config
