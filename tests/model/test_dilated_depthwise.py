"""The dilated depthwise convolution with the faster CPU backward: same values, same gradients,
same checkpoint keys, and nn.Conv2d's own forward where nothing will be differentiated."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from danet.model.backbone import create_features
from danet.model.dilated_depthwise import DilatedDepthwiseConv2d, fits, use_dilated_depthwise


def pair(channels: int, kernel: int, dilation: int) -> tuple[nn.Conv2d, DilatedDepthwiseConv2d]:
    ref = nn.Conv2d(
        channels,
        channels,
        kernel,
        padding=dilation * (kernel // 2),
        dilation=dilation,
        groups=channels,
        bias=False,
    ).double()
    model = nn.Sequential(ref)
    assert use_dilated_depthwise(model) == 1
    new = model[0]
    assert isinstance(new, DilatedDepthwiseConv2d) and new.weight is ref.weight
    return ref, new


@pytest.mark.parametrize(
    ("channels", "kernel", "dilation", "size", "channels_last"),
    [
        (8, 3, 2, (32, 40), True),  # the recipe's grid
        (6, 3, 4, (45, 61), True),  # sizes that are not multiples of the dilation
        (5, 5, 3, (17, 23), False),
        (4, 3, 2, (3, 5), False),  # smaller than the dilated kernel
    ],
)
def test_gradients_match_nn_conv2d(channels, kernel, dilation, size, channels_last):
    ref, new = pair(channels, kernel, dilation)
    x = torch.randn(2, channels, *size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(2, channels, *size, dtype=torch.float64)
    grads = []
    for conv in (ref, new):
        xi = x.clone().requires_grad_()
        y = conv(xi)
        y.backward(grad)
        grads.append((y.detach(), xi.grad, conv.weight.grad.clone()))
        conv.weight.grad = None
    assert grads[1][0].equal(grads[0][0])  # the forward pass is the same kernel
    for got, want in zip(grads[1][1:], grads[0][1:], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert "DilatedDepthwise" in type(new(x.requires_grad_()).grad_fn).__name__


def test_weight_only_and_input_only_gradients():
    ref, new = pair(4, 3, 2)
    x = torch.randn(1, 4, 9, 11, dtype=torch.float64)
    new(x).sum().backward()  # the input needs no gradient
    fast = new.weight.grad
    new.weight.grad = None
    ref(x).sum().backward()
    torch.testing.assert_close(fast, ref.weight.grad, rtol=1e-12, atol=1e-12)
    new.weight.requires_grad_(False)
    xi = x.clone().requires_grad_()
    new(xi).sum().backward()
    xr = x.clone().requires_grad_()
    ref(xr).sum().backward()
    torch.testing.assert_close(xi.grad, xr.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace, deprecated in 2.14
def test_native_path_where_nothing_is_differentiated(monkeypatch):
    _, new = pair(4, 3, 2)
    x = torch.randn(1, 4, 9, 11, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        assert new(x).grad_fn is None
    traced = torch.jit.trace(new, x)  # what torch.onnx.export(dynamo=False) records
    assert "PythonOp" not in str(traced.graph)
    assert "DilatedDepthwise" in type(new(x).grad_fn).__name__
    monkeypatch.setenv("DANET_DILATED_DW", "native")
    assert type(new(x).grad_fn).__name__.startswith("Convolution")
    monkeypatch.setenv("DANET_DILATED_DW", "slow")
    with pytest.raises(ValueError, match="DANET_DILATED_DW='slow': use one of fast, native"):
        new(x)


def test_only_dilated_depthwise_convolutions_fit():
    assert fits(nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4, bias=False))
    assert not fits(nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False))  # undilated
    assert not fits(nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False))  # dense
    assert not fits(nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4))  # bias
    assert not fits(nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=4, bias=False))
    assert not fits(nn.Conv2d(4, 4, 3, padding=1, dilation=2, groups=4, bias=False))  # shrinks


def test_backbone_keeps_timm_keys_and_outputs():
    torch.manual_seed(0)
    ours = create_features("mobilenetv2_100", output_stride=8).eval()
    plain = timm.create_model(
        "mobilenetv2_100", features_only=True, output_stride=8, out_indices=(-2, -1)
    ).eval()
    plain.load_state_dict(ours.state_dict())
    kinds = [m for m in ours.modules() if isinstance(m, DilatedDepthwiseConv2d)]
    assert len(kinds) == 10  # blocks 3.1-5.0 (dilation 2) and 5.1-6.0 (dilation 4)
    assert ours.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        for a, b in zip(ours(x), plain(x), strict=True):
            assert a.equal(b)


def test_bf16_autocast_gives_the_native_gradients():
    ref, new = pair(8, 3, 2)
    ref.float()  # shared weight: both are float32 now
    x = torch.randn(2, 8, 16, 20)
    grads = []
    for conv in (ref, new):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(xi)
        assert y.dtype == torch.bfloat16
        y.float().square().sum().backward()
        assert xi.grad.dtype == conv.weight.grad.dtype == torch.float32
        grads.append((xi.grad, conv.weight.grad.clone()))
        conv.weight.grad = None
    for got, want in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2 * want.abs().max().item())
