"""Estimators of the size of a local Jacobian (docs/algorithms.md section 1.2): one small
strategy per estimator.

Each estimator in :data:`ESTIMATORS` turns one :class:`~.local_maps.LocalMap` into a radius per
sample, feeding the map's products or dense Jacobian to a solver of :mod:`.eigen`;
:func:`radius` and :func:`radius_all` look the strategy up by :class:`Estimator` name
(docs/diagnostics.md, "How the code is organised"). The radius is the one of Herranz-Celotti &
Rouat (arXiv 2308.12075, section 2).

Note [differentiable radius]: for the dominant eigenvalue ``lambda`` with right / left
eigenvectors ``u`` / ``w``, ``d|lambda| = Re(conj(lambda)/|lambda| * w^H dJ u / (w^H u))``.
With ``u``, ``w``, ``lambda`` detached, ``|lambda| + Re(c * (w^H J u - stopgrad(w^H J u)))`` has
the value ``|lambda|`` and exactly that gradient; ``J^T w`` is one batched VJP kept in the graph
(``create_graph``), so no eigendecomposition and no dense Jacobian is ever in the graph, and
gradients reach the model's Parameters (and the state, when it requires grad).

Note [tied radius]: when several eigenvalues share the largest modulus (an ALIF layer's
adaptation decays are all equal at initialisation), the exact estimator averages the derivative
over all of them (up to 32), so one update moves them together (docs/lsc.md).

Note [warm starts]: LSC pre-training asks for the radii of the same maps at consecutive steps
of the same sequences, with weights that moved by one optimiser step; the dominant eigenvectors
barely change. Given a ``warm`` dict, Arnoldi starts from the previous call's eigenvectors
(stored per ``(kind, layer)``) instead of noise, which is worth a restart: a smaller ``k``
reaches the same accuracy.

Note [autograd matvecs]: Arnoldi needs ``J v`` (and ``J^T w`` for left eigenvectors) k times
per restart. ``torch.func.jvp`` pays functorch's per-call overhead (~1.2 ms on a 256-unit GRU
map), and a dense Jacobian costs one batched backward of n vectors (~27 ms) before the first
product. Instead one forward ``y = f(s)`` and one ``g = J^T u = grad(y, s, u, create_graph)``
with a dummy ``u`` are kept: ``J^T w`` is a backward through ``y`` (~0.19 ms) and ``J v`` a
backward through ``g`` w.r.t. ``u`` (~0.23 ms; ``g`` is linear in ``u``), both on the retained
graph, so Krylov costs k small backward passes and no ``O(n^2)`` memory.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from torch import Tensor

from .._checks import check_int, check_seed
from . import eigen
from .eigen import check_k
from .local_maps import LocalMap, parse_enum

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "mean_squared_singular_value",
    "radius",
    "radius_all",
    "spectral_norm",
]

EXACT_MAX = 256  # "auto": the dense eigensolver up to this width (docs/algorithms.md 1.2)
EXACT_MAX_GRAD = 64  # ... and up to this one for differentiable radii (two eigs with vectors)


class Estimator(str, Enum):  # noqa: UP042 - a StrEnum would change str(Estimator.AUTO)
    """How :func:`radius` measures a local Jacobian."""

    AUTO = "auto"  # exact up to EXACT_MAX units (EXACT_MAX_GRAD if differentiable), krylov above
    EXACT = "exact"  # dense Jacobian + eigvals
    KRYLOV = "krylov"  # Arnoldi on Jacobian products (Note [autograd matvecs])
    SPECTRAL_NORM = "spectral_norm"  # largest singular value, power iteration
    MSV = "msv"  # mean squared singular value tr(J^T J) / n, Hutchinson probes


@dataclass(frozen=True)
class _Options:
    """The options every strategy receives (each reads the ones it needs)."""

    differentiable: bool = False
    seed: int = 0
    k: int | None = None
    restarts: int = 1
    iters: int = 30
    probes: int = 16
    warm: dict | None = None  # Note [warm starts]


def check_map(m: Any) -> None:
    """``m`` is a :class:`LocalMap`, else TypeError."""
    if not isinstance(m, LocalMap):
        raise TypeError(f"expected a LocalMap (from local_maps / maps_at), got "
                        f"{type(m).__name__}")


def check_estimator_options(*, k: Any = None, restarts: Any = 1, iters: Any = 30,
                            probes: Any = 16, seed: Any = 0) -> None:
    """The numeric options shared by the radius estimators (one home for their checks)."""
    if k is not None:
        check_int("k", k)
    check_int("restarts", restarts, low=0)
    check_int("iters", iters)
    check_int("probes", probes)
    check_seed(seed)


def _label(m: LocalMap, what: str) -> str:
    return f"{what} of the {m.kind} map of layer {m.layer}"


# --------------------------------------------------------------------------- eigenvalue radii


def _autograd_matvecs(m: LocalMap) -> tuple[Callable[[Tensor], Tensor],
                                            Callable[[Tensor], Tensor]]:
    """``v -> J v`` and ``w -> J^T w`` per sample on a retained graph (Note [autograd
    matvecs])."""
    with torch.enable_grad():
        s = m.state_in.detach().requires_grad_()
        y = m.fn(s)
        u = torch.zeros_like(y, requires_grad=True)
        g = torch.autograd.grad(y, s, u, create_graph=True, allow_unused=True)[0]  # J^T u
    if g is None or not g.requires_grad:  # J is structurally zero (e.g. no path from s to y)
        return (lambda v: torch.zeros_like(y)), (lambda w: torch.zeros_like(s))

    def jv(v: Tensor) -> Tensor:
        with torch.enable_grad():
            return torch.autograd.grad(g, u, v, retain_graph=True)[0]

    def jtv(w: Tensor) -> Tensor:
        with torch.enable_grad():
            return torch.autograd.grad(y, s, w, retain_graph=True)[0]
    return jv, jtv


def _starts(like: Tensor, seed: int,
            warm: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
    """Arnoldi start vectors for right / left: seeded noise, or last call's eigenvectors."""
    if warm is not None:
        u, w = warm
        return (u.real + u.imag).to(like.dtype), (w.real - w.imag).to(like.dtype)  # y = conj(w)
    return eigen.randn(like.shape, like, seed), eigen.randn(like.shape, like, seed + 1)


