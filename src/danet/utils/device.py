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


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: CPUs with AVX512-BF16 or AMX, CUDA GPUs
    of compute capability 8.0 and newer."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--precision`` on ``device``: ``None`` (float32) for ``"fp32"``,
    bfloat16 for ``"bf16"`` (a ValueError naming the alternative where the device lacks it).
    ``"auto"`` is bfloat16 on CUDA devices that support it and float32 elsewhere: on the CPU,
    bf16 autocast training gave non-finite gradients (results/README.md, "Training speed")."""
    if precision == "fp32":
        return None
    supported = bf16_supported(device)
    if precision == "auto":
        return torch.bfloat16 if supported and device.type == "cuda" else None
    if precision != "bf16":
        raise ValueError(f"--precision {precision!r}: use fp32, bf16 or auto")
    if not supported:
        what = (
            "this CPU has no AVX512-BF16 or AMX"
            if device.type == "cpu"
            else f"{device} has no bf16"
        )
        raise ValueError(
            f"--precision bf16: {what}, so bfloat16 would be emulated and slow; "
            "use --precision fp32 (or auto, which picks bf16 only where it is native)"
        )
    return torch.bfloat16
