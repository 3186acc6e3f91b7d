"""Position attention on the CPU: the naive N x N form against the blocked O(N)-memory one.

Run: ``.venv/bin/python benchmarks/attention.py`` (add ``--quick`` for a smoke run).

Shapes are DANet's at ResNet output stride 8: C = 512 channels, d = C/8 = 64, batch 1, 2 threads.
Time is the median of a few runs, naive and blocked taking turns, so that a load that comes and goes
hits both alike. Peak memory is measured in a fresh process per case: the rise of the resident set's
high-water mark (VmHWM, reset through /proc/self/clear_refs just before the call) over the resident
set just before it. That is real process memory, allocator and library buffers included.

Writes ``benchmarks/results/attention.md`` (the table it prints) and ``attention.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from peak_memory import peak_rise

from danet.model.efficient_attention import blocked_attention, fits_one_block, naive_attention

RESULTS = Path(__file__).parent / "results"
THREADS = 2
CHANNELS, DIM = 512, 64
MAPS = [(32, 32), (64, 64), (96, 128), (128, 128)]
FWD_ONLY_MAPS = [(256, 256)]  # the naive form needs one 16 GiB N x N matrix here: not run
IMPLS: dict[str, Callable[..., torch.Tensor]] = {
    "naive": naive_attention,
    "blocked": blocked_attention,
}


def make_inputs(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k (1, n, 64), v (1, n, 512) that require grad, and an output gradient."""
    gen = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, n, DIM, generator=gen) * 0.1 for _ in range(2))
    v, grad = (torch.randn(1, n, CHANNELS, generator=gen) for _ in range(2))
    return q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), grad


def run_once(impl: str, inputs: tuple[torch.Tensor, ...], backward: bool) -> float:
    """Seconds for one forward (no grad) or one forward + backward."""
    q, k, v, grad = inputs
    start = time.perf_counter()
    if backward:
        IMPLS[impl](q, k, v).backward(grad)
    else:
        with torch.no_grad():
            IMPLS[impl](q, k, v)
    return time.perf_counter() - start


def measure_memory(impl: str, n: int, backward: bool) -> dict[str, float]:
    """In this (fresh) process: peak extra resident memory of one call, and its time."""
    torch.set_num_threads(THREADS)
    run_once(impl, make_inputs(64), backward)  # load kernels and thread pools first
    inputs = make_inputs(n)
    with peak_rise() as measured:
        run_once(impl, inputs, backward)
    return measured


def memory_in_subprocess(impl: str, n: int, backward: bool) -> dict[str, float]:
    args = [sys.executable, __file__, "--memory", impl, str(n), str(int(backward))]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_times(n: int, backward: bool, repeats: int) -> dict[str, float]:
    """Median seconds per impl, the impls taking turns, after one warm-up run each."""
    inputs = make_inputs(n)
    times: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    for step in range(repeats + 1):
        for impl in IMPLS:
            seconds = run_once(impl, inputs, backward)
            if step > 0:
                times[impl].append(seconds)
    return {impl: statistics.median(ts) for impl, ts in times.items()}


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_mib(mib: float | None) -> str:
    if mib is None:
        return "—"
    return f"{mib:.0f} MiB" if mib < 1024 else f"{mib / 1024:.2f} GiB"


def fmt_ratio(ours: float | None, naive: float | None) -> str:
    return "—" if ours is None or not naive else f"{ours / naive:.2f}"


