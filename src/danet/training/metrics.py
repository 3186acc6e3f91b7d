"""Segmentation metrics from a confusion matrix, as in torchvision's reference scripts.

Counted with numpy (``danet eval --backend onnxruntime`` loads no torch); the sum over ranks
under torch.distributed is one ``all_reduce``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from danet.utils.ranks import process_group


def _labels(values: Any) -> np.ndarray:
    """A label map (numpy array or torch tensor, any device) as a flat int64 array."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values).reshape(-1).astype(np.int64, copy=False)


class ConfusionMatrix:
    """Accumulates ``mat[target, pred]`` counts over batches; pixels at ``ignore_index`` are skipped."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: Any, target: Any) -> None:
        """Add a batch of predicted and true label maps of equal shape (arrays or tensors)."""
        n = self.num_classes
        pred, target = _labels(pred), _labels(target)
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        if target.size and (int(target.max()) >= n or int(target.min()) < 0):
            raise ValueError(f"target labels must lie in 0..{n - 1} or be {self.ignore_index}")
        if pred.size and (int(pred.max()) >= n or int(pred.min()) < 0):
            raise ValueError(
                f"predicted labels must lie in 0..{n - 1}, not {int(pred.min())}..{int(pred.max())} "
                "(does the model output more classes than the dataset has?)"
            )
        self.mat += np.bincount(n * target + pred, minlength=n * n).reshape(n, n)

    def all_reduce(self) -> None:
        """Sum the matrix over all processes (a no-op outside torch.distributed)."""
        dist = process_group()
        if dist is None:
            return
        import torch

        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        mat = torch.from_numpy(self.mat).to(device)
        dist.all_reduce(mat)
        self.mat = mat.cpu().numpy()

    def compute(self) -> dict[str, float | list[float]]:
        """Return ``miou`` (mean over classes seen in target or prediction), ``pixel_acc``,
        ``mean_acc`` and ``per_class_iou`` (NaN for a class absent from both)."""
        mat = self.mat.astype(np.float64)
        tp = np.diag(mat)
        gt, pred = mat.sum(1), mat.sum(0)
        union = gt + pred - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
            acc = np.where(gt > 0, tp / np.maximum(gt, 1), np.nan)
        total = mat.sum()
        return {
            "miou": float(np.nanmean(iou)) if (union > 0).any() else float("nan"),
            "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
            "mean_acc": float(np.nanmean(acc)) if (gt > 0).any() else float("nan"),
            "per_class_iou": [float(x) for x in iou],
        }
