"""Is a thin class missed at its edges or whole? Recall by depth inside the class's regions.

Runs a model over a CamVid split at one scale. For class CLASS, each labelled pixel's depth is its
Euclidean distance to the nearest pixel of another label (1 at an edge, 2 one pixel further in,
...); the script prints CLASS's recall per depth, and per connected region (at least 30 pixels)
grouped by the region's width (twice its largest depth, less one). If recall rises with depth,
the edges are lost to resolution; if it is flat, whole objects are missed.

Usage: python scripts/class_depth.py MODEL CAMVID_ROOT [--split val] [--cls pole]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

import danet
from danet.data import build_dataset


def depth_recall(model: str, root: str, split: str, name: str) -> None:
    """Print recall by depth and by region width for class ``name`` on ``split``."""
    net = danet.load(model)
    data = build_dataset("camvid", root, split)
    k = data.class_names.index(name)
    hits, totals = np.zeros(6), np.zeros(6)
    regions = []  # (width, recall, pixels)
    for index in range(len(data)):
        image, mask = data[index]
        region = (mask == k).astype(np.uint8)
        if not region.any():
            continue
        hit = (net.predict(np.asarray(image)) == k) & (region > 0)
        depth = cv2.distanceTransform(region, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        level = np.clip(np.rint(depth), 0, 5).astype(int)
        np.add.at(hits, level[region > 0], hit[region > 0])
        np.add.at(totals, level[region > 0], 1)
        count, labels = cv2.connectedComponents(region)
        for c in range(1, count):
            pixels = labels == c
            if pixels.sum() >= 30:
                width = 2 * float(depth[pixels].max()) - 1
                regions.append((width, float(hit[pixels].mean()), int(pixels.sum())))
    print(f"{name} recall by depth (px from the nearest other label), {split}:")
    for d in range(1, 6):
        label = f">={d}" if d == 5 else str(d)
        print(f"  depth {label}: {hits[d] / max(totals[d], 1):.3f} of {int(totals[d])} pixels")
    table = np.array(regions).reshape(-1, 3)
    for low, high in [(0, 4), (4, 8), (8, 16), (16, 10_000)]:
        pick = (table[:, 0] >= low) & (table[:, 0] < high)
        if pick.any():
            weighted = np.average(table[pick, 1], weights=table[pick, 2])
            print(
                f"  regions {low}-{high} px wide: {int(pick.sum())}, "
                f"mean recall {table[pick, 1].mean():.3f} (pixel-weighted {weighted:.3f})"
            )


def main() -> None:
    """Parse the command line and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("root", help="CamVid in the SegNet layout")
    parser.add_argument("--split", default="val")
    parser.add_argument("--cls", default="pole")
    args = parser.parse_args()
    depth_recall(args.model, args.root, args.split, args.cls)


if __name__ == "__main__":
    main()
