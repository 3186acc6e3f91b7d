"""Models and training state on disk: safetensors + JSON for models, atomic writes for everything.

A saved model is a folder with ``config.json`` (the constructor arguments) and ``model.safetensors``.
A training run folder adds ``checkpoint.pt``: model, optimizer, step, RNG and run config, read back
with ``torch.load(weights_only=True)`` so that a crafted file cannot run code.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from danet.model import DANet

BUNDLED_DIR = Path(__file__).parent / "models"
CONFIG_NAME, WEIGHTS_NAME, TRAIN_STATE_NAME = "config.json", "model.safetensors", "checkpoint.pt"


def bundled_models() -> list[str]:
    """Names of the trained models that ship inside the package."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / WEIGHTS_NAME).is_file())


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    A crash or a full disk at any moment leaves either the old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: DANet, folder: str | Path, half: bool = False) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (fp16 if ``half``) into ``folder``."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    config = json.dumps(model.config, indent=2)
    atomic_write(
        folder / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"})
    )
    atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(config))
    return folder


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` a training checkpoint (tensors, numbers, strings, lists, dicts)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint without unpickling code: anything but plain data is refused."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such checkpoint") from None
    except Exception as err:
        lines = str(err).strip().splitlines()
        reason = lines[0] if lines else type(err).__name__
        if "weights_only" in str(err) or "GLOBAL" in str(err) or "Unsupported" in str(err):
            reason = "it holds pickled code or objects, which danet refuses to load"
        raise ValueError(f"{path}: not a loadable danet checkpoint ({reason})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path}: not a danet training checkpoint (no 'model' and 'config')")
    return state


def _build(config: dict[str, Any], origin: Path) -> DANet:
    if not isinstance(config, dict):
        raise ValueError(f"{origin}: the model config is not a JSON object")
    try:
        return DANet(**{k: v for k, v in config.items() if k != "pretrained"})
    except TypeError as err:
        raise ValueError(f"{origin}: bad model config ({err})") from None


def _load_weights(model: DANet, state: dict[str, torch.Tensor], origin: Path) -> DANet:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{origin}: weights do not match the config (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            raise ValueError(
                f"{origin}: {name} is {tuple(tensor.shape)} but the model expects "
                f"{tuple(own[name].shape)}"
            )
    model.load_state_dict(state, strict=True)
    return model.eval()


def resolve(name_or_path: str | Path) -> Path:
    """Turn a bundled model's name, a model folder, a run folder or a file into a path."""
    path = Path(name_or_path)
    if path.exists():
        return path
    if str(name_or_path) in bundled_models():
        return BUNDLED_DIR / str(name_or_path)
    names = ", ".join(bundled_models()) or "none"
    raise FileNotFoundError(
        f"{name_or_path}: no such file or folder, and not a bundled model (bundled: {names})"
    )


def load(name_or_path: str | Path, map_location: str | torch.device = "cpu") -> DANet:
    """Return a ready model in eval mode.

    Takes a bundled model's name (``"camvid"``), a folder with ``config.json`` and
    ``model.safetensors`` (what :func:`save_model` and ``danet train`` write), a ``.safetensors``
    file with ``config.json`` beside it, or a training ``checkpoint.pt``.
    """
    path = resolve(name_or_path)
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file():
            path = path / WEIGHTS_NAME
        elif (path / TRAIN_STATE_NAME).is_file():
            path = path / TRAIN_STATE_NAME
        else:
            raise FileNotFoundError(f"{path}: holds neither {WEIGHTS_NAME} nor {TRAIN_STATE_NAME}")
    if path.suffix == ".safetensors":
        config_path = path.with_name(CONFIG_NAME)
        try:
            config = json.loads(config_path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{config_path}: missing (it goes beside {path.name})"
            ) from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_path}: not valid JSON ({err})") from None
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
        model = _load_weights(_build(config, config_path), state, path)
    else:
        state = load_training_state(path)
        model = _load_weights(_build(state["config"], path), state["model"], path)
    return model.to(map_location)