def run(quick: bool) -> list[dict]:
    maps = [(16, 16), (32, 32)] if quick else MAPS
    fwd_only = [(48, 48)] if quick else FWD_ONLY_MAPS
    rows = []
    for (h, w), backward in [(m, b) for b in (False, True) for m in maps]:
        n = h * w
        repeats = 3 if n >= 96 * 128 else 5
        times = median_times(n, backward, repeats)
        mem = {impl: memory_in_subprocess(impl, n, backward) for impl in IMPLS}
        rows.append(
            {
                "map": f"{h}x{w}",
                "n": n,
                "pass": "fwd+bwd" if backward else "fwd",
                "time": times,
                "peak_mib": {impl: mem[impl]["peak_mib"] for impl in IMPLS},
                "note": f"median of {repeats}",
            }
        )
        print(table_row(rows[-1]), flush=True)
    for h, w in fwd_only:
        n = h * w
        mem = memory_in_subprocess("blocked", n, backward=False)
        naive_gib = n * n * 4 / 2**30
        rows.append(
            {
                "map": f"{h}x{w}",
                "n": n,
                "pass": "fwd",
                "time": {"naive": None, "blocked": mem["seconds"]},
                "peak_mib": {"naive": None, "blocked": mem["peak_mib"]},
                "note": f"1 run; naive not run: its N x N matrix alone is {naive_gib:.0f} GiB",
            }
        )
        print(table_row(rows[-1]), flush=True)
    return rows


HEADER = (
    "| map | N | pass | naive time | blocked time | time ratio | naive peak | blocked peak "
    "| memory ratio | auto uses | note |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|"
)


def table_row(row: dict) -> str:
    t, m = row["time"], row["peak_mib"]
    cells = [
        row["map"],
        str(row["n"]),
        row["pass"],
        fmt_time(t["naive"]),
        fmt_time(t["blocked"]),
        fmt_ratio(t["blocked"], t["naive"]),
        fmt_mib(m["naive"]),
        fmt_mib(m["blocked"]),
        fmt_ratio(m["blocked"], m["naive"]),
        "naive" if fits_one_block(1, row["n"], row["n"]) else "blocked",  # on the CPU
        row["note"],
    ]
    return "| " + " | ".join(cells) + " |"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in [(axes[0], "time", "time (s)"), (axes[1], "peak_mib", "peak (MiB)")]:
        for impl, color in [("naive", "tab:red"), ("blocked", "tab:blue")]:
            for pass_, style in [("fwd", "--"), ("fwd+bwd", "-")]:
                pts = [
                    (r["n"], r[key][impl])
                    for r in rows
                    if r["pass"] == pass_ and r[key][impl] is not None
                ]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, style, color=color, marker="o", label=f"{impl} {pass_}")
        if key == "peak_mib":  # where naive was not run: its N x N matrix alone
            xs = [r["n"] for r in rows if r["peak_mib"]["naive"] is None]
            ys = [n * n * 4 / 2**20 for n in xs]
            ax.plot(xs, ys, "x", color="tab:red", ms=9, label="naive N x N matrix (not run)")
        ax.set(xscale="log", yscale="log", xlabel="N = H x W", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_title(f"Position attention time (CPU, {THREADS} threads)")
    axes[1].set_title("Peak extra resident memory")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, to check the script")
    parser.add_argument(
        "--memory", nargs=3, metavar=("IMPL", "N", "BACKWARD"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.memory:  # child process: one measurement, printed as JSON
        impl, n, backward = args.memory
        print(json.dumps(measure_memory(impl, int(n), bool(int(backward)))))
        return
    torch.set_num_threads(THREADS)
    load = os.getloadavg()[0]
    print(HEADER)
    rows = run(args.quick)
    load_after = os.getloadavg()[0]
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}"
    text = "\n".join(
        [
            f"Position attention, C={CHANNELS}, d={DIM}, batch 1, {THREADS} threads ({machine}); "
            f"1-minute load average {load:.1f} before, {load_after:.1f} after.",
            "Ratios are blocked / naive. Peak = rise of the process's resident high-water mark "
            'during one call, in a fresh process. `auto uses`: what `impl="auto"` picks here.',
            "",
            HEADER,
            *(table_row(r) for r in rows),
            "",
        ]
    )
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "attention.md").write_text(text)
        plot(rows, RESULTS / "attention.png")
        print(f"wrote {RESULTS / 'attention.md'} and {RESULTS / 'attention.png'}")
    else:
        print(text)


if __name__ == "__main__":
    main()
