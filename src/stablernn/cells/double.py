"""Double layers for partial warm-up (Lambrechts et al., arXiv 2106.01001, section 4).

A double layer of width ``H`` is two parallel cells of width ``H/2`` reading the same input,
their outputs concatenated. Warm-up (:func:`stablernn.stability.warmup.warmup`) makes only the
first half multistable; the second half keeps the default, monostable dynamics and with them
its precision on tasks that need fine-grained continuous memory. Afterwards both halves train
jointly like any other layer.

The state of a double layer is :class:`DoubleState` ``(first, second)``, each field the
*flattened* state of its half, so the Jacobian, Lyapunov and VAA code see one ``(B, n)`` vector
like for any cell.

Note [fused double]: when both halves have the same fused kernel (GRU, LSTM, RNN halves), a
double layer *is* one layer of that kind, of width ``H``, whose gate blocks hold the halves'
rows side by side and whose recurrent weights are block-diagonal (each half reads only its own
state): every gate is computed unit by unit, so the composed layer computes the same function.
The composed weights are built from the halves' Parameters at every call, so gradients reach
the halves (and none reaches the zero blocks); a stack of such layers runs in one kernel call,
as fast as a plain stack, where a kernel call per half (and per layer) is about twice as slow.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .base import Cell, flatten_state, make_cell, register_cell, unflatten_state
from .fused import fused_sequence, stack_kernel

__all__ = ["DoubleCell", "DoubleState", "make_double"]


class DoubleState(NamedTuple):
    first: Tensor   # (B, n_1): flattened state of the warmed half
    second: Tensor  # (B, n_2): flattened state of the cold half


@register_cell("double")
class DoubleCell(Cell):
    """Two cells of half width on the same input, outputs concatenated ``[h_1, h_2]``.

    Args:
        input_size: features of ``x_t``.
        hidden_size: total output width ``H >= 2``; each half has ``H / 2`` units (the first
            gets the extra unit when ``H`` is odd).
        half: registered name of the half cells (default ``"gru"``); in a config,
            ``model.cell=double`` and ``model.options.half=gru``.
        **options: options of the half cells (e.g. ``bias=False``).

    Raises:
        ValueError: ``hidden_size < 2`` or unknown ``half``.

    Example:
        >>> cell = DoubleCell(3, 8, half="lstm")
        >>> h, state = cell(torch.randn(2, 3))
        >>> h.shape, cell.first.hidden_size, state.first.shape   # LSTM half: (h, c) flattened
        (torch.Size([2, 8]), 4, torch.Size([2, 8]))
    """

    State = DoubleState
    recurrent_weights = ()  # the halves own the weights
    input_weights = ()

    def __init__(self, input_size: int, hidden_size: int, *, half: str = "gru",
                 **options) -> None:
        super().__init__(input_size, hidden_size)
        if not isinstance(half, str):
            raise TypeError(f"half must be a registered cell name, got {type(half).__name__}")
        if hidden_size < 2:
            raise ValueError(f"a double layer splits hidden_size in two halves; got "
                             f"hidden_size={hidden_size}, use at least 2")
        if half == "double":
            raise ValueError("the halves of a double layer cannot be double layers")
        width = hidden_size // 2  # an odd width gives the warmed half the extra unit
        self.first = make_cell(half, input_size, hidden_size - width, **options)
        self.second = make_cell(half, input_size, width, **options)
        self.kind = half
        with torch.no_grad():  # width of first.project(x): where recur splits p_t
            ref = self.first._ref()
            self._p_split = self.first.project(ref.new_zeros(1, input_size)).shape[-1]

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.first.state_size, self.second.state_size)

    @property
    def output_size(self) -> int:
        return self.first.output_size + self.second.output_size

    def halves(self, state: DoubleState) -> tuple[tuple, tuple]:
        """The two half states as the halves' own NamedTuples."""
        return (unflatten_state(state.first, self.first),
                unflatten_state(state.second, self.second))

    def warm_part(self) -> Cell:
        """The first half: partial warm-up makes only it multistable."""
        return self.first

    def warm_state(self, state: DoubleState) -> tuple:
        return unflatten_state(state.first, self.first)

    def cold_parameters(self) -> Iterator[nn.Parameter]:
        """The second half keeps its default, monostable dynamics."""
        return self.second.parameters()

    def project(self, x: Tensor) -> Tensor:
        # (..., D) -> (..., G_1 + G_2): both halves' input projections side by side
        return torch.cat([self.first.project(x), self.second.project(x)], -1)

    def recur(self, p_t: Tensor, state: DoubleState) -> DoubleState:
        s1, s2 = self.halves(state)
        p1, p2 = p_t[..., :self._p_split], p_t[..., self._p_split:]
        return DoubleState(flatten_state(self.first.recur(p1, s1)),
                           flatten_state(self.second.recur(p2, s2)))

    def output(self, x_t: Tensor, state: DoubleState) -> Tensor:
        s1, s2 = self.halves(state)
        return torch.cat([self.first.output(x_t, s1), self.second.output(x_t, s2)], -1)

    # the fused kernel: the two halves as one layer of the half's kind whose weights are the
    # halves' gate blocks side by side (block-diagonal recurrent weights); Note [fused double]
    def fused_kernel(self) -> Callable | None:
        kernel = self.first.fused_kernel()
        same = kernel is not None and kernel is self.second.fused_kernel() \
            and self.first.fused_bias() == self.second.fused_bias()
        return kernel if same and self._keeps_recur(DoubleCell) else None

    def fused_bias(self) -> bool:
        return self.first.fused_bias()

    def fused_weights(self) -> list[Tensor]:
        h1, h2 = self.first.hidden_size, self.second.hidden_size
        w1, w2 = self.first.fused_weights(), self.second.fused_weights()
        gates = w1[0].shape[0] // h1  # row blocks of the half's kind (GRU 3, LSTM 4, RNN 1)
        ih = torch.cat([w1[0].view(gates, h1, -1), w2[0].view(gates, h2, -1)], 1)
        zero = w1[1].new_zeros(())
        hh = torch.cat([
            torch.cat([w1[1].view(gates, h1, h1), zero.expand(gates, h1, h2)], 2),
            torch.cat([zero.expand(gates, h2, h1), w2[1].view(gates, h2, h2)], 2)], 1)
        out = [ih.reshape(gates * (h1 + h2), -1), hh.reshape(gates * (h1 + h2), h1 + h2)]
        for b1, b2 in zip(w1[2:], w2[2:], strict=True):
            out.append(torch.cat([b1.view(gates, h1), b2.view(gates, h2)], 1).reshape(-1))
        return out

    def fused_state(self, state: tuple) -> tuple[Tensor, ...]:
        s1, s2 = self.halves(DoubleState(*state))
        return tuple(torch.cat([a, b], -1) for a, b in zip(
            self.first.fused_state(s1), self.second.fused_state(s2), strict=True))

    def from_fused_state(self, fields: Sequence[Tensor]) -> DoubleState:
        h1 = self.first.hidden_size
        s1 = self.first.from_fused_state([f[..., :h1] for f in fields])
        s2 = self.second.from_fused_state([f[..., h1:] for f in fields])
        return DoubleState(flatten_state(s1), flatten_state(s2))

    def forward_sequence(self, x: Tensor, state: DoubleState) -> tuple[Tensor, DoubleState]:
        """Run ``(B, T, D)`` inputs; each half takes its fastest path (fused kernel for GRU,
        LSTM and RNN halves)."""
        s1, s2 = self.halves(state)
        y1, s1 = _half_sequence(self.first, x, s1)
        y2, s2 = _half_sequence(self.second, x, s2)
        return torch.cat([y1, y2], -1), DoubleState(flatten_state(s1), flatten_state(s2))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, half={self.kind!r}"


