"""softmax(Q K^T) V for position attention without the N x N matrix.

DANet's position attention is ``softmax(q k^T) v`` with q, k of shape (B, N, d), v of shape
(B, N, C), N = H*W, and no 1/sqrt(d) scaling. The naive form builds the (B, N, N) matrix: 1 GiB at
a 128x128 feature map, 16 GiB at 256x256. :class:`BlockedAttention` computes the same thing a block
of rows at a time and, like flash attention, keeps only the row log-sum-exp for the backward pass,
so memory grows linearly in N. On CUDA, PyTorch's fused SDPA kernels do the same job when they
accept the shapes. For ONNX export at a fixed size, :func:`unrolled_attention` writes the blocks
out as plain ops; for a graph of any size, :mod:`danet.model.onnx_attention` loops over them.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from danet.options import PAM_IMPLS, PamImpl, check_choice

LOG2E = math.log2(math.e)
LN2 = math.log(2.0)

BLOCK_BYTES = 64 * 2**20
"""Bytes of one (B, block, N) score matrix when the block size is chosen automatically. On the CPU,
``impl="auto"`` uses the naive form when its whole (B, N, N) matrix fits in this: then there would
be one block, and the naive form is as fast (measured: within a few percent up to N = 4096)."""


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The authors' form: build the (B, N, N) matrix, softmax over keys, multiply by V."""
    attn = (q @ k.transpose(1, 2)).softmax(dim=-1)  # (B, N, N)
    return attn @ v  # (B, N, C)


