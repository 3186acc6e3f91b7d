"""Evaluation: mIoU of a model on a dataset split, and ``danet eval``'s result and table."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from danet.analysis.diagnostics import REACH_RADIUS, AttentionInputs, AttentionStats
from danet.data import SegmentationDataset, build_dataset
from danet.data.transforms import normalize
from danet.deploy.backend import open_model
from danet.model.checkpoint import run_folder_of
from danet.model.danet import load
from danet.model.segment import predict_probs
from danet.training.metrics import ConfusionMatrix
from danet.training.runfolder import read_run_config
from danet.utils.atomic import dumps, write_text
from danet.utils.distributed import cleanup, init_distributed, is_main
from danet.utils.outputs import resolve_output
from danet.utils.progress import progress as progress_bar


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: SegmentationDataset,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    sliding_window: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    diagnostics: bool = False,
    reach_radius: int = REACH_RADIUS,
) -> dict[str, Any]:
    """mIoU, pixel accuracy and per-class IoU of ``model`` on ``dataset``, one image at a time.

    Under torch.distributed each rank takes every world-th image and the confusion matrix is
    summed once at the end. With ``diagnostics``, ``"attention"`` holds the figures of
    :mod:`danet.analysis.diagnostics`, measured at the first of ``scales`` (unflipped), the
    reach figures with ``reach_radius``.
    """
    was_training = model.training
    model.eval()
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    matrix = ConfusionMatrix(dataset.num_classes)
    probe = AttentionInputs(model)
    stats = AttentionStats(
        probe.modules, ignore_index=dataset.meta()["ignore_index"], radius=reach_radius
    )
    indices = range(rank, len(dataset), world)
    bar = progress_bar(len(indices), "eval", unit="img", quiet=not (progress and is_main()))
    with probe if diagnostics else contextlib.nullcontext():
        for i in indices:
            image, mask = dataset[i]
            x = normalize(image, model.mean, model.std)[None].to(device)
            probs = predict_probs(
                model, x, scales, flip, sliding_window, model.config.get("input_size")
            )
            target = torch.from_numpy(mask)
            matrix.update(probs.argmax(1)[0], target)
            if diagnostics:
                stats.update(probe.pop(), target[None])
            bar.update(1)
    bar.close()
    matrix.all_reduce()
    model.train(was_training)
    metrics = matrix.compute()
    if diagnostics:
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
    (``run_config.json`` beside the checkpoint; the split to its val split, else ``val``)."""
    run = read_run_config(run_folder_of(checkpoint))
    dataset_name = dataset or run.get("dataset")
    data_root = data_root or run.get("data_root")
    split = split or run.get("val_split") or "val"
    for flag, value in (("--dataset", dataset_name), ("--data-root", data_root)):
        if not value:
            raise ValueError(
                f"{flag} is required: {checkpoint} has no run_config.json to take it from"
            )
    return dataset_name, data_root, split


def evaluate_checkpoint(
    checkpoint: str | Path,
    dataset: str | None = None,
    data_root: str | Path | None = None,
    split: str | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    sliding_window: bool = False,
    device: str = "auto",
    backend: str = "torch",
    int8: bool = False,
    diagnostics: bool = False,
    json_path: str | Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """``danet eval``: the metrics of a checkpoint with the settings used, as a JSON-ready dict.

    The dataset, data root and split default to the training run's (``run_config.json``). The
    per-class table goes to stdout and, with ``json_path``, the result to that file. Under
    torchrun each rank evaluates a share of the images; rank 0 prints and writes the result.
    """
    if diagnostics and backend != "torch":
        raise ValueError("--diagnostics needs --backend torch (it hooks the attention modules)")
    dataset_name, data_root, split = dataset_of_run(checkpoint, dataset, data_root, split)
    _, _, dev = init_distributed(device)
    try:
        model = open_model(checkpoint, backend, int8, str(dev))
        data = build_dataset(dataset_name, data_root, split)
        if json_path:  # not one of the images or masks just listed, before the work is spent
            resolve_output(json_path, "JSON")
        check_classes(model, data, checkpoint, dataset_name)
        if not quiet and is_main():
            print(f"dataset: {dataset_name} {split} ({len(data)} images in {data_root})")
        metrics = evaluate(
            model,
            data,
            scales,
            flip,
            sliding_window,
            dev,
            progress=not quiet,
            diagnostics=diagnostics,
        )
        main_rank = is_main()
    finally:
        cleanup()
    names = list(data.class_names)
    result = {
        **metrics,
        "class_names": names,
        "checkpoint": str(checkpoint),
        "backend": backend + (" int8" if int8 else ""),
        "dataset": dataset_name,
        "data_root": str(data_root),
        "split": split,
        "images": len(data),
        "scales": list(scales),
        "flip": flip,
        "sliding_window": sliding_window,
        "input_size": model.config.get("input_size"),
    }
    if main_rank:
        print(format_table(metrics, names))
    if json_path and main_rank:
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


def inspect_checkpoint(
    checkpoint: str | Path,
    dataset: str | None = None,
    data_root: str | Path | None = None,
    split: str | None = None,
    max_images: int | None = None,
    device: str = "cpu",
    json_path: str | Path | None = None,
    reach_radius: int = REACH_RADIUS,
    quiet: bool = False,
) -> dict[str, Any]:
    """``danet inspect``: the attention figures (:mod:`danet.analysis.diagnostics`) and mIoU of a
    checkpoint on a split (its first ``max_images``), printed one per line (mIoU in percent, as
    ``danet eval`` prints it) and, with ``json_path``, written there as JSON; returns the result.
    The dataset, data root and split default to the training run's, as in ``danet eval``."""
    dataset, data_root, split = dataset_of_run(checkpoint, dataset, data_root, split)
    model = load(checkpoint, map_location=device)
    data = build_dataset(dataset, data_root, split)
    if json_path:  # not one of the images or masks just listed, before the work is spent
        resolve_output(json_path, "JSON")
    check_classes(model, data, checkpoint, dataset)
    if max_images is not None:
        data = data.first(max_images)
    if reach_radius < 0:
        raise ValueError(f"--reach-radius {reach_radius} must be an integer >= 0")
    metrics = evaluate(
        model,
        data,
        device=device,
        progress=not quiet,
        diagnostics=True,
        reach_radius=reach_radius,
    )
    result = {
        **metrics["attention"],
        "miou": metrics["miou"],
        "pixel_acc": metrics["pixel_acc"],
        "checkpoint": str(checkpoint),
        "dataset": dataset,
        "data_root": str(data_root),
        "split": split,
        "images": len(data),
        "input_size": model.config.get("input_size"),
        "reach_radius": reach_radius,
    }
    print(format_figures({**metrics["attention"], "mIoU (%)": 100 * metrics["miou"]}))
    if json_path:
        write_text(json_path, dumps(result))
    return result