def _exact_parts(m: LocalMap, o: _Options) -> tuple[Tensor, ...]:
    """``(lam,)``, or ``(lam, U, W, weight)`` of the tied cluster when differentiable."""
    J = m.jacobian()
    if o.differentiable:
        return eigen.dense_tied(J, _label(m, "Jacobian"))
    return (eigen.dominant_eigval(J, _label(m, "Jacobian")),)


def _krylov_parts(m: LocalMap, o: _Options) -> tuple[Tensor, ...]:
    """``(lam,)``, or ``(lam, u, w)`` when differentiable; updates ``o.warm``."""
    got = None if o.warm is None else o.warm.get((m.kind, m.layer))
    got = got if got is not None and got[0].shape == m.state_in.shape else None
    k = check_k(None if o.k is None else min(o.k, m.n_in), m.n_in)
    lam, u, w = eigen.krylov_dominant(*_autograd_matvecs(m), *_starts(m.state_in, o.seed, got),
                                      k, o.restarts, o.differentiable,
                                      _label(m, "Arnoldi Hessenberg matrix"))
    if o.warm is not None:
        o.warm[(m.kind, m.layer)] = (u, u.conj() if w is None else w)
    if not o.differentiable:
        return (lam,)
    assert w is not None  # krylov_dominant computes w when asked for vectors
    return lam, u, w


def _surrogate(lam: Tensor, u: Tensor, w: Tensor, wju: Tensor, weight: Tensor) -> Tensor:
    """``|lam|`` whose gradient is the (cluster-averaged) eigenvalue derivative, given
    ``wju = w^H J u`` per member ``(B, m)`` in the graph (Notes [differentiable radius],
    [tied radius])."""
    mag = lam.abs()[:, None]  # (B, 1): members share the modulus of the dominant eigenvalue
    wu = (w.conj() * u).sum(-1)
    tiny = torch.finfo(mag.dtype).tiny ** 0.5
    # conj(lam_j) / |lam_j| per member, from lam_j = w_j^H J u_j / w_j^H u_j
    lam_j = wju.detach() / torch.where(wu.abs() > tiny, wu, tiny)
    c = lam_j.conj() / lam_j.abs().clamp_min(tiny) / torch.where(wu.abs() > tiny, wu, tiny)
    c = torch.where(torch.isfinite(c) & (mag > tiny) & (wu.abs() > tiny), c, 0) * weight
    return lam.abs() + (c * (wju - wju.detach())).real.sum(-1)


