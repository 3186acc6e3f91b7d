"""int8 ONNX: onnxruntime's static quantization (QDQ), calibrated on a few images of the dataset.

Weights are quantized per output channel to 7 bits in int8 (``reduce_range``, which also avoids
the int16 saturation of x86 CPUs without VNNI), activations per tensor to uint8, with ranges from
the min/max that the calibration images reach. The quantized file keeps the fp32 file's
``metadata_props``, input and outputs.

Measured again for the dynamic-size export that ``--backend onnxruntime --int8`` now caches, with
the previous bundled model (v2, trained on train + val), on the 95 CamVid val frames that the
calibration did not see (val without the six samples): fp32 76.16%, int8 75.80%
(-0.36 points); calibrating on the six samples and their mirror images 75.82%; leaving both
attentions' MatMul/Softmax and the classifier in float 75.80%. The six samples are kept.

Calibration runs the graph with every intermediate tensor as an output, so its memory grows with
the input size. Above :data:`CALIBRATION_PIXELS`, the ranges are therefore measured on the same
model exported at a smaller size (same aspect ratio, :func:`calibration_size`) and applied to the
full-size graph by tensor name. A tensor takes a range only where the node that makes it has the
same operator and inputs in both graphs; the rest (the position attention's query blocks, whose
number depends on the size) stay in float.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QDQQuantizer,
    QuantFormat,
    QuantType,
    create_calibrator,
    quantize_static,
)
from onnxruntime.quantization.calibrate import TensorData, TensorsData
from onnxruntime.quantization.quant_utils import load_model_with_shape_infer
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
from onnxruntime.quantization.shape_inference import quant_pre_process
from torch import nn

import danet.assets as assets
from danet.data import DATASETS, read_image
from danet.data.io import list_images
from danet.utils.images import prepare

CALIBRATION_IMAGES = 8
"""At most this many calibration images are used, spread evenly over those given."""

CALIBRATION_PIXELS = 512 * 1024
"""Graphs with more input pixels than this are calibrated at a smaller size (module docstring)."""


def calibration_size(height: int, width: int) -> tuple[int, int] | None:
    """The size to calibrate a ``height`` x ``width`` graph at, or None to calibrate it as it is.

    Above :data:`CALIBRATION_PIXELS`: the same aspect ratio, scaled to fit, in multiples of 8.
    """
    if height * width <= CALIBRATION_PIXELS:
        return None
    factor = (CALIBRATION_PIXELS / (height * width)) ** 0.5
    return max(8, int(height * factor) // 8 * 8), max(8, int(width * factor) // 8 * 8)


def default_calibration(model: nn.Module, origin: str = "checkpoint") -> list[Path]:
    """The bundled sample images of the dataset whose class names the model has."""
    classes = list(model.config.get("class_names") or [])
    for name in assets.sample_datasets():
        folder = assets.samples_dir(name)
        reader = DATASETS.get(name)
        if classes and list(getattr(reader, "class_names", None) or []) == classes:
            return list_images(folder / "val")
    raise ValueError(
        f"{origin}: no bundled calibration images for this model's classes; "
        "pass --calibration with a few images (or a folder) of its dataset"
    )


def calibration_files(images: Sequence[str | Path]) -> list[Path]:
    """Expand folders, check that files exist, keep at most :data:`CALIBRATION_IMAGES`."""
    files: list[Path] = []
    for item in images:
        path = Path(item)
        if path.is_dir():
            files += list_images(path)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such calibration image or folder")
    if not files:
        raise ValueError(f"{', '.join(map(str, images)) or '--calibration'}: no calibration images")
    step = max(1, len(files) // CALIBRATION_IMAGES)
    return files[::step][:CALIBRATION_IMAGES]


class _Batches(CalibrationDataReader):
    """Feeds the calibration images, normalised and resized to the graph's input size."""

    def __init__(self, files: list[Path], input_name: str, meta: dict[str, str]) -> None:
        self.files, self.input_name = files, input_name
        self.mean, self.std = json.loads(meta["mean"]), json.loads(meta["std"])
        self.size = tuple(json.loads(meta["input_size"]))
        self._feeds = self._iterate()

    def _iterate(self) -> Iterator[dict[str, np.ndarray]]:
        for path in self.files:
            x = prepare(read_image(path), self.size, self.mean, self.std)[None]  # (1, 3, h, w)
            yield {self.input_name: x}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:
        self._feeds = self._iterate()


def _metadata(path: str | Path) -> tuple[dict[str, str], str]:
    """A danet export's ``metadata_props`` and input name; ValueError if it is not one."""
    proto = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    missing = {"mean", "std", "input_size"} - set(meta)
    if missing:
        raise ValueError(f"{path}: not a danet export (metadata lacks {sorted(missing)})")
    return meta, proto.graph.input[0].name


