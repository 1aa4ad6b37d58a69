"""One home for PyTorch's fused multi-layer kernels (the ones ``torch.nn.LSTM`` calls).

A cell that mirrors a torch layer returns its ``torch._VF`` kernel from
:meth:`~stablernn.cells.base.Cell.fused_kernel`; :func:`fused_sequence` runs a stack of such
cells through it, fed with the cells' own Parameters, so nothing is copied and the weights the
diagnostics analyse are the weights that train (docs/models.md).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .base import Cell, State


def stack_kernel(cells: Sequence[Cell]) -> Callable | None:
    """The kernel that runs ``cells`` as one multi-layer stack, or None when there is none:
    every layer must share the kernel, the width and the presence of biases."""
    kernels = {c.fused_kernel() for c in cells}
    if None in kernels or len(kernels) != 1 or len({c.hidden_size for c in cells}) != 1:
        return None
    return kernels.pop() if len({c.bias_ih is None for c in cells}) == 1 else None


def fused_sequence(kernel: Callable, cells: Sequence[Cell], x: Tensor, state: Sequence[State],
                   *, dropout: float = 0.0, training: bool = False) -> tuple[Tensor, list]:
    """Run batch-first ``x`` through ``cells`` with ``kernel`` (from :func:`stack_kernel`);
    returns the top outputs ``(B, T, H)`` and the final state of every layer."""
    weights: list[Tensor] = []
    has_bias = cells[0].bias_ih is not None
    names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if has_bias else ())
    for c in cells:
        for name in names:
            w = getattr(c, name)
            assert isinstance(w, Tensor)  # a cell with a fused kernel holds PyTorch's layout
            weights.append(w)
    args = (weights, has_bias, len(cells), dropout, training, False, True)  # batch-first
    fields = len(state[0])  # (h,) or (h, c): each field L x (B, H) -> (L, B, H)
    start = tuple(torch.stack([s[f] for s in state]) for f in range(fields))
    y, *last = kernel(x, start if fields > 1 else start[0], *args)
    return y, [c.State(*(t[i] for t in last)) for i, c in enumerate(cells)]
