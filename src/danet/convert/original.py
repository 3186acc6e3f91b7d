"""The DANet authors' checkpoints (github.com/junfu1115/DANet, e.g. ``DANet101.pth.tar``).

The file is ``{"epoch", "state_dict", "best_pred", "optimizer"}`` (keys may start with
``module.``). Its model, as the release's test command builds it (``--backbone resnet101 --os 8
--multi-grid --multi-dilation 4 8 16 --no-deepstem``):

- backbone ``pretrained.*`` in torchvision's ResNet naming with the plain 7x7 stem: timm's
  ``resnet101`` (``resnet101s`` if the file has the encoding library's 64-64-128 deep stem);
- output stride 8; layer3 dilated 2 (its first block 1), layer4 multi-grid: dilations 4, 8, 16,
  the first block included, i.e. ``multi_grid=[1, 2, 4]``;
- ``DANetHead``: ``conv5a``/``conv5c`` (3x3 conv-BN-ReLU, 2048 -> 512), ``sa`` (PAM, query/key
  512 -> 64), ``sc`` (the released CAM, softmax(rowmax(E) - E)), ``conv51``/``conv52`` (3x3
  conv-BN-ReLU), ``conv6`` (PAM logits), ``conv7`` (CAM logits) and ``conv8`` (logits of the
  sum), each Dropout2d(0.1) and a 1x1 conv: the same layers as danet's ``DAHead``;
- no auxiliary head; logits upsampled with ``align_corners=True``; input RGB normalised with
  ImageNet's mean and std.
"""

from __future__ import annotations

from typing import Any

import torch

from danet.convert.common import Converted, pam_reduction, rename, resnet_depth, tensor

RULES = [
    (r"pretrained\.(conv1|bn1)\.", r"backbone.\1."),
    (r"pretrained\.(layer[1-4]\.\d+\.(conv[123]|bn[123]|downsample\.[01])\.)", r"backbone.\1"),
    (r"head\.conv5a\.([01])\.", r"head.branches.pam.conv_in.\1."),
    (r"head\.conv5c\.([01])\.", r"head.branches.cam.conv_in.\1."),
    (r"head\.conv51\.([01])\.", r"head.branches.pam.conv_out.\1."),
    (r"head\.conv52\.([01])\.", r"head.branches.cam.conv_out.\1."),
    (r"head\.sa\.(query|key|value)_conv\.", r"head.branches.pam.attention.\1."),
    (r"head\.sa\.gamma$", "head.branches.pam.attention.gamma"),
    (r"head\.sc\.gamma$", "head.branches.cam.attention.gamma"),
    (r"head\.conv6\.1\.", "head.classifiers.pam.1."),
    (r"head\.conv7\.1\.", "head.classifiers.cam.1."),
    (r"head\.conv8\.1\.", "head.classifier.1."),
]
"""The authors' name (regex on its start) -> danet name."""

DROPPED = ("pretrained.fc.",)
"""The ImageNet classifier, present in files saved before BaseNet set ``pretrained.fc = None``."""

MULTI_GRID = [1, 2, 4]
"""layer4 dilations 4, 8, 16 at output stride 8 (``--multi-dilation 4 8 16``)."""

WHAT = "the authors' DANet (a ResNet backbone and DANetHead)"


def is_original(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict looks like the authors' DANet."""
    return any(k.startswith("pretrained.") for k in state) and any(
        k.startswith("head.") for k in state
    )


def convert_original(
    checkpoint: dict[str, Any], state: dict[str, torch.Tensor], origin: str
) -> Converted:
    """Map the authors' DANet state dict onto danet's names and constructor arguments."""
    dropped = [k for k in checkpoint if k != "state_dict"]
    dropped += [k for k in state if k.startswith(DROPPED)]
    state = {k: v for k, v in state.items() if not k.startswith(DROPPED)}
    renamed = rename(state, RULES, WHAT, origin)
    deep_stem = "pretrained.conv1.0.weight" in state  # the encoding library's 64-64-128 stem
    depth = resnet_depth(state, "pretrained.", origin)
    config = {
        "num_classes": tensor(state, "head.conv8.1.weight", origin).shape[0],
        "backbone": f"resnet{depth}s" if deep_stem else f"resnet{depth}",
        "output_stride": 8,
        "cam_variant": "original",
        "attention": "both",
        "aux_head": False,
        "pam_reduction": pam_reduction(
            state, "head.conv5a.0.weight", "head.sa.query_conv.weight", origin
        ),
        "multi_grid": MULTI_GRID,
        "align_corners": True,
    }
    return Converted(config, renamed, dropped=dropped)
