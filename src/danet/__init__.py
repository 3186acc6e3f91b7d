"""DANet: Dual Attention Network for Scene Segmentation (Fu et al., CVPR 2019)."""

import os

# OpenMP threads that spin while waiting make a CPU run 10-30x slower as soon as another process
# wants the same cores (measured here: 9 s instead of 0.3 s a step). Waiting passively costs little.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
