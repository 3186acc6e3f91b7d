"""The DANet model: backbone, dual attention head, and saving and loading it.

- :mod:`~danet.model.danet`: :class:`DANet`, :func:`save_model` and :func:`load`;
- :mod:`~danet.model.head`: the dual attention head and the FCN auxiliary head;
- :mod:`~danet.model.attention`: the position and channel attention modules;
- :mod:`~danet.model.dual_attention`: both, summed, as a block for any network;
- :mod:`~danet.model.efficient_attention`: ``softmax(Q K^T) V`` without the N x N matrix;
- :mod:`~danet.model.backbone`: timm feature extractors at output stride 8, 16 or 32;
- :mod:`~danet.model.pretrained`: ImageNet weight files for the backbone;
- :mod:`~danet.model.checkpoint`: the files a model and a training state are stored in.
"""

from danet.model.attention import ChannelAttention, PositionAttention
from danet.model.danet import DANet, load, save_model
from danet.model.dual_attention import DualAttention
from danet.model.head import DAHead
from danet.options import BACKBONES

__all__ = [
    "BACKBONES",
    "ChannelAttention",
    "DAHead",
    "DANet",
    "DualAttention",
    "PositionAttention",
    "load",
    "save_model",
]
