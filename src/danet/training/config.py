"""The training recipe: one dataclass whose fields declare their type, range, choices and help
once, checked once when a recipe is built; ``danet train``'s flags are generated from it.

Each field's metadata (:func:`option`) holds its help and its range; its type annotation gives
the conversion and, for a ``Literal``, the choices. :meth:`TrainConfig.__post_init__` converts
and checks every field and the rules between fields, so every ``TrainConfig`` in existence is a
valid one; :meth:`TrainConfig.check_runnable` adds what a run needs on top (a data root, and
``iters`` or ``epochs``). Errors are :class:`RecipeError`: they name fields by their Python
names, and :meth:`RecipeError.for_flags` names them as ``danet train`` flags.

The recipes ship inside the package (:mod:`danet.assets`), so ``--config camvid`` works from any
folder; a path to a YAML file works as well. They are read bounded and strict
(:func:`danet.utils.textfile.read_yaml`). This module loads no torch.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from danet.assets import resolve_config
from danet.data import DATASETS
from danet.options import (
    BACKBONES,
    AffinityTarget,
    Attention,
    CamVariant,
    ClassWeighting,
    Decoder,
    PamScale,
    PixelSampler,
    Precision,
)
from danet.utils.bounds import MAX_SEED, MAX_SIZE_PIXELS, MIN_INPUT_SIDE, short
from danet.utils.textfile import read_yaml

# The weights of the loss terms, by output name. The paper weighs out, pam and cam equally;
# mmsegmentation's auxiliary FCN head gets 0.4. "affinity" (off in the paper) supervises PAM's
# rows with the labels: -log(attention mass on same-class keys).
LOSS_TERMS = frozenset({"out", "pam", "cam", "aux", "affinity", "distill", "lovasz"})
DEFAULT_LOSS_WEIGHTS = {"out": 1.0, "pam": 1.0, "cam": 1.0, "aux": 0.4}


class RecipeError(ValueError):
    """A bad recipe value or combination of values.

    The message names fields by their Python names (``batch_size must be ...``), prefixed by the
    recipe file it came from, if any; :meth:`for_flags` gives the same message with the fields
    that came from the command line named as ``danet train`` flags (``--batch-size``).
    """

    def __init__(self, template: str, *fields: str, origin: str | None = None) -> None:
        self.template, self.fields, self.origin = template, fields, origin
        super().__init__(self._text(lambda name: name))

    def _text(self, name: Callable[[str], str]) -> str:
        text = self.template.format(*(name(f) for f in self.fields))
        return f"{self.origin}: {text}" if self.origin else text

    def for_flags(self) -> str:
        """The message with the fields named as flags (those of a recipe file keep their key)."""
        return self._text(lambda name: name if self.origin else flag_name(name))


def flag_name(field_name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + field_name.replace("_", "-")


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def option(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    above: float | None = None,
    high: float | None = None,
    min_side: int | None = None,
    ordered_pair: bool = False,
    what: str | None = None,
    choices: tuple[str, ...] | None = None,
    paper: Any = dataclasses.MISSING,
    group: str | None = None,
) -> Any:
    """A recipe field: its default, help and range in one place.

    ``low``/``high`` bound a number (or each number of a list) inclusively, ``above`` exclusively;
    ``min_side`` makes a ``list[int]`` field an image size (N or H,W, at most
    :data:`MAX_SIZE_PIXELS` pixels); ``ordered_pair`` asks for two numbers, low <= high; ``what``
    says what a free-text field holds; ``choices`` lists a text field's values where no
    ``Literal`` can (a registry's keys); ``paper`` is the paper's value where this field is one of
    the recipe's named departures; ``group`` starts a section of ``danet train --help``.
    """
    meta = {
        "help": help,
        "low": low,
        "above": above,
        "high": high,
        "min_side": min_side,
        "ordered_pair": ordered_pair,
        "what": what,
        "choices": choices,
        "paper": paper,
        "group": group,
    }
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything a training run needs; saved in every checkpoint so that a run can resume."""

    dataset: str = option("camvid", "dataset layout", choices=tuple(sorted(DATASETS)), group="data")
    data_root: str = option("", "the dataset's folder", what="a folder")
    train_split: str = option("train", "training split", what="a split name")
    val_split: str | None = option("val", "validation split; '' to skip validation",
                                   what="a split name or ''")  # fmt: skip
    out: str = option("runs/danet", "run folder (checkpoints, metrics.jsonl, curves.png)",
                      what="a folder")  # fmt: skip
    backbone: str = option("mobilenetv2_100", f"any timm CNN; the usual: {', '.join(BACKBONES)}",
                           what="a timm model name", group="model")  # fmt: skip
    output_stride: Literal[8, 16, 32] = option(8, "backbone output stride: 8 (the paper), 16, 32")
    pretrained: str | None = option("imagenet", "'imagenet', a weight file, or 'none' for "
                                    "random init", what="'imagenet' or a weight file")  # fmt: skip
    init_weights: str | None = option(None, "start from this whole model (a bundled name or a "
                                      "model folder)", what="a model's name or folder")  # fmt: skip
    attention: Attention = option("both", "attention modules")
    cam_variant: CamVariant = option("paper", "channel attention formula: the paper's "
                                     "softmax(E), or the released code's softmax(-E)",
                                     paper="paper")  # fmt: skip
    pam_reduction: int = option(8, "PAM query/key channel reduction", low=1)
    pam_scale: PamScale = option("none", "learned: softmax(s Q^T K), s learnt (a departure)",
                                 paper="none")  # fmt: skip
    aux_head: bool = option(False, "FCN auxiliary head on c3")
    decoder: Decoder = option("none", "stride4: a light decoder with the backbone's stride-4 "
                              "features (a departure); stride4_separable: the same with "
                              "depthwise-separable convolutions", paper="none")  # fmt: skip
    input_size: list[int] | None = option(None, "native H,W for eval, predict and export",
                                          min_side=MIN_INPUT_SIDE)  # fmt: skip
    crop_size: list[int] = option([512, 512], "training crop, N or H,W", min_side=1,
                                  group="augmentation")  # fmt: skip
    base_size: list[int] | None = option(None, "resize every training image to H,W before "
                                         "scaling", min_side=1)  # fmt: skip
    scale_range: list[float] = option([0.5, 2.0], "random scale range: LOW HIGH", above=0,
                                      ordered_pair=True)  # fmt: skip
    color_jitter: float = option(0.0, "colour jitter strength (0: off)", low=0)
    rare_crop: float = option(0.0, "probability that a training crop is placed around a pixel "
                              "of a rare class present in the image (rare-class sampling at "
                              "the crop level, a departure; 0: off)", low=0, high=1,
                              paper=0.0)  # fmt: skip
    rare_classes: str = option("", "the classes rare_crop aims at, by name, comma-separated; "
                               "'': those below the median pixel frequency of the training "
                               "split", what="class names separated by commas")  # fmt: skip
    batch_size: int = option(8, "images per step", low=1)
    workers: int = option(2, "data loader processes", low=0)
    # the paper: SGD, momentum 0.9, wd 1e-4, poly 0.9 per iteration, head lr x10
    iters: int | None = option(None, "training steps", low=1, group="schedule")
    epochs: int | None = option(None, "epochs, when --iters is not set", low=1)
    lr: float = option(0.01, "base learning rate", above=0)
    head_lr_mult: float = option(10.0, "learning rate factor of the head", low=0)
    momentum: float = option(0.9, "SGD momentum", low=0)
    weight_decay: float = option(1e-4, "SGD weight decay", low=0)
    poly_power: float = option(0.9, "power of the poly schedule", low=0)
    warmup_iters: int = option(0, "linear warm-up steps", low=0)
    grad_clip_norm: float | None = option(None, "clip the gradients' total norm to this "
                                          "('none': off)", above=0, paper=None)  # fmt: skip
    attention_lr_mult: float = option(1.0, "extra learning rate factor on the attention's gamma, "
                                      "scale, query and key", low=0, paper=1.0)  # fmt: skip
    attention_weight_decay: float | None = option(None, "weight decay of gamma and scale "
                                                  "('none': as all)", low=0,
                                                  paper=None)  # fmt: skip
    affinity_queries: int = option(1024, "query pixels per image of the affinity loss", low=1,
                                   group="loss")  # fmt: skip
    affinity_target: AffinityTarget = option("mass", "the affinity loss's row target: mass on "
                                             "the query's class, or uniform over it")  # fmt: skip
    affinity_exclude_radius: int | None = option(None, "keys within this Chebyshev distance "
                                                 "(feature pixels) of the query leave the "
                                                 "affinity target", low=0)  # fmt: skip
    class_weighting: ClassWeighting = option("none", "class weights of the cross-entropy "
                                             "(median_frequency: class-balanced)",
                                             paper="none")  # fmt: skip
    pixel_sampler: PixelSampler = option("none", "ohem: the cross-entropies average the hard "
                                         "pixels (mmsegmentation's OHEMPixelSampler)",
                                         paper="none")  # fmt: skip
    ohem_threshold: float = option(0.7, "ohem: a true-class probability below this is hard",
                                   low=0, high=1)  # fmt: skip
    ohem_min_kept: int = option(16384, "ohem: at least this many hard pixels per image", low=0)
    reach_radius: int = option(3, "the 'local' radius (feature pixels) of the validation's PAM "
                               "reach figures", low=0)  # fmt: skip
    loss_weights: dict[str, float] = option(DEFAULT_LOSS_WEIGHTS, "weights of the loss terms as "
                                            "NAME=W (out, pam, cam, aux, affinity, "
                                            "distill, lovasz: the Lovasz-softmax loss of "
                                            "out); they "
                                            "update the defaults", low=0)  # fmt: skip
    teacher: str | None = option(None, "distil from this model (a bundled name or a model "
                                 "folder): its class probabilities at distill_temperature "
                                 "become a 'distill' loss term (weight distill in loss_weights, "
                                 "1 by default)", what="a model's name or folder",
                                 paper=None)  # fmt: skip
    distill_temperature: float = option(1.0, "softmax temperature of the distillation",
                                        above=0)  # fmt: skip
    seed: int = option(0, "random seed", low=0, high=MAX_SEED, group="run")
    device: str = option("auto", "'auto' (cuda when available, else cpu), 'cpu', 'cuda' or "
                         "'cuda:N'", what="auto, cpu, cuda or cuda:N")  # fmt: skip
    amp: bool = option(True, "float16 mixed precision, on CUDA only (with precision fp32)")
    precision: Precision = option("fp32", "bf16: bfloat16 autocast; auto: bf16 on CUDA where "
                                  "supported, else fp32")  # fmt: skip
    channels_last: bool = option(True, "NHWC memory format for the model and the batches")
    sync_bn: bool = option(True, "synchronised batch norm under torchrun (CUDA)")
    checkpoint_every: int = option(100, "steps between checkpoints", low=1)
    eval_every: int = option(0, "steps between validations; 0: only at the end", low=0)
    eval_scales: list[float] = option([1.0], "the validation's scales", above=0)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, _check(f.name, getattr(self, f.name)))
        if self.loss_weights.keys() - LOSS_TERMS:
            unknown = sorted(self.loss_weights.keys() - LOSS_TERMS)
            known = "known: " + ", ".join(sorted(LOSS_TERMS))
            raise RecipeError("{0} names " + _escape(f"unknown terms {unknown}; {known}"),
                              "loss_weights")  # fmt: skip
        names = DATASETS[self.dataset].class_names  # empty for a folder: checked at build
        if names:
            self.rare_class_ids(names)

    def rare_class_ids(self, class_names: tuple[str, ...] | list[str]) -> list[int]:
        """The indices in ``class_names`` of ``rare_classes``; a name not there is a
        :class:`RecipeError` naming the field and the known names."""
        unknown = [n for n in self.rare_class_names() if n not in class_names]
        if unknown:
            known = ", ".join(class_names)
            raise RecipeError("{0} names " + _escape(f"{unknown}, not classes of the dataset; "
                              f"known: {known}"), "rare_classes")  # fmt: skip
        return [list(class_names).index(n) for n in self.rare_class_names()]

    def rare_class_names(self) -> list[str]:
        """The class names of ``rare_classes`` (empty: chosen from the data by frequency)."""
        return [name.strip() for name in self.rare_classes.split(",") if name.strip()]

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a YAML recipe (a path or a bundled recipe's name); unknown keys, duplicate keys
        and bad values raise a ValueError naming the file and the key."""
        return cls().merge(read_recipe(path), origin=str(resolve_config(path)))

    def merge(self, values: dict[str, Any], origin: str | None = None) -> TrainConfig:
        """A copy with ``values`` replacing fields (``loss_weights`` updates the weights by name),
        checked as a whole; a bad key or value is a :class:`RecipeError` naming it (and
        ``origin``, the recipe file, where given)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise RecipeError(_escape(f"unknown recipe keys {unknown}"), origin=origin)
        try:
            if values.get("loss_weights") is not None:  # named weights update the defaults
                weights = _check("loss_weights", values["loss_weights"])
                values = {**values, "loss_weights": {**self.loss_weights, **weights}}
            return dataclasses.replace(self, **values)
        except RecipeError as err:
            if origin is None:
                raise
            raise RecipeError(err.template, *err.fields, origin=origin) from None

    def validate(self) -> TrainConfig:
        """This config, checked again (a field set after construction is checked here)."""
        return dataclasses.replace(self)

    def check_runnable(self) -> TrainConfig:
        """This config, or a :class:`RecipeError` if a run cannot start from it: it needs a data
        root and a length (``iters`` or ``epochs``)."""
        cfg = self.validate()
        if not cfg.data_root:
            raise RecipeError("{0} is required", "data_root")
        if cfg.iters is None and cfg.epochs is None:
            raise RecipeError("give {0} or {1}", "iters", "epochs")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for checkpoints and logs."""
        return dataclasses.asdict(self)

    def departures(self) -> dict[str, Any]:
        """The fields where this recipe departs from the paper's, with their values."""
        paper = {"loss_weights": {"affinity": 0.0}}
        paper.update({f.name: f.metadata["paper"] for f in dataclasses.fields(self)
                      if f.metadata["paper"] is not dataclasses.MISSING})  # fmt: skip
        found = {}
        for name, value in paper.items():
            ours = getattr(self, name)
            if name == "loss_weights":
                if ours.get("affinity", 0.0) != 0.0:  # the affinity loss, with its target
                    found["affinity_weight"] = ours["affinity"]
                    found["affinity_target"] = self.affinity_target
                if ours.get("lovasz", 0.0) != 0.0:  # the paper's loss has no Lovász term
                    found["loss_weights"] = {"lovasz": ours["lovasz"]}
            elif ours != value:
                found[name] = ours
        return found


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The mapping of a YAML recipe (a path or a bundled recipe's name), bounded and strict."""
    path = resolve_config(path)
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe must be a mapping of keys to values")
    return data


# --- the schema: conversion and checks derived from the annotations --------------------------
# A YAML value is accepted when the command line would accept the same text: ``crop_size: 128``
# means [128, 128] as ``--crop-size 128`` does, ``batch_size: "8"`` means 8, and ``pretrained:
# none`` (or null) means no weights; anything else is refused with the key's name.


@dataclass(frozen=True)
class FieldSpec:
    """What a field's annotation and metadata say: its base type, choices and range."""

    name: str
    base: str  # "int", "float", "bool", "str", "size", "floats", "weights"
    nullable: bool
    choices: tuple[Any, ...] | None
    meta: Any

    @property
    def expected(self) -> str:
        """What a value must be, in words (for messages)."""
        m = self.meta
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.base == "bool":
            text = "true or false"
        elif self.base == "str":
            text = m["what"] or "text"
        elif self.base == "size":
            side = m["min_side"]
            text = (f"an integer >= {side} or H,W (two integers >= {side}), at most "
                    f"{MAX_SIZE_PIXELS} pixels in all")  # fmt: skip
        elif self.base == "weights":
            text = "a mapping of output names to numbers >= 0"
        else:
            noun = {"int": "an integer", "float": "a number", "floats": "numbers"}[self.base]
            if self.meta["ordered_pair"]:
                noun = "two numbers, low <= high, each"
            text = noun + _range_words(m)
        return text + (" or none" if self.nullable and self.base not in ("str",) else "")


def _range_words(m: Any) -> str:
    def number(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else str(v)

    if m["low"] is not None and m["high"] is not None:
        return f" from {number(m['low'])} to {number(m['high'])}"
    if m["low"] is not None:
        return f" >= {number(m['low'])}"
    if m["above"] is not None:
        return f" > {number(m['above'])}"
    return ""


@cache
def specs() -> dict[str, FieldSpec]:
    """Every field's :class:`FieldSpec`, by name, in the dataclass's order."""
    hints = typing.get_type_hints(TrainConfig)
    found = {}
    for f in dataclasses.fields(TrainConfig):
        kind, nullable = hints[f.name], False
        if type(None) in get_args(kind) and get_origin(kind) is not Literal:
            nullable = True
            kind = next(a for a in get_args(kind) if a is not type(None))
        choices = get_args(kind) if get_origin(kind) is Literal else f.metadata["choices"]
        if choices is not None:
            base = "int" if isinstance(choices[0], int) else "str"
        elif get_origin(kind) is list:
            base = "size" if get_args(kind) == (int,) else "floats"
        elif get_origin(kind) is dict:
            base = "weights"
        else:
            base = kind.__name__
        found[f.name] = FieldSpec(f.name, base, nullable, choices, f.metadata)
    return found


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError
    number = float(value)
    if not math.isfinite(number):
        raise ValueError
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError


def _size(value: Any) -> list[int]:
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
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)):
        value = [value]
    return [_float(v) for v in value]


def _weights(value: Any) -> dict[str, float]:
    if isinstance(value, (list, tuple)):  # NAME=W words from the command line
        pairs = [str(word).split("=", 1) for word in value]
        if any(len(pair) != 2 for pair in pairs):
            raise TypeError
        value = dict(pairs)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError
    return {k: _float(v) for k, v in value.items()}


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "int": _int,
    "float": _float,
    "bool": _bool,
    "str": _str,
    "size": _size,
    "floats": _floats,
    "weights": _weights,
}


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, dict):
        yield from value.values()
    elif isinstance(value, list):
        yield from value
    else:
        yield value