def auto_block_size(batch: int, n: int, dtype: torch.dtype = torch.float32) -> int:
    """Rows per block so that one (batch, rows, n) matrix takes at most :data:`BLOCK_BYTES`.

    Blocks are balanced and, where they can be, a multiple of 64 rows (the matmuls are about 10%
    slower on odd leading dimensions): 12288 rows in blocks of at most 1365 become blocks of 1280,
    not 9 full ones and a block of 3.
    """
    itemsize = max(torch.finfo(dtype).bits // 8, 4)  # half and bf16 are computed in float32
    most = max(1, BLOCK_BYTES // (batch * n * itemsize))
    rows = math.ceil(n / math.ceil(n / most))  # balanced
    aligned = math.ceil(rows / 64) * 64
    return aligned if aligned <= most and aligned < n else rows


def fits_one_block(batch: int, n: int, m: int, dtype: torch.dtype = torch.float32) -> bool:
    """Whether the whole (batch, n, m) score matrix fits one block (``auto`` then goes naive)."""
    return auto_block_size(batch, m, dtype) >= n


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half and bf16 are computed in float32, as flash attention accumulates in float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _buffer(flat: torch.Tensor, *shape: int) -> torch.Tensor:
    """A contiguous view of the first elements of a flat scratch buffer."""
    return flat[: math.prod(shape)].view(shape)


class BlockedAttention(torch.autograd.Function):
    """``softmax(q k^T) v`` a block at a time; saves q, k, v, the output and the row log-sum-exp.

    The forward pass walks over blocks of queries, the backward pass over blocks of keys, so that
    each block of dK and dV is written once and only dQ (N x d, small) is accumulated. Either way
    the largest temporaries are (B, block, N), never (B, N, N). Exponentials are taken base 2
    (``exp2`` is about 3x faster than ``exp`` on the CPU), with the log2(e) factor folded into q.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        block_size: int,
    ) -> torch.Tensor:
        """q (B, N, d), k (B, M, d), v (B, M, C) -> (B, N, C), ``block_size`` queries at a time."""
        cdt = _compute_dtype(q.dtype)
        q2 = q.to(cdt) * LOG2E  # (B, N, d): scores come out in log2 units
        kt = k.to(cdt).transpose(1, 2)  # (B, d, M)
        vc = v.to(cdt)  # (B, M, C)
        b, n, _ = q.shape
        m = k.shape[1]
        out = torch.empty(b, n, v.shape[-1], dtype=cdt, device=q.device)  # (B, N, C)
        rowmax = torch.empty(b, n, 1, dtype=cdt, device=q.device)  # (B, N, 1), log2 units
        total = torch.empty_like(rowmax)  # (B, N, 1): sum of 2^(s - rowmax)
        scores = torch.empty(b * min(block_size, n) * m, dtype=cdt, device=q.device)
        # few ops per block: on a busy CPU each op costs a scheduling slice, however small it is
        for i in range(0, n, block_size):
            rows = slice(i, min(i + block_size, n))
            shape = (b, rows.stop - i, m)
            s = torch.bmm(q2[:, rows], kt, out=_buffer(scores, *shape))  # (B, r, M)
            torch.amax(s, dim=-1, keepdim=True, out=rowmax[:, rows])
            s.sub_(rowmax[:, rows]).exp2_()  # unnormalised probabilities
            torch.sum(s, dim=-1, keepdim=True, out=total[:, rows])
            torch.bmm(s, vc, out=out[:, rows])  # (B, r, C), normalised below
        out.div_(total)
        lse = rowmax.add_(total.log2_()).mul_(LN2)  # (B, N, 1), natural log
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.block_size = block_size
        return out.to(q.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        """dq, dk, dv from the saved row log-sum-exp, ``block_size`` keys at a time."""
        q, k, v, out, lse = ctx.saved_tensors
        block_size: int = ctx.block_size
        cdt = out.dtype
        qc, kc, vc, do = (t.to(cdt) for t in (q, k, v, grad_out))
        b, n, _ = q.shape
        m = k.shape[1]
        # delta_i = sum_j P_ij dP_ij = rowsum(dO * O); dS = P * (dP - delta)
        neg_delta = -(do * out).sum(dim=-1, keepdim=True)  # (B, N, 1)
        neg_lse2 = lse * -LOG2E  # (B, N, 1), log2 units like q2 k^T
        q2 = qc * LOG2E  # (B, N, d)
        dense = torch.contiguous_format  # inputs may be transposed views; the grads need not be
        dq = torch.zeros_like(qc, memory_format=dense)
        dk = torch.empty_like(kc, memory_format=dense)
        dv = torch.empty_like(vc, memory_format=dense)
        p_buf = torch.empty(b * n * min(block_size, m), dtype=cdt, device=q.device)
        ds_buf = torch.empty_like(p_buf)
        for j in range(0, m, block_size):
            cols = slice(j, min(j + block_size, m))
            shape = (b, n, cols.stop - j)
            kj, vj = kc[:, cols], vc[:, cols]  # (B, c, d), (B, c, C)
            p = torch.baddbmm(neg_lse2, q2, kj.transpose(1, 2), out=_buffer(p_buf, *shape))
            p.exp2_()  # (B, N, c): P for this block of keys
            ds = torch.baddbmm(neg_delta, do, vj.transpose(1, 2), out=_buffer(ds_buf, *shape))
            ds.mul_(p)  # (B, N, c): dS = P * (dP - delta)
            torch.bmm(p.transpose(1, 2), do, out=dv[:, cols])  # (B, c, C)
            torch.bmm(ds.transpose(1, 2), qc, out=dk[:, cols])  # (B, c, d)
            dq.baddbmm_(ds, kj)  # (B, N, d)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None


def blocked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int | None = None
) -> torch.Tensor:
    """``softmax(q k^T) v`` with memory linear in N; see :class:`BlockedAttention`."""
    if block_size is None:
        block_size = auto_block_size(q.shape[0], k.shape[1], q.dtype)
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be at least 1")
    return BlockedAttention.apply(q, k, v, block_size)


def _sdpa_one_head(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T) v`` through ``scaled_dot_product_attention``: one head, scale 1."""
    # fused kernels need the last dim contiguous (PositionAttention's q, k, v are transposed)
    q4, k4, v4 = (t.unsqueeze(1).contiguous() for t in (q, k, v))  # (B, 1, N, d or C)
    return F.scaled_dot_product_attention(q4, k4, v4, scale=1.0).squeeze(1)  # (B, N, C)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor | None:
    """PyTorch's fused CUDA kernels, or ``None`` on the CPU and where no kernel takes the inputs.

    Only the memory-efficient and cuDNN backends are allowed: flash attention needs the value dim
    to equal the query dim, and the math backend (the CPU's too) builds the N x N matrix.
    """
    if not q.is_cuda:
        return None
    from torch.nn.attention import SDPBackend, sdpa_kernel

    try:
        with (
            warnings.catch_warnings(),
            sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]),
        ):
            warnings.simplefilter("ignore")  # "kernel not used because ..." before the fallback
            return _sdpa_one_head(q, k, v)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError:  # "No available kernel": dtype (float64), alignment or GPU
        return None


