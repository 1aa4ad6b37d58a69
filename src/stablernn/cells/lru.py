"""Linear recurrent unit (Orvieto et al. 2023, arXiv 2303.06349).

Diagonal complex recurrence ``s' = lambda * s + gamma * (B u)`` with
``lambda = exp(-exp(nu_log) + i exp(theta_log))``, ``gamma = sqrt(1 - |lambda|^2)``, output
``y = Re(C s) + D u``. The complex state is kept as two real fields ``(re, im)`` so the state
helpers and the Jacobian code see an ordinary real vector of width ``2 N``. Ring
initialisation draws ``|lambda|`` uniformly on the ring ``r_min <= |z| <= r_max`` (area measure)
and the phase in ``[0, max_phase]``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_float, check_size
from .base import Cell, register_cell


class LRUState(NamedTuple):
    re: Tensor
    im: Tensor


@register_cell("lru")
class LRUCell(Cell):
    """LRU step with complex state of width ``state_size`` (default ``hidden_size``).

    Example:
        >>> cell = LRUCell(3, 5, r_min=0.4, r_max=0.99)
        >>> bool(((cell.magnitude() >= 0.4) & (cell.magnitude() <= 0.99)).all())
        True
    """

    State = LRUState
    recurrent_weights = ()  # the time map is set by set_time_radius, not by scaling
    input_weights = ("B_re", "B_im")

    def __init__(self, input_size: int, hidden_size: int, *, state_size: int | None = None,
                 r_min: float = 0.4, r_max: float = 0.99, max_phase: float = 2 * math.pi) -> None:
        super().__init__(input_size, hidden_size)
        n = hidden_size if state_size is None else check_size("state_size", state_size)
        r_min = check_float("r_min", r_min, low=0.0, high=1.0, high_open=True)
        r_max = check_float("r_max", r_max, low=0.0, high=1.0, low_open=True)
        if not r_min < r_max:
            raise ValueError(f"need 0 <= r_min < r_max <= 1, got r_min={r_min}, r_max={r_max}")
        max_phase = check_float("max_phase", max_phase, low=0.0, low_open=True)
        self.n = n
        u1, u2 = torch.rand(n), torch.rand(n)
        nu = -0.5 * torch.log(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2)
        self.nu_log = nn.Parameter(torch.log(nu))
        self.theta_log = nn.Parameter(torch.log(max_phase * u2.clamp(min=1e-6)))
        self.B_re = nn.Parameter(torch.randn(n, input_size) / math.sqrt(2 * input_size))
        self.B_im = nn.Parameter(torch.randn(n, input_size) / math.sqrt(2 * input_size))
        self.C_re = nn.Parameter(torch.randn(hidden_size, n) / math.sqrt(n))
        self.C_im = nn.Parameter(torch.randn(hidden_size, n) / math.sqrt(n))
        self.D = nn.Parameter(torch.randn(hidden_size, input_size) / math.sqrt(input_size))

    @property
    def state_sizes(self) -> tuple[int, int]:
        return (self.n, self.n)

    def magnitude(self) -> Tensor:
        """``|lambda|`` per state unit (the time-Jacobian radius of this layer)."""
        return torch.exp(-torch.exp(self.nu_log))

    @torch.no_grad()
    def set_time_radius(self, radius: float) -> None:
        """Scale every ``|lambda|`` so the largest is ``radius`` (the layer's time radius),
        keeping their ratios; the gradient-free LSC of docs/lsc.md uses it."""
        mag = self.magnitude()
        new_mag = (mag * radius / mag.max()).clamp(1e-4, 1 - 1e-6)
        self.nu_log.copy_(torch.log(-torch.log(new_mag)))

    def project(self, x: Tensor) -> Tensor:
        gamma = torch.sqrt(1 - self.magnitude() ** 2)
        return torch.cat([F.linear(x, self.B_re), F.linear(x, self.B_im)], -1) * gamma.repeat(2)

    def recur(self, p_t: Tensor, state: LRUState) -> LRUState:
        mag, phase = self.magnitude(), torch.exp(self.theta_log)
        lr, li = mag * torch.cos(phase), mag * torch.sin(phase)
        pr, pi = p_t.chunk(2, dim=-1)  # (B, 2N) -> 2 x (B, N)
        return LRUState(lr * state.re - li * state.im + pr, lr * state.im + li * state.re + pi)

    def output(self, x_t: Tensor, state: LRUState) -> Tensor:
        return F.linear(state.re, self.C_re) - F.linear(state.im, self.C_im) + F.linear(x_t, self.D)

    def forward_sequence(self, x: Tensor, state: LRUState) -> tuple[Tensor, LRUState]:
        res, ims = [], []
        for p_t in self.project(x).unbind(1):  # (B, T, 2N) -> T x (B, 2N), see Cell
            state = self.recur(p_t, state)
            res.append(state.re)
            ims.append(state.im)
        # outputs of all steps in three GEMMs instead of 3T small ones
        return self.output(x, LRUState(torch.stack(res, 1), torch.stack(ims, 1))), state