def _eig_surrogate(m: LocalMap, lam: Tensor, u: Tensor, w: Tensor,
                   weight: Tensor | None = None) -> Tensor:
    """Differentiable ``|lam|`` with ``w^H J u`` from one batched VJP kept in the graph.
    ``u``, ``w``: ``(B, n)`` or, for a tied cluster, ``(B, m, n)`` with ``weight (B, m)``."""
    # a zero or defective eigenvalue (e.g. a silent ALIF layer) has no usable eigenvectors:
    # zero them so NaNs never reach the graph (the value stays |lam|)
    u, w = torch.nan_to_num(u), torch.nan_to_num(w)
    if u.dim() == 2:
        u, w = u[:, None], w[:, None]
        weight = torch.ones(u.shape[:2], dtype=lam.real.dtype, device=u.device)
    assert weight is not None  # a tied cluster's (B, m, n) vectors come with their weights
    with torch.enable_grad():
        s = m.state_in if m.state_in.requires_grad else m.state_in.detach().requires_grad_()
        y = m.fn(s)
        wt = w.transpose(0, 1)  # (m, B, n)
        probes = torch.cat([wt.real, wt.imag]).to(y.dtype)  # (2m, B, n_out)
        jtw = torch.autograd.grad(y, s, probes, is_grads_batched=True, create_graph=True)[0]
    k = u.shape[1]
    # w^H J u = (J^T conj(w)) . u with conj(w) = w.real - i w.imag
    wju = (torch.complex(jtw[:k], -jtw[k:]) * u.transpose(0, 1)).sum(-1).T  # (B, m)
    return _surrogate(lam, u, w, wju, weight).to(m.state_in.dtype)


def _eigen_radius(parts: Callable[[LocalMap, _Options], tuple[Tensor, ...]]):
    """The strategy of an eigenvalue estimator: the dominant eigenvalue's modulus of the square
    restriction (:meth:`LocalMap.square`), differentiable through its surrogate."""
    def estimate(m: LocalMap, o: _Options) -> Tensor:
        sq = m.square(o.seed)
        with torch.no_grad():  # Note [differentiable radius]: no solver in the graph
            p = parts(sq, o)
        if o.differentiable:
            return _eig_surrogate(sq, *p)
        return p[0].abs().to(sq.state_in.dtype)
    return estimate


_exact = _eigen_radius(_exact_parts)
_krylov = _eigen_radius(_krylov_parts)


def _auto(m: LocalMap, o: _Options) -> Tensor:
    """Exact up to EXACT_MAX units (EXACT_MAX_GRAD when differentiable), Krylov above."""
    limit = EXACT_MAX_GRAD if o.differentiable else EXACT_MAX
    return (_exact if min(m.n_in, m.n_out) <= limit else _krylov)(m, o)


# --------------------------------------------------------------------------- norm estimators


def spectral_norm(m: LocalMap, *, iters: int = 30, seed: int = 0,
                  differentiable: bool = False) -> Tensor:
    """Largest singular value per sample ``(B,)`` by power iteration on ``J^T J``.

    Differentiable when asked: the last ``||J v||`` is taken with ``v`` detached, whose
    gradient is ``u^T dJ v`` (the singular-value derivative).

    Raises:
        ValueError / TypeError: ``iters < 1``, a bad seed, ``m`` not a LocalMap.

    Example:
        >>> from stablernn import DeepRNN
        >>> from stablernn.stability import maps_at
        >>> m = maps_at(DeepRNN.build("rnn", 2, 6), torch.randn(3, 4, 2), t=1)[1]
        >>> bool((spectral_norm(m) >= radius(m, "exact") - 1e-4).all())
        True
    """
    check_map(m)
    check_estimator_options(iters=iters, seed=seed)
    v0 = eigen.randn((m.batch, m.n_in), m.state_in, seed)
    with torch.no_grad():
        v = eigen.power_singular_vector(m.jvp, m.vjp, v0, iters)
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        return m.jvp(v).norm(dim=-1)


def mean_squared_singular_value(m: LocalMap, *, probes: int = 16, seed: int = 0,
                                differentiable: bool = False) -> Tensor:
    """``tr(J^T J) / min(n_in, n_out)`` per sample ``(B,)``, Hutchinson with Rademacher probes.

    The mean-field gain of docs/algorithms.md section 3; unbiased, relative error
    ~ ``sqrt(2 / probes)``
    at worst (much less for spread spectra).

    Raises:
        ValueError / TypeError: ``probes < 1``, a bad seed, ``m`` not a LocalMap.
    """
    check_map(m)
    check_estimator_options(probes=probes, seed=seed)
    v = eigen.rademacher((probes, m.batch, m.n_in), m.state_in, seed)
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        return eigen.hutchinson_msv(m.jvps, v)


