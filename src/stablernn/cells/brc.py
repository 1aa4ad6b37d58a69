"""Bistable recurrent cells BRC and nBRC (Vecoven et al. 2021, arXiv 2006.05252).

BRC:  ``a = 1 + tanh(U_a x + w_a * h + b_a)``, ``c = sigmoid(U_c x + w_c * h + b_c)``,
``h' = c h + (1 - c) tanh(U x + a h + b_h)``, with per-neuron vectors ``w_a``, ``w_c``.
nBRC: the same with full matrices ``W_a h``, ``W_c h``. A neuron with ``a > 1`` is bistable:
under constant input its update has two stable fixed points, which is what gives these cells
long memory.

Note [per-block Glorot]: the input weights ``U_a``, ``U_c``, ``U``, stored stacked as
``weight_ih (3H, D)``, are initialised block by block, each ``(H, D)`` block Glorot-uniform with
fans ``(D, H)`` (``std = sqrt(2 / (D + H))``), as in the reference code of Vecoven et al. and of
Lambrechts et al. (arXiv 2106.01001, ``github.com/glambrechts/warmup``), which hold three
separate ``(H, D)`` matrices. Glorot on the stacked matrix would use fan-out ``3H`` and give a
smaller std (``sqrt(2 / (D + 3H))``: 0.103 instead of 0.177 at ``D = 1``, ``H = 64``). nBRC's
``W_a``, ``W_c`` blocks of ``weight_hh`` are initialised the same way.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Cell, register_cell


class BRCState(NamedTuple):
    h: Tensor


class _BistableBase(Cell):
    State = BRCState
    gates = ("a", "c", "h")  # of weight_ih; nBRC's weight_hh holds the (a, c) blocks

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        # gates (a, c, h) in PyTorch's stacked layout, each (H, D) block Glorot-uniform on its
        # own fans (Note [per-block Glorot])
        w = torch.empty(3 * hidden_size, input_size)
        for block in w.split(hidden_size):
            nn.init.xavier_uniform_(block)
        self.weight_ih = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(3 * hidden_size))

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias)

    def _recurrent_ac(self, h: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def recur(self, p_t: Tensor, state: BRCState) -> BRCState:
        xa, xc, xh = p_t.chunk(3, dim=-1)  # (B, 3H) -> 3 x (B, H)
        ra, rc = self._recurrent_ac(state.h)
        a = 1 + torch.tanh(xa + ra)
        c = torch.sigmoid(xc + rc)
        n = torch.tanh(xh + a * state.h)
        return BRCState(n + c * (state.h - n))


@register_cell("brc")
class BRCCell(_BistableBase):
    """Bistable recurrent cell with per-neuron feedback ``w_a``, ``w_c`` (init 1).

    Example:
        >>> cell = BRCCell(3, 5)
        >>> cell(torch.randn(2, 3))[0].shape
        torch.Size([2, 5])
    """

    recurrent_weights = ("weight_a", "weight_c")

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_a = nn.Parameter(torch.ones(hidden_size))
        self.weight_c = nn.Parameter(torch.ones(hidden_size))

    def _recurrent_ac(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.weight_a * h, self.weight_c * h


@register_cell("nbrc")
class NBRCCell(_BistableBase):
    """Neuromodulated BRC: full recurrent matrices ``weight_hh = [W_a; W_c]`` (2H, H).

    Example:
        >>> cell = NBRCCell(3, 5)
        >>> cell(torch.randn(2, 3))[0].shape
        torch.Size([2, 5])
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        w = torch.empty(2 * hidden_size, hidden_size)
        nn.init.xavier_uniform_(w[:hidden_size])
        nn.init.xavier_uniform_(w[hidden_size:])
        self.weight_hh = nn.Parameter(w)

    def _recurrent_ac(self, h: Tensor) -> tuple[Tensor, Tensor]:
        a, c = F.linear(h, self.weight_hh).chunk(2, dim=-1)  # (B, 2H) -> 2 x (B, H)
        return a, c