def _half_sequence(half: Cell, x: Tensor, state: tuple) -> tuple[Tensor, tuple]:
    """One half over a whole sequence, through torch's fused kernel when there is one."""
    kernel = stack_kernel([half])
    if kernel is None:
        return half.forward_sequence(x, state)
    y, (last,) = fused_sequence(kernel, [half], x, [state])
    return y, last


def make_double(cell: str, input_size: int, hidden_size: int, **options) -> DoubleCell:
    """A :class:`DoubleCell` of ``cell`` halves, e.g. ``make_double("gru", 1, 64)``.

    Args:
        cell: registered cell name of the halves.
        input_size, hidden_size: as for any cell (``hidden_size >= 2``).
        **options: options of the half cells.

    Returns:
        The double cell.

    Raises:
        ValueError: ``hidden_size < 2`` or unknown ``cell``.

    Example:
        >>> make_double("brc", 2, 6).second.hidden_size
        3
    """
    return DoubleCell(input_size, hidden_size, half=cell, **options)


def __getattr__(name: str) -> Any:
    # double_stack builds a DeepRNN, so it lives in stablernn.stack (cells never import the
    # stack); this keeps the old import path working for a deprecation period
    if name == "double_stack":
        warnings.warn("stablernn.cells.double.double_stack moved: import it from stablernn "
                      "(stablernn.double_stack)", DeprecationWarning, stacklevel=2)
        from ..stack import double_stack

        return double_stack
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
