"""Where a model's files are, found without torch: the names inside a model folder, the bundled
models, and :func:`resolve` (the command line notes a model's files before it loads torch).
:mod:`danet.model.checkpoint` reads and writes them."""

from __future__ import annotations

from pathlib import Path

import danet.assets as assets

# A model folder holds the constructor arguments and the weights; a training run adds its state.
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TRAIN_STATE_NAME = "checkpoint.pt"


def bundled_models() -> list[str]:
    """Names of the trained models that ship inside the package."""
    if not assets.MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in assets.MODELS_DIR.iterdir() if (p / WEIGHTS_NAME).is_file())


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
        return assets.bundled_model_dir(str(name_or_path))
    names = ", ".join(bundled_models()) or "none"
    raise FileNotFoundError(
        f"{name_or_path}: no such file or folder, and not a bundled model (bundled: {names})"
    )
