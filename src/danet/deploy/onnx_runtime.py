"""The onnxruntime backend: a ``danet export`` file behind the interface that inference uses.

:class:`OnnxModel` reads everything it needs (class names, palette, mean/std, input size) from
the file's metadata and runs on numpy alone: ``array_logits`` is what
:mod:`danet.utils.inference` runs, so ``danet predict``, ``danet eval`` and
``danet.load("model.onnx").predict(...)`` take the same path as with :class:`danet.DANet`, and
none of them imports torch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from danet.model.metadata import check_metadata
from danet.utils.readable import check_regular_file
from danet.utils.textfile import parse_json


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """All graph optimisations, ``threads`` intra-op threads (default: ``OMP_NUM_THREADS`` when
    it is set, else onnxruntime's choice, one per physical core)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    default = os.environ.get("OMP_NUM_THREADS", "")
    options.intra_op_num_threads = threads or (int(default) if default.isdigit() else 0)
    options.inter_op_num_threads = 1
    return options


class OnnxModel:
    """Runs a ``danet export`` file with onnxruntime on the CPU, in place of a :class:`danet.DANet`.

    It has the model's ``mean``, ``std``, ``config``, ``num_classes`` and ``class_names``;
    ``predict`` segments images as ``DANet.predict`` does, and calling it on a batch returns
    ``{"out": logits}`` (a tensor for a tensor, an array for an array). A file exported at a
    fixed size takes only that size: images keep their aspect ratio, fitted inside it and padded
    (:mod:`danet.utils.inference`); batches run one image at a time when the batch axis is fixed.
    """

    training = False

    def __init__(
        self, path: str | Path, threads: int | None = None, origin: str | None = None
    ) -> None:
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
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        graph_input = self.session.get_inputs()[0]
        self.input_name, self.input_shape = graph_input.name, list(graph_input.shape)

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r})"

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return self.config["num_classes"]

    @property
    def class_names(self) -> list[str]:
        """The class names, in label order."""
        return list(self.config["class_names"])

    @property
    def backend(self) -> str:
        """``"onnxruntime"``, or ``"onnxruntime int8"`` for a quantized file."""
        meta = self.session.get_modelmeta().custom_metadata_map
        return "onnxruntime int8" if "quantization" in meta else "onnxruntime"

    @property
    def fixed_size(self) -> bool:
        """Whether the file takes only its ``input_size`` (exported without ``--dynamic``)."""
        return all(isinstance(n, int) for n in self.input_shape[2:])

    @property
    def attention_form(self) -> str:
        """How the graph's position attention grows with the N positions of the feature map:
        ``"linear"`` (query blocks: a fixed-size file, or a ``--dynamic`` one that says so in its
        ``position_attention`` metadata), or ``"naive"`` (N x N: ``--dynamic`` files written
        before the ``Scan`` form). The pixel budget checks the naive form's memory
        (:func:`danet.model.segment.check_run_size`)."""
        has_pam = self.config.get("attention", "both") in ("both", "pam")
        if self.fixed_size or not has_pam or "position_attention" in self.metadata:
            return "linear"
        return "naive"

    def eval(self) -> OnnxModel:
        """Nothing to switch (as ``nn.Module.eval``): an exported graph is in eval mode."""
        return self

    def train(self, mode: bool = True) -> OnnxModel:
        """Refuse training mode; ``train(False)`` is ``eval()``."""
        if mode:
            raise ValueError(f"{self.origin}: an ONNX model cannot be trained")
        return self

    def _check_size(self, shape: tuple[int, ...]) -> None:
        for axis, (want, got) in enumerate(zip(self.input_shape[2:], shape[2:], strict=True)):
            if isinstance(want, int) and want != got:
                raise ValueError(
                    f"{self.origin}: exported for {self.input_shape[2]}x{self.input_shape[3]} "
                    f"inputs, got {shape[2]}x{shape[3]} (axis {axis + 2}); use scale 1.0, or "
                    "export with dynamic=True"
                )

    def array_logits(self, x: np.ndarray) -> np.ndarray:
        """Normalised (B, 3, H, W) float32 array to (B, classes, H, W) float32 logits."""
        self._check_size(x.shape)
        array = np.asarray(x, dtype=np.float32)
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
        return logits.astype(np.float32, copy=False)

    def __call__(self, x: Any) -> dict[str, Any]:
        """``{"out": logits}`` of a normalised batch, as ``DANet(x)`` gives: a torch tensor in
        gives a tensor out (torch is imported only then), an array gives an array."""
        if hasattr(x, "detach"):  # a torch tensor
            import torch

            logits = self.array_logits(x.detach().cpu().float().numpy())
            return {"out": torch.from_numpy(logits)}
        return {"out": self.array_logits(np.asarray(x, dtype=np.float32))}

    forward = __call__

    def predict(self, image: Any, probs: bool = False, **options: Any) -> Any:
        """Segment an image (a path, PIL, or an HxWx3 array) or a batch, as ``DANet.predict``:
        an HxW uint8 label array per image, or (K, H, W) probabilities with ``probs``. Keyword
        arguments are :class:`~danet.utils.inference.InferenceSettings` fields, or ``settings``."""
        from danet.utils.inference import segment_images, settings_of

        return segment_images(self, image, settings_of(**options), probs)


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
