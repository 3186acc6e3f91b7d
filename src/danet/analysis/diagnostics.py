"""Is the dual attention alive? Figures that say whether PAM and CAM do more than average.

Measured per image on the inputs of the attention modules (caught with forward hooks, the model
is not changed), summed over a split:

- ``pam_entropy``: the mean entropy of a PAM row ``softmax(s Q^T K)``, divided by ``log N`` (the
  entropy of the uniform row). 1.0 means every pixel averages the whole image.
- ``pam_lift``: same-class lift. For every labelled pixel (labels downsampled to the feature map by
  nearest), the attention mass on keys of its own class, divided by that class's share of all N
  keys (what a uniform row gives); the query-weighted ratio of the two means. 1.0 is uniform.
- reach, over labelled query pixels, with ``r`` the radius (Chebyshev distance in feature pixels,
  3 by default): ``pam_self_mass``, the weight a row puts on the query's own position;
  ``pam_local_mass``, the weight within distance ``r`` of the query (itself included);
  ``pam_effective_keys``, the mean of ``exp(row entropy)``; ``pam_far_same_mass``, the weight on
  keys of the query's class farther than ``r``; ``pam_far_same_uniform``, what a row uniform over
  the keys of the query's class would put there (the ceiling to read the previous figure against).
- ``pam_score_std``: the standard deviation of a row's scores ``s Q^T K`` across keys (mean).
- ``pam_term_ratio`` / ``cam_term_ratio``: ``|gamma * attended| / |X|``, how much of the branch's
  features the attention term is.
- ``cam_max_weight`` and ``cam_entropy``: the mean largest weight of a CAM row and its mean
  entropy divided by ``log C``; one-hot rows give 1.0 and 0.0.
- ``pam_gamma``, ``pam_scale``, ``cam_gamma``: the learnt scalars.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from danet.data.labels import downsample_labels
from danet.model.attention import ChannelAttention, PositionAttention
from danet.model.attention_inputs import AttentionInputs, attention_modules
from danet.options import REACH_RADIUS  # noqa: F401 (kept importable from here)

__all__ = ["AttentionInputs", "AttentionStats", "attention_modules", "reach", "row_reach"]

ROWS_PER_BLOCK = 1024
"""Query rows of the PAM matrix built at a time: memory is O(ROWS_PER_BLOCK * N), never N x N."""


REACH_KEYS = (
    "pam_self_mass",
    "pam_local_mass",
    "pam_effective_keys",
    "pam_far_same_mass",
    "pam_far_same_uniform",
)

_SUMS = (
    "pam_rows",
    "pam_entropy",
    "pam_score_std",
    "pam_queries",
    "pam_mass",
    "pam_share",
    "pam_term",
    *REACH_KEYS,
    "pam_feat",
    "cam_rows",
    "cam_max_weight",
    "cam_entropy",
    "cam_term",
    "cam_feat",
)


def reach(
    p: torch.Tensor,
    queries: torch.Tensor,
    size: tuple[int, int],
    labels: torch.Tensor | None = None,
    radius: int = REACH_RADIUS,
) -> dict[str, torch.Tensor]:
    """The reach figures of PAM rows, one value per row.

    ``p``: (M, N) softmax rows over the N = h * w keys of a feature map of ``size`` (h, w);
    ``queries``: (M,) the flat index of each row's query pixel; ``labels``: (N,) class of each
    key (the queries' classes are read from it), or ``None`` to leave out the class figures.
    Returns ``pam_self_mass``, ``pam_local_mass``, ``pam_effective_keys`` and, with labels,
    ``pam_far_same_mass`` and ``pam_far_same_uniform`` (see the module docstring), each (M,).
    """
    h, w = size
    keys = torch.arange(h * w, device=p.device)
    qy, qx = (queries // w)[:, None], (queries % w)[:, None]  # (M, 1)
    ky, kx = (keys // w)[None], (keys % w)[None]  # (1, N)
    local = ((qy - ky).abs() <= radius) & ((qx - kx).abs() <= radius)  # (M, N)
    entropy = -(p * p.clamp_min(1e-30).log()).sum(1)  # (M,)
    out = {
        "pam_self_mass": p.gather(1, queries[:, None])[:, 0],
        "pam_local_mass": (p * local).sum(1),
        "pam_effective_keys": entropy.exp(),
    }
    if labels is not None:
        same = labels[queries][:, None] == labels[None]  # (M, N); a query matches itself
        far_same = same & ~local
        out["pam_far_same_mass"] = (p * far_same).sum(1)
        out["pam_far_same_uniform"] = far_same.sum(1) / same.sum(1).clamp_min(1)
    return out


def row_reach(
    row: torch.Tensor,
    query: int,
    size: tuple[int, int],
    labels: torch.Tensor | None = None,
    radius: int = REACH_RADIUS,
) -> dict[str, float]:
    """:func:`reach` of one (N,) softmax row of the query at flat index ``query``, as floats."""
    figures = reach(row[None], torch.tensor([query], device=row.device), size, labels, radius)
    return {key: value.item() for key, value in figures.items()}


class AttentionStats:
    """Sums the figures above over images; :meth:`compute` gives their means."""

    def __init__(
        self, modules: dict[str, nn.Module], ignore_index: int = 255, radius: int = REACH_RADIUS
    ) -> None:
        self.modules = modules
        self.ignore_index = ignore_index
        self.radius = radius
        self.sums = dict.fromkeys(_SUMS, 0.0)

    @torch.no_grad()
    def update(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor | None) -> None:
        """Add one batch: the attention inputs (from :class:`AttentionInputs`) and (B, H, W)
        labels at any resolution (``None``: no lift)."""
        if "pam" in inputs and "pam" in self.modules:
            self._update_pam(self.modules["pam"], inputs["pam"], labels)
        if "cam" in inputs and "cam" in self.modules:
            self._update_cam(self.modules["cam"], inputs["cam"])

    def _update_pam(
        self, pam: PositionAttention, x: torch.Tensor, labels: torch.Tensor | None
    ) -> None:
        b, c, h, w = x.shape
        n = h * w
        q, k = pam.queries_keys(x.float())  # (B, N, d) each
        v = pam.value(x.float()).flatten(2).transpose(1, 2)  # (B, N, C)
        lab = None
        if labels is not None:
            lab = downsample_labels(labels.to(x.device).long(), (h, w)).reshape(b, n)
        s = self.sums
        for i in range(b):
            attended = []
            for start in range(0, n, ROWS_PER_BLOCK):
                scores = q[i, start : start + ROWS_PER_BLOCK] @ k[i].T  # (M, N)
                logp = scores.log_softmax(dim=1)
                p = logp.exp()
                attended.append(p @ v[i])  # (M, C)
                s["pam_rows"] += scores.shape[0]
                s["pam_entropy"] += (-(p * logp).sum(1) / math.log(n)).sum().item()
                s["pam_score_std"] += scores.std(dim=1).sum().item()
                if lab is not None:
                    rows = lab[i, start : start + ROWS_PER_BLOCK]
                    valid = rows != self.ignore_index
                    same = rows[valid, None] == lab[i][None, :]  # (M', N)
                    s["pam_queries"] += valid.sum().item()
                    s["pam_mass"] += (p[valid] * same).sum().item()
                    s["pam_share"] += same.sum().item() / n
                    queries = torch.arange(start, start + scores.shape[0], device=p.device)
                    figures = reach(p[valid], queries[valid], (h, w), lab[i], self.radius)
                    for key, value in figures.items():
                        s[key] += value.sum().item()
            term = pam.gamma.float() * torch.cat(attended)  # (N, C)
            s["pam_term"] += term.norm().item()
            s["pam_feat"] += x[i].float().norm().item()

    def _update_cam(self, cam: ChannelAttention, x: torch.Tensor) -> None:
        weights = cam.weights(x.float())  # (B, C, C)
        c = weights.shape[-1]
        s = self.sums
        s["cam_rows"] += weights.shape[0] * c
        s["cam_max_weight"] += weights.amax(dim=-1).sum().item()
        entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1) / math.log(c)
        s["cam_entropy"] += entropy.sum().item()
        term = cam.gamma.float() * (weights @ x.float().flatten(2))  # (B, C, N)
        s["cam_term"] += term.flatten(1).norm(dim=1).sum().item()
        s["cam_feat"] += x.float().flatten(1).norm(dim=1).sum().item()

    def all_reduce(self) -> None:
        """Sum the figures over processes (no-op outside torch.distributed)."""
        if dist.is_available() and dist.is_initialized():
            values = torch.tensor([self.sums[key] for key in _SUMS], dtype=torch.float64)
            dist.all_reduce(values)
            self.sums = dict(zip(_SUMS, values.tolist(), strict=True))

    def compute(self) -> dict[str, float]:
        """The figures (see the module docstring); absent modules and empty sums are left out."""
        s, out = self.sums, {}
        if "pam" in self.modules:
            pam = self.modules["pam"]
            out["pam_gamma"] = pam.gamma.item()
            out["pam_scale"] = float(torch.as_tensor(pam.scale).detach())
            if s["pam_rows"]:
                out["pam_entropy"] = s["pam_entropy"] / s["pam_rows"]
                out["pam_score_std"] = s["pam_score_std"] / s["pam_rows"]
                out["pam_term_ratio"] = s["pam_term"] / max(s["pam_feat"], 1e-12)
            if s["pam_queries"]:
                out["pam_lift"] = s["pam_mass"] / max(s["pam_share"], 1e-12)
                for key in REACH_KEYS:
                    out[key] = s[key] / s["pam_queries"]
        if "cam" in self.modules:
            out["cam_gamma"] = self.modules["cam"].gamma.item()
            if s["cam_rows"]:
                out["cam_max_weight"] = s["cam_max_weight"] / s["cam_rows"]
                out["cam_entropy"] = s["cam_entropy"] / s["cam_rows"]
                out["cam_term_ratio"] = s["cam_term"] / max(s["cam_feat"], 1e-12)
        return out


SELF_LOOKUP_SELF_MASS = 0.02
"""A healthy row puts less than this on the query itself (docs/attention_reach.md)."""
SELF_LOOKUP_LOCAL_MASS = 0.2
"""A healthy row puts less than this within the reach radius of the query."""
UNIFORM_LIFT = 1.5
"""Below this same-class lift the rows are near uniform: a global average pool."""


def reach_verdict(figures: dict[str, float]) -> str:
    """One line starting ``verdict:``: whether the PAM reaches across the image, has collapsed
    onto the query, stays near it, or is uniform, by the thresholds of docs/attention_reach.md
    (self mass under :data:`SELF_LOOKUP_SELF_MASS`, else collapsed; local mass under
    :data:`SELF_LOOKUP_LOCAL_MASS`, else near; lift at least :data:`UNIFORM_LIFT`, else
    uniform)."""
    needed = ("pam_self_mass", "pam_local_mass", "pam_lift")
    if not all(key in figures for key in needed):
        return "verdict: no position attention rows to judge (no PAM, or no labelled pixels)"
    own, local, lift = (figures[key] for key in needed)
    far = figures.get("pam_far_same_mass", math.nan)
    ceiling = figures.get("pam_far_same_uniform", math.nan)
    if own >= SELF_LOOKUP_SELF_MASS:
        return (
            f"verdict: the attention has collapsed onto the query (self mass {own:.3f}, local "
            f"mass {local:.3f}; healthy: under {SELF_LOOKUP_SELF_MASS} and "
            f"{SELF_LOOKUP_LOCAL_MASS}): it brings little context"
        )
    if local >= SELF_LOOKUP_LOCAL_MASS:
        return (
            f"verdict: the attention stays near the query (local mass {local:.3f}, healthy: "
            f"under {SELF_LOOKUP_LOCAL_MASS}; self mass {own:.3f}; far same-class mass "
            f"{far:.3f} of a possible {ceiling:.3f}): it brings little long-range context"
        )
    if lift < UNIFORM_LIFT:
        return (
            f"verdict: the attention is uniform (same-class lift {lift:.2f}, under "
            f"{UNIFORM_LIFT}): it acts as a global average pool"
        )
    return (
        f"verdict: the attention reaches across the image (far same-class mass {far:.3f} of a "
        f"possible {ceiling:.3f}, local mass {local:.3f}, lift {lift:.2f})"
    )
