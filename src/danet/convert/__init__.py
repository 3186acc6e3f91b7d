"""Published DANet checkpoints of other code bases, converted to a danet model folder.

``convert(src, out)`` reads a foreign checkpoint without running code, recognises its format
(:mod:`danet.convert.mmseg`, :mod:`danet.convert.original`), builds a :class:`danet.DANet` with the
options that reproduce it, loads every tensor strictly and writes ``config.json`` +
``model.safetensors``: nothing downstream knows where the model came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from danet.convert.common import Converted, count_tensors, read_checkpoint
from danet.convert.mmseg import convert_mmseg, is_mmseg
from danet.convert.original import convert_original, is_original
from danet.data import DATASETS
from danet.model.checkpoint import CONFIG_NAME, TRAIN_STATE_NAME, WEIGHTS_NAME
from danet.model.danet import DANet, save_model, set_weights
from danet.utils.atomic import remove_stale_temp_files
from danet.utils.bounds import check_input_size

FORMATS = ("auto", "mmseg", "original")
CONVERTERS = {"mmseg": convert_mmseg, "original": convert_original}


@dataclass
class Report:
    """What ``convert`` did: the format, the tensors it used and the entries it dropped."""

    folder: Path
    format: str
    tensors: int
    dropped: dict[str, int]  # entry -> how many tensors it held
    config: dict[str, Any]

    def summary(self) -> str:
        """What ``danet convert`` prints: the model built, the tensors used and dropped."""
        config = self.config
        names = "named" if config.get("class_names") else "unnamed: --dataset names them"
        dropped = ", ".join(f"{k} ({n} tensors)" if n else k for k, n in self.dropped.items())
        return (
            f"{self.format}: {config['backbone']} DANet, {config['num_classes']} classes "
            f"({names}); {self.tensors} tensors loaded, dropped {dropped or 'nothing'}\n"
            f"wrote {self.folder}"
        )


def state_dict_of(checkpoint: Any, origin: str) -> dict[str, torch.Tensor]:
    """The model tensors of a checkpoint: its ``state_dict`` (or itself), ``module.`` stripped."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{origin}: holds no state_dict of tensors")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{origin}: state_dict entry {bad[0]!r} is not a named tensor")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def detect_format(state: dict[str, torch.Tensor], origin: str = "checkpoint") -> str:
    """``"mmseg"`` or ``"original"`` from the tensor names, or a ValueError that shows them."""
    if is_mmseg(state):
        return "mmseg"
    if is_original(state):
        return "original"
    first = ", ".join(list(state)[:3])
    raise ValueError(
        f"{origin}: neither an mmsegmentation DANet (decode_head.*) nor the authors' DANet "
        f"(pretrained.*, head.*); its first tensors are {first}"
    )


def dataset_classes(name: str) -> tuple[list[str], list[list[int]]]:
    """Class names and palette of a dataset that danet knows (``cityscapes``, ``ade20k``, ...)."""
    known = {k: v for k, v in DATASETS.items() if v.class_names}
    if name not in known:
        raise ValueError(f"--dataset {name!r} is not one of {', '.join(sorted(known))}")
    return list(known[name].class_names), [list(c) for c in known[name].palette]


def build_converted(converted: Converted, input_size: Sequence[int] | None, origin: str) -> DANet:
    """The DANet that ``converted`` describes, with its tensors loaded strictly, in eval mode."""
    model = DANet(
        **converted.config,
        class_names=converted.class_names,
        palette=converted.palette,
        input_size=list(input_size) if input_size else None,
    )
    state = dict(converted.state)
    for key, value in model.state_dict().items():  # BN step counters: unused at inference
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    return set_weights(model, state, Path(origin))


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, a training run, or (unless ``overwrite``) a folder
    holding anything; remove the temp files that killed conversions left there."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: is a file; give a folder for the model")
    if not out.is_dir():
        return
    if (out / TRAIN_STATE_NAME).exists():
        raise FileExistsError(
            f"--out {out}: holds a training run ({TRAIN_STATE_NAME}); a converted model there "
            "would not match it: choose another --out"
        )
    remove_stale_temp_files(out, (WEIGHTS_NAME, CONFIG_NAME))
    held = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if held and not overwrite:
        more = f" and {len(held) - 3} more" if len(held) > 3 else ""
        raise FileExistsError(
            f"--out {out}: already holds {', '.join(held[:3])}{more}; pass --overwrite to replace "
            "the model there, or choose another --out"
        )


def convert(
    src: str | Path,
    out: str | Path,
    format: str = "auto",
    dataset: str | None = None,
    input_size: Sequence[int] | None = None,
    align_corners: bool | None = None,
    overwrite: bool = False,
) -> Report:
    """Convert the checkpoint ``src`` into the danet model folder ``out``.

    Class names and palette come from the checkpoint's ``meta`` where it has them, else from
    ``dataset``; ``input_size`` ([H, W]) is the native size that eval, predict and export use.
    ``align_corners`` overrides what the format and the checkpoint's config say. An ``out``
    that holds files is refused unless ``overwrite`` (and a training run's folder always is).
    """
    if format not in FORMATS:
        raise ValueError(f"--format {format!r} is not one of {', '.join(FORMATS)}")
    if input_size is not None:
        input_size = check_input_size(list(input_size), "--input-size")
    check_out(Path(out), overwrite)
    origin = str(src)
    checkpoint = read_checkpoint(src)
    state = state_dict_of(checkpoint, origin)
    if format == "auto":
        format = detect_format(state, origin)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        checkpoint = {"state_dict": state}
    converted = CONVERTERS[format](checkpoint, state, origin)
    if align_corners is not None:
        converted.config["align_corners"] = align_corners
    num_classes = converted.config["num_classes"]
    if dataset is not None:
        names, palette = dataset_classes(dataset)
        if len(names) != num_classes:
            raise ValueError(
                f"--dataset {dataset} has {len(names)} classes but {origin} has {num_classes}"
            )
        converted.class_names = converted.class_names or names
        converted.palette = converted.palette or palette
    for what, value in (("class names", converted.class_names), ("palette", converted.palette)):
        if value is not None and len(value) != num_classes:
            raise ValueError(f"{origin}: meta has {len(value)} {what} for {num_classes} classes")
    model = build_converted(converted, input_size, origin)
    folder = save_model(model, out)
    dropped = {key: count_tensors(checkpoint.get(key, state.get(key))) for key in converted.dropped}
    return Report(folder, format, len(converted.state), dropped, model.config)


__all__ = ["FORMATS", "Report", "convert", "detect_format", "read_checkpoint"]
