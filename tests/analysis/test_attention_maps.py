"""Attention figures: PAM rows against the full softmax(Q^T K), CAM maps, PNGs and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import danet
from danet.analysis.attention_maps import (
    attention_figures,
    cam_attended,
    capture_attention_inputs,
    distinct_channels,
    pam_rows,
)
from danet.cli import main
from danet.model.attention import ChannelAttention, PositionAttention


@pytest.fixture
def image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "street.png"
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(path)
    return path


def test_pam_rows_equal_rows_of_the_full_matrix() -> None:
    pam = PositionAttention(16, reduction=4)
    x = torch.randn(2, 16, 5, 7)
    q = pam.query(x).flatten(2)  # (B, d, N)
    k = pam.key(x).flatten(2)
    full = (q.transpose(1, 2) @ k).softmax(dim=-1)  # (B, N, N), naively
    indices = torch.tensor([0, 12, 34, 20])
    rows = pam_rows(pam, x, indices)
    assert rows.shape == (2, 4, 35)
    torch.testing.assert_close(rows, full[:, indices])
    torch.testing.assert_close(rows.sum(-1), torch.ones(2, 4))


@pytest.mark.parametrize("variant", ["paper", "original"])
def test_cam_attended_is_the_module_without_residual(variant: str) -> None:
    cam = ChannelAttention(variant)
    with torch.no_grad():
        cam.gamma.fill_(0.5)
    x = torch.randn(1, 6, 4, 5)
    attended = cam_attended(cam, x)
    torch.testing.assert_close(x + 0.5 * attended, cam(x))
    assert cam.gamma.item() == 0.5  # the module is left as it was


def test_distinct_channels_skip_near_duplicates() -> None:
    maps = torch.randn(5, 6, 7)
    maps /= maps.flatten(1).std(dim=1)[:, None, None]
    maps[1] = 3 * maps[0] + 0.01 * torch.randn(6, 7)  # channel 0's pattern, varies most
    maps[2] *= 2
    maps[3] *= 1.5
    maps[4] *= 0.1
    assert distinct_channels(maps, k=3) == [1, 2, 3]
    assert distinct_channels(maps, k=10) == [1, 2, 3, 4]  # 0 duplicates 1


def test_hooks_catch_the_attention_inputs(small_model: danet.DANet) -> None:
    x = torch.randn(1, 3, 64, 96)
    features = capture_attention_inputs(small_model, x)
    assert set(features) == {"pam", "cam"}
    with torch.no_grad():
        c4 = small_model.backbone(x)[-1]
        expected = small_model.head.branches["pam"].conv_in(c4)
    torch.testing.assert_close(features["pam"], expected)
    assert features["pam"].shape[-2:] == (8, 12)  # output stride 8
    assert not small_model.head.branches["pam"].attention._forward_hooks  # removed


def test_figures_written(checkpoint: Path, image: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures"
    written = attention_figures(checkpoint, image, [(10, 20), (79, 59)], out, channels=[0, 3])
    assert [p.name for p in written] == ["pam_x10_y20.png", "pam_x79_y59.png", "cam_channels.png"]
    for path in written:
        with Image.open(path) as png:
            assert png.format == "PNG" and png.width > 100


def test_default_points_and_top_channels(checkpoint: Path, image: Path, tmp_path: Path) -> None:
    written = attention_figures(checkpoint, image, [], tmp_path / "figures")
    assert len(written) == 4  # three default points and the CAM figure


def test_point_outside_image(checkpoint: Path, image: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(80, 5\).*80x60"):
        attention_figures(checkpoint, image, [(80, 5)], tmp_path / "figures")
    with pytest.raises(ValueError, match="channels"):
        attention_figures(checkpoint, image, [(1, 1)], tmp_path / "figures", channels=[10_000])
    assert not (tmp_path / "figures").exists()
    argv = ["attention", str(image), "--checkpoint", str(checkpoint), "--points", "3,-1"]
    assert main(argv) == 2


def test_model_without_pam(image: Path, tmp_path: Path) -> None:
    model = danet.DANet(num_classes=3, backbone="mobilenetv2_100", attention="cam")
    checkpoint = danet.save_model(model, tmp_path / "cam_only")
    with pytest.raises(ValueError, match="without position attention"):
        attention_figures(checkpoint, image, [(1, 1)], tmp_path / "figures")
    written = attention_figures(checkpoint, image, [], tmp_path / "figures")
    assert [p.name for p in written] == ["cam_channels.png"]
