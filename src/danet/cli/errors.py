"""How the command reports: one error line (library names said as flags), the library's
warnings and log records on stderr as ``danet: warning: ...`` lines."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from danet.data.io import DataWarning

EXPECTED_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, KeyError)


FLAGS = {
    "backend": "--backend",
    "batch_size": "--batch-size",
    "data_root": "--data-root",
    "dataset": "--dataset",
    "input_size": "--input-size",
    "int8": "--int8",
    "map_location": "--device",
    "max_pixels": "--max-pixels",
    "overlay_video": "--overlay-video",
    "reach_radius": "--reach-radius",
    "resize": "--resize",
    "scales": "--scales",
    "sliding_window": "--sliding-window",
}
"""Python argument names in library messages, and the flags the command line says instead."""


def flag_names(message: str) -> str:
    """A library message with its Python argument names said as flags: ``resize='squash'`` as
    ``--resize squash``, ``int8=True`` as ``--int8``, ``sliding_window`` as ``--sliding-window``,
    ``dataset is required`` as ``--dataset is required``."""
    names = "|".join(FLAGS)

    def value(match: re.Match[str]) -> str:
        given = match[2].strip("'")
        return FLAGS[match[1]] if given == "True" else f"{FLAGS[match[1]]} {given}"

    message = re.sub(rf"(?<![-\w])({names})=('[^']*'|[^\s,;:)]+)", value, message)
    message = re.sub(rf"(?<![-\w])({names})(?= is required| raises| needs)",
                     lambda m: FLAGS[m[1]], message)  # fmt: skip
    joined = "|".join(name for name in FLAGS if "_" in name)  # never an ordinary word
    # not after "FILE: ", where the name is a key of that file (config.json: input_size ...)
    return re.sub(rf"(?<![-\w'])(?<!: )({joined})(?!\w)", lambda m: FLAGS[m[1]], message)


def one_line(err: BaseException) -> str:
    """The message of an error as one line: an OSError as "reason: file", else its first line."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}"
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


class _Warnings(logging.Handler):
    """The library's log records on stderr as ``danet: warning: ...`` lines (stderr as it is
    when each is written, so that a test's capture sees them)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"danet: {record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def say_library_warnings() -> None:
    """Show the ``danet`` loggers' warnings on stderr, once per process."""
    root = logging.getLogger("danet")
    if not any(isinstance(h, _Warnings) for h in root.handlers):
        root.addHandler(_Warnings(logging.WARNING))


def report(line: str) -> None:
    """Print a command's one error line on stderr; a rank of ``python -m danet.launch`` leaves it
    in the launcher's folder instead, which prints the first failing rank's line alone."""
    folder = os.environ.get("DANET_ERROR_DIR")
    if folder and os.environ.get("RANK") is not None:
        try:
            Path(folder, f"rank{os.environ['RANK']}.txt").write_text(line + "\n")
            return
        except OSError:
            pass
    print(line, file=sys.stderr)


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A ``DataWarning`` (about the user's input) as one line; other warnings as Python shows them."""
    if issubclass(category, DataWarning):
        print(f"danet: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
