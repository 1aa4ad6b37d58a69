"""Lyapunov exponents of the input-driven dynamics by QR (docs/algorithms.md section 1.4).

Benettin et al. (1980): push ``k`` orthonormal tangent vectors through the step Jacobians
(JVPs, never a dense Jacobian), re-orthonormalise them by QR at every step and average
``log |diag R|``. The state is the whole stack (every layer's flattened state concatenated),
so the exponents describe the full network as one dynamical system; positive exponents mean
chaos (exploding gradients), all strongly negative ones mean fast forgetting.

Note [collapsed directions]: a step whose Jacobian kills a tangent direction (a dead ReLU
unit of an IndRNN, say) makes ``J Q`` rank-deficient: that ``R_ii`` is 0 (or rounding noise)
and its direction's exponent is ``-inf`` in exact arithmetic. ``log |R_ii|`` is floored at
the dtype's smallest normal number (a large negative but finite exponent, in float32 too).
With autograd (gradient flossing, docs/floss.md) the QR's gradient needs ``R^-1`` and would
be NaN, so at such a step the columns from the first collapsed one on are replaced, in a
second QR, by their detached orthonormal completion (the first QR's ``Q`` columns): ``R`` is
then invertible, the leading (live) columns' values and gradients are exactly those of the
plain QR (a QR's leading block ignores the later columns), and the collapsed ones keep their
values without a gradient. The numbers stay those of :func:`lyapunov_exponents` (up to the
signs of ``Q``'s columns, which no ``|R_ii|`` sees, and of rounding in the collapsed
directions, whose values are rounding noise anyway). "Collapsed" means ``|R_ii|`` at most
``eps^(1/3)`` of the dtype times the sample's largest (5e-3 in float32, 6e-6 in float64): the
QR's gradient grows like ``1 / R_ii^2``, and with ``sqrt(eps)`` a 2-layer ReLU IndRNN's
float32 gradient still overflowed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.func import jvp, vmap

from .._checks import check_int, check_seed
from .._deprecation import deprecated_aliases
from ..cells.base import flatten_state, unflatten_state
from ..plotting import new_axes
from ..stack import DeepRNN
from .eigen import NonFiniteError, check_k, generator
from .local_maps import _ensure_jvp, prepare

__all__ = ["LyapunovReport", "lyapunov_exponents", "stacked_step"]


@dataclass
class LyapunovReport:
    """The ``k`` largest Lyapunov exponents (natural log per step), largest first.

    Attributes:
        exponents: ``(k,)`` batch mean.
        per_sample: ``(B, k)``.
        steps: steps averaged over (after ``discard``).
    """

    exponents: Tensor
    per_sample: Tensor
    steps: int

    @property
    def max(self) -> float:
        return float(self.exponents[0])

    def to_dict(self) -> dict[str, Any]:
        return {"exponents": self.exponents.tolist(), "steps": self.steps,
                "per_sample_std": self.per_sample.std(0, unbiased=False).tolist()}

    def plot(self, ax: Any = None) -> Any:
        """The spectrum as points against their index; returns the axes."""
        ax = new_axes(ax)
        idx = range(1, len(self.exponents) + 1)
        ax.plot(idx, self.exponents.tolist(), "o-")
        ax.axhline(0.0, color="k", lw=0.8, ls="--")
        ax.set(xlabel="index i", ylabel=r"$\lambda_i$ (per step)", title="Lyapunov spectrum")
        return ax


def stacked_step(model: DeepRNN, x_t: Tensor) -> Callable[[Tensor], Tensor]:
    """The full-stack step ``S[t-1] -> S[t]`` on all layers' flat states concatenated
    ``(B, N)``, at input ``x_t``; a pure function for ``torch.func``."""
    sizes = [c.state_size for c in model.layers]

    def fn(flat: Tensor) -> Tensor:
        parts = torch.split(flat, sizes, dim=-1)
        states = [unflatten_state(p, c) for p, c in zip(parts, model.layers, strict=True)]
        return torch.cat([flatten_state(s) for s in model.step(x_t, states)[1]], -1)

    return fn


def _qr_step(fn: Callable[[Tensor], Tensor], s: Tensor, q: Tensor,
             t: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """New state, re-orthonormalised tangents ``(B, N, k)`` and ``log|diag R|`` ``(B, k)``;
    differentiable when run with autograd (Note [collapsed directions])."""
    pair = vmap(lambda v: jvp(fn, (s,), (v,)), in_dims=2, out_dims=(0, 2))(q)
    out, jq = cast("tuple[Tensor, Tensor]", pair)  # jvp's (outputs, tangents)
    if not (bool(torch.isfinite(out[0]).all()) and bool(torch.isfinite(jq).all())):
        raise NonFiniteError(f"the state or its tangents became NaN/Inf at step {t} although "
                             f"the weights and inputs are finite: the dynamics overflow")
    q, r = torch.linalg.qr(jq)  # (B, N, k) -> (B, N, k), (B, k, k)
    growth = r.diagonal(dim1=-2, dim2=-1).abs()
    if jq.requires_grad:
        floor = torch.finfo(r.dtype).eps ** (1 / 3) * growth.amax(-1, keepdim=True)
        dead = (growth <= floor).cumsum(-1) > 0  # from the first collapsed column on
        if bool(dead.any()):  # the same numbers; live columns keep their exact gradient
            q, r = torch.linalg.qr(torch.where(dead[:, None, :], q.detach(), jq))
            growth = torch.where(dead, growth.detach(), r.diagonal(dim1=-2, dim2=-1).abs())
    return out[0], q, growth.clamp_min(torch.finfo(r.dtype).tiny).log()


def lyapunov_exponents(model: nn.Module, x: Tensor, k: int | None = None, *,
                       discard: int = 0, seed: int = 0) -> LyapunovReport:
    """The ``k`` largest Lyapunov exponents along the trajectory driven by ``x``.

    Args:
        model: a DeepRNN or a torch.nn.RNN/LSTM/GRU.
        x: inputs ``(B, T, D)`` (``(T, B, D)`` for a torch module with ``batch_first=False``);
            pass zeros for the autonomous dynamics.
        k: number of exponents (default ``min(N, 16)``, N = all layers' state width).
        discard: initial steps that only align the tangent basis (not averaged).
        seed: seeds the initial orthonormal basis.

    Returns:
        A :class:`LyapunovReport` (natural log per step, largest first).

    Raises:
        ValueError: ``k`` larger than the state, ``discard >= T``, NaN/Inf weights, bad or
            empty ``x``; a state or tangent overflowing to NaN/Inf (``NonFiniteError``).
        TypeError: ``model`` has no recurrent layers; an option of the wrong kind.

    Example:
        >>> spec = lyapunov_exponents(torch.nn.RNN(2, 8, batch_first=True), torch.randn(3, 50, 2),
        ...                           k=4)
        >>> spec.exponents.shape
        torch.Size([4])
    """
    model, x, k, discard = _checked_args(model, x, k, discard, seed)
    with torch.no_grad():
        per_sample = _qr_spectrum(model, x, k, discard, seed)
    return LyapunovReport(per_sample.mean(0).cpu(), per_sample.cpu(), x.shape[1] - discard)


def _checked_args(model: nn.Module, x: Tensor, k: int | None, discard: int,
                 seed: int) -> tuple[DeepRNN, Tensor, int, int]:
    """The stack to walk, ``x`` batch-first, ``k`` (default ``min(N, 16)``) and ``discard``,
    all checked as :func:`lyapunov_exponents` documents (shared with the differentiable
    exponents of :mod:`.floss`)."""
    model, x = prepare(model, x)
    n = sum(c.state_size for c in model.layers)
    k = check_k(k, n, default=16, what="exponents",
                width="dimensions, all layers together")
    discard = check_int("discard", discard, low=0)
    if discard >= x.shape[1]:
        raise ValueError(f"discard={discard} must be in 0..{x.shape[1] - 1} for "
                         f"T={x.shape[1]} steps")
    check_seed(seed)
    return model, x, k, discard


def _qr_spectrum(model: DeepRNN, x: Tensor, k: int, discard: int, seed: int) -> Tensor:
    """Per-sample exponents ``(B, k)``, largest first: the QR walk over batch-first ``x``
    (arguments as :func:`_checked_args` returns them). Differentiable with respect to the
    model's Parameters unless run under ``torch.no_grad`` (gradient flossing, docs/floss.md)."""
    _ensure_jvp()
    B, T, _ = x.shape
    n = sum(c.state_size for c in model.layers)
    init = model.initial_state(B, device=x.device, dtype=x.dtype)
    s = torch.cat([flatten_state(st) for st in init], -1)
    q = torch.linalg.qr(torch.randn(B, n, k, generator=generator(seed)).to(x))[0]
    total = x.new_zeros(B, k)
    for t in range(T):
        s, q, logs = _qr_step(stacked_step(model, x[:, t]), s, q, t)
        if t >= discard:
            total = total + logs
    return (total / (T - discard)).sort(-1, descending=True).values


__getattr__ = deprecated_aliases(globals(), {"LyapunovSpectrum": "LyapunovReport"})
