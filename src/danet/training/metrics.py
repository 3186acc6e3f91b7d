"""Segmentation metrics from a confusion matrix, as in torchvision's reference scripts."""

from __future__ import annotations

import torch
import torch.distributed as dist


class ConfusionMatrix:
    """Accumulates ``mat[target, pred]`` counts over batches; pixels at ``ignore_index`` are skipped."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and true label maps of equal shape."""
        n = self.num_classes
        pred, target = pred.flatten().cpu().long(), target.flatten().cpu().long()
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        if target.numel() and (int(target.max()) >= n or int(target.min()) < 0):
            raise ValueError(f"target labels must lie in 0..{n - 1} or be {self.ignore_index}")
        if pred.numel() and (int(pred.max()) >= n or int(pred.min()) < 0):
            raise ValueError(
                f"predicted labels must lie in 0..{n - 1}, not {int(pred.min())}..{int(pred.max())} "
                "(does the model output more classes than the dataset has?)"
            )
        self.mat += torch.bincount(n * target + pred, minlength=n * n).reshape(n, n)

    def all_reduce(self) -> None:
        """Sum the matrix over all processes (a no-op outside torch.distributed)."""
        if dist.is_available() and dist.is_initialized():
            mat = self.mat.to("cuda" if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(mat)
            self.mat = mat.cpu()

    def compute(self) -> dict[str, float | list[float]]:
        """Return ``miou`` (mean over classes seen in target or prediction), ``pixel_acc``,
        ``mean_acc`` and ``per_class_iou`` (NaN for a class absent from both)."""
        mat = self.mat.double()
        tp = mat.diag()
        gt, pred = mat.sum(1), mat.sum(0)
        union = gt + pred - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, float("nan")))
        total = mat.sum()
        return {
            "miou": float(iou.nanmean()) if union.gt(0).any() else float("nan"),
            "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
            "mean_acc": float(acc.nanmean()) if gt.gt(0).any() else float("nan"),
            "per_class_iou": [float(x) for x in iou],
        }