def _spectral_norm(m: LocalMap, o: _Options) -> Tensor:
    return spectral_norm(m, iters=o.iters, seed=o.seed, differentiable=o.differentiable)


def _msv(m: LocalMap, o: _Options) -> Tensor:
    return mean_squared_singular_value(m, probes=o.probes, seed=o.seed,
                                       differentiable=o.differentiable)


# --------------------------------------------------------------------------- dispatch

ESTIMATORS: dict[Estimator, Callable[[LocalMap, _Options], Tensor]] = {
    Estimator.AUTO: _auto,
    Estimator.EXACT: _exact,
    Estimator.KRYLOV: _krylov,
    Estimator.SPECTRAL_NORM: _spectral_norm,
    Estimator.MSV: _msv,
}
_TAKES_K = (Estimator.AUTO, Estimator.EXACT, Estimator.KRYLOV)  # estimators that read ``k``


def radius(m: LocalMap, estimator: str | Estimator = "auto", *, differentiable: bool = False,
           seed: int = 0, k: int | None = None, restarts: int = 1, iters: int = 30,
           probes: int = 16) -> Tensor:
    """Size of a local Jacobian per sample ``(B,)``.

    Args:
        m: a :class:`LocalMap`.
        estimator: "auto" (exact up to 256 units, 64 when differentiable, krylov above),
            "exact", "krylov", "spectral_norm" or "msv" (mean squared singular value).
        differentiable: keep the result in the autograd graph of the model's Parameters.
        seed: seeds probes, start vectors and the square subset of a non-square map.
        k, restarts: Krylov dimension and restarts (krylov).
        iters: power iterations (spectral_norm). probes: Hutchinson probes (msv).

    Raises:
        ValueError: unknown estimator, ``k`` too large, ``restarts < 0``, ``iters`` or
            ``probes < 1``, a non-finite Jacobian (:class:`NonFiniteError`).
        TypeError: ``m`` not a LocalMap, an option of the wrong kind.

    Example:
        >>> from stablernn import DeepRNN
        >>> from stablernn.stability import maps_at
        >>> m = maps_at(DeepRNN.build("lstm", 2, 8), torch.randn(3, 4, 2), t=2,
        ...             kinds=["time"])[0]
        >>> torch.allclose(radius(m, "krylov", k=16), radius(m, "exact"), atol=1e-4)
        True
    """
    check_map(m)
    est = _parse(estimator, k=k, restarts=restarts, iters=iters, probes=probes, seed=seed)
    if est in _TAKES_K:
        check_k(k, min(m.n_in, m.n_out))  # one map: a k larger than it is a mistake
    return ESTIMATORS[est](m, _Options(differentiable, seed, k, restarts, iters, probes))


def radius_all(maps: Sequence[LocalMap], estimator: str | Estimator = "auto", *,
               differentiable: bool = False, seed: int = 0, k: int | None = None,
               restarts: int = 1, iters: int = 30, probes: int = 16,
               warm: dict | None = None) -> list[Tensor]:
    """:func:`radius` of every map, ``(B,)`` each.

    ``k`` is capped at each map's width (:func:`radius` refuses a ``k`` wider than its map).
    ``warm``: a dict the caller keeps between calls on slowly changing maps (Note [warm
    starts]); differentiable krylov only: LSC pre-training uses it at every step.

    Raises:
        ValueError / TypeError: as :func:`radius`.

    Example:
        >>> from stablernn import DeepRNN
        >>> from stablernn.stability import maps_at
        >>> ms = maps_at(DeepRNN.build("gru", 3, 8, num_layers=3), torch.randn(4, 5, 3), t=2)
        >>> rs = radius_all(ms)
        >>> all(torch.allclose(r, radius(m)) for r, m in zip(rs, ms))
        True
    """
    if not isinstance(maps, (list, tuple)):
        raise TypeError(f"maps must be a list of LocalMaps, got {type(maps).__name__}")
    for m in maps:
        check_map(m)
    est = _parse(estimator, k=k, restarts=restarts, iters=iters, probes=probes, seed=seed)
    o = _Options(differentiable, seed, k, restarts, iters, probes, warm)
    return [ESTIMATORS[est](m, o) for m in maps]


def _parse(estimator: str | Estimator, **options: Any) -> Estimator:
    """The estimator named, after checking the numeric options."""
    check_estimator_options(**options)
    return parse_enum(Estimator, estimator, "estimator")
