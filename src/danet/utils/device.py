"""Turning a ``--device`` string into a torch device, with one-line errors instead of torch's."""

from __future__ import annotations

import torch

DEVICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; otherwise the named device, which must
    exist on this machine. A bad name or a missing device is a ValueError that says which."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {name!r} is not a device; use {DEVICES}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            built = "with" if torch.backends.cuda.is_built() else "without"
            raise ValueError(
                f"--device {name}: CUDA is not available here (torch {torch.__version__}, built "
                f"{built} CUDA, 0 GPUs visible); use --device cpu or auto"
            )
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: only {count} GPU(s) visible (cuda:0..{count - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        raise ValueError(f"--device {name!r}: danet runs on {DEVICES}")
    return device
