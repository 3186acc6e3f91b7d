"""The files that ship inside the package: training recipes, the bundled models, sample images.

Every package-data path is resolved here, so the files can move without a hunt through the code.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
CONFIGS_DIR = PACKAGE_DIR / "configs"
"""Training recipes, one YAML file per dataset (``camvid.yaml``, ...)."""
MODELS_DIR = PACKAGE_DIR / "models"
"""Trained models, one model folder (``config.json`` + ``model.safetensors``) per name."""
SAMPLES_DIR = PACKAGE_DIR / "samples"
"""Sample images, one folder per dataset, in that dataset's layout (``camvid/val``, ...)."""


def bundled_configs() -> list[str]:
    """Names of the recipes that ship inside the package (``camvid``, ``cityscapes``, ...)."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def resolve_config(name_or_path: str | Path) -> Path:
    """A recipe's path: an existing file as given, else the bundled recipe of that name."""
    path = Path(name_or_path)
    if path.is_file() or (path.exists() and not path.is_dir()):  # a FIFO or device: the reader
        return path  # refuses it, naming what it is
    name = str(name_or_path)
    if name in bundled_configs():
        return CONFIGS_DIR / f"{name}.yaml"
    raise FileNotFoundError(
        f"{name}: no such config file, and not a bundled recipe "
        f"(bundled: {', '.join(bundled_configs())})"
    )


def bundled_model_dir(name: str) -> Path:
    """The folder of the bundled model ``name`` (which may not exist)."""
    return MODELS_DIR / name


def sample_datasets() -> list[str]:
    """Datasets with bundled sample images (``camvid``)."""
    return sorted(p.name for p in SAMPLES_DIR.iterdir() if p.is_dir())


def samples_dir(dataset: str) -> Path:
    """The bundled samples of ``dataset``, in its reader's layout (``camvid``: ``val/``, ``valannot/``)."""
    return SAMPLES_DIR / dataset
