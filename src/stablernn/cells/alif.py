"""Adaptive leaky integrate-and-fire (ALIF) spiking cell (Bellec et al. 2020 style).

``v' = alpha v + (1 - alpha)(W_in x + W_rec z) - z A``, ``a' = rho a + z``,
``A' = b0 + beta a'``, ``z' = H(v' - A')`` with ``alpha = exp(-1/tau)``,
``rho = exp(-1/tau_adapt)``; ``tau``, ``tau_adapt``, ``b0``, ``beta`` are learnable per neuron.
The time constants are stored as logarithms (``log_tau``, ``log_tau_adapt``): positive by
construction, and an optimiser step moves them by a relative amount, so a time constant of 200
steps can learn as fast as one of 2 (with ``tau`` itself as the parameter, ``d alpha / d tau``
is ``alpha / tau^2`` and Adam's fixed step size barely moves a long time constant).
The Heaviside step is :func:`spike_fn`: its backward and forward-mode derivatives are the
triangular surrogate ``dampening * max(0, 1 - |v - A|)`` (Note [surrogate]).

Note [surrogate]: the surrogate is the exact derivative of the smooth step
:func:`surrogate_primitive`, so a cell that uses the primitive instead of :func:`spike_fn` has,
by construction, the same gradients wherever it spikes the same; the tests use that to
``gradcheck`` the whole cell.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_float
from .base import Cell, register_cell

DAMPENING = 0.5


def surrogate(x: Tensor, dampening: float = DAMPENING) -> Tensor:
    """Triangular pseudo-derivative of the spike at distance ``x = v - A`` from threshold."""
    return dampening * torch.relu(1 - x.abs())


def surrogate_primitive(x: Tensor, dampening: float = DAMPENING) -> Tensor:
    """Smooth step whose derivative is :func:`surrogate` (a reference for tests)."""
    y = x.clamp(-1, 1)
    return dampening * torch.where(y < 0, (y + 1) ** 2 / 2, 1 - (1 - y) ** 2 / 2)


class _Spike(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, dampening: float) -> Tensor:
        return (x > 0).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, dampening = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        ctx.dampening = dampening

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        return grad * surrogate(x, ctx.dampening), None

    @staticmethod
    def jvp(ctx, x_dot: Tensor, _):
        (x,) = ctx.saved_tensors
        return x_dot * surrogate(x, ctx.dampening)


def spike_fn(x: Tensor, dampening: float = DAMPENING) -> Tensor:
    """Heaviside ``H(x)`` forward, triangular surrogate derivative (works under torch.func)."""
    return _Spike.apply(x, dampening)


class ALIFState(NamedTuple):
    v: Tensor  # membrane potential
    a: Tensor  # adaptation
    z: Tensor  # last spikes (the layer output)


@register_cell("alif")
class ALIFCell(Cell):
    """ALIF spiking step; output is the spike vector ``z``.

    Args:
        tau, tau_adapt: initial membrane / adaptation time constants in steps.
        b0, beta: initial baseline threshold and adaptation strength.
        spike: the spike nonlinearity (default :func:`spike_fn`).

    Example:
        >>> cell = ALIFCell(3, 5)
        >>> z, state = cell(torch.randn(2, 3))
        >>> set(z.unique().tolist()) <= {0.0, 1.0}
        True
    """

    State = ALIFState

    def __init__(self, input_size: int, hidden_size: int, *, tau: float = 20.0,
                 tau_adapt: float = 200.0, b0: float = 1.0, beta: float = 0.1,
                 spike: Callable[[Tensor], Tensor] = spike_fn) -> None:
        super().__init__(input_size, hidden_size)
        tau = check_float("tau", tau, low=0.0, low_open=True)
        tau_adapt = check_float("tau_adapt", tau_adapt, low=0.0, low_open=True)
        b0, beta = check_float("b0", b0), check_float("beta", beta)
        if not callable(spike):
            raise TypeError(f"spike must be a function of v - A, got {type(spike).__name__}")
        self.weight_ih = nn.Parameter(torch.randn(hidden_size, input_size) / input_size ** 0.5)
        self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size) / hidden_size ** 0.5)
        self.log_tau = nn.Parameter(torch.full((hidden_size,), math.log(tau)))
        self.log_tau_adapt = nn.Parameter(torch.full((hidden_size,), math.log(tau_adapt)))
        self.b0 = nn.Parameter(torch.full((hidden_size,), b0))
        self.beta = nn.Parameter(torch.full((hidden_size,), beta))
        self.spike = spike

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih)

    @property
    def tau(self) -> Tensor:
        """Membrane time constants in steps."""
        return self.log_tau.exp()

    @property
    def tau_adapt(self) -> Tensor:
        """Adaptation time constants in steps."""
        return self.log_tau_adapt.exp()

    def recur(self, p_t: Tensor, state: ALIFState) -> ALIFState:
        alpha = torch.exp(-torch.exp(-self.log_tau))
        rho = torch.exp(-torch.exp(-self.log_tau_adapt))
        threshold = self.b0 + self.beta * state.a
        current = p_t + F.linear(state.z, self.weight_hh)
        v = alpha * state.v + (1 - alpha) * current - state.z * threshold
        a = rho * state.a + state.z
        z = self.spike(v - (self.b0 + self.beta * a))
        return ALIFState(v, a, z)

    def output(self, x_t: Tensor, state: ALIFState) -> Tensor:
        return state.z
