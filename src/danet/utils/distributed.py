"""torchrun/DDP setup from the environment (RANK, WORLD_SIZE, LOCAL_RANK)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from danet.utils.device import resolve_device


def init_distributed(device: str) -> tuple[int, int, torch.device]:
    """Join the process group when launched by torchrun; return (rank, world_size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    if world == 1:
        return 0, 1, resolved
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if resolved.type == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def is_main() -> bool:
    """True on rank 0, or outside torch.distributed."""
    return not dist.is_initialized() or dist.get_rank() == 0


def cleanup(synchronise: bool = True) -> None:
    """Leave the process group; with ``synchronise`` (a rank that finished its work), only once
    every rank has got here, so that no rank closes its connections while another still uses
    them (gloo aborts the other rank then). A rank that failed leaves at once: torchrun stops
    the others."""
    if dist.is_initialized():
        if synchronise:
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def process_group(device: str) -> Iterator[tuple[int, int, torch.device]]:
    """:func:`init_distributed` for the body, then :func:`cleanup`: synchronised when the body
    finished, at once when it raised."""
    joined = init_distributed(device)
    try:
        yield joined
    except BaseException:
        cleanup(synchronise=False)
        raise
    cleanup()
