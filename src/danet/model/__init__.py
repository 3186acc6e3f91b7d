"""The DANet model: backbone, dual attention head, and saving and loading it.

- :mod:`~danet.model.danet`: :class:`DANet`, :func:`save_model` and :func:`load`;
- :mod:`~danet.model.head`: the dual attention head and the FCN auxiliary head;
- :mod:`~danet.model.attention`: the position and channel attention modules;
- :mod:`~danet.model.dual_attention`: both, summed, as a block for any network;
- :mod:`~danet.model.efficient_attention`: ``softmax(Q K^T) V`` without the N x N matrix;
- :mod:`~danet.model.backbone`: timm feature extractors at output stride 8, 16 or 32;
- :mod:`~danet.model.pretrained`: ImageNet weight files for the backbone;
- :mod:`~danet.model.checkpoint`: the files a model and a training state are stored in;
- :mod:`~danet.model.paths`: where those files are (names, bundled models), without torch;
- :mod:`~danet.model.metadata`: class names, palette and input size, checked without torch;
- :mod:`~danet.model.segment`: a module run inside :mod:`danet.utils.inference`.

The names are imported on first use, so that ``danet.model.metadata`` loads no torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from danet.model.attention import ChannelAttention, PositionAttention
    from danet.model.danet import DANet, load, save_model
    from danet.model.dual_attention import DualAttention
    from danet.model.head import DAHead
    from danet.options import BACKBONES

_EXPORTS = {
    "BACKBONES": "danet.options",
    "ChannelAttention": "danet.model.attention",
    "DAHead": "danet.model.head",
    "DANet": "danet.model.danet",
    "DualAttention": "danet.model.dual_attention",
    "PositionAttention": "danet.model.attention",
    "load": "danet.model.danet",
    "save_model": "danet.model.danet",
}
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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'danet.model' has no attribute {name!r}")
