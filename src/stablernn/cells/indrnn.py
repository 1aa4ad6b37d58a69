"""Independently recurrent network cell (Li et al. 2018, arXiv 1803.04831).

``h' = act(W_ih x + b_ih + u * h + b_hh)``: the recurrent weight ``u`` is a vector, so each
neuron recurs only on itself and the time Jacobian is diagonal, ``diag(act'(.) u)``: its radius
is read off ``|u|`` and the neurons' memory horizons can be set one by one.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice
from .base import Cell, register_cell
from .rnn import ACTIVATIONS, bias_params


class IndRNNState(NamedTuple):
    h: Tensor


@register_cell("indrnn")
class IndRNNCell(Cell):
    """IndRNN step; ``weight_hh`` is the ``(H,)`` vector ``u`` (default ``nonlinearity="relu"``,
    as in the paper; ``u ~ U(0, 1)`` so no neuron explodes at the start).

    Example:
        >>> cell = IndRNNCell(3, 5)
        >>> h, state = cell(torch.randn(2, 3))
        >>> h.shape, cell.weight_hh.shape
        (torch.Size([2, 5]), torch.Size([5]))
    """

    State = IndRNNState
    gates = ("h",)
    identity_init = True  # u = 1: every neuron keeps its state (IRNN's idea, per neuron)
    bias_ih: Tensor | None  # made by bias_params; None when built with bias=False
    bias_hh: Tensor | None

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: str = "relu",
                 bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        check_choice("nonlinearity", nonlinearity, ACTIVATIONS)
        self.nonlinearity = nonlinearity
        bound = 1.0 / math.sqrt(hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.rand(hidden_size))
        bias_params(self, hidden_size, bias)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recur(self, p_t: Tensor, state: IndRNNState) -> IndRNNState:
        pre = p_t + self.weight_hh * state.h
        return IndRNNState(ACTIVATIONS[self.nonlinearity](
            pre if self.bias_hh is None else pre + self.bias_hh))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"
