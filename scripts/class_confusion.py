"""Where one class's pixels go, and what inference-only logit shifts do to it.

Runs a model over a CamVid split at one scale and prints, for class CLASS: the share of its
pixels predicted as each class (recall side), the true classes of the pixels predicted as it
(precision side), and the mIoU and CLASS IoU after logit adjustment (``log p - tau log prior``,
prior from the train split's masks) and after a bias ``b`` on CLASS's log-probability alone.

Usage: python scripts/class_confusion.py MODEL CAMVID_ROOT [--split val] [--cls pole]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import danet
from danet.training.metrics import ConfusionMatrix


def _iou(labels: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    return _confusion(labels, pred, k).compute()["per_class_iou"]


def _confusion(labels: np.ndarray, pred: np.ndarray, k: int) -> ConfusionMatrix:
    matrix = ConfusionMatrix(k, ignore_index=k)  # CamVid's void is label k (11)
    matrix.update(pred, labels)
    return matrix


def main() -> None:
    """Print the confusion of one class and the logit-shift table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("root", type=Path)
    ap.add_argument("--split", default="val")
    ap.add_argument("--cls", default="pole")
    args = ap.parse_args()
    model = danet.load(args.model)
    names = list(model.class_names)
    k, c = len(names), names.index(args.cls)
    images = sorted(p for p in (args.root / args.split).iterdir() if p.suffix in (".png", ".jpg"))
    labels = np.stack(
        [np.array(Image.open(args.root / f"{args.split}annot" / f"{p.stem}.png")) for p in images]
    )
    logp = np.stack(
        [
            np.log(
                np.clip(model.predict(np.array(Image.open(p).convert("RGB")), probs=True), 1e-8, 1)
            )
            for p in images
        ]
    )
    conf = _confusion(labels, logp.argmax(1), k).mat
    row, col = conf[c] / conf[c].sum(), conf[:, c] / max(conf[:, c].sum(), 1)
    print(
        f"{args.cls}: {conf[c].sum()} pixels, predicted as "
        + ", ".join(f"{names[j]} {row[j]:.3f}" for j in np.argsort(-row)[:4])
    )
    print(
        f"predicted {args.cls}: {conf[:, c].sum()} pixels, truly "
        + ", ".join(f"{names[j]} {col[j]:.3f}" for j in np.argsort(-col)[:4])
    )
    counts = np.zeros(k)
    for p in (args.root / "trainannot").glob("*.png"):
        counts += np.bincount(np.array(Image.open(p)).ravel(), minlength=k + 1)[:k]
    log_prior = np.log(counts / counts.sum())[None, :, None, None]
    for tau in (0.0, 0.1, 0.2, 0.3, 0.5):
        iou = np.asarray(_iou(labels, (logp - tau * log_prior).argmax(1), k))
        print(f"tau {tau}: mIoU {100 * iou.mean():.2f}  {args.cls} {100 * iou[c]:.1f}")
    for b in (0.5, 1.0, 1.5, 2.0, 3.0):
        shifted = logp.copy()
        shifted[:, c] += b
        iou = np.asarray(_iou(labels, shifted.argmax(1), k))
        print(f"bias {b} on {args.cls}: mIoU {100 * iou.mean():.2f}  {args.cls} {100 * iou[c]:.1f}")


if __name__ == "__main__":
    main()
