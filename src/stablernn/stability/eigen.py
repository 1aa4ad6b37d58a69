"""Eigen- and singular-value solvers on plain matrices and matvec functions.

Nothing here knows a model: a solver takes a batched dense matrix ``(B, n, n)`` or batched
``matvec`` functions ``(B, n) -> (B, n)``, so each is tested against ``torch.linalg`` on
ordinary matrices (``tests/test_eigen.py``). The estimators (:mod:`.estimators`) feed them the
local Jacobians of a model (docs/diagnostics.md, "How the code is organised").

Note [finite before eig]: LAPACK's balancing routine (``?gebal``, called by
``torch.linalg.eig``/``eigvals`` on the CPU) crashes the interpreter on NaN input instead of
raising. So every public entry point checks the model's weights (``check_finite_weights``) and
inputs first, trajectories stop at the first non-finite state, and :func:`eig` /
:func:`eigvals` refuse a non-finite matrix (a dense Jacobian or an Arnoldi Hessenberg matrix):
finite weights can still overflow. Either raises :class:`NonFiniteError`, a ``ValueError``.
See docs/robustness.md.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .._checks import check_int, check_seed
from ..errors import NonFiniteError

__all__ = [
    "NonFiniteError",
    "arnoldi",
    "check_k",
    "check_matrix",
    "dense_dominant",
    "dense_tied",
    "dominant_eigval",
    "eig",
    "eigvals",
    "generator",
    "hutchinson_msv",
    "krylov_dominant",
    "left_eigvec",
    "power_singular_vector",
    "rademacher",
    "randn",
    "ritz",
]

Matvec = Callable[[Tensor], Tensor]

TIE = 1e-3  # eigenvalues within this relative distance of the radius count as tied
MAX_TIED = 32
HESSENBERG = "Arnoldi Hessenberg matrix"


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with a checked ``seed``: estimators never touch the global RNG."""
    return torch.Generator().manual_seed(check_seed(seed))


def randn(shape: Sequence[int], like: Tensor, seed: int) -> Tensor:
    """Seeded standard normal noise of ``shape`` with ``like``'s dtype and device."""
    return torch.randn(*shape, generator=generator(seed)).to(like)


def rademacher(shape: Sequence[int], like: Tensor, seed: int) -> Tensor:
    """Seeded random signs (+1 / -1) of ``shape`` with ``like``'s dtype and device."""
    return (torch.randint(0, 2, tuple(shape), generator=generator(seed)) * 2 - 1).to(like)


def check_k(k: int | None, n: int, *, default: int = 64, what: str = "Krylov vectors",
            width: str = "units") -> int:
    """Validate a count ``k <= n`` of vectors (``min(n, default)`` when None)."""
    if k is None:
        return min(n, default)
    k = check_int("k", k)
    if k > n:
        raise ValueError(f"k={k} {what} is larger than the state ({n} {width}); use k <= {n}")
    return k


def check_matrix(M: Tensor, label: str) -> Tensor:
    """``M`` if finite; else :class:`NonFiniteError` (Note [finite before eig])."""
    if not bool(torch.isfinite(M).all()):
        raise NonFiniteError(f"the {label} has NaN/Inf entries (the map overflows, or an update "
                             f"diverged); it is not passed to the eigensolver, which can crash "
                             f"on them")
    return M


def eig(M: Tensor, label: str = "matrix") -> tuple[Tensor, Tensor]:
    """``torch.linalg.eig`` of a finite ``M`` (Note [finite before eig])."""
    return torch.linalg.eig(check_matrix(M, label))


def eigvals(M: Tensor, label: str = "matrix") -> Tensor:
    """``torch.linalg.eigvals`` of a finite ``M`` (Note [finite before eig])."""
    return torch.linalg.eigvals(check_matrix(M, label))


def dominant_eigval(M: Tensor, label: str = "matrix") -> Tensor:
    """The eigenvalue of largest modulus of each ``M (B, n, n)``: ``(B,)`` complex."""
    vals = eigvals(M, label)
    return vals.gather(1, vals.abs().argmax(-1, keepdim=True)).squeeze(1)


