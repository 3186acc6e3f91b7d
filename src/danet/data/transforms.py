"""Augmentation presets (albumentations): the paper's random scale, crop, flip, pad with ignore."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from danet.data.base import IGNORE_INDEX


class RareClassCrop(A.RandomCrop):
    """A random crop that, with probability ``prob``, holds a pixel of one of ``classes``.

    One of ``classes`` present in the mask is drawn uniformly, then one of its pixels, and the
    crop is placed at random so that it contains that pixel (rare-class sampling, as DAFormer's,
    at the level of the crop). Otherwise, or when none of ``classes`` is present, it is
    albumentations' ``RandomCrop``. The image must be at least the crop's size (pad first).
    """

    def __init__(self, height: int, width: int, classes: Sequence[int], prob: float) -> None:
        super().__init__(height, width, p=1.0)
        self.classes, self.prob = [int(c) for c in classes], float(prob)

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        """The crop's coordinates: around a rare-class pixel with probability ``prob``."""
        found = super().get_params_dependent_on_data(params, data)
        if self.py_random.random() >= self.prob:
            return found
        mask = data["mask"]
        present = [c for c in self.classes if (mask == c).any()]
        if not present:
            return found
        ys, xs = np.nonzero(mask == self.py_random.choice(present))
        pick = self.py_random.randrange(len(ys))
        rows, cols = mask.shape[:2]
        top = min(max(int(ys[pick]) - self.py_random.randint(0, self.height - 1), 0),
                  rows - self.height)  # fmt: skip
        left = min(max(int(xs[pick]) - self.py_random.randint(0, self.width - 1), 0),
                   cols - self.width)  # fmt: skip
        found["crop_coords"] = (left, top, left + self.width, top + self.height)
        return found


def train_transform(
    crop_size: Sequence[int],
    scale_range: Sequence[float] = (0.5, 2.0),
    base_size: Sequence[int] | None = None,
    color_jitter: float = 0.0,
    rare_classes: Sequence[int] = (),
    rare_crop: float = 0.0,
) -> A.Compose:
    """Resize to ``base_size`` (H, W) if given, random scale, pad with ignore, random crop, flip.

    With ``rare_crop`` > 0 the crop is a :class:`RareClassCrop` over ``rare_classes``."""
    crop_h, crop_w = crop_size
    steps: list[A.BasicTransform] = []
    if base_size is not None:
        steps.append(A.Resize(*base_size, interpolation=cv2.INTER_LINEAR))
    low, high = scale_range
    steps += [
        A.RandomScale(scale_limit=(low - 1.0, high - 1.0), p=1.0),
        A.PadIfNeeded(
            min_height=crop_h,
            min_width=crop_w,
            position="top_left",
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=IGNORE_INDEX,
        ),
        RareClassCrop(crop_h, crop_w, rare_classes, rare_crop)
        if rare_crop > 0 and rare_classes
        else A.RandomCrop(crop_h, crop_w),
        A.HorizontalFlip(p=0.5),
    ]
    if color_jitter > 0:
        steps.append(
            A.ColorJitter(color_jitter, color_jitter, color_jitter, hue=0.0, p=0.8),
        )
    return A.Compose(steps, mask_interpolation=cv2.INTER_NEAREST)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """HxWx3 uint8 RGB to a normalised 3xHxW float tensor."""
    x = (
        torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
        .permute(2, 0, 1)
        .float()
        .div_(255)
    )
    mean_t = torch.tensor(mean).view(3, 1, 1)
    std_t = torch.tensor(std).view(3, 1, 1)
    return (x - mean_t) / std_t


class Augmented(Dataset):
    """Applies an albumentations transform and normalisation to a reader's items.

    Items are fetched with ``(index, seed)``: the transform is seeded per sample, so a run
    resumed at any step sees exactly the crops it would have seen.
    """

    def __init__(
        self,
        dataset: Dataset,
        transform: A.Compose | None,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        self.dataset, self.transform = dataset, transform
        self.mean, self.std = list(mean), list(std)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: Any) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        image, mask = self.dataset[index]
        if self.transform is not None:
            if seed is not None:
                self.transform.set_random_seed(seed)
            out = self.transform(image=image, mask=mask.astype(np.uint8))
            image, mask = out["image"], out["mask"]
        return normalize(image, self.mean, self.std), torch.from_numpy(mask.astype(np.int64))
