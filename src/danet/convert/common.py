"""What every converter shares: reading a foreign checkpoint safely, and renaming its tensors.

A foreign ``.pth`` is read with ``torch.load(weights_only=True)``: tensors and plain data only. The
one exception is numpy scalars and their dtypes (an mIoU stored as ``numpy.float64``), which are
allowed by name for that one load; anything else that a pickle would import is refused, and the
refusal names it. Nothing in the file runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from danet.model.checkpoint import describe_foreign_file
from danet.utils.readable import (  # noqa: F401 (ZIP_SLACK: kept here for its old importers)
    ZIP_SLACK,
    check_regular_file,
    check_torch_file,
)

# numpy 1.x writes numpy.core.multiarray.scalar, numpy 2.x numpy._core.multiarray.scalar.
try:
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import scalar as _np_scalar

_NUMERIC_DTYPES = (
    "BoolDType Int8DType Int16DType Int32DType Int64DType UInt8DType UInt16DType UInt32DType "
    "UInt64DType Float16DType Float32DType Float64DType LongDType ULongDType LongLongDType "
    "ULongLongDType ByteDType UByteDType ShortDType UShortDType IntDType UIntDType"
).split()

NUMPY_SCALAR_GLOBALS: list[Any] = [
    (_np_scalar, "numpy.core.multiarray.scalar"),
    (_np_scalar, "numpy._core.multiarray.scalar"),
    np.dtype,
    *(getattr(np.dtypes, name) for name in _NUMERIC_DTYPES if hasattr(np.dtypes, name)),
]
"""What a numpy scalar's pickle imports: the scalar constructor and the numeric dtype classes."""


def allowed_globals() -> tuple[Any, ...]:
    """:data:`NUMPY_SCALAR_GLOBALS`, less the ``(object, name)`` pairs on torch < 2.6, which
    cannot take them; there the scalar constructor is allowed under its own module's name."""
    if torch.__version__ >= "2.6":
        return tuple(NUMPY_SCALAR_GLOBALS)
    return (_np_scalar, *(g for g in NUMPY_SCALAR_GLOBALS if not isinstance(g, tuple)))


@dataclass
class Converted:
    """A foreign model in danet's terms: constructor arguments and tensors under danet's names."""

    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    class_names: list[str] | None = None
    palette: list[list[int]] | None = None
    dropped: list[str] = field(default_factory=list)  # source entries deliberately not used


def check_source(path: Path) -> None:
    """Refuse, before ``torch.load`` allocates anything, a file that is not a checkpoint
    ``torch.save`` wrote (a zip archive or a pickle) or whose entries inflate past its size."""
    check_regular_file(path, "checkpoint")  # a FIFO or a device is refused before it is opened
    with open(path, "rb") as f:
        first = f.read(4)
    if not first.startswith((b"PK\x03\x04", b"\x80")):
        kind = describe_foreign_file(path)
        if kind is not None:
            raise ValueError(
                f"{path}: not a PyTorch checkpoint (it is {kind}); convert takes the .pth or "
                ".pth.tar file that torch.save wrote (a zip archive or a pickle)"
            )
    check_torch_file(path)


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load`` a foreign checkpoint without running code (numpy scalars allowed)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    check_source(path)
    try:
        with torch.serialization.safe_globals(list(allowed_globals())):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError, RuntimeError from the zip reader, ...
        text = str(err)
        if "weights_only" in text or "GLOBAL" in text or "Unsupported" in text:
            raise ValueError(
                f"{path}: refused: its pickle would import {_unsafe_globals(path, text)}, and danet "
                "reads only tensors and plain data (nothing in the file was run); if you trust it, "
                "re-save just its 'state_dict' and 'meta' with torch.save where it loads"
            ) from None
        first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({first})") from None


def _unsafe_globals(path: Path, message: str) -> str:
    """The globals a refused pickle names, found by scanning its opcodes (no unpickling)."""
    try:
        with torch.serialization.safe_globals(list(allowed_globals())):
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # the legacy (non-zip) format cannot be scanned; use torch's message
        names = re.findall(r"GLOBAL ([\w.]+)", message)
    return ", ".join(sorted(set(names))[:4]) or "objects"


def count_tensors(obj: Any) -> int:
    """Tensors anywhere inside nested dicts, lists and tuples (to report what was dropped)."""
    if isinstance(obj, torch.Tensor):
        return 1
    if isinstance(obj, dict):
        return sum(count_tensors(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(count_tensors(v) for v in obj)
    return 0


def rename(
    state: dict[str, torch.Tensor], rules: list[tuple[str, str]], what: str, origin: str
) -> dict[str, torch.Tensor]:
    """Rename every tensor by the first rule whose regex matches the start of its name.

    A tensor that no rule matches is an error that names it: nothing is silently left behind.
    """
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        for pattern, repl in compiled:
            if pattern.match(key):
                name = pattern.sub(repl, key, count=1)
                if name in out:
                    raise ValueError(f"{origin}: two tensors map to {name}, the second is {key!r}")
                out[name] = tensor
                break
        else:
            raise ValueError(f"{origin}: tensor {key!r} is not part of {what}")
    return out


def blocks_in(state: dict[str, torch.Tensor], prefix: str) -> int:
    """How many residual blocks ``prefix`` (e.g. ``"backbone.layer3."``) has in a state dict."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


RESNET_DEPTHS = {6: 50, 23: 101, 36: 152}
"""Blocks in a ResNet's third stage -> its depth."""


def resnet_depth(state: dict[str, torch.Tensor], prefix: str, origin: str) -> int:
    """The depth of a ResNet-50/101/152 from the number of blocks in its third stage."""
    blocks = blocks_in(state, f"{prefix}layer3.")
    if blocks not in RESNET_DEPTHS:
        raise ValueError(
            f"{origin}: {prefix}layer3 has {blocks} blocks; expected a ResNet-50, -101 or -152 "
            f"({', '.join(map(str, RESNET_DEPTHS))} blocks)"
        )
    return RESNET_DEPTHS[blocks]


def tensor(state: dict[str, torch.Tensor], key: str, origin: str) -> torch.Tensor:
    """``state[key]``, or a ValueError naming the missing tensor."""
    if key not in state:
        raise ValueError(f"{origin}: no tensor {key!r}")
    return state[key]


def pam_reduction(state: dict[str, torch.Tensor], conv_in: str, query: str, origin: str) -> int:
    """The PAM's channel reduction: the head's channels (``conv_in``'s outputs) over the query's."""
    channels = tensor(state, conv_in, origin).shape[0]
    queries = tensor(state, query, origin).shape[0]
    if channels % queries:
        raise ValueError(f"{origin}: PAM query has {queries} channels, not a divisor of {channels}")
    return channels // queries
