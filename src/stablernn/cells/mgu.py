"""Minimal gated unit (Zhou et al. 2016, arXiv 1603.09420): one forget gate.

``f = sigmoid(W_f x + U_f h + b_f)``, ``n = tanh(W_n x + U_n (f * h) + b_n)``,
``h' = (1 - f) h + f n``. Weights in PyTorch's layout with gates (f, n).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, register_cell
from .rnn import gate_params


class MGUState(NamedTuple):
    h: Tensor


@register_cell("mgu")
class MGUCell(Cell):
    """MGU step; ``weight_ih (2H, D)``, ``weight_hh (2H, H)`` with gates (f, n).

    Example:
        >>> cell = MGUCell(3, 5)
        >>> cell(torch.randn(2, 3))[0].shape
        torch.Size([2, 5])
    """

    State = MGUState
    gates = ("f", "n")
    weight_ih: Tensor  # PyTorch's layout, made by gate_params
    weight_hh: Tensor
    bias_ih: Tensor | None  # None when built with bias=False
    bias_hh: Tensor | None

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        gate_params(self, 2, bias)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recur(self, p_t: Tensor, state: MGUState) -> MGUState:
        H = self.hidden_size
        xf, xn = p_t.chunk(2, dim=-1)  # (B, 2H) -> 2 x (B, H)
        bf, bn = (None, None) if self.bias_hh is None else self.bias_hh.chunk(2)
        f = torch.sigmoid(xf + F.linear(state.h, self.weight_hh[:H], bf))
        n = torch.tanh(xn + F.linear(f * state.h, self.weight_hh[H:], bn))
        return MGUState(state.h + f * (n - state.h))
