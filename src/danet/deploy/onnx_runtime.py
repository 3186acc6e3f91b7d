"""The onnxruntime backend: a ``danet export`` file behind the interface that inference uses.

:class:`OnnxModel` reads everything it needs (class names, palette, mean/std, input size) from
the file's metadata, and its ``forward`` returns ``{"out": logits}`` as :class:`danet.DANet`'s
does, so that :func:`danet.model.segment.predict_probs`, ``danet predict`` and ``danet eval``
run it unchanged. :mod:`danet.deploy.backend` picks the backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn


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