def _in_range(spec: FieldSpec, value: Any) -> bool:
    m = spec.meta
    if spec.choices is not None:
        return value in spec.choices
    if spec.base == "size":
        return min(value) >= m["min_side"] and value[0] * value[1] <= MAX_SIZE_PIXELS
    if spec.base in ("bool", "str"):
        return True
    if spec.base == "floats" and not value:
        return False
    if m["ordered_pair"] and not (len(value) == 2 and value[0] <= value[1]):
        return False
    for v in _numbers(value):
        if m["low"] is not None and v < m["low"]:
            return False
        if m["high"] is not None and v > m["high"]:
            return False
        if m["above"] is not None and v <= m["above"]:
            return False
    return True


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))


def _check(name: str, value: Any) -> Any:
    """``value`` converted to field ``name``'s type, or a :class:`RecipeError` naming it."""
    spec = specs()[name]
    if spec.nullable and (_is_none(value) or (name == "pretrained" and value is False)):
        return None
    try:
        converted = _CONVERT[spec.base](value)
        ok = _in_range(spec, converted)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise RecipeError("{0} must be " + _escape(f"{spec.expected}, not {short(value)}"), name)
    return converted


def check_values(values: dict[str, Any]) -> dict[str, Any]:
    """Each recipe value of ``values`` converted and checked (other keys pass unchanged)."""
    return {k: _check(k, v) if k in specs() else v for k, v in values.items()}


