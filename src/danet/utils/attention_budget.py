"""What an exported graph's position attention holds in memory, and the pixel budget's check of
it: torch-free, so that the onnxruntime path can refuse a run size before it starts.

The ``"linear"`` form (:mod:`danet.model.onnx_attention`'s ``Scan`` over query blocks, and every
fixed-size export) holds (:data:`QUERY_BLOCK`, N) scores at a time; the ``"naive"`` form (the
``--dynamic`` files of older releases) holds (N, N).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

from danet.options import check_choice

AttentionForm = Literal["linear", "naive"]
ATTENTION_FORMS: tuple[str, ...] = get_args(AttentionForm)

QUERY_BLOCK = 256
"""Query rows per ``Scan`` iteration: one block's scores take 256 * N * 4 bytes (22 MiB at
N = 21,600), and at N = 2700 the graph is as fast as the naive one (docs/deployment.md)."""


def attention_bytes(n: int, form: AttentionForm = "linear", batch: int = 1) -> int:
    """Bytes of the largest tensors one position attention over ``n`` positions holds in an
    exported graph: its float32 scores and their softmax, (n, n) each in the ``"naive"`` form,
    (:data:`QUERY_BLOCK`, n) each in the ``"linear"`` one (a ``Scan`` over query blocks)."""
    check_choice("form", form, ATTENTION_FORMS)
    rows = n if form == "naive" else min(QUERY_BLOCK, n)
    return 2 * batch * rows * n * 4


def check_attention_budget(
    height: int,
    width: int,
    output_stride: int,
    form: AttentionForm,
    max_pixels: int,
    origin: str = "image",
) -> None:
    """Refuse, in one line (a ValueError), a ``height`` x ``width`` run whose
    position attention (:func:`attention_bytes`) would hold more than the linear form does at the
    pixel budget ``max_pixels``: the budget that bounds PyTorch and the ``Scan`` graph bounds the
    naive N x N graph of an older ``--dynamic`` export too."""
    n = math.ceil(height / output_stride) * math.ceil(width / output_stride)
    budget = attention_bytes(max(max_pixels // output_stride**2, 1), "linear")
    need = attention_bytes(n, form)
    if need > budget:
        raise ValueError(
            f"{origin}: at {width}x{height} this graph's position attention ({form} form, "
            f"N = {n} positions) would hold {need / 2**30:.1f} GiB, over the "
            f"{budget / 2**30:.2f} GiB that the pixel budget of {max_pixels} allows (--max-pixels); "
            "export the checkpoint again (danet export --dynamic now writes linear attention)"
        )
