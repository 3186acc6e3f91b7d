"""``python -m danet.launch``: torchrun for the danet command, whose failure is one line.

``torchrun ... -m danet train ...`` ends a failed run with the launcher's ``ChildFailedError``
traceback after the failing rank's own line (and, from the other ranks, a line each). This
launcher takes torchrun's flags, then a danet command::

    python -m danet.launch --standalone --nproc_per_node 2 train --config camvid ...

and runs the same processes, but when a rank fails it prints that rank's one error line (the
first rank that failed with one) and exits with its status: no traceback, no repeated lines.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

ERROR_DIR = "DANET_ERROR_DIR"
"""Set by this launcher for its ranks: each rank writes its one error line there, not to stderr
(:func:`danet.cli.main`), and a rank stopped because another one failed says nothing."""


def _command_at(argv: list[str]) -> int | None:
    from danet.cli import COMMANDS

    return next((k for k, arg in enumerate(argv) if arg in COMMANDS), None)


def _quiet_launcher() -> None:
    """torch's elastic agent logs a failure on several lines; the failing rank says it better."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _first_error(folder: Path, failures: dict[int, object]) -> tuple[int, str] | None:
    """The (rank, line) of the first failure, in time, that wrote an error line."""
    timed = sorted(failures.items(), key=lambda item: getattr(item[1], "timestamp", 0))
    for rank, _ in timed:
        path = folder / f"rank{rank}.txt"
        if path.is_file():
            return rank, path.read_text(errors="replace").strip()
    for path in sorted(folder.glob("rank*.txt")):
        return int(path.stem[4:]), path.read_text(errors="replace").strip()
    return None


def main(argv: list[str] | None = None) -> int:
    """Run ``torchrun [flags] -m danet COMMAND ...``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    split = _command_at(argv)
    if split is None:
        print(
            "danet.launch: error: give torchrun's flags, then a danet command "
            "(e.g. --standalone --nproc_per_node 2 train --config camvid ...)",
            file=sys.stderr,
        )
        return 2
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args([*argv[:split], "-m", "danet", *argv[split:]])
    _quiet_launcher()
    with tempfile.TemporaryDirectory(prefix="danet-launch-") as folder:
        os.environ[ERROR_DIR] = folder
        try:
            run(args)
        except ChildFailedError as err:
            found = _first_error(Path(folder), err.failures)
            rank, failure = err.get_first_failure()
            code = failure.exitcode if 0 < failure.exitcode < 256 else 1
            if found is not None:
                print(found[1], file=sys.stderr)
                return 2
            print(f"danet: rank {rank} failed with exit status {failure.exitcode}", file=sys.stderr)
            return code
        finally:
            os.environ.pop(ERROR_DIR, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
