"""The training loss: weighted cross-entropy summed over the head's outputs, and optionally an
affinity loss that supervises the position attention's rows with the labels (a departure from the
paper, in the spirit of Context Prior, Yu et al. CVPR 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from danet.data.labels import downsample_labels
from danet.options import (
    AFFINITY_TARGETS,
    PIXEL_SAMPLERS,
    AffinityTarget,
    PixelSampler,
    check_choice,
)
from danet.training.config import DEFAULT_LOSS_WEIGHTS


def sample_queries(labels: torch.Tensor, num_queries: int, ignore_index: int = 255) -> torch.Tensor:
    """(B, M) flat indices of up to ``num_queries`` labelled pixels per image of (B, N) labels,
    drawn without replacement with the global torch RNG; where an image has fewer labelled pixels,
    the rest of its M indices point at unlabelled ones (mask them with the labels)."""
    valid = labels != ignore_index
    noise = torch.rand(labels.shape, device=labels.device).masked_fill(~valid, 2.0)
    m = min(num_queries, labels.shape[1])
    return noise.topk(m, dim=1, largest=False).indices


def _class_key_sums(
    k: torch.Tensor, flat: torch.Tensor, query_labels: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query, the sum of the keys (B, M, d) labelled with its class and their count
    (B, M); void keys go to a bucket of their own, which no query reads."""
    b, n, d = k.shape
    bucket = torch.where(flat == ignore_index, 0, flat + 1)  # (B, N), void -> 0
    classes = int(bucket.max()) + 1
    sums = k.new_zeros(b, classes, d).scatter_add_(1, bucket[..., None].expand(-1, -1, d), k)
    counts = torch.zeros(b, classes, device=k.device).scatter_add_(
        1, bucket, torch.ones_like(k[..., 0])
    )
    query_bucket = torch.where(query_labels == ignore_index, 0, query_labels + 1)  # (B, M)
    key_sum = sums.gather(1, query_bucket[..., None].expand(-1, -1, d))
    return key_sum, counts.gather(1, query_bucket)


