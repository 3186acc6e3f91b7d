"""glibc's malloc kept from handing large blocks back to the kernel, for the ``danet`` command.

By default glibc serves each allocation above 32 MiB with its own ``mmap`` and returns it with
``munmap`` when freed, so every large activation or gradient of a training step is faulted in
page by page again, and the heap above 128 KiB of free space is trimmed back. A CPU training step
allocates such tensors by the dozen. ``keep_freed_memory`` raises both thresholds with
``mallopt``, as PyTorch's CPU tuning guide advises a caching allocator (jemalloc, tcmalloc) for;
the process then keeps its peak memory instead of returning it. ``import danet`` never calls it;
the CLI does, unless ``DANET_MALLOC=system``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV = "DANET_MALLOC"
CHOICES = ("keep", "system")
M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # allocations below 1 GiB come from the heap
TRIM_THRESHOLD = 2**31 - 1  # the largest int mallopt takes: the heap is kept


def malloc_mode() -> str:
    """``DANET_MALLOC`` from the environment: ``keep`` (the default) or ``system``."""
    mode = os.environ.get(ENV, "keep").strip().lower() or "keep"
    if mode not in CHOICES:
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: use one of {', '.join(CHOICES)}")
    return mode


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds unless ``DANET_MALLOC=system``; whether it did
    (False on a C library without ``mallopt``, such as macOS's or Windows')."""
    if malloc_mode() == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl has no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
