"""A figure of image | ground truth | prediction rows for a few images of a dataset split.

Usage: python scripts/prediction_figure.py CHECKPOINT DATA_ROOT OUT.png [N]
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import danet
from danet.data import build_dataset


def main(checkpoint: str, data_root: str, out: str, count: int = 4) -> None:
    """Draw ``count`` evenly spaced val images with their labels and the model's prediction."""
    model = danet.load(checkpoint)
    dataset = build_dataset("camvid", data_root, "val")
    palette = np.array([*model.config["palette"], [0, 0, 0]], np.uint8)  # void drawn black
    picks = np.linspace(0, len(dataset) - 1, count).astype(int)
    fig, axes = plt.subplots(count, 3, figsize=(12, 3 * count))
    for row, index in zip(axes, picks, strict=True):
        image, mask = dataset[int(index)]
        pred = model.predict(image)
        mask = np.where(mask == 255, len(palette) - 1, mask)
        for ax, picture, title in zip(
            row,
            (image, palette[mask], palette[pred]),
            ("image", "ground truth", "DANet"),
            strict=True,
        ):
            ax.imshow(picture)
            ax.set_title(f"{dataset.pairs[int(index)][0].name}: {title}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(a) for a in sys.argv[4:5]))
