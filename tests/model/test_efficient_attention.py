"""The blocked position attention equals the naive form, in value and gradient, in O(N) memory."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from danet.model import efficient_attention
from danet.model.attention import PositionAttention
from danet.model.efficient_attention import (
    PAM_IMPLS,
    BlockedAttention,
    _sdpa_one_head,
    blocked_attention,
    naive_attention,
    position_attention,
    sdpa_attention,
)


def qkv(b: int, n: int, d: int, c: int, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Random q, k of shape (b, n, d) and v of shape (b, n, c) that require grad."""
    return [(torch.randn(b, n, w, dtype=dtype) * 0.5).requires_grad_() for w in (d, d, c)]


def value_and_grads(out: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The output and the gradients of a fixed random projection of it."""
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    return [out, *torch.autograd.grad(out, inputs, grad_out)]


def assert_close(
    actual: list[torch.Tensor], expected: list[torch.Tensor], atol: float = 1e-5
) -> None:
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=atol)


@pytest.mark.parametrize(
    ("b", "n", "block_size"),
    [(1, 64, 16), (1, 100, 7), (3, 50, 16), (2, 33, 33), (2, 33, 1000), (1, 1, 4)],
)
def test_blocked_matches_naive(b: int, n: int, block_size: int) -> None:
    inputs = qkv(b, n, 8, 24)
    expected = value_and_grads(naive_attention(*inputs), inputs)
    assert_close(
        value_and_grads(blocked_attention(*inputs, block_size=block_size), inputs), expected
    )


def test_blocked_non_contiguous_inputs() -> None:
    # transposed views, as PositionAttention makes them, and a strided slice
    q, k, v = (torch.randn(2, w, 40).requires_grad_() for w in (8, 8, 24))
    inputs = [q.transpose(1, 2), k.transpose(1, 2)[:, ::2], v.transpose(1, 2)[:, ::2]]
    inputs[0] = inputs[0][:, 1::2]
    assert not any(t.is_contiguous() for t in inputs)
    leaves = [q, k, v]
    expected = value_and_grads(naive_attention(*inputs), leaves)
    assert_close(value_and_grads(blocked_attention(*inputs, block_size=6), leaves), expected)


def test_blocked_large_scores_are_stable() -> None:
    # scores in the hundreds overflow exp() without the row max; the softmax must stay finite
    q, k, v = (t.detach() * 30 for t in qkv(1, 40, 8, 16))
    out = blocked_attention(q, k, v, block_size=9)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, naive_attention(q, k, v), rtol=1e-4, atol=1e-4)


def test_gradcheck_float64() -> None:
    inputs = qkv(2, 7, 3, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda q, k, v: blocked_attention(q, k, v, 3), inputs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_keeps_dtype(dtype: torch.dtype) -> None:
    inputs = [t.detach().to(dtype).requires_grad_() for t in qkv(1, 30, 8, 16)]
    out = blocked_attention(*inputs, block_size=8)
    out.sum().backward()
    assert out.dtype == dtype and all(t.grad.dtype == dtype for t in inputs)
    expected = naive_attention(*(t.detach().float() for t in inputs))
    torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)


def test_saves_only_linear_tensors() -> None:
    n, block_size = 256, 32
    out = blocked_attention(*qkv(2, n, 8, 16), block_size=block_size)
    saved = out.grad_fn.saved_tensors
    assert len(saved) == 5  # q, k, v, out, lse
    assert max(t.numel() for t in saved) <= 2 * n * 16


def largest_allocation(fn: object) -> int:
    """Bytes of the largest tensor any op allocates while ``fn()`` runs (torch profiler)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(e.self_cpu_memory_usage for e in prof.events())


@pytest.mark.parametrize("impl", ["naive", "blocked"])
def test_memory_is_linear_in_n(impl: str) -> None:
    n, block_size = 1024, 32
    inputs = qkv(1, n, 8, 16)

    def step() -> None:
        position_attention(*inputs, impl=impl, block_size=block_size).sum().backward()

    nxn = n * n * 4
    if impl == "naive":
        assert largest_allocation(step) >= nxn  # the measurement sees the N x N matrix ...
    else:
        assert largest_allocation(step) <= 2 * block_size * n * 4  # ... and blocks don't have it


def test_auto_block_size_bounds_bytes() -> None:
    auto_block_size, budget = efficient_attention.auto_block_size, efficient_attention.BLOCK_BYTES
    assert auto_block_size(1, 100) == 100
    rows = auto_block_size(2, 65536)
    assert 1 <= rows < 65536 and 2 * rows * 65536 * 4 <= budget
    assert auto_block_size(1, 10**9) == 1


def test_impls_and_errors() -> None:
    assert {"auto", "naive", "blocked", "sdpa"} <= set(PAM_IMPLS)
    inputs = [t.detach() for t in qkv(1, 20, 4, 8)]
    expected = naive_attention(*inputs)
    for impl in PAM_IMPLS:  # "sdpa" falls back to blocked on the CPU
        torch.testing.assert_close(position_attention(*inputs, impl=impl), expected)
    with pytest.raises(ValueError, match="impl"):
        position_attention(*inputs, impl="flash")
    with pytest.raises(ValueError, match="block_size"):
        blocked_attention(*inputs, block_size=0)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 16 KiB, so that ``impl="auto"`` blocks at tiny N on the CPU."""
    monkeypatch.setattr(efficient_attention, "BLOCK_BYTES", 16 * 2**10)


def test_auto_picks_by_size(small_blocks: None) -> None:
    small, large = (qkv(1, n, 4, 8)[0] for n in (64, 65))  # 64 x 64 x 4 bytes = 16 KiB
    assert position_attention(small, small, small).grad_fn.name() != "BlockedAttentionBackward"
    assert position_attention(large, large, large).grad_fn.name() == "BlockedAttentionBackward"


def test_sdpa_formula_and_cpu_guard() -> None:
    # the CUDA path is not run here (no GPU); check what it hands to SDPA, on the CPU backend,
    # with inputs whose last dim is strided, as PositionAttention's are
    inputs = [t.detach().transpose(1, 2).contiguous().transpose(1, 2) for t in qkv(2, 30, 8, 24)]
    torch.testing.assert_close(_sdpa_one_head(*inputs), naive_attention(*inputs))
    assert sdpa_attention(*inputs) is None  # never on the CPU, where it would build N x N


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
@pytest.mark.parametrize("impl", ["auto", "blocked", "sdpa"])
def test_tracing_unrolls_blocks(
    impl: str, small_blocks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("the custom Function must not be traced")

    monkeypatch.setattr(BlockedAttention, "apply", fail)
    inputs = [t.detach() for t in qkv(1, 100, 4, 8)]  # 100 x 100 x 4 bytes: more than one block

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return position_attention(q, k, v, impl=impl)

    # check_trace=False: the check re-runs the function eagerly, where auto may block
    traced = torch.jit.trace(attend, inputs, check_trace=False)
    torch.testing.assert_close(traced(*inputs), naive_attention(*inputs))
    nodes = [n.kind() for n in traced.graph.nodes()]
    rows = efficient_attention.auto_block_size(1, 100)
    assert nodes.count("aten::softmax") == -(-100 // rows) > 1  # one softmax per block


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
def test_tracing_small_matrix_stays_naive(small_blocks: None) -> None:
    inputs = [t.detach() for t in qkv(1, 64, 4, 8)]  # 64 x 64 x 4 bytes: exactly one block
    traced = torch.jit.trace(lambda q, k, v: position_attention(q, k, v), inputs)
    assert [n.kind() for n in traced.graph.nodes()].count("aten::softmax") == 1


@pytest.mark.parametrize(("n", "block_size"), [(100, 7), (64, 64), (33, 1000)])
def test_unrolled_matches_naive(n: int, block_size: int) -> None:
    inputs = [t.detach() for t in qkv(2, n, 4, 8)]
    out = efficient_attention.unrolled_attention(*inputs, block_size=block_size)
    torch.testing.assert_close(out, naive_attention(*inputs))
    with pytest.raises(ValueError, match="block_size"):
        efficient_attention.unrolled_attention(*inputs, block_size=0)


@pytest.mark.parametrize("impl", ["auto", "blocked"])
def test_position_attention_module_matches_naive(impl: str, small_blocks: None) -> None:
    naive = PositionAttention(16, impl="naive")
    other = PositionAttention(16, impl=impl)
    with torch.no_grad():
        naive.gamma.fill_(0.7)
    other.load_state_dict(naive.state_dict())
    x = torch.randn(2, 16, 9, 13)  # N = 117: with small_blocks, auto blocks (in several blocks)
    results = []
    for module in (naive, other):
        out = module(x)
        out.square().sum().backward()
        results.append([out] + [p.grad for p in module.parameters()])
    # the key bias gradient is 0 in exact arithmetic (it shifts a whole softmax row), so what is
    # left is rounding: compare at the scale of the largest gradient
    scale = max(g.abs().max().item() for g in results[0])
    assert_close(results[1], results[0], atol=1e-5 * scale)
