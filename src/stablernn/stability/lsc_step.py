"""LSC update rules: the scale-free damped Newton step on the radii, and the paper's AdamW.

Note [radius Newton step]: each map ``m`` has a residual ``e_m = mean_batch(radius) - target``
(its minimum is 0: every radius on target). Newton's step removes a fraction of every residual
at once, sized by the measured sensitivity of the radii rather than by a learning rate in weight
units, so it is the same rule at 8 and 1024 units and for every cell. It solves first for a
log-gain per tensor and a shift per vector (they move a wide layer's clustered spectrum edge as
one), then least-norm along the maps' gradients (Levenberg-Marquardt with Marquardt's scaling);
rows for the batch's spread join where the batch disagrees; the residual is a running mean with
a per-map fraction halved on sign flips. Each tensor moves by at most ``max_change`` of its RMS
(floor 1e-2). An optional integral term (``ki``, off by default): a step's second-order effect
lowers the radii of a saturating stack a little at every update (0.01-0.04 on a 4 x 64 LSTM at
``rho = 1``), a constant disturbance that a proportional rule answers with a constant offset
(0.08 there, above the tolerance); ``ki = 0.1`` removes it there (held error 0.094 -> 0.043) but
pushed 8-unit nBRC time radii at ``rho = 1`` past their bistability edge (0.2 off), so the
default leaves it out. docs/lsc.md gives the measurements behind each part.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["AdamWStep", "NewtonStep", "make_step"]

RMS_FLOOR = 1e-2
PERSIST = 10  # updates a running residual keeps its sign before the integral term acts


def _solve(A: Tensor, r: Tensor, mu: float) -> Tensor:
    """``argmin_a ||A a + r||^2 + mu sum_q (A^T A)_qq a_q^2`` (Levenberg-Marquardt; columns
    without any effect get 0)."""
    ata = A.T @ A
    diag = ata.diagonal().clone()
    live = diag > 1e-30 * float(diag.max().clamp_min(1e-300))
    a = torch.zeros(A.shape[1], dtype=A.dtype)
    if bool(live.any()):
        d = diag[live]
        sub = ata[live][:, live] + torch.diag(mu * d + 1e-9 * float(d.max()))
        a[live] = -torch.linalg.solve(sub, A[:, live].T @ r)
    return a


class NewtonStep:
    """Damped Gauss-Newton step over maps, gains first (Note [radius Newton step]).

    Each map's loss ``L_m`` should fall by ``2 lr L_m`` (Newton on its residual). First a
    log-gain per weight tensor (``p <- p e^a``) and a shift per vector (``p <- p + b``) are
    solved for, by least squares on the maps' directional derivatives along them: these move
    a whole clustered spectrum edge at once, where the dominant eigenvalue's own gradient
    moves one eigenvalue. What the gains leave is solved along the maps' gradients, least norm.
    Each tensor's move is capped at ``max_change`` of its RMS (floor 1e-2).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([2.0, 0.5]))
        >>> step = NewtonStep([w], lr=1.0, mu=0.0, max_change=10.0, max_gain=10.0)
        >>> step.step([w.sum()[None]], [1.0])
        >>> round(float(w.detach().sum()), 3)  # a linear residual is removed in one step
        1.0
    """

    def __init__(self, params: Sequence[Tensor], lr: float = 0.5, mu: float = 0.1,
                 max_change: float = 0.2, max_gain: float = 0.2,
                 tol: float = 0.05, smooth: float = 0.3, spread: float = 0.25,
                 ki: float = 0.0) -> None:
        self.params = list(params)
        self.tol, self.smooth, self.spread = tol, smooth, spread
        self.avg: Tensor | None = None  # running residual per map (Note [radius Newton step])
        self.rate: Tensor | None = None  # per-map Newton fraction, halved when it oscillates
        self.integral: Tensor | None = None  # per-map integral term (Note [radius Newton step])
        self.side: Tensor | None = None  # updates since the running residual last changed sign
        self.ki = ki
        self.lr, self.mu, self.max_change, self.max_gain = lr, mu, max_change, max_gain

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def _rows(self, residuals: Sequence[Tensor]) -> list[list[Tensor | None]]:
        """Per map, the gradient of its residual per tensor (None where it does not reach)."""
        return [list(torch.autograd.grad(e, self.params, retain_graph=i < len(residuals) - 1,
                                         allow_unused=True)) for i, e in enumerate(residuals)]

    def _directions(self) -> list[tuple[int, Tensor]]:
        """(tensor index, direction): the tensor itself (gain), and ones for vectors (shift)."""
        out = [(j, p.detach()) for j, p in enumerate(self.params) if bool(p.detach().any())]
        return out + [(j, torch.ones_like(p)) for j, p in enumerate(self.params) if p.dim() == 1]

    def _targets(self, e: Tensor) -> Tensor:
        """Residual to remove per map: a fraction ``rate`` of the running residual plus its
        integral. A map's rate halves when its running residual changes sign (it is chasing
        noise) and grows back by 1.2x per update up to ``lr`` otherwise. The integral adds
        ``ki`` times the running residual once it has kept its sign for ``PERSIST`` updates
        within ``2 tol`` of the target (not during the approach: wind-up there overshot an nBRC
        time radius into a flat region) and is clamped to ``2 tol``."""
        if self.avg is None or self.avg.shape != e.shape:
            self.avg, self.rate = e, torch.full_like(e, self.lr)
            self.integral, self.side = torch.zeros_like(e), torch.zeros_like(e)
            return self.rate * e
        # the first call set all four together
        assert self.rate is not None and self.integral is not None and self.side is not None
        avg = (1 - self.smooth) * self.avg + self.smooth * e
        flip = torch.sign(avg) != torch.sign(self.avg)
        self.rate = torch.where(flip, self.rate / 2, (self.rate * 1.2).clamp(max=self.lr))
        self.avg = avg
        self.side = torch.where(flip, torch.zeros_like(self.side), self.side + 1)
        lasting = (self.side >= PERSIST) & (avg.abs() < 2 * self.tol)
        self.integral = (self.integral + self.ki * avg * lasting).clamp(-2 * self.tol, 2 * self.tol)
        return self.rate * avg + self.integral

    @torch.no_grad()
    def step(self, radii: Sequence[Tensor], targets: Sequence[float]) -> None:
        """One update from each map's per-sample radii ``(B,)`` (in the graph; consumed)."""
        with torch.enable_grad():
            means = [r.mean() - t for r, t in zip(radii, targets, strict=True)]
            # the batch's spread, where it disagrees by more than half the tolerance (wide
            # layers self-average and skip the extra backward pass)
            spreads = [sd for sd in (r.std() for r in radii if r.numel() > 1)
                       if float(sd.detach()) > self.tol / 2] if self.spread else []
            residuals = means + spreads
        rows, M = self._rows(residuals), len(residuals)
        r = self._targets(torch.tensor([float(e) for e in means], dtype=torch.float64))
        r = torch.cat([r, self.spread * torch.tensor([float(v) for v in spreads],
                                                     dtype=torch.float64)])
        dirs = self._directions()
        A = torch.zeros(M, len(dirs), dtype=torch.float64)
        G = torch.zeros(M, M, dtype=torch.float64)
        stacks = {}  # tensor index -> (maps reaching it, their gradients as rows)
        for j in range(len(self.params)):
            reached = [(m, g) for m in range(M) if (g := rows[m][j]) is not None]
            if reached:
                maps = [m for m, _ in reached]
                R = torch.stack([g.reshape(-1) for _, g in reached])
                stacks[j] = (maps, R)
                idx = torch.tensor(maps)
                G[idx[:, None], idx[None, :]] += (R @ R.T).double()
        for q, (j, d) in enumerate(dirs):
            if j in stacks:
                maps, R = stacks[j]
                A[torch.tensor(maps), q] = (R @ d.reshape(-1)).double()
        a = _solve(A, r, self.mu).clamp(-self.max_gain, self.max_gain)
        c = _solve(G, r + A @ a, self.mu)  # what the gains leave, along the maps' gradients
        for j, p in enumerate(self.params):
            d = torch.zeros_like(p)
            if j in stacks:
                maps, R = stacks[j]
                d += (c[torch.tensor(maps)].to(R.dtype) @ R).reshape(p.shape)
            for (jj, direction), aq in zip(dirs, a.tolist(), strict=True):
                if jj == j and aq:
                    d += aq * direction
            move = float(d.square().mean().sqrt())
            limit = self.max_change * max(float(p.square().mean().sqrt()), RMS_FLOOR)
            if move > 0:
                p.add_(d, alpha=min(1.0, limit / move))


class AdamWStep:
    """The paper's update: AdamW at a fixed learning rate (``torch.optim.AdamW``)."""

    def __init__(self, params: Sequence[Tensor], lr: float = 7.2e-3,
                 weight_decay: float = 1e-4) -> None:
        self.opt = torch.optim.AdamW(list(params), lr=lr, weight_decay=weight_decay)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.opt.zero_grad(set_to_none=set_to_none)

    def step(self, radii: Sequence[Tensor], targets: Sequence[float]) -> None:
        """The paper's loss: ``mean_maps mean_batch (r - target)^2``."""
        self.opt.zero_grad(set_to_none=True)
        losses = [(r - t).square().mean() for r, t in zip(radii, targets, strict=True)]
        torch.stack(losses).mean().backward()
        self.opt.step()


def make_step(name: str, params: Sequence[Tensor], lr: float, weight_decay: float,
              tol: float = 0.05) -> NewtonStep | AdamWStep:
    """The update rule ``name`` ("newton" or "adamw") on ``params``."""
    if name == "adamw":
        return AdamWStep(params, lr, weight_decay)
    return NewtonStep(params, lr, tol=tol)
