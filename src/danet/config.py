"""Training recipes as a dataclass, read from one small YAML file per dataset (configs/)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


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
    attention: str = "both"
    cam_variant: str = "paper"
    pam_reduction: int = 8
    pam_scale: str = "none"  # "learned": softmax(s Q^T K) with a learnable s (a departure)
    aux_head: bool = False
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
    attention_lr_mult: float = 1.0  # extra lr factor on PAM/CAM's gamma, scale, query and key
    attention_weight_decay: float | None = None  # weight decay of gamma and scale (None: as all)
    affinity_queries: int = 1024  # query pixels per image sampled for the "affinity" loss
    # loss weights of the outputs; the paper weighs out, pam and cam equally. "affinity" (off in
    # the paper) supervises PAM's rows with the labels: -log(attention mass on same-class keys)
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"out": 1.0, "pam": 1.0, "cam": 1.0, "aux": 0.4}
    )
    # run
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, on CUDA only
    channels_last: bool = True  # NHWC: 1.25x faster steps on this CPU (MobileNetV2, 1 thread)
    sync_bn: bool = True  # under torchrun
    checkpoint_every: int = 100
    eval_every: int = 0  # iterations between val evaluations; 0: only at the end
    eval_scales: list[float] = field(default_factory=lambda: [1.0])

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a YAML recipe; unknown keys are an error that names them."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such config file") from None
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config must be a mapping of keys to values")
        return cls().merge(data, origin=str(path))

    def merge(self, values: dict[str, Any], origin: str = "config") -> TrainConfig:
        """A copy with ``values`` replacing fields; unknown keys raise a ValueError naming them."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{origin}: unknown config keys {unknown}")
        if isinstance(values.get("loss_weights"), dict):  # named weights update the defaults
            values = {**values, "loss_weights": {**self.loss_weights, **values["loss_weights"]}}
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for checkpoints and logs."""
        return dataclasses.asdict(self)
