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
from torch.nn.utils.rnn import pack_padded_sequence

from .base import Cell, State


def stack_kernel(cells: Sequence[Cell], fused: bool = True) -> Callable | None:
    """The kernel that runs ``cells`` as one multi-layer stack, or None when there is none:
    every layer must share the kernel, the width and the presence of biases; None as well when
    ``fused`` is False (a stack built with ``fused=False`` steps its cells in Python)."""
    if not fused:
        return None
    kernels = {c.fused_kernel() for c in cells}
    if None in kernels or len(kernels) != 1 or len({c.hidden_size for c in cells}) != 1:
        return None
    return kernels.pop() if len({c.fused_bias() for c in cells}) == 1 else None


def kernel_weights(cells: Sequence[Cell]) -> tuple[list[Tensor], bool]:
    """The cells' weights in the kernels' flat order (:meth:`~Cell.fused_weights`: their own
    Parameters, or built from them), and whether they have biases."""
    weights = [w for c in cells for w in c.fused_weights()]
    return weights, cells[0].fused_bias()


def _stacked(cells: Sequence[Cell], state: Sequence[State]) -> tuple[Tensor, ...]:
    """Per-layer states as the kernels take them: each field ``L x (B, H) -> (L, B, H)``."""
    fields = [c.fused_state(s) for c, s in zip(cells, state, strict=True)]
    return tuple(torch.stack([f[k] for f in fields]) for k in range(len(fields[0])))


def _unstacked(cells: Sequence[Cell], last: Sequence[Tensor]) -> list:
    return [c.from_fused_state([t[i] for t in last]) for i, c in enumerate(cells)]


def fused_sequence(kernel: Callable, cells: Sequence[Cell], x: Tensor, state: Sequence[State],
                   *, dropout: float = 0.0, training: bool = False) -> tuple[Tensor, list]:
    """Run batch-first ``x`` through ``cells`` with ``kernel`` (from :func:`stack_kernel`);
    returns the top outputs ``(B, T, H)`` and the final state of every layer."""
    weights, has_bias = kernel_weights(cells)
    args = (weights, has_bias, len(cells), dropout, training, False, True)  # batch-first
    start = _stacked(cells, state)
    y, *last = kernel(x, start if len(start) > 1 else start[0], *args)
    return y, _unstacked(cells, last)


def fused_prefix_states(kernel: Callable, cells: Sequence[Cell], x: Tensor, lengths: Tensor,
                        *, training: bool = False) -> list:
    """Every layer's state after the prefix ``x[i, :lengths_i]`` of each sequence, from the
    initial state, in one kernel call on the packed prefixes (a packed sequence's final state
    is its state at its own length)."""
    packed = pack_padded_sequence(x[:, :int(lengths.max())], lengths.cpu(), batch_first=True,
                                  enforce_sorted=False)
    assert packed.sorted_indices is not None and packed.unsorted_indices is not None
    weights, has_bias = kernel_weights(cells)
    start = [c.initial_state(x.shape[0], device=x.device, dtype=x.dtype) for c in cells]
    hx = tuple(t.index_select(1, packed.sorted_indices) for t in _stacked(cells, start))
    _, *last = kernel(packed.data, packed.batch_sizes, hx if len(hx) > 1 else hx[0], weights,
                      has_bias, len(cells), 0.0, training, False)
    return _unstacked(cells, [t.index_select(1, packed.unsorted_indices) for t in last])
