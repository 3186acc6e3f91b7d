"""Where a DANet's CPU time goes (issue 21): backbone stages, the head's parts, PAM, CAM, upsampling.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/stages.py`` on a quiet machine; ``--quick`` is a
smoke run at a tiny size that writes nothing.

Each bundled model (``--models``, default every one that ships, so that output stride 8 and 16
can be compared once ``camvid-os16`` is added) runs on a real frame (a bundled sample, normalised)
at ``--size`` (360x480) with ``--threads`` threads, two ways:

- PyTorch eager as :func:`danet.load` gives the model on the CPU (channels_last weights; the frame
  is channels_last too). Forward hooks time each backbone stage (the backbone's top-level modules,
  timm's ``blocks`` one by one) and each part of the head (each branch's ``conv_in`` reduction, its
  attention, its ``conv_out``; the classifiers), and the upsampling of each logit map is timed in
  :func:`timed_forward`, a step-by-step copy of ``DANet.forward`` checked against it. The eager
  forward also computes and upsamples the PAM and CAM side logits, which the ONNX export prunes.
- onnxruntime int8, the file ``danet export --int8`` writes (default calibration), with per-node
  profiling: each node's kernel time goes to the part its name's scope (``/model/backbone/
  blocks.3/...``) names. Nodes onnxruntime adds (layout transposes) and the quantization of the
  input and the logits get rows of their own.

Each part's time is its median over ``--repeats`` runs (after ``--warmup``); "whole" is the median
of the plain forward (eager, no hooks, alternating with the timed one) or of onnxruntime's
``model_run`` (profiled), and "rest" is the whole minus the parts (eager: the sum of the branches,
Python; onnxruntime: time between kernels). Shares are of the whole. Writes
``benchmarks/results/stages.md`` (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F
from ort_bench import add_common_arguments, command_line, frame, machine_note, ort_session
from torch import nn

import danet
from danet.assets import SAMPLES_DIR
from danet.data.io import list_images
from danet.deploy.export import export_onnx

RESULTS = Path(__file__).parent / "results"
SAMPLE = list_images(SAMPLES_DIR / "camvid" / "val")[0]
ATTENTION = {"pam": "PAM", "cam": "CAM"}
Times = dict[str, list[float]]


def parts(model: danet.DANet) -> dict[str, nn.Module]:
    """The modules timed one by one, by the label the table gives them."""
    found: dict[str, nn.Module] = {}
    for name, child in model.backbone.named_children():
        stages = child.named_children() if name == "blocks" else [("", child)]
        for index, module in stages:
            found[f"backbone {name}.{index}" if index else f"backbone {name}"] = module
    for branch, module in model.head.branches.items():
        found[f"{branch} conv_in"] = module.conv_in
        found[ATTENTION.get(branch, f"{branch} attention")] = module.attention
        found[f"{branch} conv_out"] = module.conv_out
    if model.head.decoder is not None:
        found["stride-4 decoder"] = model.head.decoder
    found["classifier"] = model.head.classifier
    for branch, module in model.head.classifiers.items():
        found[f"{branch} side classifier (eager only)"] = module
    if model.aux is not None:
        found["aux head"] = model.aux
    return found


def upsample_label(head: str) -> str:
    """The row of the upsampling of the ``head`` logits."""
    return "upsample" if head == "out" else f"upsample {head} logits (eager only)"


def timed_forward(model: danet.DANet, x: torch.Tensor, times: dict[str, float]) -> torch.Tensor:
    """``DANet.forward(x)["out"]`` step by step, adding each upsampling's seconds to ``times``."""
    *low, c3, c4 = model.backbone(x)  # low: the stride-4 features, when the head has a decoder
    logits = model.head(c4, low[0] if low else None)
    if model.aux is not None:
        logits["aux"] = model.aux(c3)
    outs = {}
    for name, out in logits.items():
        start = time.perf_counter()
        outs[name] = F.interpolate(
            out, size=x.shape[-2:], mode="bilinear", align_corners=model.align_corners
        )
        times[upsample_label(name)] = time.perf_counter() - start
    return outs["out"]


