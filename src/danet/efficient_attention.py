"""softmax(Q K^T) V for position attention, with a choice of implementation.

Placeholder: only the naive form for now; the O(N)-memory path lands with issue 3.
"""

from __future__ import annotations

import torch

PAM_IMPLS = ("auto", "naive")


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The authors' form: build the (B, N, N) matrix, softmax over keys, multiply by V."""
    attn = (q @ k.transpose(1, 2)).softmax(dim=-1)  # (B, N, N)
    return attn @ v  # (B, N, C)


def position_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, impl: str = "auto"
) -> torch.Tensor:
    """Return ``softmax(q k^T) v`` for q, k of shape (B, N, d) and v of shape (B, N, C)."""
    if impl not in PAM_IMPLS:
        raise ValueError(f"impl={impl!r} is not one of {PAM_IMPLS}")
    return naive_attention(q, k, v)
