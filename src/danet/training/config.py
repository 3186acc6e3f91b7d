"""Training recipes as a dataclass, read from one small YAML file per dataset.

The recipes ship inside the package (:mod:`danet.assets`), so ``--config camvid`` works from any
folder; a path to a YAML file works as well. This module loads no torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from danet.assets import resolve_config
from danet.options import (
    AFFINITY_TARGETS,
    ATTENTIONS,
    CAM_VARIANTS,
    CLASS_WEIGHTINGS,
    DECODERS,
    OUTPUT_STRIDES,
    PAM_SCALES,
    PIXEL_SAMPLERS,
    PRECISIONS,
    AffinityTarget,
    Attention,
    CamVariant,
    ClassWeighting,
    Decoder,
    PamScale,
    PixelSampler,
    Precision,
)
from danet.utils.bounds import INPUT_SIZE_RULE, MAX_SEED, MAX_SIZE_PIXELS, MIN_INPUT_SIDE, short

# The weights of the loss terms, by output name. The paper weighs out, pam and cam equally;
# mmsegmentation's auxiliary FCN head gets 0.4. "affinity" (off in the paper) supervises PAM's
# rows with the labels: -log(attention mass on same-class keys).
DEFAULT_LOSS_WEIGHTS = {"out": 1.0, "pam": 1.0, "cam": 1.0, "aux": 0.4}


@dataclass
class TrainConfig:
    """Everything a training run needs; saved in every checkpoint so that a run can resume."""

    dataset: str = "camvid"
    data_root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    out: str = "runs/danet"
    # model
    backbone: str = "mobilenetv2_100"
    output_stride: int = 8
    pretrained: str | None = "imagenet"  # "imagenet", a weight file, or None for random init
    init_weights: str | None = None  # a whole model (bundled name or folder) to start from
    attention: Attention = "both"
    cam_variant: CamVariant = "paper"
    pam_reduction: int = 8
    pam_scale: PamScale = "none"  # "learned": softmax(s Q^T K) with a learnable s (a departure)
    aux_head: bool = False
    decoder: Decoder = "none"  # "stride4": a light decoder with stride-4 features (a departure)
    input_size: list[int] | None = None  # the model's native (H, W) for eval, predict, export
    # data
    crop_size: list[int] = field(default_factory=lambda: [512, 512])
    base_size: list[int] | None = None  # resize every training image to (H, W) before scaling
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    color_jitter: float = 0.0
    batch_size: int = 8
    workers: int = 2
    # schedule (the paper: SGD, momentum 0.9, wd 1e-4, poly 0.9 per iteration, head lr x10)
    iters: int | None = None
    epochs: int | None = None
    lr: float = 0.01
    head_lr_mult: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    warmup_iters: int = 0
    grad_clip_norm: float | None = None  # clip the gradients' total norm to this (None: off)
    attention_lr_mult: float = 1.0  # extra lr factor on PAM/CAM's gamma, scale, query and key
    attention_weight_decay: float | None = None  # weight decay of gamma and scale (None: as all)
    affinity_queries: int = 1024  # query pixels per image sampled for the "affinity" loss
    affinity_target: AffinityTarget = "mass"  # see danet.training.losses.affinity_loss
    affinity_exclude_radius: int | None = None  # keys this close to the query leave the target
    class_weighting: ClassWeighting = "none"  # "median_frequency": class-balanced cross-entropy
    pixel_sampler: PixelSampler = "none"  # "ohem": the cross-entropies average the hard pixels
    ohem_threshold: float = 0.7  # ohem: pixels whose true class has a lower probability are hard
    ohem_min_kept: int = 16384  # ohem: at least this many hard pixels per image
    reach_radius: int = 3  # the "local" radius of the PAM reach figures at validation
    # loss weights of the outputs (DEFAULT_LOSS_WEIGHTS); "affinity" turns the affinity loss on
    loss_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LOSS_WEIGHTS))
    # run
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # float16 mixed precision, on CUDA only (precision=fp32)
    precision: Precision = "fp32"  # "bf16": bfloat16 autocast; "auto": bf16 where the device has it
    channels_last: bool = True  # NHWC memory format for the model and the batches
    sync_bn: bool = True  # under torchrun
    checkpoint_every: int = 100
    eval_every: int = 0  # iterations between val evaluations; 0: only at the end
    eval_scales: list[float] = field(default_factory=lambda: [1.0])

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a YAML recipe (a path or a bundled recipe's name); unknown keys are an error."""
        path = resolve_config(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config must be a mapping of keys to values")
        return cls().merge(data, origin=str(path))

    def merge(self, values: dict[str, Any], origin: str = "config") -> TrainConfig:
        """A copy with ``values`` replacing fields, each checked and converted by
        :func:`check_values`; unknown keys and bad values raise a ValueError naming them."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{origin}: unknown config keys {unknown}")
        if isinstance(values.get("loss_weights"), dict):  # named weights update the defaults
            values = {**values, "loss_weights": {**self.loss_weights, **values["loss_weights"]}}
        return dataclasses.replace(self, **check_values(values, origin))

    def validate(self, origin: str = "config") -> TrainConfig:
        """This config with every field checked and converted (for configs built in Python)."""
        return self.merge(self.to_dict(), origin)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for checkpoints and logs."""
        return dataclasses.asdict(self)


# --- checking values at the boundary ---------------------------------------------------------
# Each recipe value is checked once, where it enters (YAML file, command line, saved run
# config), and converted to the type the code downstream expects. A YAML value is accepted when
# the command line would accept the same text: ``crop_size: 128`` means [128, 128] as
# ``--crop-size 128`` does, ``batch_size: "8"`` means 8, and ``pretrained: none`` (or null) means
# no weights; anything else is refused with the key's name.


def _label(name: str, origin: str) -> str:
    if origin == "command line":
        return "--" + name.replace("_", "-")
    return f"{origin}: {name}"


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, (int, float, str)):
        number = float(value)
        if math.isfinite(number):
            return number
    raise TypeError


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError


