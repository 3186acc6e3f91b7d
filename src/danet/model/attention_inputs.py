"""Catching what the attention modules see during a forward pass: for the attention figures
(:mod:`danet.analysis.diagnostics`) and for the affinity loss, which needs the PAM's queries and
keys of the batch with their autograd graph (:class:`PamQueriesKeys`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from danet.model.attention import ChannelAttention, PositionAttention


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The model's ``{"pam": PositionAttention, "cam": ChannelAttention}`` (those it has)."""
    found: dict[str, nn.Module] = {}
    for module in model.modules():
        if isinstance(module, PositionAttention):
            found.setdefault("pam", module)
        elif isinstance(module, ChannelAttention):
            found.setdefault("cam", module)
    return found


class AttentionInputs:
    """Forward hooks that keep the first input each attention module sees until :meth:`pop`.

    Use as a context manager; ``detach=False`` keeps the autograd graph (for a loss).
    """

    def __init__(
        self, model: nn.Module, detach: bool = True, names: tuple[str, ...] = ("pam", "cam")
    ) -> None:
        self.modules = {n: m for n, m in attention_modules(model).items() if n in names}
        self.detach = detach
        self.inputs: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str) -> Any:
        def keep(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: Any) -> None:
            if name not in self.inputs:
                self.inputs[name] = inputs[0].detach() if self.detach else inputs[0]

        return keep

    def __enter__(self) -> AttentionInputs:
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def pop(self) -> dict[str, torch.Tensor]:
        """The inputs caught since the last call (module name -> (B, C, h, w))."""
        inputs, self.inputs = self.inputs, {}
        return inputs


PamQK = tuple[torch.Tensor, torch.Tensor, tuple[int, int]]
"""``(s * Q, K, (h, w))``: the PAM's scaled queries and keys, (B, N, C/r) each, and its grid."""


class PamQueriesKeys:
    """The PAM's queries and keys of each forward pass, with their graph, for a loss on its rows.

    ``with PamQueriesKeys(model) as pam: logits = model(x); qk = pam.pop()`` gives
    :data:`PamQK` (``None`` for a model without a PAM, or outside a forward).
    """

    def __init__(self, model: nn.Module) -> None:
        self._inputs = AttentionInputs(model, detach=False, names=("pam",))
        self.pam = self._inputs.modules.get("pam")

    def __enter__(self) -> PamQueriesKeys:
        self._inputs.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._inputs.__exit__(*exc)

    def pop(self) -> PamQK | None:
        """The queries and keys of the forward pass since the last call."""
        x = self._inputs.pop().get("pam")
        if x is None or not isinstance(self.pam, PositionAttention):
            return None
        q, k = self.pam.queries_keys(x)  # (B, N, C/r) each, q scaled
        return q, k, (x.shape[-2], x.shape[-1])
