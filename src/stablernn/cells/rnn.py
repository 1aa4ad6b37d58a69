"""Elman RNN cell ``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` in PyTorch's weight layout."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .._checks import check_bool, check_choice, custom_backward_allowed
from .base import Cell, register_cell
from .scan import elman_scan, modrelu


class RNNState(NamedTuple):
    h: Tensor


ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}
NONLINEARITIES = (*ACTIVATIONS, "modrelu")  # modReLU has a parameter: RNNCell's own


def init_uniform_(cell: nn.Module) -> None:
    """PyTorch's default RNN initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    hidden_size = cell.hidden_size
    assert isinstance(hidden_size, int)
    bound = 1.0 / math.sqrt(hidden_size)
    for p in cell.parameters():
        nn.init.uniform_(p, -bound, bound)


def henaff_matrix(n: int, *, dtype: torch.dtype | None = None, device=None) -> Tensor:
    """Block-diagonal ``2 x 2`` rotations by angles ``U(-pi, pi)`` (Henaff et al., arXiv
    1602.06662; expRNN's copy-task init): orthogonal, its eigenvalues spread uniformly over the
    unit circle, so no direction of the state decays or grows. Odd ``n`` ends with a 1.

    Example:
        >>> W = henaff_matrix(5, dtype=torch.float64)
        >>> torch.allclose(W @ W.T, torch.eye(5, dtype=torch.float64))
        True
    """
    theta = torch.empty(n // 2, dtype=torch.float64).uniform_(-math.pi, math.pi)
    W = torch.zeros(n, n, dtype=torch.float64)
    i = torch.arange(0, n - n % 2, 2)
    W[i, i] = W[i + 1, i + 1] = theta.cos()
    W[i + 1, i], W[i, i + 1] = theta.sin(), -theta.sin()
    if n % 2:
        W[-1, -1] = 1.0
    return W.to(dtype=dtype or torch.get_default_dtype(), device=device)


@torch.no_grad()
def henaff_init_(cell: nn.Module) -> None:
    """Henaff recurrent matrix (:func:`henaff_matrix`), He-normal input weights (fan-in, as
    expRNN), biases 0. ``weight_hh`` is assigned, so a spectrally parametrised one is projected
    onto its band (exact when the band holds 1)."""
    w_hh, w_ih = cell.weight_hh, cell.weight_ih
    assert isinstance(w_hh, Tensor) and isinstance(w_ih, Tensor)
    if w_hh.dim() != 2 or w_hh.shape[0] != w_hh.shape[1]:
        raise ValueError(f"the henaff init needs a square weight_hh, {type(cell).__name__} has "
                         f"shape {tuple(w_hh.shape)}")
    W = henaff_matrix(w_hh.shape[0], dtype=w_hh.dtype, device=w_hh.device)
    if parametrize.is_parametrized(cell, "weight_hh"):
        cell.weight_hh = W  # the parametrisation's right_inverse projects it
    else:
        w_hh.copy_(W)
    nn.init.kaiming_normal_(w_ih, nonlinearity="relu")
    for name in ("bias_ih", "bias_hh"):
        b = getattr(cell, name, None)
        if isinstance(b, Tensor):
            b.zero_()


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
@register_cell("rnn_modrelu", nonlinearity="modrelu")
class RNNCell(Cell):
    """Elman RNN step; ``nonlinearity`` in {"tanh", "relu", "sigmoid", "modrelu"}.

    ``"modrelu"`` is ``sign(z) relu(|z| + b)`` with a learned bias ``modrelu_bias`` per unit
    (initialised ``U(-0.01, 0.01)``): the nonlinearity of orthogonal and unitary RNNs, which
    keeps the sign pattern a rotation carries (docs/spectral.md). It has no fused kernel;
    sequences run :func:`~stablernn.cells.scan.elman_scan` instead.

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
    modrelu_bias: Tensor | None  # nonlinearity="modrelu" only

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: str = "tanh",
                 bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        gate_params(self, 1, bias)
        self.register_parameter("modrelu_bias", nn.Parameter(
            torch.empty(hidden_size).uniform_(-0.01, 0.01)) if nonlinearity == "modrelu" else None)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def recur(self, p_t: Tensor, state: RNNState) -> RNNState:
        z = p_t + F.linear(state.h, self.weight_hh, self.bias_hh)
        if self.modrelu_bias is not None:
            return RNNState(modrelu(z, self.modrelu_bias))
        return RNNState(ACTIVATIONS[self.nonlinearity](z))

    def forward_sequence(self, x: Tensor, state: RNNState) -> tuple[Tensor, RNNState]:
        if (self.modrelu_bias is None or not self._keeps_recur(RNNCell)
                or not custom_backward_allowed()):
            return super().forward_sequence(x, state)
        p = self.project(x)
        if self.bias_hh is not None:
            p = p + self.bias_hh
        hs = elman_scan(p, self.weight_hh, state.h, "modrelu", self.modrelu_bias)
        return hs, RNNState(hs[:, -1])

    def fused_kernel(self) -> Callable | None:
        if not self._keeps_recur(RNNCell):
            return None
        return {"tanh": torch._VF.rnn_tanh, "relu": torch._VF.rnn_relu}.get(self.nonlinearity)

    @classmethod
    def _torch_options(cls, module: nn.RNNBase) -> dict[str, Any]:
        return {"nonlinearity": module.nonlinearity}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"