def _pretrained(value: Any) -> str | None:
    if value is None or value is False or (isinstance(value, str) and value.lower() == "none"):
        return None
    return _str(value)


def _ints(value: Any) -> list[int]:
    if isinstance(value, str):
        value = value.replace("x", ",").split(",")
    if not isinstance(value, (list, tuple)):
        value = [value]
    numbers = [_int(v) for v in value]
    if len(numbers) == 1:
        numbers *= 2
    if len(numbers) != 2:
        raise TypeError
    return numbers


def _floats(value: Any) -> list[float]:
    if not isinstance(value, (list, tuple)):
        value = [value]
    return [_float(v) for v in value]


def _weights(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError
    return {k: _float(v) for k, v in value.items()}


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _at_least(low: float) -> Callable[[Any], bool]:
    def ok(value: Any) -> bool:
        values = value if isinstance(value, list) else [value]
        return all(v is None or v >= low for v in values)

    return ok


def _size_bounded(low: int) -> Callable[[Any], bool]:
    return lambda v: min(v) >= low and v[0] * v[1] <= MAX_SIZE_PIXELS


def _positive(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(v > 0 for v in values)


def _one_of(choices: tuple[Any, ...]) -> str:
    return "one of " + ", ".join(map(str, choices))


def _positive_or_none(value: Any) -> bool:
    return value is None or value > 0


_SIZE = f"an integer >= 1 or H,W (two integers >= 1), at most {MAX_SIZE_PIXELS} pixels in all"
# field -> (convert, what it must be, range check)
CHECKS: dict[str, tuple[Callable[[Any], Any], str, Callable[[Any], bool] | None]] = {
    "dataset": (_str, "a dataset name", None),
    "data_root": (_str, "a folder", None),
    "train_split": (_str, "a split name", None),
    "val_split": (_optional(_str), "a split name or ''", None),
    "out": (_str, "a folder", None),
    "backbone": (_str, "a timm model name", None),
    "output_stride": (_int, _one_of(OUTPUT_STRIDES), lambda v: v in OUTPUT_STRIDES),
    "pretrained": (_pretrained, "'imagenet', a weight file or 'none'", None),
    "init_weights": (_optional(_str), "a bundled model's name or a model folder", None),
    "attention": (_str, _one_of(ATTENTIONS), None),  # the choice is checked by the model
    "cam_variant": (_str, _one_of(CAM_VARIANTS), None),
    "pam_reduction": (_int, "an integer >= 1", _at_least(1)),
    "pam_scale": (_str, _one_of(PAM_SCALES), None),
    "aux_head": (_bool, "true or false", None),
    "input_size": (_optional(_ints), INPUT_SIZE_RULE, _size_bounded(MIN_INPUT_SIDE)),
    "crop_size": (_ints, _SIZE, _size_bounded(1)),
    "base_size": (_optional(_ints), _SIZE, _size_bounded(1)),
    "scale_range": (
        _floats,
        "two numbers 0 < low <= high",
        lambda v: len(v) == 2 and 0 < v[0] <= v[1],
    ),
    "color_jitter": (_float, "a number >= 0", _at_least(0)),
    "batch_size": (_int, "an integer >= 1", _at_least(1)),
    "workers": (_int, "an integer >= 0", _at_least(0)),
    "iters": (_optional(_int), "an integer >= 1", _at_least(1)),
    "epochs": (_optional(_int), "an integer >= 1", _at_least(1)),
    "lr": (_float, "a number > 0", _positive),
    "head_lr_mult": (_float, "a number >= 0", _at_least(0)),
    "momentum": (_float, "a number >= 0", _at_least(0)),
    "weight_decay": (_float, "a number >= 0", _at_least(0)),
    "poly_power": (_float, "a number >= 0", _at_least(0)),
    "warmup_iters": (_int, "an integer >= 0", _at_least(0)),
    "grad_clip_norm": (_optional(_float), "a number > 0 or none", _positive_or_none),
    "attention_lr_mult": (_float, "a number >= 0", _at_least(0)),
    "attention_weight_decay": (_optional(_float), "a number >= 0", _at_least(0)),
    "affinity_queries": (_int, "an integer >= 1", _at_least(1)),
    "affinity_target": (_str, _one_of(AFFINITY_TARGETS), lambda v: v in AFFINITY_TARGETS),
    "affinity_exclude_radius": (
        _optional(_int),
        "an integer >= 0 (Chebyshev distance in feature pixels) or none",
        _at_least(0),
    ),
    "class_weighting": (
        _str,
        f"one of {', '.join(CLASS_WEIGHTINGS)}",
        lambda v: v in CLASS_WEIGHTINGS,
    ),
    "decoder": (_str, _one_of(DECODERS), lambda v: v in DECODERS),
    "pixel_sampler": (_str, _one_of(PIXEL_SAMPLERS), lambda v: v in PIXEL_SAMPLERS),
    "ohem_threshold": (_float, "a number from 0 to 1", lambda v: 0 <= v <= 1),
    "ohem_min_kept": (_int, "an integer >= 0 (pixels per image)", _at_least(0)),
    "reach_radius": (_int, "an integer >= 0 (feature pixels)", _at_least(0)),
    "loss_weights": (_weights, "a mapping of output names to numbers >= 0", None),
    "seed": (_int, f"an integer from 0 to {MAX_SEED}", lambda v: 0 <= v <= MAX_SEED),
    "device": (_str, "auto, cpu, cuda or cuda:N", None),
    "amp": (_bool, "true or false", None),
    "precision": (_str, f"one of {', '.join(PRECISIONS)}", lambda v: v in PRECISIONS),
    "channels_last": (_bool, "true or false", None),
    "sync_bn": (_bool, "true or false", None),
    "checkpoint_every": (_int, "an integer >= 1", _at_least(1)),
    "eval_every": (_int, "an integer >= 0 (0: only at the end)", _at_least(0)),
    "eval_scales": (_floats, "numbers > 0", _positive),
}


def check_values(values: dict[str, Any], origin: str = "config") -> dict[str, Any]:
    """Check and convert recipe values; a bad one raises a ValueError naming the key (or the
    flag, when ``origin`` is ``"command line"``), what it must be and what it was."""
    checked = dict(values)
    for name, value in values.items():
        if name not in CHECKS:
            continue
        convert, expected, in_range = CHECKS[name]
        try:
            converted = convert(value)
            ok = in_range is None or converted is None or in_range(converted)
        except (TypeError, ValueError):
            ok = False
        if ok and name == "loss_weights":
            ok = all(w >= 0 for w in converted.values())
        if not ok:
            raise ValueError(f"{_label(name, origin)} must be {expected}, not {short(value)}")
        checked[name] = converted
    return checked


def recipe_from_flags(
    config: str | Path | None, flags: dict[str, Any], resume: bool = False
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """``danet train``'s recipe: the defaults, then the ``--config`` recipe, then the flags given.

    Returns the recipe and, with ``resume``, the values given (the flags, and the whole recipe of
    a ``--config``), which :func:`danet.training.resume.resumed_config` checks against the saved
    run: equal is fine, a change it cannot honour is an error.
    """
    cfg = TrainConfig.from_file(config) if config else TrainConfig()
    flags = dict(flags)
    if "affinity_weight" in flags:
        weight = flags.pop("affinity_weight")
        if not weight >= 0:  # NaN too
            raise ValueError(f"--affinity-weight must be a number >= 0 (0: off), not {weight}")
        flags["loss_weights"] = {"affinity": weight}
    cfg = cfg.merge(flags, origin="command line")
    if not resume and not cfg.data_root:
        raise ValueError("--data-root is required")
    if not resume:
        return cfg, None
    return cfg, cfg.to_dict() if config else {k: getattr(cfg, k) for k in flags}
