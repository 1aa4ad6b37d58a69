"""Elman RNN cell ``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` in PyTorch's weight layout."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_bool, check_choice
from .base import Cell, register_cell


class RNNState(NamedTuple):
    h: Tensor


ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


def init_uniform_(cell: nn.Module) -> None:
    """PyTorch's default RNN initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    hidden_size = cell.hidden_size
    assert isinstance(hidden_size, int)
    bound = 1.0 / math.sqrt(hidden_size)
    for p in cell.parameters():
        nn.init.uniform_(p, -bound, bound)


def bias_params(cell: Cell, size: int, bias: bool) -> None:
    """Create zero ``bias_ih`` and ``bias_hh`` of ``size``, or register both as None (PyTorch's
    split-bias layout, which the fused kernels and ``from_torch`` expect)."""
    check_bool("bias", bias)
    for name in ("bias_ih", "bias_hh"):
        cell.register_parameter(name, nn.Parameter(torch.zeros(size)) if bias else None)


def gate_params(cell: Cell, gates: int, bias: bool) -> None:
    """Create ``weight_ih (gates*H, D)``, ``weight_hh (gates*H, H)``, ``bias_ih``, ``bias_hh``."""
    g, h, d = gates * cell.hidden_size, cell.hidden_size, cell.input_size
    cell.weight_ih = nn.Parameter(torch.empty(g, d))
    cell.weight_hh = nn.Parameter(torch.empty(g, h))
    bias_params(cell, g, bias)
    init_uniform_(cell)


@register_cell("rnn", nonlinearity="tanh")
@register_cell("rnn_relu", nonlinearity="relu")
@register_cell("rnn_sigmoid", nonlinearity="sigmoid")
class RNNCell(Cell):
    """Elman RNN step; ``nonlinearity`` in {"tanh", "relu", "sigmoid"}.

    Example:
        >>> cell = RNNCell(3, 5, nonlinearity="relu")
        >>> h, state = cell(torch.randn(2, 3), cell.initial_state(2))
        >>> h.shape
        torch.Size([2, 5])
    """

    State = RNNState
    gates = ("h",)
    identity_init = True
    torch_module: ClassVar[type[nn.RNNBase] | None] = nn.RNN  # SpectralRNNCell: None
    weight_ih: Tensor  # PyTorch's layout, made by gate_params
    weight_hh: Tensor
    bias_ih: Tensor | None  # None when built with bias=False
    bias_hh: Tensor | None

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: str = "tanh",
                 bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        check_choice("nonlinearity", nonlinearity, ACTIVATIONS)
        self.nonlinearity = nonlinearity
        gate_params(self, 1, bias)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recur(self, p_t: Tensor, state: RNNState) -> RNNState:
        return RNNState(ACTIVATIONS[self.nonlinearity](
            p_t + F.linear(state.h, self.weight_hh, self.bias_hh)))

    def fused_kernel(self) -> Callable | None:
        if not self._keeps_recur(RNNCell):
            return None
        return {"tanh": torch._VF.rnn_tanh, "relu": torch._VF.rnn_relu}.get(self.nonlinearity)

    @classmethod
    def _torch_options(cls, module: nn.RNNBase) -> dict[str, Any]:
        return {"nonlinearity": module.nonlinearity}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"
