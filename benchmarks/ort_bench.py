"""Helpers shared by deploy.py and stages.py: onnxruntime sessions as issue 21 times them, the
input frame, and the lines that say what ran where.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

from danet.data import read_image
from danet.data.transforms import normalize
from danet.deploy.onnx_runtime import session_options
from danet.model.checkpoint import bundled_models

ROOT = Path(__file__).resolve().parents[1]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--size``, ``--models``, ``--threads`` and ``--quick``, as deploy.py and stages.py take them."""
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="default 360 480")
    parser.add_argument("--models", nargs="+", default=bundled_models(), help="bundled models")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--quick", action="store_true", help="tiny size, few runs, no file")


def ort_session(path: str | Path, threads: int, profile: str | None = None) -> ort.InferenceSession:
    """A CPU session as ``danet`` runs one (all graph optimisations, ``threads`` intra-op
    threads), with intra-op thread spinning off; ``profile``: a file prefix that turns on
    onnxruntime's per-node profiling and saves the optimised graph as ``{profile}_optimized.onnx``."""
    options = session_options(threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = profile
        options.optimized_model_filepath = f"{profile}_optimized.onnx"
        options.log_severity_level = 3  # not the warning that the saved graph is machine-specific
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def frame(
    path: str | Path, mean: Sequence[float], std: Sequence[float], size: Sequence[int]
) -> np.ndarray:
    """An image as a (1, 3, H, W) float32 array, normalised and resized as danet's int8
    calibration feeds it (:class:`danet.deploy.quantize._Batches`)."""
    x = normalize(read_image(path), mean, std)[None]
    return F.interpolate(x, tuple(size), mode="bilinear", align_corners=False).numpy()


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def command_line() -> str:
    """The command that ran this script, as one would type it in the repository root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return f"PYTHONPATH=src .venv/bin/python {shlex.join([str(shown), *sys.argv[1:]])}"


def machine_note(threads: int, load_before: float, versions: dict[str, str]) -> str:
    """One paragraph: CPU, cores, threads, versions, the 1-minute load average before and after."""
    listed = ", ".join(f"{name} {version}" for name, version in versions.items())
    return (
        f"{cpu_name()}, {os.cpu_count()} cores, {threads} threads (torch and onnxruntime intra-op, "
        f"spinning off); torch {torch.__version__}, onnxruntime {ort.__version__}, {listed}; "
        f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after."
    )
