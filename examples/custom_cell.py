"""A cell of your own, in your own file: declare what it is and every method works with it.

A leaky tanh RNN, ``h' = (1 - a) h + a tanh(W_ih x + b + W_hh h)`` with a learned per-neuron
leak ``a``. It subclasses :class:`stablernn.Cell`, says which Parameters carry the time map and
the input map, and that the identity init applies; radii, LSC and the identity init then run
on it with no change to stablernn (docs/architecture.md, "Cells declare their capabilities").

    python examples/custom_cell.py      # STABLERNN_SMOKE=1 for a few-second run
"""
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import stablernn

SMOKE = os.environ.get("STABLERNN_SMOKE") == "1"


class LeakyState(NamedTuple):
    h: Tensor


class LeakyCell(stablernn.Cell):
    """``h' = (1 - a) h + a tanh(W_ih x + b + W_hh h)``, ``a = sigmoid(leak)`` per neuron."""

    State = LeakyState
    gates = ("h",)           # one block of rows in weight_ih / weight_hh
    identity_init = True     # W_hh = I applies (IRNN's idea)
    recurrent_weights = ("weight_hh",)  # what LSC's rescaling heuristic may scale
    input_weights = ("weight_ih",)

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.randn(hidden_size, input_size) / input_size ** 0.5)
        self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) / hidden_size ** 0.5)
        self.bias_ih = nn.Parameter(torch.zeros(hidden_size))
        self.bias_hh = nn.Parameter(torch.zeros(hidden_size))
        self.leak = nn.Parameter(torch.zeros(hidden_size))

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recur(self, p_t: Tensor, state: LeakyState) -> LeakyState:
        a = torch.sigmoid(self.leak)
        new = torch.tanh(p_t + F.linear(state.h, self.weight_hh, self.bias_hh))
        return LeakyState(state.h + a * (new - state.h))


def main() -> None:
    torch.manual_seed(0)
    model = stablernn.DeepRNN([LeakyCell(3, 16), LeakyCell(16, 16)], readout=1)
    x = torch.randn(32, 20, 3)
    print(stablernn.radii(model, x).table())
    report = stablernn.lsc_pretrain(model, x, rho=0.5, steps=30 if SMOKE else 300,
                                    progress=False)
    print(report.table())
    stablernn.init_(model, "identity")  # a capability the cell declared
    print("identity init: W_hh of layer 1 is I:",
          bool(torch.equal(model.cells[1].weight_hh.detach(), torch.eye(16))))


if __name__ == "__main__":
    main()
