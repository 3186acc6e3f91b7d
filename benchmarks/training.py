"""The training step of a recipe on the CPU, each variant as a ratio to fp32 in the same run.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/training.py --data-root CAMVID`` on a quiet
machine (about 15 minutes on 2 cores); ``--quick`` is a smoke run on the bundled samples.

Each variant is a real ``danet train`` run (a subprocess, the recipe ``--config`` with the
variant's changes, ``--iters`` steps, no validation, one checkpoint at the end), and its step time
is the ``sec`` column of ``metrics.jsonl``: the whole loop iteration as a user sees it (waiting for
the data loader, forward, losses, backward, SGD, logging). The first ``--skip`` steps are left out
(allocator and thread-pool warm-up). Variants run interleaved, ``--rounds`` times each, and the
table gives the median over all their timed steps. With ``segmentation_models_pytorch`` installed
(``pip install danet[bench]``), the peer row is smp's DeepLabV3+ MobileNetV2 trained by a plain
loop (SGD, cross-entropy) at the same batch and crop, on batches from the same data pipeline.
Writes ``benchmarks/results/training.md`` (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from danet.assets import resolve_config
from danet.training.config import TrainConfig

RESULTS = Path(__file__).parent / "results"
SAMPLES = Path(__file__).parents[1] / "src" / "danet" / "samples" / "camvid"

# name -> recipe changes (and "env": environment variables); the first is the ratios' baseline
VARIANTS: dict[str, dict] = {
    "fp32": {"precision": "fp32", "channels_last": False},
    "channels_last": {"precision": "fp32", "channels_last": True},
    "bf16": {"precision": "bf16", "channels_last": False},
    "bf16 + channels_last": {"precision": "bf16", "channels_last": True},
    "bf16 + channels_last, no affinity loss": {
        "precision": "bf16",
        "channels_last": True,
        "loss_weights": {"affinity": 0.0},
    },
    "bf16 + channels_last, workers 0": {"precision": "bf16", "channels_last": True, "workers": 0},
    "bf16 + channels_last, workers 2": {"precision": "bf16", "channels_last": True, "workers": 2},
    "channels_last, workers 0": {"precision": "fp32", "channels_last": True, "workers": 0},
    "channels_last, workers 2": {"precision": "fp32", "channels_last": True, "workers": 2},
    "channels_last, no affinity loss": {
        "precision": "fp32",
        "channels_last": True,
        "loss_weights": {"affinity": 0.0},
    },
    "channels_last, glibc's malloc thresholds (DANET_MALLOC=system)": {
        "precision": "fp32",
        "channels_last": True,
        "env": {"DANET_MALLOC": "system"},
    },
    "channels_last, oneDNN's dilated depthwise backward (DANET_DILATED_DW=native)": {
        "precision": "fp32",
        "channels_last": True,
        "env": {"DANET_DILATED_DW": "native"},
    },
    "channels_last, output stride 16": {
        "precision": "fp32",
        "channels_last": True,
        "output_stride": 16,
    },
}
PEER = "smp DeepLabV3+ MobileNetV2, plain loop (fp32)"


class VariantFailed(RuntimeError):
    """A variant's run stopped (bf16 diverges on some CPUs); the message is its last line."""


