"""This process's rank under torch.distributed, asked without importing torch: where torch is
not loaded, no process group can exist, and the process is rank 0 of 1."""

from __future__ import annotations

import sys
from typing import Any


def process_group() -> Any:
    """``torch.distributed`` when it is loaded and its process group is set up, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def rank_world() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside torch.distributed."""
    dist = process_group()
    return (dist.get_rank(), dist.get_world_size()) if dist is not None else (0, 1)


def is_main() -> bool:
    """True on rank 0, or outside torch.distributed."""
    return rank_world()[0] == 0