@contextmanager
def hooks(modules: dict[str, nn.Module], times: dict[str, float], shapes: dict) -> Iterator[None]:
    """While active, each module's forward adds its seconds to ``times[label]`` and its output
    shape to ``shapes[label]``."""
    starts: dict[str, float] = {}

    def before(label: str) -> Callable:
        return lambda module, args: starts.__setitem__(label, time.perf_counter())

    def after(label: str) -> Callable:
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            times[label] = times.get(label, 0.0) + time.perf_counter() - starts[label]
            shapes[label] = tuple(out.shape)

        return hook

    handles = [m.register_forward_pre_hook(before(label)) for label, m in modules.items()]
    handles += [m.register_forward_hook(after(label)) for label, m in modules.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def eager_parts(
    model: danet.DANet, x: torch.Tensor, warmup: int, repeats: int
) -> tuple[Times, dict[str, str]]:
    """Seconds per part and of the whole plain forward over ``repeats`` runs, and each part's
    output as ``"1/8, 96 ch"``."""
    modules = parts(model)
    times: Times = defaultdict(list)
    shapes: dict[str, tuple] = {}
    with torch.inference_mode():
        plain = model(x)["out"]
        with hooks(modules, {}, shapes):
            staged = timed_forward(model, x, {})
        if not torch.allclose(staged, plain, atol=1e-5):
            raise RuntimeError("timed_forward no longer matches DANet.forward: update it")
        for i in range(warmup + repeats):
            run: dict[str, float] = {}
            with hooks(modules, run, shapes):
                timed_forward(model, x, run)
            start = time.perf_counter()
            model(x)
            run["whole"] = time.perf_counter() - start
            if i >= warmup:
                for label, seconds in run.items():
                    times[label].append(seconds)
    outputs = {
        label: f"1/{x.shape[-2] / shape[-2]:.0f}, {shape[1]} ch" for label, shape in shapes.items()
    }
    for head in ("out", *model.head.classifiers, *(["aux"] if model.aux else [])):
        outputs[upsample_label(head)] = f"1/1, {model.num_classes} ch"
    return times, outputs


def onnx_label(node: str, op: str, branches: list[str]) -> str:
    """The part a node of the exported graph belongs to, by the module scope in its name
    (``/model/backbone/blocks.3/blocks.3.0/conv_pw/Conv`` -> ``backbone blocks.3``)."""
    scope = node.split("/")[2:-1] if node.startswith("/model/") else []
    if scope[:2] == ["head", "branches"]:
        scope = ["head", *scope[2:]]
    if scope[:1] == ["backbone"] and len(scope) > 1:
        return f"backbone {scope[1]}"
    if scope[:1] == ["head"] and len(scope) > 2 and scope[1] in branches:
        branch = scope[1]
        return (
            ATTENTION.get(branch, f"{branch} attention")
            if scope[2] == "attention"
            else f"{branch} {scope[2]}"
        )
    if scope[:2] == ["head", "classifier"]:
        return "classifier"
    if scope[:2] == ["head", "decoder"]:
        return "stride-4 decoder"
    if scope[:1] == ["head"]:
        return "head sum of branches"
    if scope[:1] == ["aux"]:
        return "aux head"
    if not scope and op == "Resize":
        return "upsample"
    if not scope and op == "Transpose":
        return "layout transposes (onnxruntime's)"
    if not scope and op in ("QuantizeLinear", "DequantizeLinear"):
        return "(de)quantize input and logits"
    return "other nodes"


def onnx_parts(
    path: Path, x: torch.Tensor, branches: list[str], threads: int, warmup: int, repeats: int
) -> Times:
    """Seconds per part (summed node kernel times) and of the whole ``model_run``, per timed run
    of an onnxruntime session with profiling on."""
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_session(path, threads, profile=str(Path(tmp) / "profile"))
        feed = {session.get_inputs()[0].name: x.contiguous().numpy()}
        for _ in range(warmup + repeats):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
        # onnxruntime < 1.20 names the nodes it fuses QLinearConv_token_N; their outputs keep
        # the scope (/model/backbone/blocks.0/.../Conv), so a node is known by either.
        optimized = onnx.load(Path(tmp) / "profile_optimized.onnx", load_external_data=False)
        scoped = {
            node.name: node.name if node.name.startswith("/model/") else node.output[0]
            for node in optimized.graph.node
        }
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e["name"] == "model_run")
    runs = runs[warmup:]
    starts = [start for start, _ in runs]
    per_run: list[dict[str, float]] = [defaultdict(float) for _ in runs]
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        i = bisect.bisect_right(starts, event["ts"]) - 1
        if i >= 0 and event["ts"] <= runs[i][1]:  # else a warm-up run's node
            node = event["name"][: -len("_kernel_time")]
            label = onnx_label(scoped.get(node, node), event["args"]["op_name"], branches)
            per_run[i][label] += event["dur"] / 1e6
    labels = list(dict.fromkeys(label for run in per_run for label in run))  # first-run order
    times: Times = defaultdict(list)
    for (start, end), run in zip(runs, per_run, strict=True):
        for label in labels:
            times[label].append(run.get(label, 0.0))
        times["whole"].append((end - start) / 1e6)
    return times