def _producers(graph: onnx.GraphProto) -> dict[str, tuple]:
    """Each tensor's maker: (operator, input names) for node outputs, ("input",) for graph inputs.

    Weights count as "const": the exporter numbers their names differently at different sizes.
    """
    constants = {i.name for i in graph.initializer}
    made: dict[str, tuple] = {i.name: ("input",) for i in graph.input}
    for node in graph.node:
        inputs = tuple("const" if name in constants else name for name in node.input)
        for name in node.output:
            made[name] = (node.op_type, inputs)
    return made


def _transfer_ranges(
    ranges: TensorsData, source: onnx.ModelProto, target: onnx.ModelProto, op_types: list[str]
) -> tuple[TensorsData, list[str]]:
    """The ranges of ``source``'s tensors that are the same tensors in ``target``, and the nodes of
    ``target`` to leave in float because a float tensor they read or write has no such range."""
    theirs, ours = _producers(source.graph), _producers(target.graph)
    kept = {n: r for n, r in ranges.data.items() if n in ours and theirs.get(n) == ours[n]}
    graph = target.graph
    floats = {
        v.name
        for v in [*graph.input, *graph.value_info, *graph.output]
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    constants = {i.name for i in graph.initializer}
    excluded = [
        node.name
        for node in graph.node
        if node.op_type in op_types
        and any(
            t in floats and t not in constants and t not in kept
            for t in (*node.input, *node.output)
        )
    ]
    for node in graph.node:  # onnxruntime < 1.19 sets these itself, even on excluded nodes
        if node.op_type == "Softmax" and node.output[0] not in kept:
            kept[node.output[0]] = TensorData(lowest=np.float32(0.0), highest=np.float32(1.0))
    return TensorsData(CalibrationMethod.MinMax, kept), excluded


def _quantize_with_ranges_of(
    pre: Path, calibration_pre: Path, int8_path: str | Path, images: list[_Batches], tmp: Path
) -> None:
    """Quantize the graph ``pre`` with the activation ranges that the calibration ``images`` (one
    reader each) reach in the (smaller) graph ``calibration_pre``."""
    op_types = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))  # quantize_static's default
    # One calibrator per image, ranges merged here: each run's outputs are freed before the next,
    # and onnxruntime's own merging across collect_data calls fails before version 1.19.
    merged: dict[str, TensorData] = {}
    for k, image in enumerate(images):
        calibrator = create_calibrator(
            calibration_pre,
            op_types,
            augmented_model_path=str(tmp / f"augmented{k}.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
        )
        calibrator.collect_data(image)
        for name, value in calibrator.compute_data().data.items():
            low, high = value.range_value
            if name in merged:
                low = np.minimum(low, merged[name].range_value[0])
                high = np.maximum(high, merged[name].range_value[1])
            merged[name] = TensorData(lowest=low, highest=high)
        del calibrator
    ranges = TensorsData(CalibrationMethod.MinMax, merged)
    model = load_model_with_shape_infer(pre)
    source = load_model_with_shape_infer(calibration_pre)
    ranges, excluded = _transfer_ranges(ranges, source, model, op_types)
    quantizer = QDQQuantizer(
        model, True, True, QuantType.QInt8, QuantType.QUInt8, ranges, [], excluded, op_types, {}
    )
    quantizer.quantize_model()
    quantizer.model.save_model_to_file(str(int8_path), False)


def quantize_int8(
    fp32_path: str | Path,
    int8_path: str | Path,
    images: Sequence[str | Path],
    calibration_graph: str | Path | None = None,
) -> Path:
    """Quantize a ``danet export`` file (static, QDQ) calibrated on ``images``; returns ``int8_path``.

    ``calibration_graph``, the same model exported at a smaller size, is run for the calibration
    instead of ``fp32_path`` (see the module docstring).
    """
    files = calibration_files(images)
    meta, input_name = _metadata(fp32_path)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre))  # shape inference and graph fusions
        if calibration_graph is not None:
            calibration_meta, calibration_input = _metadata(calibration_graph)
            calibration_pre = Path(tmp) / "calibration_pre.onnx"
            quant_pre_process(str(calibration_graph), str(calibration_pre))
            images = [_Batches([f], calibration_input, calibration_meta) for f in files]
            _quantize_with_ranges_of(pre, calibration_pre, int8_path, images, Path(tmp))
        else:
            quantize_static(
                pre,
                int8_path,
                _Batches(files, input_name, meta),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
    proto = onnx.load(str(int8_path))
    names = json.dumps([f.name for f in files])  # what export --int8 says it calibrated on
    onnx.helper.set_model_props(
        proto, {**meta, "quantization": "int8 static QDQ", "calibration": names}
    )
    onnx.save(proto, str(int8_path))
    return Path(int8_path)
