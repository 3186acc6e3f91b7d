"""Model files on disk: safetensors + JSON for models, ``checkpoint.pt`` for training state.

A saved model is a folder with ``config.json`` (the constructor arguments) and ``model.safetensors``.
A training run folder adds ``checkpoint.pt``: model, optimizer, step, RNG and run config, read back
with ``torch.load(weights_only=True)`` so that a crafted file cannot run code. Building a
:class:`danet.DANet` from these files is :func:`danet.model.danet.load`'s job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from danet.model.paths import (  # where a model's files are, found without torch
    CONFIG_NAME,
    TRAIN_STATE_NAME,
    WEIGHTS_NAME,
    bundled_models,  # noqa: F401 - re-exported (danet.bundled_models, danet.demo)
    resolve,
)
from danet.utils.atomic import atomic_write
from danet.utils.readable import check_regular_file, check_torch_file
from danet.utils.textfile import read_json


class _KeepError:
    """A file wrapper that remembers the ``OSError`` of a write, which ``torch.save`` turns into a
    RuntimeError ("unexpected pos ...") that no longer says why."""

    def __init__(self, file: Any) -> None:
        self.file, self.error = file, None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def _torch_save(state: dict[str, Any], tmp: str) -> None:
    with open(tmp, "wb") as f:
        keep = _KeepError(f)
        try:
            torch.save(state, keep)
        except RuntimeError:
            if keep.error is not None:
                raise keep.error from None
            raise


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` a training checkpoint (tensors, numbers, strings, lists, dicts)."""
    atomic_write(path, lambda tmp: _torch_save(state, tmp))


def _refusal(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in danet's words: never PyTorch's
    advice to set ``weights_only=False`` (which would run the file's code)."""
    text = str(err)
    if "weights_only" in text or "GLOBAL" in text or "Unsupported" in text:
        return "it holds pickled code or objects, which danet refuses to load"
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__


def load_plain(path: str | Path, what: str = "checkpoint") -> Any:
    """``torch.load`` a file that ``torch.save`` wrote, with tensors and plain data only.

    Before anything is allocated, the file must be a regular file (not a FIFO or a device) and,
    as a zip archive, inflate to no more than its own size (:func:`check_torch_file`). Every
    refusal is a one-line ``ValueError`` naming ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {what}")
    check_torch_file(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not a loadable {what} ({_refusal(err)})") from None


def read_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint without unpickling code: anything but plain data is refused."""
    path = Path(path)
    state = load_plain(path, "danet checkpoint")
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"{path}: not a danet training checkpoint (no 'model' and 'config')")
    weights = state["model"]
    if not isinstance(weights, dict) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise ValueError(f"{path}: its 'model' is not a dict of tensors")
    return state


def check_dtypes(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], origin: Any) -> None:
    """Raise a ValueError naming ``origin`` and the tensor when a weight's dtype is not the
    model's own, or float16 for a float32 one (what ``save_model(half=True)`` writes): a header
    that says bfloat16 over float16 bytes would load as nonsense."""
    for name, value in state.items():
        want = own[name].dtype if name in own else value.dtype
        if value.dtype == want or (want == torch.float32 and value.dtype == torch.float16):
            continue
        raise ValueError(
            f"{origin}: tensor {name} is stored as {str(value.dtype).removeprefix('torch.')}, "
            f"but the model holds {str(want).removeprefix('torch.')} there (float16 allowed); "
            "a damaged or mislabelled file"
        )


def check_shapes(own: dict[str, Any], state: dict[str, Any], origin: str | Path) -> None:
    """Raise a ValueError naming ``origin`` unless ``state`` (name -> shape) has the names and
    shapes of ``own`` (a model's state dict)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{origin}: weights do not match the config (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    for name, shape in state.items():
        if tuple(shape) != tuple(own[name].shape):
            raise ValueError(
                f"{origin}: {name} is {tuple(shape)} but the config makes it "
                f"{tuple(own[name].shape)}"
            )


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes from a safetensors header, without reading the data."""
    check_regular_file(path, "safetensors file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: f.get_slice(name).get_shape() for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file (a regular file: a FIFO or a device is refused)."""
    check_regular_file(path, "safetensors file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None


# What a file that is not a danet model is, by its first bytes or its suffix, for load()'s error.
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
}
_SUFFIXES = {
    ".onnx": "an ONNX graph (run it with onnxruntime; danet.load reads the model folder or "
    "checkpoint it was exported from)",
    ".webp": "a WebP image",
    ".yaml": "a training recipe (give it to `danet train --config`)",
    ".yml": "a training recipe (give it to `danet train --config`)",
    ".json": "a JSON file (a model folder holds config.json beside model.safetensors)",
    ".mp4": "a video",
    ".avi": "a video",
    ".mov": "a video",
}


def describe_foreign_file(path: Path) -> str | None:
    """What ``path`` is when it is plainly not a model (an image, an ONNX graph, ...), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind + " (segment it with `danet predict` or model.predict)"
    if head.startswith(b"RIFF") and path.suffix.lower() == ".webp":
        return "a WebP image (segment it with `danet predict` or model.predict)"
    return _SUFFIXES.get(path.suffix.lower())


def model_file(name_or_path: str | Path) -> Path:
    """The file a model is read from: ``model.safetensors`` or a training ``checkpoint.pt``.

    Takes what :func:`danet.load` takes; a file that is plainly not a model (an image, an ONNX
    graph, a recipe) is a ValueError that says what it is.
    """
    path = resolve(name_or_path)
    if path.is_dir():
        if (path / WEIGHTS_NAME).exists():
            path = path / WEIGHTS_NAME
        elif (path / TRAIN_STATE_NAME).exists():
            path = path / TRAIN_STATE_NAME
        else:
            raise FileNotFoundError(f"{path}: holds neither {WEIGHTS_NAME} nor {TRAIN_STATE_NAME}")
    check_regular_file(path, "model file")  # a FIFO or /dev/zero: refused, never read
    if path.suffix != ".safetensors":
        kind = describe_foreign_file(path)
        if kind is not None:
            raise ValueError(
                f"{path}: this is {kind}, not a danet model; load() takes a bundled model's name, "
                "a model or run folder, model.safetensors or a training checkpoint.pt"
            )
    return path


def check_finite(state: dict[str, torch.Tensor], origin: str | Path) -> None:
    """Raise a ValueError naming ``origin`` and the tensor when a weight is NaN or infinite."""
    for name, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(
                f"{origin}: weight {name} holds NaN or infinite values; danet loads only finite "
                "weights (was the model saved after its training diverged?)"
            )


def read_config_beside(weights: Path) -> tuple[Any, Path]:
    """The ``config.json`` beside a ``.safetensors`` file, and its path."""
    config_path = weights.with_name(CONFIG_NAME)
    try:
        return read_json(config_path), config_path
    except FileNotFoundError:
        raise FileNotFoundError(f"{config_path}: missing (it goes beside {weights.name})") from None


def run_folder_of(name_or_path: str | Path) -> Path:
    """The folder that holds a model (a run folder, for a trained one)."""
    path = resolve(name_or_path)
    return path if path.is_dir() else path.parent