GROUPS = ("backbone", "head", "upsampling", "onnxruntime's own nodes")


def group(label: str) -> str:
    """The summary row a part counts towards."""
    if label.startswith("backbone"):
        return "backbone"
    if label.startswith("upsample"):
        return "upsampling"
    if label.startswith(("layout", "(de)quantize", "other")):
        return "onnxruntime's own nodes"
    return "head"


def table(columns: dict[str, Times], outputs: dict[str, str]) -> str:
    """A markdown table: a row per part, then per group, "rest" and "whole"; per column the median
    ms and the share of the whole ("-" where a column has no such part)."""
    medians = {c: {k: statistics.median(v) for k, v in t.items()} for c, t in columns.items()}
    labels = list(dict.fromkeys(k for m in medians.values() for k in m if k != "whole"))
    labels.sort(key=lambda label: GROUPS.index(group(label)))  # stable: run order within groups
    for m in medians.values():
        for label in [label for label in labels if label in m]:
            m[f"**{group(label)}**"] = m.get(f"**{group(label)}**", 0.0) + m[label]
        m["**rest**"] = m["whole"] - sum(m.get(label, 0.0) for label in labels)
        m["**whole**"] = m.pop("whole")
    rows = labels + [f"**{name}**" for name in (*GROUPS, "rest", "whole")]
    head = "| part | output | " + " | ".join(f"{c} | share" for c in columns) + " |"
    lines = [head, "|---|---|" + "---:|---:|" * len(columns)]
    for label in rows:
        cells = [
            f"{1000 * m[label]:.1f} ms | {m[label] / m['**whole**']:.0%}" if label in m else "- | -"
            for m in medians.values()
        ]
        if any(cell != "- | -" for cell in cells):
            lines.append(f"| {label} | {outputs.get(label, '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure(name: str, size: list[int], args: argparse.Namespace, folder: Path) -> str:
    """The section of one bundled model: its heading and table."""
    model = danet.load(name)  # eval, channels_last weights on the CPU
    x = torch.from_numpy(frame(SAMPLE, model.mean, model.std, size))
    eager, outputs = eager_parts(
        model, x.contiguous(memory_format=torch.channels_last), args.warmup, args.repeats
    )
    int8 = export_onnx(name, folder / f"{name}_int8.onnx", *size, int8=True)
    branches = list(model.head.branches)
    ort = onnx_parts(int8, x, branches, args.threads, args.warmup, args.repeats)
    config = model.config
    title = (
        f"### {name}: {config['backbone']}, output stride {config['output_stride']}, "
        f"attention {config['attention']}, {size[0]}x{size[1]}"
    )
    return f"{title}\n\n{table({'eager, channels_last': eager, 'onnxruntime int8': ort}, outputs)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per model and runtime")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per model and runtime")
    args = parser.parse_args()
    if args.quick:
        args.size, args.warmup, args.repeats = args.size or [64, 96], 1, 2
    size = args.size or [360, 480]
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        sections = []
        for name in args.models:
            sections.append(measure(name, size, args, Path(tmp)))
            print(sections[-1], end="\n\n", flush=True)
    note = (
        f"{machine_note(args.threads, load_before, {'danet': danet.__version__})} "
        f"{args.warmup} untimed and {args.repeats} timed runs per model and runtime; the frame "
        f"is {SAMPLE.name}.\n\nCommand: `{command_line()}`"
    )
    print(note)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "stages.md").write_text("\n\n".join([*sections, note]) + "\n")


if __name__ == "__main__":
    main()
