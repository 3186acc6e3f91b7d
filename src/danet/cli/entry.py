"""``main``, the entry point of the ``danet`` command: parse, check, run one command, and turn
an expected error into one line and exit status 2 (``--debug`` shows the traceback)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from typing import Any

from danet.cli.commands import COMMANDS
from danet.cli.errors import (
    EXPECTED_ERRORS,
    flag_names,
    one_line,
    report,
    say_library_warnings,
    show_warning,
)
from danet.cli.parser import build_parser
from danet.cli.preflight import check_device, check_paths, note_inputs_of
from danet.utils.allocator import keep_freed_memory
from danet.utils.outputs import command_scope


def _escape_surrogates() -> None:
    """Let stdout and stderr print any file name: a non-UTF-8 byte of a path (held as a lone
    surrogate) goes out as the byte itself, not a UnicodeEncodeError after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        utf8 = (getattr(stream, "encoding", "") or "").lower().replace("-", "") == "utf8"
        try:
            stream.reconfigure(errors="surrogateescape" if utf8 else "backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass  # a stream that cannot be reconfigured (a test's stand-in): left as it is


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM as Ctrl-C: an exception, so that files being written are cleaned up."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    with warnings.catch_warnings():  # restores the warnings machinery on return
        warnings.showwarning = show_warning
        return _main(argv)


def _main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting slow a CPU run down many times as soon as another
    # process wants the same cores; waiting passively costs little. Set here, before torch
    # loads, because the process is ours (not on import).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # albumentations asks PyPI for a newer version when imported (a network call in every
    # training and evaluation); the danet command never wants it
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        keep_freed_memory()  # docs/training.md, "Speed on the CPU"
    except ValueError as err:  # DANET_MALLOC with a wrong value
        print(f"danet: error: {err}", file=sys.stderr)
        return 2
    _escape_surrogates()
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    say_library_warnings()
    own_signals = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if own_signals else None
    try:
        with command_scope():
            note_inputs_of(args)
            check_paths(args)
            check_device(args)
            COMMANDS[args.command](args)
    except (*EXPECTED_ERRORS, OSError, RuntimeError) as err:
        # OSError: a full disk, a folder without write permission...; RuntimeError: a NaN loss,
        # another run holding the run folder, and what torch raises on bad input
        if args.debug:
            raise
        report(f"danet {args.command}: error: {flag_names(one_line(err))}")
        return 2
    except KeyboardInterrupt as err:
        name = err.args[0] if err.args else "SIGINT"
        if name == "SIGTERM" and os.environ.get("DANET_ERROR_DIR"):
            return 143  # python -m danet.launch stopped this rank: another one failed and says why
        print(f"danet {args.command}: interrupted ({name})", file=sys.stderr)
        return 130
    finally:
        if own_signals:
            signal.signal(signal.SIGTERM, previous)
    return 0
