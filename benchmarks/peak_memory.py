"""Process memory from /proc/self/status, shared by the benchmarks (Linux only).

``peak_rise`` measures one call: the rise of the resident set's high-water mark (VmHWM, reset
through /proc/self/clear_refs just before it) over the resident set just before it. That is real
process memory, allocator and library buffers included. Run each case in a fresh process, so that
nothing an earlier case freed is reused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def proc_mib(field: str) -> float:
    """A ``Vm*`` field of /proc/self/status (``VmRSS``, ``VmHWM``: the resident high-water mark,
    which unlike ``ru_maxrss`` is not inherited through exec), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(f"/proc/self/status has no {field}")


@contextmanager
def peak_rise() -> Iterator[dict[str, float]]:
    """Measure the ``with`` block: fills the yielded dict with ``peak_mib`` and ``seconds``."""
    result: dict[str, float] = {}
    before = proc_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    start = time.perf_counter()
    yield result
    result["seconds"] = time.perf_counter() - start
    result["peak_mib"] = proc_mib("VmHWM") - before