def _pick(V: Tensor, idx: Tensor) -> Tensor:
    """Columns ``idx (B, m)`` of ``V (B, n, n)`` as rows ``(B, m, n)``."""
    return V.gather(2, idx[:, None, :].expand(-1, V.shape[1], -1)).transpose(1, 2)


def _left_of(M: Tensor, lams: Tensor) -> Tensor:
    """Left eigenvectors ``w`` (``w^H M = lam w^H``) of the eigenvalues ``lams (B, m)``.

    From ``M^T`` (``M^T y = lam y <=> conj(y)^H M = lam conj(y)^H``) rather than ``inv(V)``: a
    defective ``M`` (e.g. dead relu units) has a singular ``V``."""
    vals_t, Wt = torch.linalg.eig(M.transpose(-1, -2))
    j = (vals_t[:, None, :] - lams[:, :, None]).abs().argmin(-1)  # (B, m)
    return _pick(Wt, j).conj()


def dense_dominant(M: Tensor, label: str = "matrix") -> tuple[Tensor, Tensor, Tensor]:
    """Dominant eigenvalue ``lam (B,)`` and right / left eigenvectors ``u``, ``w`` ``(B, n)``
    of a dense ``M (B, n, n)``, ``w^H M = lam w^H``."""
    vals, V = eig(M, label)  # (B, n), (B, n, n)
    i = vals.abs().argmax(-1, keepdim=True)  # (B, 1)
    lam = vals.gather(1, i)
    return lam.squeeze(1), _pick(V, i).squeeze(1), _left_of(M, lam).squeeze(1)


def dense_tied(M: Tensor, label: str = "matrix") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Dominant eigenvalue and the eigenvectors of every eigenvalue tied with it in modulus
    (Note [tied radius] in docs/lsc.md): ``lam (B,)``, right / left ``U``, ``W`` ``(B, m, n)``,
    ``weight (B, m)`` (``1 / m_b`` for the ``m_b`` tied members of sample ``b``, 0 for
    padding)."""
    vals, V = eig(M, label)  # (B, n), (B, n, n)
    m = min(MAX_TIED, vals.shape[-1])
    mags, idx = vals.abs().topk(m, dim=-1)  # (B, m), descending
    lam = vals.gather(1, idx[:, :1]).squeeze(1)
    tied = mags >= mags[:, :1] * (1 - TIE)
    weight = tied / tied.sum(-1, keepdim=True)
    return lam, _pick(V, idx), _left_of(M, vals.gather(1, idx)), weight.to(vals.real.dtype)


def arnoldi(matvec: Matvec, v0: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``k`` batched Arnoldi steps from ``v0 (B, n)``: basis ``Q (B, n, k)`` and Hessenberg
    ``H (B, k, k)`` with ``A Q = Q H`` up to the last residual column."""
    B, n = v0.shape
    eps = torch.finfo(v0.dtype).eps
    Q = v0.new_zeros(B, k + 1, n)  # basis as rows, filled in place
    Q[:, 0] = v0 / v0.norm(dim=-1, keepdim=True).clamp_min(eps)
    H = v0.new_zeros(B, k + 1, k)
    for j in range(k):
        w = matvec(Q[:, j])
        scale = w.norm(dim=-1)
        basis = Q[:, :j + 1]  # (B, j+1, n)
        for _ in range(2):  # classical Gram-Schmidt twice keeps Q orthonormal in float32
            h = (basis @ w.unsqueeze(-1)).squeeze(-1)  # (B, j+1)
            w = w - (h.unsqueeze(1) @ basis).squeeze(1)
            H[:, :j + 1, j] += h
        beta = w.norm(dim=-1)
        # a (numerically) invariant subspace: continue with zeros, the Ritz values are exact
        alive = beta > 50 * eps * scale.clamp_min(eps)
        H[:, j + 1, j] = torch.where(alive, beta, 0)
        Q[:, j + 1] = torch.where(alive[:, None], w / beta[:, None].clamp_min(eps), 0)
    return Q[:, :k].transpose(1, 2), H[:, :k]