def recipe_from_flags(
    config: str | Path | None, flags: dict[str, Any], resume: bool = False
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """``danet train``'s recipe: the defaults, then the ``config`` recipe, then the flags given
    (``affinity_weight`` sets ``loss_weights["affinity"]``); runnable unless ``resume``.

    Returns the recipe and, with ``resume``, the values given (the flags, and the whole recipe of
    a ``config``), which :func:`danet.training.resume.resumed_config` checks against the saved
    run: equal is fine, a change it cannot honour is an error.
    """
    cfg = TrainConfig.from_file(config) if config else TrainConfig()
    flags = dict(flags)
    if "affinity_weight" in flags:
        weight = flags.pop("affinity_weight")
        try:
            weight = _float(weight)
        except (TypeError, ValueError):
            weight = math.nan
        if not weight >= 0:
            message = _escape(f"a number >= 0 (0: off), not {short(weight)}")
            raise RecipeError("{0} must be " + message, "affinity_weight")
        weights = _check("loss_weights", flags.get("loss_weights") or {})
        flags["loss_weights"] = {**weights, "affinity": weight}
    cfg = cfg.merge(flags)
    if not resume:
        return cfg.check_runnable(), None
    return cfg, cfg.to_dict() if config else {k: getattr(cfg, k) for k in flags}
