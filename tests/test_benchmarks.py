"""Issue 21's benchmarks run: each script's ``--quick`` smoke mode prints its table, writes no file."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import danet

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RESULTS = BENCHMARKS / "results"
HAS_SMP = importlib.util.find_spec("segmentation_models_pytorch") is not None


def run(code_or_script: list[str]) -> subprocess.CompletedProcess:
    """Python on ``code_or_script``, importing the danet this test imports, on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(danet.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    )
    return subprocess.run(
        [sys.executable, *code_or_script], capture_output=True, text=True, env=env, timeout=900
    )


def quick(script: str) -> list[list[str]]:
    """The cells of each table row that ``script --quick`` prints; checks it wrote no file."""
    before = {p: p.stat().st_mtime_ns for p in RESULTS.iterdir()}
    done = run([str(BENCHMARKS / script), "--quick", "--threads", "1", "--models", "camvid"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in RESULTS.iterdir()} == before
    lines = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.mark.skipif(
    not HAS_SMP,
    reason="benchmarks/deploy.py times smp as the peer: pip install danet[bench]",
)
def test_deploy_quick_times_ours_and_smp_fp32_and_int8() -> None:
    header, *rows = quick("deploy.py")
    assert header[:3] == ["model", "input", "ONNX"] and header[-1] == "vs smp int8"
    assert [row[0] + " " + row[2] for row in rows] == [
        "camvid fp32",
        "camvid int8",
        "smp DeepLabV3+ MobileNetV2 fp32",
        "smp DeepLabV3+ MobileNetV2 int8",
    ]
    assert all(row[1] == "64x96" and float(row[3].removesuffix(" ms")) > 0 for row in rows)
    assert rows[-1][-1] == "1.00x"
    assert all(float(row[-1].removesuffix("x")) > 0 for row in rows)


def test_deploy_without_smp_says_what_to_install() -> None:
    code = (
        "import runpy, sys; sys.modules['segmentation_models_pytorch'] = None; "
        f"sys.path.insert(0, {str(BENCHMARKS)!r}); sys.argv = ['deploy.py', '--quick']; "
        f"runpy.run_path({str(BENCHMARKS / 'deploy.py')!r}, run_name='__main__')"
    )
    done = run(["-c", code])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "benchmarks/deploy.py needs segmentation_models_pytorch: pip install danet[bench]"
    ]


def test_stages_quick_splits_eager_and_int8_time_into_parts() -> None:
    header, *rows = quick("stages.py")
    assert header == [
        "part", "output", "eager, channels_last", "share", "onnxruntime int8", "share"
    ]  # fmt: skip
    parts = {row[0]: row for row in rows}
    assert "other nodes" not in parts  # every int8 node found its module, fused ones too
    for part in ("backbone blocks.0", "backbone blocks.6", "pam conv_in", "PAM", "CAM",
                 "classifier", "upsample", "**backbone**", "**head**", "**whole**"):  # fmt: skip
        assert part in parts, part
        assert parts[part][2].endswith(" ms") and parts[part][4].endswith(" ms"), parts[part]
    assert parts["backbone blocks.6"][1] == "1/8, 320 ch"  # the bundled model is at stride 8
    assert parts["**whole**"][3] == parts["**whole**"][5] == "100%"
    assert parts["upsample pam logits (eager only)"][4] == "-"  # the export prunes side heads


def test_onnx_attention_memory_quick_measures_each_form() -> None:
    header, *rows = quick("onnx_attention_memory.py")
    assert header[:5] == ["input", "N", "PyTorch peak", "naive graph peak", "Scan graph peak"]
    assert [row[:2] for row in rows] == [["64x64", "64"], ["64x128", "128"]]
    for row in rows:
        assert all(cell.endswith(" MiB") and float(cell[:-4]) > 0 for cell in row[2:5]), row


@pytest.mark.skipif(
    not HAS_SMP,
    reason="benchmarks/accuracy.py trains smp as the peer: pip install danet[bench]",
)
def test_accuracy_trains_the_peer_with_the_recipe_scores_it_and_resumes(tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "dataset: camvid\ntrain_split: val\nval_split: val\ncrop_size: 64\nbase_size: [96, 128]\n"
        "batch_size: 2\nworkers: 0\niters: 2\nwarmup_iters: 0\npixel_sampler: ohem\n"
    )
    ours = tmp_path / "danet.json"
    ours.write_text(
        '{"miou": 0.5, "per_class_iou": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]}'
    )
    args = [str(BENCHMARKS / "accuracy.py"), "--data-root", str(danet.samples_dir("camvid"))]
    args += ["--config", str(recipe), "--out", str(tmp_path / "peer"), "--checkpoint-every", "1"]
    args += ["--danet-json", str(ours), "--md", str(tmp_path / "accuracy.md")]
    first = run(args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert [line.split()[:2] for line in first.stdout.splitlines() if line.startswith("peer ")] == [
        ["peer", "1/2"],
        ["peer", "2/2"],
    ]
    peer = json.loads((tmp_path / "peer" / "peer_val.json").read_text())
    assert len(peer["per_class_iou"]) == 11 and 0 <= peer["miou"] <= 1 and peer["images"] == 6
    table = (tmp_path / "accuracy.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and "---" not in line]
    assert (
        len(rows) == 1 + 11 + 1 and rows[1].startswith("| sky |") and rows[1].endswith("| 50.0 |")
    )
    again = run(args)  # the checkpoint holds step 2 of 2: nothing to train, the same scores
    assert again.returncode == 0, again.stderr[-3000:]
    assert not [line for line in again.stdout.splitlines() if line.startswith("peer ")]
    assert json.loads((tmp_path / "peer" / "peer_val.json").read_text()) == peer