def affinity_loss(
    q: torch.Tensor,
    k: torch.Tensor,
    labels: torch.Tensor,
    num_queries: int = 1024,
    ignore_index: int = 255,
    target: AffinityTarget = "mass",
    exclude_radius: int | None = None,
) -> torch.Tensor:
    """Supervise the PAM rows ``softmax(q k^T)`` with the labels; the mean over sampled labelled
    query pixels of (see :data:`AFFINITY_TARGETS`):

    - ``"mass"``: ``logsumexp(scores) - logsumexp(scores on keys of the query's class)``, i.e.
      ``-log`` of the row's mass on that class. A row on the query alone minimises it.
    - ``"uniform"``: ``logsumexp(scores) - mean(scores on keys of the query's class) - log(m)``
      for the m keys of that class: the KL divergence from a row uniform over those keys to the
      row (the cross-entropy less the target's entropy, so 0 is the optimum). Its minimum spreads
      the row over the whole class, wherever it is in the image.

    With ``exclude_radius`` r, keys within Chebyshev distance r of the query (itself included)
    leave the target set, so the loss asks for mass on the class's far keys only.

    ``target`` is not checked here: :class:`DANetLoss`, its caller, checks it once when built
    (and a recipe's ``affinity_target`` is checked when the recipe is read).

    ``q``, ``k``: (B, N, d), the PAM's scaled queries and keys; ``labels``: (B, h, w) at feature
    resolution, h * w = N. Up to ``num_queries`` labelled queries per image (global torch RNG), so
    memory is O(B * num_queries * N). Keys of every label, void included, stay in the softmax's
    denominator, as in the attention.
    """
    b, n, d = q.shape
    h, w = labels.shape[-2:]
    flat = labels.reshape(b, n)
    idx = sample_queries(flat, num_queries, ignore_index)  # (B, M)
    query_labels = flat.gather(1, idx)  # (B, M)
    q_sel = q.gather(1, idx[..., None].expand(-1, -1, d)).float()  # (B, M, d)
    scores = q_sel @ k.float().transpose(1, 2)  # (B, M, N)
    used = query_labels != ignore_index
    if target == "uniform" and exclude_radius is None:
        # the mean score over the query's class is q . (mean key of the class): no (B, M, N) mask
        key_sum, count = _class_key_sums(k.float(), flat, query_labels, ignore_index)
        pos = (q_sel * key_sum).sum(-1) / count.clamp_min(1) + count.clamp_min(1).log()
        losses = scores.logsumexp(-1) - pos  # (B, M)
        return losses[used].mean() if used.any() else q.sum() * 0.0
    positive = query_labels[..., None] == flat[:, None, :]  # (B, M, N); a query matches itself
    if exclude_radius is not None:
        keys = torch.arange(n, device=q.device)
        dy = (idx[..., None] // w - keys // w).abs()  # (B, M, N)
        dx = (idx[..., None] % w - keys % w).abs()
        positive &= (dy > exclude_radius) | (dx > exclude_radius)
    count = positive.sum(-1)  # (B, M)
    used &= count > 0
    if not used.any():
        return q.sum() * 0.0
    if target == "mass":
        pos = scores.masked_fill(~positive, float("-inf")).logsumexp(-1)
    else:
        pos = (scores * positive).sum(-1) / count.clamp_min(1) + count.clamp_min(1).log()
    losses = scores.logsumexp(-1) - pos  # (B, M)
    return losses[used].mean()


@torch.no_grad()
def ohem_pixels(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = 255,
    threshold: float = 0.7,
    min_kept: int = 16384,
) -> torch.Tensor:
    """The hard pixels of a batch, as mmsegmentation's ``OHEMPixelSampler`` picks them: (B, H, W)
    bool, the labelled pixels whose true class has a softmax probability below ``threshold``, or
    below the ``min_kept * B``-th lowest such probability where that is higher (so at least about
    ``min_kept`` per image are kept). Where none would be kept, every labelled pixel is."""
    valid = target != ignore_index
    prob = logits.float().softmax(1).gather(1, target.masked_fill(~valid, 0)[:, None])[:, 0]
    valid_prob = prob[valid]
    if valid_prob.numel() == 0:
        return valid
    kth = min(min_kept * target.shape[0], valid_prob.numel() - 1)
    cut = max(valid_prob.kthvalue(kth + 1).values.item(), threshold)
    hard = valid & (prob < cut)
    return hard if hard.any() else valid


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Hinton's knowledge distillation per pixel: ``T^2 * KL(softmax(t/T) || softmax(s/T))``,
    averaged over the pixels of (B, K, H, W) student and teacher logits."""
    t = temperature
    log_student = F.log_softmax(student.float() / t, dim=1)
    log_teacher = F.log_softmax(teacher.float() / t, dim=1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1)
    return kl.mean() * t * t


def lovasz_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255
) -> torch.Tensor:
    """The Lovasz-softmax loss (Berman et al., CVPR 2018) of (B, K, H, W) logits, averaged over
    the classes present in the batch: a smooth surrogate of 1 - IoU per class, so a thin class
    counts as much as a large one. segmentation_models_pytorch's implementation."""
    from segmentation_models_pytorch.losses import LovaszLoss  # imported when the term is used

    return LovaszLoss("multiclass", ignore_index=ignore_index)(logits.float(), target)


class DANetLoss(nn.Module):
    """``sum_k w_k * CE(logits[k], target)`` over the outputs present, ignoring ``ignore_index``.

    With ``pixel_sampler="ohem"`` each cross-entropy averages over its output's hard pixels only
    (:func:`ohem_pixels` with ``ohem_threshold`` and ``ohem_min_kept``).

    Calling it returns a pair ``(loss, parts)``: ``loss`` is the weighted sum as a scalar tensor
    (call ``.backward()`` on it), ``parts`` maps each output with a non-zero weight (``"out"``,
    ``"pam"``, ``"cam"``, ``"aux"``) to its unweighted cross-entropy as a float, for logging::

        loss, parts = criterion(model(images), targets)
        loss.backward()
    """

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        ignore_index: int = 255,
        class_weights: torch.Tensor | None = None,
        affinity_target: AffinityTarget = "mass",
        affinity_exclude_radius: int | None = None,
        pixel_sampler: PixelSampler = "none",
        ohem_threshold: float = 0.7,
        ohem_min_kept: int = 16384,
        distill_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        # the one check of these outside a recipe: DANetLoss is public, built without one
        check_choice("affinity_target", affinity_target, AFFINITY_TARGETS)
        check_choice("pixel_sampler", pixel_sampler, PIXEL_SAMPLERS)
        self.pixel_sampler = pixel_sampler
        self.ohem_threshold = ohem_threshold
        self.ohem_min_kept = ohem_min_kept
        self.weights = dict(DEFAULT_LOSS_WEIGHTS if weights is None else weights)
        self.ignore_index = ignore_index
        self.affinity_target = affinity_target
        self.affinity_exclude_radius = affinity_exclude_radius
        self.distill_temperature = distill_temperature
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(
        self,
        logits: dict[str, torch.Tensor],
        target: torch.Tensor,
        pam_qk: tuple[torch.Tensor, torch.Tensor, tuple[int, int]] | None = None,
        affinity_queries: int = 1024,
        teacher_logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return ``(loss, parts)``: the weighted total (a 0-d tensor to backpropagate) and a dict
        of each term's unweighted value as a float, keyed by output name (``"out"``, ``"pam"``,
        ``"cam"``, ``"aux"``, ``"lovasz"`` (:func:`lovasz_loss` of ``"out"``) when it is weighted,
        and ``"affinity"`` when it is weighted and ``pam_qk`` is given: the PAM's
        ``(s * Q, K)`` as (B, N, d) and its feature map's (h, w)), and ``"distill"`` when
        ``teacher_logits`` (a teacher's ``"out"`` logits) are given: :func:`distillation_loss`
        of ``"out"``, weighted by ``weights["distill"]`` (1 when not set)."""
        parts = {}
        total = logits["out"].new_zeros(())
        for name, out in logits.items():
            weight = self.weights.get(name, 0.0)
            if weight == 0.0:
                continue
            labels = target
            if self.pixel_sampler == "ohem":
                hard = ohem_pixels(
                    out, target, self.ignore_index, self.ohem_threshold, self.ohem_min_kept
                )
                labels = target.masked_fill(~hard, self.ignore_index)
            ce = F.cross_entropy(
                out.float(), labels, weight=self.class_weights, ignore_index=self.ignore_index
            )
            parts[name] = ce.detach().item()
            total = total + weight * ce
        weight = self.weights.get("lovasz", 0.0)
        if weight:
            lovasz = lovasz_loss(logits["out"], target, self.ignore_index)
            parts["lovasz"] = lovasz.detach().item()
            total = total + weight * lovasz
        weight = self.weights.get("affinity", 0.0)
        if weight and pam_qk is not None:
            q, k, feat_size = pam_qk
            labels = downsample_labels(target, feat_size)
            aff = affinity_loss(
                q,
                k,
                labels,
                affinity_queries,
                self.ignore_index,
                self.affinity_target,
                self.affinity_exclude_radius,
            )
            parts["affinity"] = aff.detach().item()
            total = total + weight * aff
        if teacher_logits is not None:
            kd = distillation_loss(logits["out"], teacher_logits, self.distill_temperature)
            parts["distill"] = kd.detach().item()
            total = total + self.weights.get("distill", 1.0) * kd
        return total, parts
