"""Progress for people and for log files.

On a terminal: a tqdm bar. Off a terminal (CI, ``nohup``, a redirected log): no ``\\r`` or
cursor moves, only a plain line every ``LINE_EVERY`` of the work (and at the end). ``quiet``
prints nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

LINE_EVERY = 0.1  # one line per 10% of the work off a terminal


class LineProgress:
    """The part of tqdm's interface the loops use, writing sparse plain lines to stderr."""

    def __init__(self, total: int, desc: str, initial: int = 0, unit: str = "it") -> None:
        self.total, self.desc, self.n, self.unit = total, desc, initial, unit
        self.postfix = ""
        self._step = max(1, round(total * LINE_EVERY))
        self._next = (initial // self._step + 1) * self._step
        self._start = time.perf_counter()

    def set_postfix(self, **values: Any) -> None:
        """Values shown at the end of the next line (``loss=0.51``)."""
        self.postfix = "  ".join(f"{k} {v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        """Advance by ``n``; print a line when a multiple of ``LINE_EVERY`` is crossed."""
        self.n += n
        if self.n >= self._next or self.n == self.total:
            self._next = (self.n // self._step + 1) * self._step
            self._line()

    def shrink(self, n: int) -> None:
        """Take ``n`` off the total (inputs that were skipped); say so if the work is then done."""
        self.total -= n
        if self.n >= self.total > 0:
            self._line()

    def write(self, text: str) -> None:
        """A result line of its own on stdout (a validation's mIoU), as ``tqdm.write``."""
        print(text, flush=True)

    def _line(self) -> None:
        percent = f" ({100 * self.n // self.total}%)" if self.total else ""
        seconds = time.perf_counter() - self._start
        line = f"{self.desc} {self.n}/{self.total} {self.unit}{percent}  {seconds:.0f}s  {self.postfix}"
        self._print(line.rstrip())

    def _print(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing to clean up; here so that it can stand in for tqdm."""

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent(LineProgress):
    def write(self, text: str) -> None:
        pass

    def _print(self, line: str) -> None:
        pass


def shrink(bar: tqdm | LineProgress, n: int) -> None:
    """Take ``n`` items off a bar's total: the count then reads "1/1", not "1/2", when one of two
    inputs was skipped."""
    if isinstance(bar, LineProgress):
        bar.shrink(n)
    else:
        bar.total -= n
        bar.refresh()


def progress(
    total: int, desc: str, initial: int = 0, unit: str = "it", quiet: bool = False
) -> tqdm | LineProgress:
    """A tqdm bar on a terminal, sparse plain lines elsewhere, nothing when ``quiet``."""
    if quiet:
        return _Silent(total, desc, initial, unit)
    if sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
    return LineProgress(total, desc, initial, unit)
