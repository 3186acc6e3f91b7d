"""The stride-4 decoder: where its logits come from, its gradients, and its checkpoint keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import danet


@pytest.mark.parametrize("backbone", ["mobilenetv2_100", "resnet50", "efficientnet_lite0"])
def test_decoder_takes_stride4_features_and_keeps_output_size(backbone: str) -> None:
    model = danet.DANet(num_classes=4, backbone=backbone, decoder="stride4").eval()
    seen = {}
    model.head.decoder.register_forward_hook(lambda m, i, o: seen.update(x=i[0], low=i[1], y=o))
    out = model(torch.randn(1, 3, 96, 128))
    assert out["out"].shape == (1, 4, 96, 128)
    assert seen["x"].shape[-2:] == (12, 16)  # the head at stride 8
    assert seen["low"].shape[-2:] == (24, 32) and seen["y"].shape[-2:] == (24, 32)


def test_decoder_changes_out_only_and_gets_gradients() -> None:
    torch.manual_seed(0)
    model = danet.DANet(num_classes=3, backbone="mobilenetv2_100", decoder="stride4")
    out = model(torch.randn(2, 3, 64, 64))
    out["out"].sum().backward()
    assert model.head.decoder.project[0].weight.grad.abs().sum() > 0
    # stride-4 features reach the earliest backbone blocks through the decoder
    assert model.backbone.blocks[1][0].conv_pw.weight.grad.abs().sum() > 0


def test_decoder_adds_keys_and_keeps_the_papers(tmp_path: Path) -> None:
    plain = danet.DANet(num_classes=3, backbone="mobilenetv2_100")
    model = danet.DANet(num_classes=3, backbone="mobilenetv2_100", decoder="stride4").eval()
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith("head.decoder.") for k in extra)
    assert set(plain.state_dict()) <= set(model.state_dict())
    danet.save_model(model, tmp_path)
    again = danet.load(tmp_path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x)["out"], model(x)["out"])


def test_bad_decoder_is_named() -> None:
    with pytest.raises(ValueError, match="decoder"):
        danet.DANet(num_classes=3, backbone="mobilenetv2_100", decoder="unet")


def test_the_separable_decoder_has_the_same_shapes_an_eighth_of_the_work_and_its_own_keys(
    tmp_path: Path,
) -> None:
    full = danet.DANet(num_classes=4, backbone="mobilenetv2_100", decoder="stride4").eval()
    light = danet.DANet(num_classes=4, backbone="mobilenetv2_100", decoder="stride4_separable")
    light = light.eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        assert light(x)["out"].shape == full(x)["out"].shape == (1, 4, 96, 128)

    def fuse_weights(model: danet.DANet) -> int:
        return sum(p.numel() for p in model.head.decoder.fuse.parameters())

    assert fuse_weights(light) * 6 < fuse_weights(full)  # multiply-adds scale with the weights
    depthwise = light.head.decoder.fuse[0][0]
    assert depthwise.groups == depthwise.in_channels == 80 + 48
    assert set(light.state_dict()) != set(full.state_dict())
    # a saved separable model comes back as one, with the same outputs
    danet.save_model(light, tmp_path)
    again = danet.load(tmp_path)
    assert again.config["decoder"] == "stride4_separable"
    with torch.no_grad():
        torch.testing.assert_close(again(x)["out"], light(x)["out"])
