"""LSTM cell with exactly PyTorch's gate equations and weight layout (gates i, f, g, o)."""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Cell, register_cell
from .rnn import gate_params


class LSTMState(NamedTuple):
    h: Tensor
    c: Tensor


@register_cell("lstm")
class LSTMCell(Cell):
    """LSTM step; state ``(h, c)``, output ``h``. Loads ``torch.nn.LSTM`` weights as they are.

    Example:
        >>> cell = LSTMCell(3, 5)
        >>> h, (h2, c) = cell(torch.randn(2, 3), cell.initial_state(2))
        >>> bool((h == h2).all())
        True
    """

    State = LSTMState
    gates = ("i", "f", "g", "o")
    meanfield = "lstm"
    forget_gate = "f"
    chrono_gates = {"f": 1.0, "i": -1.0}  # b_f = log U[1, t_max - 1], b_i = -b_f
    torch_module = nn.LSTM
    weight_ih: Tensor  # PyTorch's layout, made by gate_params
    weight_hh: Tensor
    bias_ih: Tensor | None  # None when built with bias=False
    bias_hh: Tensor | None

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        gate_params(self, 4, bias)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recur(self, p_t: Tensor, state: LSTMState) -> LSTMState:
        gates = p_t + F.linear(state.h, self.weight_hh, self.bias_hh)
        i, f, g, o = gates.chunk(4, dim=-1)  # (B, 4H) -> 4 x (B, H)
        c = torch.sigmoid(f) * state.c + torch.sigmoid(i) * torch.tanh(g)
        return LSTMState(torch.sigmoid(o) * torch.tanh(c), c)

    def fused_kernel(self) -> Callable | None:
        return torch._VF.lstm if self._keeps_recur(LSTMCell) else None
