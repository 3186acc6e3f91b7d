"""Position attention for ONNX graphs of any input size, in memory linear in N.

A graph with dynamic height and width cannot unroll its query blocks at export
(:func:`danet.model.efficient_attention.unrolled_attention` fixes their number), and the naive
form holds the (B, N, N) matrix, which grows with the square of the pixels. Here the attention is
traced as one placeholder node (:class:`QueryBlockAttention`, domain ``danet``) and
:func:`expand_query_blocks` then rewrites each such node into plain ONNX: the queries are padded
to a whole number of blocks of :data:`QUERY_BLOCK` rows, and a ``Scan`` runs one block per
iteration (matmul, softmax, matmul). The number of blocks follows the input size at run time, and
onnxruntime frees each block's scores before the next, so it never holds more than one block's
(B, block, N) scores and their softmax. Each row's softmax is taken whole, so the numbers are the
naive form's.

:func:`check_attention_budget` refuses a run size whose attention would hold more than the linear
form does at the pixel budget: what bounds the naive N x N graphs that older ``--dynamic``
exports hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from danet.utils.attention_budget import (  # noqa: F401  (their home is torch-free)
    ATTENTION_FORMS,
    QUERY_BLOCK,
    AttentionForm,
    attention_bytes,
    check_attention_budget,
)

if TYPE_CHECKING:  # onnx is imported where a graph is rewritten, not with the model
    from onnx import GraphProto, ModelProto, NodeProto

DOMAIN = "danet"
"""The ONNX domain of the placeholder node, gone from the graph after :func:`expand_query_blocks`."""
OP_TYPE = "QueryBlockAttention"


class QueryBlockAttention(torch.autograd.Function):
    """``softmax(q k^T) v``; exported as one ``danet::QueryBlockAttention`` node (forward only)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        block: int,
    ) -> torch.Tensor:
        """q (B, N, d), k (B, M, d), v (B, M, C) -> (B, N, C), ``block`` queries at a time."""
        kt = k.transpose(1, 2)  # (B, d, M)
        blocks = [
            (q[:, i : i + block] @ kt).softmax(dim=-1) @ v  # (B, r, M) scores -> (B, r, C)
            for i in range(0, q.shape[1], block)
        ]
        return torch.cat(blocks, dim=1)  # (B, N, C)

    @staticmethod
    def symbolic(g, q, k, v, block: int):  # noqa: ANN001, ANN205 (torch.onnx's graph context)
        """The placeholder node that :func:`expand_query_blocks` rewrites."""
        out = g.op(f"{DOMAIN}::{OP_TYPE}", q, k, v, block_i=block)
        return out.setType(v.type().with_sizes([None, None, None]))


def query_block_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int = QUERY_BLOCK
) -> torch.Tensor:
    """``softmax(q k^T) v`` that exports as a ``Scan`` over query blocks (module docstring)."""
    if block < 1:
        raise ValueError(f"block={block} must be at least 1")
    return QueryBlockAttention.apply(q, k, v, block)


def _const(name: str, value: int | list[int]) -> NodeProto:
    """An int64 constant: a scalar for an int, a 1-D tensor for a list."""
    from onnx import helper, numpy_helper

    array = numpy_helper.from_array(np.array(value, np.int64), name)
    return helper.make_node("Constant", [], [name], value=array)


def _scan_body(prefix: str, kt: str, v: str) -> GraphProto:
    """One iteration: queries (B, r, d) -> softmax(q k^T) v (B, r, C); k^T and v from outside."""
    from onnx import TensorProto, helper

    q, s, p, o = (f"{prefix}/body/{x}" for x in ("q", "scores", "probs", "out"))
    nodes = [
        helper.make_node("MatMul", [q, kt], [s]),  # (B, r, M)
        helper.make_node("Softmax", [s], [p], axis=-1),
        helper.make_node("MatMul", [p, v], [o]),  # (B, r, C)
    ]
    inputs = [helper.make_tensor_value_info(q, TensorProto.FLOAT, None)]
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)]
    return helper.make_graph(nodes, f"{prefix}/body", inputs, outputs)


