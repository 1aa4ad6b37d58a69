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

from .._checks import check_bool, check_choice
from .base import Cell, register_cell
from .rnn import ACTIVATIONS


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

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: str = "relu",
                 bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        check_choice("nonlinearity", nonlinearity, ACTIVATIONS)
        check_bool("bias", bias)
        self.nonlinearity = nonlinearity
        bound = 1.0 / math.sqrt(hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.rand(hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.zeros(hidden_size))
            self.bias_hh = nn.Parameter(torch.zeros(hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recur(self, p_t: Tensor, state: IndRNNState) -> IndRNNState:
        pre = p_t + self.weight_hh * state.h
        return IndRNNState(ACTIVATIONS[self.nonlinearity](
            pre if self.bias_hh is None else pre + self.bias_hh))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"
