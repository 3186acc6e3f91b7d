"""mmsegmentation's DANet checkpoints (``configs/danet``: R-50-D8 and R-101-D8) as a danet model.

The file is ``{"meta", "state_dict", "optimizer"}``. Its model is:

- backbone ResNetV1c-D8: deep stem 32-32-64 (``backbone.stem.{0,1,3,4,6,7}``), strided 1x1
  downsampling, dilations (1, 1, 2, 4) with contract dilation: timm's ``resnet50c``/``resnet101c``
  at output stride 8, whose first dilated block also keeps the previous stage's dilation;
- ``DAHead`` with 512 channels, 64 in the PAM's query and key (reduction 8), the released CAM
  (softmax(rowmax(E) - E)), dropout 0.1 before each 1x1 classifier;
- ``FCNHead`` auxiliary head on layer3 (one 3x3 conv to 256 channels, no concat): danet's
  ``aux_head``;
- logits resized with ``align_corners=False``, except in the Cityscapes 769x769 models, whose
  config sets ``align_corners=True``: read from the config text that ``meta`` carries;
- input RGB normalised with ImageNet's mean and std.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from danet.convert.common import Converted, pam_reduction, rename, resnet_depth, tensor

RULES = [
    (r"backbone\.stem\.([01346])\.", r"backbone.conv1.\1."),
    (r"backbone\.stem\.7\.", "backbone.bn1."),
    (r"backbone\.(layer[1-4]\.\d+\.(conv[123]|bn[123]|downsample\.[01])\.)", r"backbone.\1"),
    (r"decode_head\.(pam|cam)_in_conv\.conv\.", r"head.branches.\1.conv_in.0."),
    (r"decode_head\.(pam|cam)_in_conv\.bn\.", r"head.branches.\1.conv_in.1."),
    (r"decode_head\.(pam|cam)_out_conv\.conv\.", r"head.branches.\1.conv_out.0."),
    (r"decode_head\.(pam|cam)_out_conv\.bn\.", r"head.branches.\1.conv_out.1."),
    # a plain Conv2d in mmseg (key_query_norm=False), a ConvModule (".conv.") if built otherwise
    (r"decode_head\.pam\.(query|key|value)_project\.(conv\.)?", r"head.branches.pam.attention.\1."),
    (r"decode_head\.(pam|cam)\.gamma\.scale$", r"head.branches.\1.attention.gamma"),
    (r"decode_head\.conv_seg\.", "head.classifier.1."),
    (r"decode_head\.(pam|cam)_conv_seg\.", r"head.classifiers.\1.1."),
    (r"auxiliary_head\.convs\.0\.conv\.", "aux.0.0."),
    (r"auxiliary_head\.convs\.0\.bn\.", "aux.0.1."),
    (r"auxiliary_head\.conv_seg\.", "aux.1.1."),
]
"""mmsegmentation name (regex on its start) -> danet name."""

WHAT = "an mmsegmentation DANet with a ResNetV1c backbone"


def is_mmseg(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict looks like an mmsegmentation segmentor's."""
    return any(k.startswith("decode_head.") for k in state)


def classes_from_meta(
    meta: Any, origin: str = "checkpoint"
) -> tuple[list[str] | None, list[list[int]] | None]:
    """Class names and palette from ``meta``: mmseg 1.x ``dataset_meta``, or 0.x ``CLASSES``."""
    if not isinstance(meta, dict):
        return None, None
    dataset_meta = meta.get("dataset_meta")
    if isinstance(dataset_meta, dict):
        names, palette = dataset_meta.get("classes"), dataset_meta.get("palette")
    else:
        names, palette = meta.get("CLASSES"), meta.get("PALETTE")
    names = [str(n) for n in names] if isinstance(names, (list, tuple)) else None
    if not isinstance(palette, (list, tuple)):
        return names, None
    try:
        colors = [[int(v) for v in color] for color in palette]
    except (TypeError, ValueError):
        colors = []
    if not colors or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colors):
        raise ValueError(f"{origin}: the palette in its meta is not a list of RGB colours")
    return names, colors


def align_corners_from_meta(meta: Any) -> bool:
    """The decode head's ``align_corners`` in the config text of ``meta`` (False without one)."""
    text = (meta.get("config") or meta.get("cfg")) if isinstance(meta, dict) else None
    if not isinstance(text, str) or "decode_head" not in text:
        return False
    found = re.search(r"align_corners\s*=\s*(True|False)", text[text.index("decode_head") :])
    return found is not None and found.group(1) == "True"


def convert_mmseg(
    checkpoint: dict[str, Any], state: dict[str, torch.Tensor], origin: str
) -> Converted:
    """Map an mmsegmentation DANet state dict onto danet's names and constructor arguments."""
    if "backbone.stem.0.weight" not in state:
        raise ValueError(f"{origin}: no backbone.stem.0.weight; danet converts {WHAT} (deep stem)")
    stem = state["backbone.stem.0.weight"].shape[0]
    if stem != 32:
        raise ValueError(f"{origin}: the stem starts with {stem} channels; ResNetV1c has 32")
    renamed = rename(state, RULES, WHAT, origin)
    for branch in ("pam", "cam"):  # mmcv's Scale holds a 0-d tensor, danet's gamma has shape (1,)
        gamma = tensor(renamed, f"head.branches.{branch}.attention.gamma", origin)
        if gamma.numel() != 1:
            raise ValueError(
                f"{origin}: decode_head.{branch}.gamma.scale holds {gamma.numel()} values"
            )
        renamed[f"head.branches.{branch}.attention.gamma"] = gamma.reshape(1)
    num_classes = tensor(state, "decode_head.conv_seg.weight", origin).shape[0]
    config = {
        "num_classes": num_classes,
        "backbone": f"resnet{resnet_depth(state, 'backbone.', origin)}c",
        "output_stride": 8,
        "cam_variant": "original",
        "attention": "both",
        "aux_head": any(k.startswith("auxiliary_head.") for k in state),
        "pam_reduction": pam_reduction(
            renamed,
            "head.branches.pam.conv_in.0.weight",
            "head.branches.pam.attention.query.weight",
            origin,
        ),
        "align_corners": align_corners_from_meta(checkpoint.get("meta")),
    }
    names, palette = classes_from_meta(checkpoint.get("meta"), origin)
    dropped = [key for key in checkpoint if key not in ("state_dict", "meta")]
    return Converted(config, renamed, names, palette, dropped)