def unrolled_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int | None = None
) -> torch.Tensor:
    """``softmax(q k^T) v`` as a fixed sequence of query blocks, in plain ops that trace to ONNX.

    For export at a fixed input size: the Python loop unrolls while tracing, so the graph holds,
    per block, a matmul, a softmax (row max, exp, row sum) and a matmul, and a runtime that frees
    each block's scores after use never holds more than one (B, block, M) matrix. ONNX's fused
    Softmax beats separate max/exp/sum ops in onnxruntime (9.8 against 13.6 ms at N = 2700, one
    thread) and is as fast as the naive form there. Forward only.
    """
    if block_size is None:
        block_size = auto_block_size(q.shape[0], k.shape[1], q.dtype)
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be at least 1")
    kt = k.transpose(1, 2)  # (B, d, M)
    blocks = [
        (q[:, i : i + block_size] @ kt).softmax(dim=-1) @ v  # (B, r, M) scores -> (B, r, C)
        for i in range(0, q.shape[1], block_size)
    ]
    return torch.cat(blocks, dim=1)  # (B, N, C)


def _exporting() -> bool:
    """Whether the call is being traced (``torch.jit.trace``, ``torch.onnx.export``)."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _use_naive(q: torch.Tensor, k: torch.Tensor) -> bool:
    """Whether ``impl="auto"`` should take the naive form."""
    fits = fits_one_block(q.shape[0], q.shape[1], k.shape[1], q.dtype)
    return fits and (q.device.type == "cpu" or _exporting())


def position_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    impl: PamImpl = "auto",
    block_size: int | None = None,
) -> torch.Tensor:
    """Return ``softmax(q k^T) v`` for q, k of shape (B, N, d) and v of shape (B, N, C).

    ``impl``: ``"naive"`` builds the N x N matrix (the authors' form; exports to ONNX);
    ``"blocked"`` never does (:func:`blocked_attention`, ``block_size`` rows at a time);
    ``"sdpa"`` uses PyTorch's fused CUDA kernels, falling back to ``"blocked"`` where they do not
    apply; ``"auto"`` picks naive on the CPU and when tracing if the N x N matrix is no larger
    than one block (:data:`BLOCK_BYTES`), sdpa on CUDA, and blocked otherwise. In
    ``torch.onnx.export``, ``"blocked"`` becomes
    :func:`danet.model.onnx_attention.query_block_attention`, which holds for any input size (a
    ``Scan`` over query blocks). Otherwise, when tracing, every choice but ``"naive"`` becomes
    :func:`unrolled_attention` (blocks fixed at the traced size) where the naive matrix would not
    fit one block.
    """
    check_choice("impl", impl, PAM_IMPLS)
    if impl == "naive" or (impl == "auto" and _use_naive(q, k)):
        return naive_attention(q, k, v)
    if _exporting():
        if impl == "blocked" and torch.onnx.is_in_onnx_export():  # any size: a Scan of blocks
            from danet.model.onnx_attention import QUERY_BLOCK, query_block_attention

            return query_block_attention(q, k, v, block_size or QUERY_BLOCK)
        return unrolled_attention(q, k, v, block_size)
    if impl in ("auto", "sdpa"):
        out = sdpa_attention(q, k, v)
        if out is not None:
            return out
    return blocked_attention(q, k, v, block_size)
