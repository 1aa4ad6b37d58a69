"""Lyapunov exponents of the input-driven dynamics by QR (docs/algorithms.md section 1.4).

Benettin et al. (1980): push ``k`` orthonormal tangent vectors through the step Jacobians
(JVPs, never a dense Jacobian), re-orthonormalise them by QR at every step and average
``log |diag R|``. The state is the whole stack (every layer's flattened state concatenated),
so the exponents describe the full network as one dynamical system; positive exponents mean
chaos (exploding gradients), all strongly negative ones mean fast forgetting.
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
    """New state, re-orthonormalised tangents ``(B, N, k)`` and ``log|diag R|`` ``(B, k)``."""
    pair = vmap(lambda v: jvp(fn, (s,), (v,)), in_dims=2, out_dims=(0, 2))(q)
    out, jq = cast("tuple[Tensor, Tensor]", pair)  # jvp's (outputs, tangents)
    if not (bool(torch.isfinite(out[0]).all()) and bool(torch.isfinite(jq).all())):
        raise NonFiniteError(f"the state or its tangents became NaN/Inf at step {t} although "
                             f"the weights and inputs are finite: the dynamics overflow")
    q, r = torch.linalg.qr(jq)  # (B, N, k) -> (B, N, k), (B, k, k)
    return out[0], q, r.diagonal(dim1=-2, dim2=-1).abs().clamp_min(1e-300).log()


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
    model, x = prepare(model, x)
    B, T, _ = x.shape
    n = sum(c.state_size for c in model.layers)
    k = check_k(k, n, default=16, what="exponents",
                width="dimensions, all layers together")
    discard = check_int("discard", discard, low=0)
    if discard >= T:
        raise ValueError(f"discard={discard} must be in 0..{T - 1} for T={T} steps")
    check_seed(seed)
    _ensure_jvp()
    init = model.initial_state(B, device=x.device, dtype=x.dtype)
    s = torch.cat([flatten_state(st) for st in init], -1)
    q = torch.linalg.qr(torch.randn(B, n, k, generator=generator(seed)).to(x))[0]
    total = x.new_zeros(B, k)
    with torch.no_grad():
        for t in range(T):
            s, q, logs = _qr_step(stacked_step(model, x[:, t]), s, q, t)
            total += logs if t >= discard else 0
    per_sample = (total / (T - discard)).sort(-1, descending=True).values
    return LyapunovReport(per_sample.mean(0).cpu(), per_sample.cpu(), T - discard)


__getattr__ = deprecated_aliases(globals(), {"LyapunovSpectrum": "LyapunovReport"})
