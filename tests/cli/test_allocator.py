"""The danet command keeps freed memory (glibc mallopt), and DANET_MALLOC=system opts out."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from conftest import CliResult, assert_one_line

# Page faults of touching a 64 MiB buffer a second time, after it was freed.
PROBE = """
import resource, sys
from danet.utils.allocator import keep_freed_memory
kept = keep_freed_memory()
def touch():
    buf = bytearray(64 * 2**20)  # zero-filled: every page is written
    return buf
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_of_second_touch(mode: str) -> tuple[bool, int]:
    """(whether the thresholds were raised, minor page faults) in a fresh process."""
    env = {**os.environ, "DANET_MALLOC": mode}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    kept, faults = done.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_not_faulted_in_again() -> None:
    kept, faults = faults_of_second_touch("keep")
    system_kept, system_faults = faults_of_second_touch("system")
    assert kept and not system_kept
    pages = 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert system_faults > pages // 2  # glibc's default: a fresh mmap, faulted in page by page
    assert faults < pages // 20  # kept: the same heap memory again


def test_a_wrong_danet_malloc_gets_one_line(
    cli: Callable[[list[str]], CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DANET_MALLOC", "tcmalloc")
    code, _, err = cli(["predict", "frame.png"])
    assert code == 2
    assert_one_line(err, "DANET_MALLOC='tcmalloc'", "keep", "system")