def run_variant(changes: dict, args: argparse.Namespace, folder: Path) -> list[float]:
    """Step seconds of one ``danet train`` run of the recipe with ``changes``."""
    recipe = yaml.safe_load(resolve_config(args.config).read_text())
    changes = dict(changes)
    extra_env = changes.pop("env", {})
    recipe.update(changes)
    if "loss_weights" in changes:
        recipe["loss_weights"] = {**recipe.get("loss_weights", {}), **changes["loss_weights"]}
    config = folder / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    out = folder / "run"
    cmd = [sys.executable, "-m", "danet", "train", "--config", str(config), "--out", str(out),
           "--data-root", str(args.data_root), "--train-split", args.split, "--val-split", "",
           "--iters", str(args.iters), "--checkpoint-every", "100000", "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), **extra_env}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise VariantFailed(done.stderr.strip().splitlines()[-1])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["sec"] for r in rows if "sec" in r][args.skip :]


def run_peer(args: argparse.Namespace) -> list[float]:
    """Step seconds of smp's DeepLabV3+ MobileNetV2 in a plain training loop, in a subprocess."""
    code = f"""
import json, time, torch, segmentation_models_pytorch as smp
from torch.utils.data import DataLoader
from danet.training.config import TrainConfig
from danet.data import build_dataset
from danet.data.transforms import Augmented, train_transform
torch.manual_seed(0)
cfg = TrainConfig.from_file({str(args.config)!r})
data = build_dataset(cfg.dataset, {str(args.data_root)!r}, {args.split!r})
aug = Augmented(data, train_transform(cfg.crop_size, cfg.scale_range, cfg.base_size,
                cfg.color_jitter), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
batches = [[(i % len(data), i) for i in range(s * cfg.batch_size, (s + 1) * cfg.batch_size)]
           for s in range({args.iters})]
loader = DataLoader(aug, batch_sampler=batches, num_workers=cfg.workers)
model = smp.DeepLabV3Plus("mobilenet_v2", encoder_weights=None, classes=data.num_classes)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
model.train()
secs, tic = [], time.perf_counter()
for images, targets in loader:
    loss = loss_fn(model(images), targets)
    opt.zero_grad()
    loss.backward()
    opt.step()
    loss.item()
    toc = time.perf_counter()
    secs.append(toc - tic)
    tic = toc
print(json.dumps(secs))
"""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])[args.skip :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, help="CamVid (SegNet layout)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--config", default="camvid", help="the recipe to time")
    parser.add_argument("--iters", type=int, default=12, help="steps per run")
    parser.add_argument("--skip", type=int, default=3, help="warm-up steps left out")
    parser.add_argument("--rounds", type=int, default=2, help="runs per variant, interleaved")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--only", nargs="+", help="variant names to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smoke run on the bundled samples")
    args = parser.parse_args()
    if args.quick:
        args.data_root, args.split, args.iters, args.skip, args.rounds = SAMPLES, "val", 3, 1, 1
    if args.data_root is None:
        parser.error("--data-root is required (or --quick)")
    names = args.only or list(VARIANTS)
    try:
        import segmentation_models_pytorch  # noqa: F401

        names.append(PEER)
    except ImportError:
        print("segmentation_models_pytorch is not installed: no peer row", file=sys.stderr)
    load_before = os.getloadavg()[0]
    steps: dict[str, list[float]] = {name: [] for name in names}
    failures: dict[str, str] = {}  # variant -> the last line its failed run printed
    for round_ in range(args.rounds):
        for name in names:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    secs = (
                        run_peer(args)
                        if name == PEER
                        else run_variant(VARIANTS[name], args, Path(tmp))
                    )
                except VariantFailed as error:
                    secs, failures[name] = [], str(error)
            steps[name] += secs
            median = f"median {statistics.median(secs):.2f} s/step" if secs else "failed"
            print(f"round {round_ + 1} {name}: {median}")
    cfg = TrainConfig.from_file(args.config)
    base = statistics.median(steps[names[0]])
    lines = [
        f"Recipe `{args.config}`: batch {cfg.batch_size}, crop {cfg.crop_size[0]}x"
        f"{cfg.crop_size[1]}, {cfg.backbone} at output stride {cfg.output_stride}, "
        f"workers {cfg.workers} unless the variant says otherwise.",
        "",
        "| variant | median s/step | vs " + names[0] + " | steps timed |",
        "|---|---:|---:|---:|",
    ]
    for name in names:
        if not steps[name]:
            lines.append(f"| {name} | failed: {failures[name]} | — | 0 |")
            continue
        median = statistics.median(steps[name])
        lines.append(f"| {name} | {median:.2f} | {median / base:.2f}x | {len(steps[name])} |")
    lines += [
        "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{args.threads} threads; torch {torch.__version__}; {args.rounds} interleaved runs of "
        f"{args.iters} steps per variant, the first {args.skip} of each left out; 1-min load "
        f"average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; finished "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "training.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
