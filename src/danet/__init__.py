"""DANet: Dual Attention Network for Scene Segmentation (Fu et al., CVPR 2019).

The public names are imported on first use, so ``import danet`` is quick, loads no torch and
leaves the process environment alone (the ``danet`` command sets ``OMP_WAIT_POLICY`` itself).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from danet.version import __version__

if TYPE_CHECKING:
    from danet.assets import samples_dir
    from danet.deploy.onnx_runtime import OnnxModel
    from danet.loading import load
    from danet.model.attention import ChannelAttention, PositionAttention
    from danet.model.checkpoint import bundled_models
    from danet.model.danet import DANet, save_model
    from danet.model.dual_attention import DualAttention
    from danet.model.head import DAHead
    from danet.options import BACKBONES
    from danet.training.losses import DANetLoss
    from danet.training.metrics import ConfusionMatrix
    from danet.utils.inference import InferenceSettings

_EXPORTS = {
    "BACKBONES": "danet.options",
    "ChannelAttention": "danet.model.attention",
    "ConfusionMatrix": "danet.training.metrics",
    "DAHead": "danet.model.head",
    "DANet": "danet.model.danet",
    "DANetLoss": "danet.training.losses",
    "DualAttention": "danet.model.dual_attention",
    "PositionAttention": "danet.model.attention",
    "bundled_models": "danet.model.checkpoint",
    "InferenceSettings": "danet.utils.inference",
    "OnnxModel": "danet.deploy.onnx_runtime",
    "load": "danet.loading",
    "save_model": "danet.model.danet",
    "samples_dir": "danet.assets",
}
__all__ = [
    "BACKBONES",
    "ChannelAttention",
    "ConfusionMatrix",
    "DAHead",
    "DANet",
    "DANetLoss",
    "DualAttention",
    "InferenceSettings",
    "OnnxModel",
    "PositionAttention",
    "bundled_models",
    "load",
    "samples_dir",
    "save_model",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'danet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