def _scan_nodes(node: NodeProto) -> list[NodeProto]:
    """The plain-ONNX nodes that replace one placeholder ``node`` (same inputs and output)."""
    from onnx import helper

    q, k, v = node.input
    (out,) = node.output
    block = next(a.i for a in node.attribute if a.name == "block")
    p = node.name or out  # a unique prefix for the new names

    def n(name: str) -> str:
        return f"{p}/{name}"

    return [
        _const(n("zero"), [0]),
        _const(n("zero_scalar"), 0),
        _const(n("one_scalar"), 1),
        _const(n("one"), [1]),
        _const(n("two"), [2]),
        _const(n("three"), [3]),
        _const(n("block"), [block]),
        _const(n("zeros4"), [0, 0, 0, 0]),
        _const(n("minus1"), [-1]),
        helper.make_node("Transpose", [k], [n("kt")], perm=[0, 2, 1]),  # (B, d, M)
        helper.make_node("Shape", [q], [n("qshape")]),  # [B, N, d]
        helper.make_node("Slice", [n("qshape"), n("zero"), n("one")], [n("b")]),
        helper.make_node("Slice", [n("qshape"), n("one"), n("two")], [n("n")]),
        helper.make_node("Slice", [n("qshape"), n("two"), n("three")], [n("d")]),
        helper.make_node("Shape", [v], [n("vshape")]),  # [B, M, C]
        helper.make_node("Slice", [n("vshape"), n("two"), n("three")], [n("c")]),
        # rows per block: QUERY_BLOCK, or N when N is smaller; blocks: ceil(N / rows)
        helper.make_node("Min", [n("block"), n("n")], [n("rows")]),
        helper.make_node("Sub", [n("rows"), n("one")], [n("rows-1")]),
        helper.make_node("Add", [n("n"), n("rows-1")], [n("n+rows-1")]),
        helper.make_node("Div", [n("n+rows-1"), n("rows")], [n("blocks")]),
        helper.make_node("Mul", [n("blocks"), n("rows")], [n("padded")]),
        helper.make_node("Sub", [n("padded"), n("n")], [n("pad")]),
        # pad the queries with zero rows to blocks * rows: (B, blocks * rows, d)
        helper.make_node("Concat", [n("zeros4"), n("pad"), n("zero")], [n("pads")], axis=0),
        helper.make_node("Pad", [q, n("pads")], [n("qpad")]),
        helper.make_node(
            "Concat", [n("b"), n("blocks"), n("rows"), n("d")], [n("qblocks_shape")], axis=0
        ),
        # (B, blocks, r, d)
        helper.make_node("Reshape", [n("qpad"), n("qblocks_shape")], [n("qblocks")]),
        helper.make_node(
            "Scan",
            [n("qblocks")],
            [n("outblocks")],  # (B, blocks, r, C)
            num_scan_inputs=1,
            scan_input_axes=[1],
            scan_output_axes=[1],
            body=_scan_body(p, n("kt"), v),
        ),
        helper.make_node("Concat", [n("b"), n("minus1"), n("c")], [n("out_shape")], axis=0),
        # (B, blocks * r, C)
        helper.make_node("Reshape", [n("outblocks"), n("out_shape")], [n("outpad")]),
        # the first N rows; Gather over Range(N), not Slice: shape inference cannot tell that
        # N <= blocks * rows, and onnxruntime's quantization tools would warn about it
        helper.make_node("Squeeze", [n("n"), n("zero")], [n("n_scalar")]),
        helper.make_node("Range", [n("zero_scalar"), n("n_scalar"), n("one_scalar")], [n("rowsN")]),
        helper.make_node("Gather", [n("outpad"), n("rowsN")], [out], axis=1),  # (B, N, C)
    ]


def expand_query_blocks(model: ModelProto) -> int:
    """Rewrite every ``danet::QueryBlockAttention`` node of ``model`` in place into plain ONNX (a
    ``Scan`` over query blocks, module docstring); returns how many were rewritten."""
    graph = model.graph
    nodes: list[NodeProto] = []
    count = 0
    for node in graph.node:
        if node.domain == DOMAIN and node.op_type == OP_TYPE:
            nodes += _scan_nodes(node)
            count += 1
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [o for o in model.opset_import if o.domain != DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return count
