"""GRU cell with exactly PyTorch's gate equations and weight layout (gates r, z, n)."""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Cell, register_cell
from .rnn import gate_params


class GRUState(NamedTuple):
    h: Tensor


@register_cell("gru")
class GRUCell(Cell):
    """GRU step: ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``.

    Example:
        >>> cell = GRUCell(3, 5)
        >>> h, state = cell(torch.randn(2, 3))
        >>> h.shape
        torch.Size([2, 5])
    """

    State = GRUState
    gates = ("r", "z", "n")
    meanfield = "gru"
    chrono_gates = {"z": 1.0}  # h' = (1 - z) n + z h: a large z keeps the state
    torch_module = nn.GRU
    weight_ih: Tensor  # PyTorch's layout, made by gate_params
    weight_hh: Tensor
    bias_ih: Tensor | None  # None when built with bias=False
    bias_hh: Tensor | None

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        gate_params(self, 3, bias)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recur(self, p_t: Tensor, state: GRUState) -> GRUState:
        gh = F.linear(state.h, self.weight_hh, self.bias_hh)
        xr, xz, xn = p_t.chunk(3, dim=-1)  # (B, 3H) -> 3 x (B, H)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return GRUState(n + z * (state.h - n))

    def fused_kernel(self) -> Callable | None:
        return torch._VF.gru if self._keeps_recur(GRUCell) else None
