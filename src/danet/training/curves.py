"""``curves.png``: a run's training loss, val mIoU and attention figures, from ``metrics.jsonl``."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from danet.analysis.diagnostics import REACH_KEYS
from danet.training.runfolder import CURVES_NAME, METRICS_NAME, read_rows
from danet.utils.atomic import atomic_write


def _plot_attention(pam_ax: Any, reach_ax: Any, cam_ax: Any, val: list[dict[str, Any]]) -> None:
    """Each validation's attention diagnostics: is PAM sharper than uniform, does it reach
    same-class keys far away, is CAM saturated."""
    mass_keys = tuple(k for k in REACH_KEYS if k != "pam_effective_keys")
    panels = {
        pam_ax: ("PAM (val)", ("pam_lift", "pam_entropy", "pam_gamma", "pam_scale")),
        reach_ax: ("PAM reach (val): mass per row", mass_keys),
        cam_ax: ("CAM (val)", ("cam_max_weight", "cam_entropy", "cam_gamma")),
    }
    keys_points = [(r["step"], r["pam_effective_keys"]) for r in val if "pam_effective_keys" in r]
    if keys_points:
        twin = reach_ax.twinx()
        twin.plot(*zip(*keys_points, strict=True), "k--", label="pam_effective_keys")
        twin.set_yscale("log")
        twin.set_ylabel("effective keys (dashed)")
    for ax, (title, keys) in panels.items():
        for key in keys:
            points = [(r["step"], r[key]) for r in val if key in r]
            if points:
                ax.plot(*zip(*points, strict=True), "o-", label=key)
        ax.axhline(1.0, color="gray", lw=0.5)
        ax.set_xlabel("iteration")
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)


def plot_curves(run: str | Path) -> Path:
    """Draw the training loss and val mIoU from ``metrics.jsonl`` into ``curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    out = run / CURVES_NAME
    with warnings.catch_warnings():  # matplotlib 3.8's mathtext warns on pyparsing >= 3.3
        warnings.simplefilter("ignore", DeprecationWarning)
        fig = draw_curves(read_rows(run / METRICS_NAME))
        atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return out


def draw_curves(rows: list[dict[str, Any]]) -> Any:
    """The figure of :func:`plot_curves` for the rows of ``metrics.jsonl``. Every panel's
    iteration axis runs from 0 to the last step logged, so one validation point sits at its
    step rather than alone on an axis of its own; val mIoU is on 0-100."""
    import matplotlib.pyplot as plt

    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val_miou" in r]
    fig, ax = plt.subplots(1, 5, figsize=(25, 3.5))
    if train:
        steps = [r["step"] for r in train]
        losses = [r["loss"] for r in train]
        k = max(1, len(losses) // 50)
        smooth = [sum(losses[max(0, i - k + 1) : i + 1]) / len(losses[max(0, i - k + 1) : i + 1])
                  for i in range(len(losses))]  # fmt: skip
        ax[0].plot(steps, losses, alpha=0.3, label="loss")
        ax[0].plot(steps, smooth, label=f"loss (mean of {k})")
        ax[0].set_yscale("log")
        ax[0].legend()
    ax[0].set_xlabel("iteration")
    ax[0].set_title("training loss")
    if val:
        ax[1].plot([r["step"] for r in val], [100 * r["val_miou"] for r in val], "o-")
        last = val[-1]
    if val and math.isfinite(last["val_miou"]):  # the last figure, written out
        ax[1].annotate(
            f"{100 * last['val_miou']:.1f}",
            (last["step"], 100 * last["val_miou"]),
            textcoords="offset points",
            xytext=(-4, 6),
            ha="right",
        )
    ax[1].set_ylim(0, 100)
    ax[1].set_xlabel("iteration")
    ax[1].set_title("val mIoU (%)")
    _plot_attention(ax[2], ax[3], ax[4], val)
    steps = [r["step"] for r in rows if isinstance(r.get("step"), (int, float))]
    last_step = max(steps, default=0)
    for panel in ax:
        panel.set_xlim(0, max(last_step, 1) * 1.03)
    fig.tight_layout()
    return fig
