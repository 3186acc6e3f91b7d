"""PAM and CAM against the paper's formulas, written out plainly here."""

from __future__ import annotations

import pytest
import torch

import danet
from danet.model.attention import ChannelAttention, PositionAttention


def reference_pam(module: PositionAttention, x: torch.Tensor) -> torch.Tensor:
    """Y = X + gamma * V softmax(Q^T K)^T, one image at a time, as the paper writes it."""
    out = []
    for xi in x:
        c, h, w = xi.shape
        flat = xi.reshape(c, h * w)  # C x N
        q = module.query.weight[:, :, 0, 0] @ flat + module.query.bias[:, None]  # C/8 x N
        k = module.key.weight[:, :, 0, 0] @ flat + module.key.bias[:, None]
        v = module.value.weight[:, :, 0, 0] @ flat + module.value.bias[:, None]  # C x N
        s = torch.softmax(q.T @ k, dim=1)  # N x N, s[i, j]: effect of position j on i
        out.append((flat + module.gamma * (v @ s.T)).reshape(c, h, w))
    return torch.stack(out)


def reference_cam(x: torch.Tensor, gamma: float, original: bool) -> torch.Tensor:
    out = []
    for xi in x:
        c, h, w = xi.shape
        flat = xi.reshape(c, -1)
        energy = flat @ flat.T
        if original:
            energy = energy.max(dim=1, keepdim=True).values - energy
        out.append((flat + gamma * torch.softmax(energy, dim=1) @ flat).reshape(c, h, w))
    return torch.stack(out)


@pytest.mark.parametrize("impl", ["naive", "auto"])
def test_pam_matches_formula(impl: str) -> None:
    module = PositionAttention(32, impl=impl)
    torch.nn.init.constant_(module.gamma, 0.7)
    x = torch.randn(2, 32, 5, 7)
    torch.testing.assert_close(module(x), reference_pam(module, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant", ["paper", "original"])
def test_cam_matches_formula(variant: str) -> None:
    module = ChannelAttention(variant)
    torch.nn.init.constant_(module.gamma, 0.7)
    x = torch.randn(2, 6, 4, 5) * 0.3
    expected = reference_cam(x, 0.7, original=variant == "original")
    torch.testing.assert_close(module(x), expected, rtol=1e-4, atol=1e-5)


def test_original_cam_is_softmax_of_minus_energy() -> None:
    module = ChannelAttention("original")
    torch.nn.init.constant_(module.gamma, 1.0)
    x = torch.randn(1, 6, 4, 5) * 0.3
    flat = x.reshape(1, 6, -1)
    expected = x + (torch.softmax(-(flat @ flat.transpose(1, 2)), -1) @ flat).reshape(x.shape)
    torch.testing.assert_close(module(x), expected, rtol=1e-4, atol=1e-5)
    paper = ChannelAttention("paper")
    torch.nn.init.constant_(paper.gamma, 1.0)
    assert not torch.allclose(paper(x), module(x))


def test_gamma_starts_at_zero_and_gives_identity() -> None:
    x = torch.randn(2, 16, 6, 6)
    for module in (PositionAttention(16), ChannelAttention("paper"), ChannelAttention("original")):
        assert module.gamma.item() == 0.0
        torch.testing.assert_close(module(x), x)


def test_pam_shapes_of_projections() -> None:
    module = PositionAttention(64)
    assert module.query.out_channels == 8 and module.key.out_channels == 8
    assert module.value.out_channels == 64
    assert module.query.bias is not None


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: ChannelAttention("softmax"), "variant"),
        (lambda: PositionAttention(16, impl="fast"), "impl"),
        (lambda: PositionAttention(4, reduction=8), "in_channels"),
    ],
)
def test_bad_arguments_name_themselves(build, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        build()


def test_pam_queries_keys_are_caught_with_their_graph() -> None:
    from danet.model.attention_inputs import PamQueriesKeys

    model = danet.DANet(num_classes=3, backbone="mobilenetv2_100", pretrained=None)
    with PamQueriesKeys(model) as pam:
        model(torch.randn(1, 3, 64, 64))
        q, k, size = pam.pop()
    assert q.shape == k.shape and q.shape[1] == size[0] * size[1] and q.requires_grad
    assert pam.pop() is None  # each forward's once
    assert PamQueriesKeys(danet.DANet(num_classes=3, attention="cam", pretrained=None)).pam is None
