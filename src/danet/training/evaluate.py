"""Evaluation: mIoU of a model on a dataset split, and ``danet eval``'s result and table.

:func:`evaluate` scores the labels of :func:`danet.utils.inference.label_images`, the labels
``danet predict`` writes, with the same :class:`~danet.utils.inference.InferenceSettings`; it
takes a :class:`~danet.DANet` or its ONNX stand-in and loads no torch for the latter (nor
onnxruntime for the former).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from danet.data import SegmentationDataset, build_dataset
from danet.options import REACH_RADIUS
from danet.training.metrics import ConfusionMatrix
from danet.utils.atomic import dumps, write_text
from danet.utils.inference import InferenceSettings, label_images, model_input_size
from danet.utils.outputs import resolve_output
from danet.utils.progress import progress as progress_bar
from danet.utils.ranks import is_main, rank_world


def evaluate(
    model: Any,
    dataset: SegmentationDataset,
    settings: InferenceSettings | Sequence[float] | None = None,
    device: Any = None,
    progress: bool = True,
    diagnostics: bool = False,
    reach_radius: int = REACH_RADIUS,
) -> dict[str, Any]:
    """mIoU, pixel accuracy and per-class IoU of ``model`` on ``dataset``, one image at a time,
    with ``settings`` (a sequence of scales is read as ``InferenceSettings(scales=...)``).

    ``model`` is a :class:`~danet.DANet` (run on its own device; ``device`` is kept for old
    callers) or an :class:`~danet.deploy.onnx_runtime.OnnxModel`. Under torch.distributed each
    rank takes every world-th image and the confusion matrix is summed once at the end. With
    ``diagnostics`` (PyTorch models only), ``"attention"`` holds the figures of
    :mod:`danet.analysis.diagnostics`, the reach figures with ``reach_radius``.
    """
    if settings is None or isinstance(settings, InferenceSettings):
        settings = settings or InferenceSettings()
    else:
        settings = InferenceSettings(scales=tuple(settings))
    if diagnostics and not hasattr(model, "modules"):
        raise ValueError("diagnostics=True needs a PyTorch model (it hooks the attention modules)")
    was_training = model.training
    model.eval()
    runner = model
    if not hasattr(model, "array_logits"):  # any module that maps a batch to {"out": logits}
        from danet.model.segment import ArrayModel

        runner = ArrayModel(model)
    rank, world = rank_world()
    matrix = ConfusionMatrix(dataset.num_classes)
    probe = stats = None
    if diagnostics:
        from danet.analysis.diagnostics import AttentionInputs, AttentionStats

        probe = AttentionInputs(model)
        ignore = dataset.meta()["ignore_index"]
        stats = AttentionStats(probe.modules, ignore_index=ignore, radius=reach_radius)
    indices = range(rank, len(dataset), world)
    bar = progress_bar(len(indices), "eval", unit="img", quiet=not (progress and is_main()))
    with probe if probe is not None else contextlib.nullcontext():
        for i in indices:
            image, mask = dataset[i]
            labels = label_images(runner, [image], settings, f"image {i}")[0]
            matrix.update(labels, mask)
            if probe is not None and stats is not None:
                import torch

                stats.update(probe.pop(), torch.from_numpy(mask)[None])
            bar.update(1)
    bar.close()
    matrix.all_reduce()
    model.train(was_training)
    metrics: dict[str, Any] = dict(matrix.compute())
    if stats is not None:
        stats.all_reduce()
        metrics["attention"] = stats.compute()
    return metrics


def check_classes(model: Any, dataset: Any, checkpoint: str | Path, dataset_name: str) -> None:
    """Raise a ValueError naming both when the model's class count is not the dataset's."""
    if model.num_classes != dataset.num_classes:
        raise ValueError(
            f"{checkpoint}: checkpoint has {model.num_classes} classes but dataset "
            f"{dataset_name} has {dataset.num_classes}"
        )


def format_table(metrics: dict[str, Any], class_names: list[str]) -> str:
    """The per-class IoU table that ``danet eval`` prints."""
    width = max(len(n) for n in [*class_names, "mean"])
    lines = [f"{'class':<{width}}  IoU (%)"]
    for name, iou in zip(class_names, metrics["per_class_iou"], strict=True):
        lines.append(f"{name:<{width}}  {100 * iou:7.2f}")
    lines.append(f"{'mean':<{width}}  {100 * metrics['miou']:7.2f}")
    lines.append(f"pixel accuracy {100 * metrics['pixel_acc']:.2f}%")
    return "\n".join(lines)


def dataset_of_run(
    checkpoint: str | Path,
    dataset: str | None = None,
    data_root: str | Path | None = None,
    split: str | None = None,
) -> tuple[str, str | Path, str]:
    """``dataset``, ``data_root`` and ``split``, each defaulting to the training run's
    (``run_config.json`` beside the checkpoint; the split to its val split, else ``val``). An
    ``.onnx`` file has no run beside it."""
    run: dict[str, Any] = {}
    if not str(checkpoint).lower().endswith(".onnx"):
        from danet.model.checkpoint import run_folder_of
        from danet.training.runfolder import read_run_config

        run = read_run_config(run_folder_of(checkpoint))
    dataset_name = dataset or run.get("dataset")
    data_root = data_root or run.get("data_root")
    split = split or run.get("val_split") or "val"
    for name, value in (("dataset", dataset_name), ("data_root", data_root)):
        if not value:
            raise ValueError(
                f"{name} is required: {checkpoint} has no run_config.json to take it from"
            )
    return dataset_name, data_root, split  # type: ignore[return-value]


def backend_name(model: Any) -> str:
    """What ran the model, as ``danet eval``'s JSON says it: ``torch``, ``onnxruntime`` or
    ``onnxruntime int8``."""
    return getattr(model, "backend", "torch")


def evaluation_report(
    model: Any,
    origin: str | Path,
    dataset: str | None = None,
    data_root: str | Path | None = None,
    split: str | None = None,
    settings: InferenceSettings | None = None,
    diagnostics: bool = False,
    json_path: str | Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """``danet eval``: the metrics of ``model`` (opened from ``origin``) with the settings used,
    as a JSON-ready dict.

    The dataset, data root and split default to the training run's (``run_config.json`` beside
    ``origin``). The per-class table goes to stdout and, with ``json_path``, the result to that
    file. Under torchrun each rank evaluates a share of the images; rank 0 prints and writes.
    """
    settings = settings or InferenceSettings()
    dataset_name, data_root, split = dataset_of_run(origin, dataset, data_root, split)
    data = build_dataset(dataset_name, data_root, split)
    if json_path:  # not one of the images or masks just listed, before the work is spent
        resolve_output(json_path, "JSON")
    check_classes(model, data, origin, dataset_name)
    if not quiet and is_main():
        print(f"dataset: {dataset_name} {split} ({len(data)} images in {data_root})")
    metrics = evaluate(model, data, settings, progress=not quiet, diagnostics=diagnostics)
    names = list(data.class_names)
    size = model_input_size(model, settings)
    result = {
        **metrics,
        "class_names": names,
        "checkpoint": str(origin),
        "backend": backend_name(model),
        "dataset": dataset_name,
        "data_root": str(data_root),
        "split": split,
        "images": len(data),
        "scales": list(settings.scales),
        "flip": settings.flip,
        "sliding_window": settings.sliding_window,
        "resize": settings.resize,
        "input_size": list(size) if size else None,
    }
    if is_main():
        print(format_table(metrics, names))
        if json_path:
            write_text(json_path, dumps(result))
    return result


def format_figures(figures: dict[str, float]) -> str:
    """One ``name  value`` line per figure, names aligned (``danet inspect``'s output); a
    percentage (its name ends in ``(%)``) with two decimals, as ``danet eval`` prints it."""
    width = max(len(k) for k in figures)
    return "\n".join(
        f"{key:<{width}}  {value:.2f}" if key.endswith("(%)") else f"{key:<{width}}  {value:.4f}"
        for key, value in figures.items()
    )


def inspect_model(
    model: Any,
    origin: str | Path,
    dataset: str | None = None,
    data_root: str | Path | None = None,
    split: str | None = None,
    max_images: int | None = None,
    json_path: str | Path | None = None,
    reach_radius: int = REACH_RADIUS,
    quiet: bool = False,
) -> dict[str, Any]:
    """``danet inspect``: the attention figures (:mod:`danet.analysis.diagnostics`) and mIoU of
    ``model`` (opened from ``origin``) on a split (its first ``max_images``), printed one per
    line (mIoU in percent, as ``danet eval`` prints it) and, with ``json_path``, written there
    as JSON; returns the result. The dataset, data root and split default to the training
    run's, as in ``danet eval``."""
    if reach_radius < 0:
        raise ValueError(f"reach_radius={reach_radius} must be an integer >= 0")
    dataset, data_root, split = dataset_of_run(origin, dataset, data_root, split)
    data = build_dataset(dataset, data_root, split)
    if json_path:  # not one of the images or masks just listed, before the work is spent
        resolve_output(json_path, "JSON")
    check_classes(model, data, origin, dataset)
    if max_images is not None:
        data = data.first(max_images)
    metrics = evaluate(model, data, progress=not quiet, diagnostics=True, reach_radius=reach_radius)
    result = {
        **metrics["attention"],
        "miou": metrics["miou"],
        "pixel_acc": metrics["pixel_acc"],
        "checkpoint": str(origin),
        "dataset": dataset,
        "data_root": str(data_root),
        "split": split,
        "images": len(data),
        "input_size": model.config.get("input_size"),
        "reach_radius": reach_radius,
    }
    from danet.analysis.diagnostics import reach_verdict

    result["verdict"] = reach_verdict(metrics["attention"])
    print(format_figures({**metrics["attention"], "mIoU (%)": 100 * metrics["miou"]}))
    print(result["verdict"])
    if json_path:
        write_text(json_path, dumps(result))
    return result
