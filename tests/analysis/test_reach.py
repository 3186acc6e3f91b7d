"""Does the PAM reach across the image: the reach figures, the 'uniform' affinity target, class
weighting and bf16 training that go with them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from danet.analysis.diagnostics import REACH_KEYS, AttentionStats, reach, row_reach
from danet.cli import main
from danet.data import build_dataset
from danet.data.balance import median_frequency_weights
from danet.model import DANet
from danet.training.losses import affinity_loss
from danet.utils.device import resolve_precision

# A 2x4 feature map: left half class 0, right half class 1, one void pixel.
LABELS = torch.tensor([[0, 0, 1, 1], [0, 255, 1, 1]])


def test_a_row_on_its_query_has_no_reach() -> None:
    row = torch.zeros(8)
    row[5] = 1.0
    out = row_reach(row, 5, (2, 4), LABELS.flatten(), radius=0)
    assert out["pam_self_mass"] == 1.0 and out["pam_local_mass"] == 1.0
    assert out["pam_effective_keys"] == pytest.approx(1.0)
    assert out["pam_far_same_mass"] == 0.0


def test_a_row_uniform_over_the_class_reaches_its_ceiling() -> None:
    labels = LABELS.flatten()
    row = (labels == 0).float() / 3  # query 0's class: keys 0, 1 and 4
    out = row_reach(row, 0, (2, 4), labels, radius=0)
    assert out["pam_self_mass"] == pytest.approx(1 / 3)
    assert out["pam_effective_keys"] == pytest.approx(3.0)
    assert out["pam_far_same_mass"] == pytest.approx(2 / 3)
    assert out["pam_far_same_uniform"] == pytest.approx(2 / 3)
    # radius 1 (Chebyshev): keys 1, 4 and 5 are local to query 0, so no same-class key is far
    out = row_reach(row, 0, (2, 4), labels, radius=1)
    assert out["pam_local_mass"] == pytest.approx(1.0)
    assert out["pam_far_same_mass"] == 0.0 and out["pam_far_same_uniform"] == 0.0


def test_reach_takes_rows_in_blocks_like_one_at_a_time() -> None:
    torch.manual_seed(0)
    p = torch.randn(8, 8).softmax(-1)
    labels = LABELS.flatten()
    block = reach(p, torch.arange(8), (2, 4), labels, radius=1)
    for i in range(8):
        one = row_reach(p[i], i, (2, 4), labels, radius=1)
        for key, value in one.items():
            assert block[key][i].item() == pytest.approx(value)


def test_attention_stats_average_reach_over_labelled_queries(small_model: DANet) -> None:
    pam = small_model.head.branches["pam"].attention
    x = torch.randn(1, pam.value.in_channels, 2, 4)
    stats = AttentionStats({"pam": pam}, radius=0)
    stats.update({"pam": x}, LABELS[None])
    out = stats.compute()
    q, k = pam.queries_keys(x)
    p = (q[0] @ k[0].T).softmax(-1)
    valid = LABELS.flatten() != 255
    expected = reach(p[valid], torch.arange(8)[valid], (2, 4), LABELS.flatten(), radius=0)
    for key in REACH_KEYS:
        assert out[key] == pytest.approx(expected[key].mean().item(), rel=1e-4), key


def test_uniform_target_is_the_kl_from_a_class_uniform_row() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(1, 8, 3), torch.randn(1, 8, 3)
    labels = LABELS.flatten()
    logp = (q[0] @ k[0].T).log_softmax(-1)
    for radius, expected_keys in ((None, None), (0, "far")):
        expected = []
        for i in range(8):
            if labels[i] == 255:
                continue
            target = labels == labels[i]
            if expected_keys == "far":
                target[i] = False
            if target.any():
                expected.append(-logp[i, target].mean() - torch.log(target.sum()))
        loss = affinity_loss(q, k, LABELS[None], 100, target="uniform", exclude_radius=radius)
        torch.testing.assert_close(loss, torch.stack(expected).mean())


def test_uniform_target_by_class_means_matches_the_rows_in_a_batch() -> None:
    """The 'uniform' loss without a radius takes each class's mean key instead of masking the
    (B, M, N) scores; value and gradients are those of the rows written out, image by image."""
    torch.manual_seed(1)
    labels = torch.randint(0, 4, (2, 3, 5))
    labels[0, 0, :2] = 255
    labels[1] = labels[1].clamp(max=1)  # classes differ between the images
    q = torch.randn(2, 15, 4, requires_grad=True)
    k = torch.randn(2, 15, 4, requires_grad=True)
    loss = affinity_loss(q, k, labels, 100, target="uniform")
    expected = []
    for image in range(2):
        flat = labels[image].flatten()
        logp = (q[image] @ k[image].T).log_softmax(-1)
        for i in range(15):
            if flat[i] != 255:
                target = flat == flat[i]
                expected.append(-logp[i, target].mean() - torch.log(target.sum()))
    reference = torch.stack(expected).mean()
    torch.testing.assert_close(loss, reference)
    grads = torch.autograd.grad(loss, (q, k))
    torch.testing.assert_close(grads, torch.autograd.grad(reference, (q, k)))


def test_uniform_target_prefers_class_context_where_mass_cannot_tell() -> None:
    labels = LABELS.flatten()
    self_peaked = torch.eye(8)[None] * 6  # q = k: each row on its own query
    one_hot = torch.nn.functional.one_hot(labels.clamp(max=2), 3).float()
    class_wide = one_hot[None] * 6  # q = k: each row spread over its class
    mass = [
        affinity_loss(x, x, LABELS[None], 100, target="mass") for x in (self_peaked, class_wide)
    ]
    uniform = [
        affinity_loss(x, x, LABELS[None], 100, target="uniform") for x in (self_peaked, class_wide)
    ]
    assert mass[0] < 0.1 and mass[1] < 0.1  # both rows are "on the class"
    assert uniform[1] < 0.1 < uniform[0]  # only the class-wide row is what 'uniform' asks


def test_median_frequency_weights_follow_the_counts(camvid_root: Path) -> None:
    dataset = build_dataset("camvid", camvid_root, "train")
    pixels, image_pixels = np.zeros(11), np.zeros(11)
    for _, mask_path in dataset.pairs:
        mask = dataset.load_mask(mask_path)
        labelled = mask[mask != 255]
        for c in np.unique(labelled):
            pixels[c] += (labelled == c).sum()
            image_pixels[c] += labelled.size
    present = pixels > 0
    freq = pixels[present] / image_pixels[present]
    weights = median_frequency_weights(dataset)
    np.testing.assert_allclose(weights[present], np.median(freq) / freq, rtol=1e-5)
    assert (weights[~present] == 0).all()


def test_bf16_where_the_cpu_lacks_it_names_the_alternative(monkeypatch) -> None:
    monkeypatch.setattr("danet.utils.device.bf16_supported", lambda device: False)
    with pytest.raises(ValueError, match="--precision bf16.*use --precision fp32"):
        resolve_precision("bf16", torch.device("cpu"))
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("fp32", torch.device("cpu")) is None


@pytest.mark.parametrize(
    ("flag", "value", "accepted"),
    [
        ("--affinity-weight", "-1", "number >= 0"),
        ("--affinity-exclude-radius", "-1", "integer >= 0"),
        ("--reach-radius", "-2", "integer >= 0"),
        ("--class-weighting", "inverse", "median_frequency"),
        ("--affinity-target", "sharp", "uniform"),
        ("--precision", "fp8", "bf16"),
        ("--pixel-sampler", "hard", "ohem"),
        ("--ohem-threshold", "1.5", "from 0 to 1"),
        ("--ohem-min-kept", "-1", "integer >= 0"),
    ],
)
def test_bad_recipe_options_get_one_line(flag, value, accepted, tmp_path: Path, cli) -> None:
    argv = ["train", "--config", "camvid", "--data-root", str(tmp_path), "--iters", "1"]
    # argparse's own checks (choices) exit while parsing: cli counts those exits too
    code, _, err = cli([*argv, "--out", str(tmp_path / "run"), flag, value])
    assert code == 2
    assert flag in err and accepted in err and value in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_reach_recipe_trains_logs_reach_and_inspect_agrees(camvid_root: Path, tmp_path) -> None:
    run = tmp_path / "run"
    args = [
        "train", "--dataset", "camvid", "--backbone", "mobilenetv2_100", "--pretrained", "none",
        "--batch-size", "2", "--crop-size", "32", "--workers", "0", "--iters", "2",
        "--data-root", str(camvid_root), "--out", str(run), "--affinity-weight", "1",
        "--affinity-target", "uniform", "--affinity-exclude-radius", "0",
        "--class-weighting", "median_frequency", "--precision", "auto", "--reach-radius", "1",
        "--pixel-sampler", "ohem", "--ohem-min-kept", "100",
    ]  # fmt: skip
    assert main(args) == 0
    saved = json.loads((run / "run_config.json").read_text())
    assert (saved["pixel_sampler"], saved["ohem_min_kept"]) == ("ohem", 100)
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["affinity"]) for r in rows if "loss" in r)
    val = [r for r in rows if "val_miou" in r][-1]
    assert 0 <= val["pam_self_mass"] <= val["pam_local_mass"] <= 1
    assert 0 <= val["pam_far_same_mass"] <= 1 and 1 <= val["pam_effective_keys"]
    assert 0 < val["pam_far_same_uniform"] <= 1
    out = tmp_path / "inspect.json"
    argv = ["inspect", "--checkpoint", str(run), "--dataset", "camvid", "--reach-radius", "1"]
    assert main([*argv, "--data-root", str(camvid_root), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in REACH_KEYS:
        assert result[key] == pytest.approx(val[key], rel=1e-3), key
