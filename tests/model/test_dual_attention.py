"""DualAttention: the shape it keeps, that it trains, that it exports, and that it is the head's."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import danet
from danet.model.dual_attention import DualAttention


def test_it_keeps_the_shape_and_starts_as_twice_its_input() -> None:
    block = danet.DualAttention(64)
    x = torch.randn(2, 64, 9, 13)
    y = block(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, 2 * x)  # both gammas start at 0


def test_it_is_pam_plus_cam() -> None:
    block = DualAttention(16, cam_variant="original")
    torch.nn.init.constant_(block.pam.gamma, 0.5)
    torch.nn.init.constant_(block.cam.gamma, -0.3)
    x = torch.randn(1, 16, 6, 5)
    torch.testing.assert_close(block(x), block.pam(x) + block.cam(x))
    assert not torch.allclose(block(x), 2 * x)


def test_it_trains() -> None:
    torch.manual_seed(0)
    block = DualAttention(16)
    x = torch.randn(4, 16, 6, 6)
    target = x.roll(1, dims=-1)  # needs the attention to look beside each pixel
    opt = torch.optim.Adam(block.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(block(x), target)
        loss.backward()
        if not losses:
            assert block.pam.gamma.grad.abs().item() > 0
            assert block.cam.gamma.grad.abs().item() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert block.pam.gamma.item() != 0 and block.cam.gamma.item() != 0


def test_it_gives_what_the_danet_head_modules_give() -> None:
    torch.manual_seed(0)
    model = danet.DANet(num_classes=3, backbone="mobilenetv2_100", cam_variant="original").eval()
    pam = model.head.branches["pam"].attention
    cam = model.head.branches["cam"].attention
    torch.nn.init.constant_(pam.gamma, 0.8)
    torch.nn.init.constant_(cam.gamma, -0.4)
    channels = pam.value.in_channels
    block = DualAttention(channels, cam_variant="original").eval()
    block.pam.load_state_dict(pam.state_dict())
    block.cam.load_state_dict(cam.state_dict())
    x = torch.randn(1, channels, 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(block(x), pam(x) + cam(x))


def test_it_exports_to_onnx_and_onnxruntime_agrees(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    block = DualAttention(64).eval()
    torch.nn.init.constant_(block.pam.gamma, 0.7)
    torch.nn.init.constant_(block.cam.gamma, 0.2)
    x = torch.randn(1, 64, 12, 16) * 0.1
    path = tmp_path / "dual.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(block, (x,), str(path), input_names=["x"], dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = block(x).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("channels", "reduction"), [(0, 8), (4, 8), (16, 0), (True, 8)])
def test_bad_sizes_are_refused_by_name(channels: int, reduction: int) -> None:
    with pytest.raises(ValueError, match="channels|reduction"):
        DualAttention(channels, reduction)


def test_a_wrong_input_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"x must be \(B, 16, H, W\)"):
        DualAttention(16)(torch.randn(1, 8, 4, 4))
