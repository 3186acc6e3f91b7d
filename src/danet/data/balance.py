"""Class weights that balance the cross-entropy over thin and rare classes."""

from __future__ import annotations

import numpy as np

from danet.data.base import IGNORE_INDEX, SegmentationDataset


def class_pixel_counts(dataset: SegmentationDataset) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels, image_pixels)`` per class over the dataset's masks: the pixels of each class,
    and the pixels of the images in which the class appears (SegNet's frequency denominator)."""
    k = dataset.num_classes
    pixels = np.zeros(k, dtype=np.int64)
    image_pixels = np.zeros(k, dtype=np.int64)
    for _, mask_path in dataset.pairs:
        if mask_path is None:
            continue
        mask = dataset.load_mask(mask_path)
        counts = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=k)[:k]
        pixels += counts
        image_pixels[counts > 0] += int((mask != IGNORE_INDEX).sum())
    return pixels, image_pixels


def median_frequency_weights(dataset: SegmentationDataset) -> np.ndarray:
    """SegNet's median-frequency balancing (Eigen and Fergus, 2015): ``median(f) / f(c)`` with
    ``f(c)`` the pixels of class c over the pixels of the images that contain it. A class absent
    from every mask gets weight 0 (it has no pixels to weigh)."""
    pixels, image_pixels = class_pixel_counts(dataset)
    present = pixels > 0
    if not present.any():
        raise ValueError(f"{dataset.root}: no labelled pixels to compute class weights from")
    freq = np.zeros(len(pixels))
    freq[present] = pixels[present] / image_pixels[present]
    weights = np.zeros(len(pixels))
    weights[present] = np.median(freq[present]) / freq[present]
    return weights.astype(np.float32)


def rare_classes(dataset: SegmentationDataset) -> list[int]:
    """The classes present in the masks whose frequency ``f(c)`` (as in
    :func:`median_frequency_weights`) lies below the median: those the weights would lift."""
    weights = median_frequency_weights(dataset)
    return [int(c) for c in np.flatnonzero(weights > 1.0)]
