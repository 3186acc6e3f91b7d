"""DANet: shapes, outputs, save/load, ImageNet weights and argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import danet
from danet.model.pretrained import packaged_weights_path, read_state_dict


@pytest.mark.parametrize(
    "backbone, output_stride",
    [
        ("resnet50", 8),
        ("resnet50", 16),
        ("mobilenetv2_100", 8),
        ("mobilenetv2_100", 16),
        ("efficientnet_lite0", 8),
    ],
)
def test_outputs_full_size_for_any_input(backbone: str, output_stride: int) -> None:
    model = danet.DANet(num_classes=11, backbone=backbone, output_stride=output_stride)
    x = torch.randn(1, 3, 97, 131)
    for train in (True, False):
        model.train(train)
        with torch.set_grad_enabled(train):
            out = model(x) if not train else model(torch.randn(2, 3, 97, 131))
        assert set(out) == {"out", "pam", "cam"}
        for logits in out.values():
            assert logits.shape[1:] == (11, 97, 131)


def test_output_stride_reaches_the_head() -> None:
    seen = {}
    for stride in (8, 16):
        model = danet.DANet(num_classes=3, backbone="mobilenetv2_100", output_stride=stride)
        model.head.register_forward_hook(lambda m, i, o, s=stride: seen.update({s: i[0].shape}))
        model.eval()(torch.randn(1, 3, 64, 96))
    assert seen[8][-2:] == (8, 12) and seen[16][-2:] == (4, 6)


def test_forward_backward_reaches_attention_and_backbone() -> None:
    model = danet.DANet(num_classes=5, backbone="mobilenetv2_100", aux_head=True)
    out = model(torch.randn(2, 3, 64, 64))
    assert set(out) == {"out", "pam", "cam", "aux"}
    loss, parts = danet.DANetLoss()(out, torch.randint(0, 5, (2, 64, 64)))
    loss.backward()
    assert set(parts) == {"out", "pam", "cam", "aux"}
    assert model.head.branches["pam"].attention.gamma.grad is not None
    assert model.head.branches["cam"].attention.gamma.grad is not None
    assert model.backbone.conv_stem.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "attention, keys", [("pam", {"out", "pam"}), ("cam", {"out", "cam"}), ("none", {"out"})]
)
def test_ablation_variants(attention: str, keys: set[str]) -> None:
    model = danet.DANet(num_classes=4, backbone="mobilenetv2_100", attention=attention).eval()
    assert set(model(torch.randn(1, 3, 32, 32))) == keys


def test_asking_for_the_main_head_skips_the_others(small_model) -> None:
    from danet.model.segment import main_logits

    x = torch.randn(1, 3, 64, 96)
    full = small_model(x)
    only = small_model(x, heads=("out",))
    assert set(full) == {"out", "pam", "cam"} and set(only) == {"out"}
    torch.testing.assert_close(only["out"], full["out"])
    torch.testing.assert_close(main_logits(small_model, x), full["out"])

    class Plain(torch.nn.Module):  # a module without ``heads``, as predict accepts
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"out": x[:, :2]}

    torch.testing.assert_close(main_logits(Plain(), x), x[:, :2])


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path, small_model) -> None:
    x = torch.randn(1, 3, 64, 96)
    danet.save_model(small_model, tmp_path / "m")
    loaded = danet.load(tmp_path / "m")
    assert not loaded.training
    assert loaded.config == small_model.config
    # on the CPU load() hands out channels_last weights (faster convolutions, other kernels)
    stem = loaded.backbone.conv_stem.weight
    assert stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()
    with torch.no_grad():
        for key, value in small_model(x).items():
            torch.testing.assert_close(value, loaded(x)[key], rtol=1e-4, atol=1e-4)
    loaded = loaded.to(memory_format=torch.contiguous_format)  # the same kernels: bit for bit
    with torch.no_grad():
        for key, value in small_model(x).items():
            assert torch.equal(value, loaded(x)[key])
    small_model.save_pretrained(tmp_path / "hf")
    again = danet.DANet.from_pretrained(tmp_path / "hf").to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        assert torch.equal(again.eval()(x)["out"], small_model(x)["out"])
    assert "pretrained" not in (tmp_path / "hf" / "config.json").read_text()


def test_half_precision_save_loads_to_float32(tmp_path: Path, small_model) -> None:
    danet.save_model(small_model, tmp_path, half=True)
    assert load_file(str(tmp_path / "model.safetensors"))["head.classifier.1.weight"].dtype == (
        torch.float16
    )
    loaded = danet.load(tmp_path)
    assert loaded.head.classifier[1].weight.dtype == torch.float32
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["out"], small_model(x)["out"], rtol=0.05, atol=0.05)


@pytest.mark.parametrize("backbone", ["mobilenetv2_100", "efficientnet_lite0"])
def test_packaged_imagenet_weights_load_strictly(backbone: str) -> None:
    path = packaged_weights_path(backbone)
    model = danet.DANet(num_classes=3, backbone=backbone, pretrained=path)
    source = list(read_state_dict(path).values())
    # the stem convolution is the first tensor of the file, the last block's BN is further on
    assert torch.equal(model.backbone.conv_stem.weight, source[0])
    random = danet.DANet(num_classes=3, backbone=backbone)
    assert not torch.equal(random.backbone.conv_stem.weight, source[0])


def test_weight_file_of_another_model_is_refused(tmp_path: Path) -> None:
    path = packaged_weights_path("mobilenetv2_100")
    with pytest.raises(ValueError, match="tensors, but the model has"):
        danet.DANet(num_classes=3, backbone="efficientnet_lite0", pretrained=path)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 3, "backbone": "resnet_nope"}, "backbone"),
        ({"num_classes": 3, "output_stride": 4}, "output_stride"),
        ({"num_classes": 3, "cam_variant": "flipped"}, "cam_variant"),
        ({"num_classes": 3, "attention": "all"}, "attention"),
        ({"num_classes": 3, "class_names": ["a"]}, "class_names"),
    ],
)
def test_bad_constructor_argument_names_itself(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        danet.DANet(**{"backbone": "mobilenetv2_100", **kwargs})


def test_load_unknown_name_lists_bundled(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a bundled model"):
        danet.load("no_such_model")
