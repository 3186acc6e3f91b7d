"""DANet: Dual Attention Network for Scene Segmentation (Fu et al., CVPR 2019).

The public names are imported on first use, so ``import danet`` is quick, loads no torch and
leaves the process environment alone (the ``danet`` command sets ``OMP_WAIT_POLICY`` itself).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from danet.attention import ChannelAttention, PositionAttention
    from danet.checkpoint import bundled_models, load, save_model
    from danet.head import DAHead
    from danet.losses import DANetLoss
    from danet.metrics import ConfusionMatrix
    from danet.model import BACKBONES, DANet

_EXPORTS = {
    "BACKBONES": "danet.model",
    "ChannelAttention": "danet.attention",
    "ConfusionMatrix": "danet.metrics",
    "DAHead": "danet.head",
    "DANet": "danet.model",
    "DANetLoss": "danet.losses",
    "PositionAttention": "danet.attention",
    "bundled_models": "danet.checkpoint",
    "load": "danet.checkpoint",
    "save_model": "danet.checkpoint",
}
__all__ = [
    "BACKBONES",
    "ChannelAttention",
    "ConfusionMatrix",
    "DAHead",
    "DANet",
    "DANetLoss",
    "PositionAttention",
    "bundled_models",
    "load",
    "save_model",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'danet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
