"""DANet: Dual Attention Network for Scene Segmentation (Fu et al., CVPR 2019)."""

from danet.attention import ChannelAttention, PositionAttention
from danet.checkpoint import bundled_models, load, save_model
from danet.head import DAHead
from danet.losses import DANetLoss
from danet.metrics import ConfusionMatrix
from danet.model import BACKBONES, DANet

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