def _ritz_vector(Q: Tensor, vecs: Tensor, i: Tensor) -> Tensor:
    """The Ritz vector ``Q y_i (B, n)`` of the Hessenberg eigenvector ``i (B,)``."""
    k = vecs.shape[-1]
    return (Q.to(vecs.dtype) @ vecs.gather(2, i[:, None, None].expand(-1, k, 1))).squeeze(-1)


def ritz(matvec: Matvec, v0: Tensor, k: int, restarts: int,
         label: str = HESSENBERG) -> tuple[Tensor, Tensor, Tensor]:
    """Dominant Ritz pair ``(theta (B,), y (B, n) complex)`` and all Ritz values ``(B, k)``,
    restarting ``restarts`` times from the dominant Ritz vector (sharpens a clustered edge)."""
    for _ in range(restarts + 1):
        Q, H = arnoldi(matvec, v0, k)
        vals, vecs = eig(H, label)  # (B, k), (B, k, k)
        i = vals.abs().argmax(-1)
        theta = vals.gather(1, i[:, None]).squeeze(1)
        y = _ritz_vector(Q, vecs, i)
        v0 = y.real + y.imag  # explicit restart from the dominant Ritz vector
    return theta, y, vals


def left_eigvec(matvec_t: Matvec, lam: Tensor, v0: Tensor, k: int, restarts: int,
                label: str = HESSENBERG) -> Tensor:
    """Left eigenvector ``w`` (``w^H A = lam w^H``) from Arnoldi with ``matvec_t = A^T``."""
    y = None
    for _ in range(restarts + 1):
        Q, H = arnoldi(matvec_t, v0, k)
        vals, vecs = eig(H, label)
        i = (vals - lam[:, None]).abs().argmin(-1)  # A^T has the same eigenvalues as A
        y = _ritz_vector(Q, vecs, i)
        v0 = y.real + y.imag
    assert y is not None  # the loop ran restarts + 1 >= 1 times
    return y.conj()  # A^T y = lam y  <=>  conj(y)^H A = lam conj(y)^H


def krylov_dominant(matvec: Matvec, matvec_t: Matvec, v0: Tensor, w0: Tensor, k: int,
                    restarts: int, vectors: bool,
                    label: str = HESSENBERG) -> tuple[Tensor, Tensor, Tensor | None]:
    """Dominant ``(lam, u, w)`` by Arnoldi from ``v0`` (and on ``A^T`` from ``w0`` for the
    left eigenvector ``w``); without ``vectors``, ``w`` is not computed (None)."""
    lam, u, _ = ritz(matvec, v0, k, restarts, label)
    if not vectors:
        return lam, u, None
    return lam, u, left_eigvec(matvec_t, lam, w0, k, restarts, label)


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)


def power_singular_vector(matvec: Matvec, matvec_t: Matvec, v0: Tensor, iters: int) -> Tensor:
    """Unit top right singular vector ``(B, n_in)`` of ``A`` by ``iters`` power iterations on
    ``A^T A``; ``||A v||`` is then the largest singular value."""
    v = v0
    for _ in range(iters):
        v = matvec_t(matvec(_unit(v)))
    return _unit(v)


def hutchinson_msv(matvecs: Matvec, probes: Tensor) -> Tensor:
    """``tr(A^T A) / min(n_in, n_out)`` per sample ``(B,)`` from ``probes (P, B, n_in)`` of
    random signs and ``matvecs: (P, B, n_in) -> (P, B, n_out)``.

    Unbiased; relative error ~ ``sqrt(2 / P)`` at worst (much less for spread spectra)."""
    av = matvecs(probes)  # (P, B, n_out)
    return av.pow(2).sum(-1).mean(0) / min(probes.shape[-1], av.shape[-1])
