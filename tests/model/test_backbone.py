"""Build-time backbone options: timm's dilations at output stride 8, multi-grid, align_corners."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import danet
from danet import DANet
from danet.model.backbone import create_features


def dilations(features: torch.nn.Module, stage: str) -> list[int]:
    """The dilation of each block's 3x3 convolution (conv2 in a Bottleneck, conv1 in a BasicBlock)."""
    blocks = getattr(features, stage)
    return [int((b.conv2 if hasattr(b, "conv3") else b.conv1).dilation[0]) for b in blocks]


def test_timm_dilates_like_mmseg_contract_dilation():
    """The first block of a dilated stage keeps the previous stage's dilation (1 then 2)."""
    with torch.device("meta"):
        features = create_features("resnet50c", output_stride=8)
    assert dilations(features, "layer3") == [1, 2, 2, 2, 2, 2]
    assert dilations(features, "layer4") == [2, 4, 4]


@pytest.mark.parametrize(("stride", "expected"), [(8, [4, 8, 16]), (16, [2, 4, 8])])
def test_multi_grid_multiplies_the_last_stage_dilation(stride, expected):
    with torch.device("meta"):
        features = create_features("resnet101", output_stride=stride, multi_grid=[1, 2, 4])
        plain = create_features("resnet101", output_stride=stride)
    assert dilations(features, "layer4") == expected
    assert dilations(features, "layer3") == dilations(plain, "layer3")
    padding = [b.conv2.padding[0] for b in features.layer4]
    assert padding == expected  # same spatial size: padding follows the dilation
    assert features.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize(
    ("backbone", "grid", "message"),
    [
        ("mobilenetv2_100", [1, 2], "needs a timm ResNet backbone"),
        ("resnet18", [1, 2, 4], "has 3 rates but the last stage of resnet18 has 2 blocks"),
        ("resnet18", [1, 0], "must be a list of positive integers"),
        ("resnet18", 2, "multi_grid=2 must be a list"),
    ],
)
def test_bad_multi_grid_is_named(backbone, grid, message):
    with pytest.raises(ValueError, match=message):
        DANet(num_classes=2, backbone=backbone, multi_grid=grid)


def test_bad_align_corners_is_named():
    with pytest.raises(ValueError, match="align_corners='yes'"):
        DANet(num_classes=2, backbone="resnet18", align_corners="yes")


def test_options_are_saved_and_rebuilt(tmp_path):
    model = DANet(num_classes=2, backbone="resnet18", multi_grid=[1, 2], align_corners=True)
    danet.save_model(model, tmp_path)
    loaded = danet.load(tmp_path)
    assert loaded.config["multi_grid"] == [1, 2] and loaded.config["align_corners"] is True
    assert dilations(loaded.backbone, "layer4") == [4, 8]


@pytest.mark.parametrize("align_corners", [False, True])
def test_logits_are_upsampled_with_align_corners(align_corners):
    torch.manual_seed(0)
    model = DANet(num_classes=2, backbone="resnet18", align_corners=align_corners).eval()
    x = torch.randn(1, 3, 45, 61)
    with torch.no_grad():
        small = model.head(model.backbone(x)[1])["out"]
        out = model(x)["out"]
    expected = F.interpolate(small, (45, 61), mode="bilinear", align_corners=align_corners)
    torch.testing.assert_close(out, expected)
