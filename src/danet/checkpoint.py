"""Models and training state on disk: safetensors + JSON for models, atomic writes for everything.

A saved model is a folder with ``config.json`` (the constructor arguments) and ``model.safetensors``.
A training run folder adds ``checkpoint.pt``: model, optimizer, step, RNG and run config, read back
with ``torch.load(weights_only=True)`` so that a crafted file cannot run code.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from danet.config import check_input_size, short
from danet.data.classes import MAX_CLASS_NAME
from danet.model import DANet

BUNDLED_DIR = Path(__file__).parent / "models"
CONFIG_NAME, WEIGHTS_NAME, TRAIN_STATE_NAME = "config.json", "model.safetensors", "checkpoint.pt"
MAX_JSON_BYTES = 16 << 20
"""A danet JSON file (config.json, run_config.json) is far smaller; larger ones are refused."""


def bundled_models() -> list[str]:
    """Names of the trained models that ship inside the package."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / WEIGHTS_NAME).is_file())


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    A crash or a full disk at any moment leaves either the old file or the new one, never a torn
    one. Any failure to write is an ``OSError`` that names ``path`` and the reason ("No space left
    on device", "Permission denied", ...), not the temp file.
    """
    path = Path(path)
    tmp, fd = None, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        fcntl.flock(fd, fcntl.LOCK_EX)  # a live write: remove_stale_temp_files leaves it alone
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
        os.close(fd)
        fd = None
    except BaseException as err:
        if fd is not None:
            os.close(fd)
        full = not isinstance(err, OSError) and tmp is not None and _disk_full(path.parent)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(path)) from err
        if full:  # a writer that hides the OSError (torch's zip writer, ONNX) on a full disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from err
        raise


def remove_stale_temp_files(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files of :func:`atomic_write` that killed commands left in
    ``folder`` (``names`` may be glob patterns, ``*.png``). A live write's temp file is locked
    and kept."""
    removed = []
    for name in names:
        for path in Path(folder).glob(f".{name}.*.tmp"):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another process is writing it
            else:
                path.unlink(missing_ok=True)
                removed.append(path)
            finally:
                os.close(fd)
    return removed


def read_json(path: str | Path) -> Any:
    """A small JSON file's data; a file that is too large, not UTF-8, not JSON or nested too
    deeply is a one-line ValueError that names it."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{path}: {size} bytes; a danet JSON file is at most {MAX_JSON_BYTES}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); expected JSON") from None
    return parse_json(text, str(path))


def parse_json(text: str, origin: str) -> Any:
    """``json.loads(text)``, with errors as one-line ValueErrors naming ``origin``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{origin}: not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{origin}: JSON nested too deeply to be a danet file") from None


def _is_rgb(color: Any) -> bool:
    return (
        isinstance(color, (list, tuple))
        and len(color) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)
    )


def check_metadata(config: dict[str, Any], num_classes: int, origin: str) -> None:
    """Check a model's class names, palette and input size (from config.json or an ONNX file's
    metadata) against its ``num_classes``; a bad one is a ValueError naming ``origin``."""
    names = config.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{origin}: class_names must be a list of strings, not {short(names)}")
        if len(names) != num_classes:
            raise ValueError(f"{origin}: {len(names)} class_names for {num_classes} classes")
        for index, name in enumerate(names):
            if len(name) > MAX_CLASS_NAME:
                raise ValueError(
                    f"{origin}: class name {index} is {len(name)} characters long "
                    f"({short(name, 40)}); at most {MAX_CLASS_NAME}"
                )
    palette = config.get("palette")
    if palette is not None:
        bad = [c for c in palette if not _is_rgb(c)] if isinstance(palette, list) else [palette]
        if bad:
            raise ValueError(
                f"{origin}: palette must be [R, G, B] colours of integers 0-255, not "
                f"{short(bad[0])}"
            )
        if len(palette) != num_classes:
            raise ValueError(f"{origin}: {len(palette)} palette colours for {num_classes} classes")
    if config.get("input_size") is not None:
        check_input_size(config["input_size"], f"{origin}: input_size")


def check_finite(state: dict[str, torch.Tensor], origin: str | Path) -> None:
    """Raise a ValueError naming ``origin`` and the tensor when a weight is NaN or infinite."""
    for name, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(
                f"{origin}: weight {name} holds NaN or infinite values; danet loads only finite "
                "weights (was the model saved after its training diverged?)"
            )


def save_model(model: DANet, folder: str | Path, half: bool = False) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (fp16 if ``half``) into ``folder``."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    config = json.dumps(model.config, indent=2)
    data = save(state, metadata={"format": "pt"})  # bytes: a full disk is a plain OSError
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: Path(tmp).write_bytes(data))
    atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(config))
    return folder


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
    weights = state["model"]
    if not isinstance(weights, dict) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise ValueError(f"{path}: its 'model' is not a dict of tensors")
    return state


def _build(
    config: dict[str, Any], state: dict[str, Any], origin: Path, weights_origin: Path
) -> DANet:
    """Build the model of ``config`` for weights of the shapes in ``state``.

    The config is first built on the meta device, which allocates nothing, and checked against
    the weights: a config that does not match its weights (``num_classes: 20000000``) is refused
    before any memory is spent on it.
    """
    if not isinstance(config, dict):
        raise ValueError(f"{origin}: the model config is not a JSON object")
    num_classes = config.get("num_classes")
    if isinstance(num_classes, int) and not isinstance(num_classes, bool) and num_classes > 0:
        check_metadata(config, num_classes, str(origin))
    args = {k: v for k, v in config.items() if k != "pretrained"}
    try:
        with torch.device("meta"):
            skeleton = DANet(**args)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{origin}: bad model config ({err})") from None
    check_shapes(skeleton.state_dict(), state, weights_origin)
    return DANet(**args)


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


def load_weights(model: DANet, state: dict[str, torch.Tensor], origin: Path) -> DANet:
    """Load ``state`` into ``model`` strictly (a shape mismatch names the tensor); eval mode."""
    check_shapes(model.state_dict(), {k: v.shape for k, v in state.items()}, origin)
    check_finite(state, origin)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes from a safetensors header, without reading the data."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: f.get_slice(name).get_shape() for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
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


def resolve(name_or_path: str | Path) -> Path:
    """Turn a bundled model's name, a model folder, a run folder or a file into a path.

    A folder named like a bundled model that holds no model (a dataset folder ``camvid/`` in the
    working directory) does not hide the bundled model.
    """
    path = Path(name_or_path)
    holds_model = path.is_file() or any(
        (path / n).is_file() for n in (WEIGHTS_NAME, TRAIN_STATE_NAME)
    )
    if holds_model or (path.exists() and str(name_or_path) not in bundled_models()):
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
            config = read_json(config_path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{config_path}: missing (it goes beside {path.name})"
            ) from None
        model = _build(config, _safetensors_shapes(path), config_path, path)
        model = load_weights(model, _load_safetensors(path), path)
    else:
        kind = describe_foreign_file(path)
        if kind is not None:
            raise ValueError(
                f"{path}: this is {kind}, not a danet model; load() takes a bundled model's name, "
                "a model or run folder, model.safetensors or a training checkpoint.pt"
            )
        state = load_training_state(path)
        weights = state["model"]
        shapes = {k: v.shape for k, v in weights.items()}
        model = load_weights(_build(state["config"], shapes, path, path), weights, path)
    return model.to(map_location)
