"""Eigen- and singular-value solvers (stability/eigen.py) on ordinary matrices, against
``torch.linalg``: no model involved."""
from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from stablernn.stability import NonFiniteError
from stablernn.stability.eigen import (
    arnoldi,
    check_k,
    dense_dominant,
    dense_tied,
    dominant_eigval,
    eigvals,
    hutchinson_msv,
    krylov_dominant,
    power_singular_vector,
    rademacher,
    randn,
    ritz,
)

B, N = 3, 12


def _matrices(seed: int = 0, n: int = N) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, n, n, generator=g, dtype=torch.float64) / math.sqrt(n)


def _matvecs(A: Tensor):
    """``v -> A v`` and ``w -> A^T w`` per sample, as the estimators pass them."""
    return (lambda v: (A @ v.unsqueeze(-1)).squeeze(-1),
            lambda w: (A.transpose(1, 2) @ w.unsqueeze(-1)).squeeze(-1))


def _radius(A: Tensor) -> Tensor:
    return torch.linalg.eigvals(A).abs().amax(-1)


def test_arnoldi_basis_is_orthonormal_and_reproduces_the_matrix():
    A = _matrices()
    k = 6
    Q, H = arnoldi(_matvecs(A)[0], randn((B, N), A, 1), k)
    assert Q.shape == (B, N, k) and H.shape == (B, k, k)
    assert torch.allclose(Q.transpose(1, 2) @ Q, torch.eye(k, dtype=A.dtype), atol=1e-12)
    assert torch.allclose(Q.transpose(1, 2) @ A @ Q, H, atol=1e-12)  # H = Q^T A Q
    assert torch.equal(H.tril(-2), torch.zeros_like(H))  # Hessenberg


def test_full_krylov_space_gives_the_exact_spectrum():
    A = _matrices(2)
    lam, u, vals = ritz(_matvecs(A)[0], randn((B, N), A, 3), N, restarts=0)
    assert torch.allclose(lam.abs(), _radius(A), rtol=1e-10)
    ref = torch.linalg.eigvals(A)
    for b in range(B):  # every Ritz value is an eigenvalue
        assert (vals[b, :, None] - ref[b, None, :]).abs().amin(-1).max() < 1e-9
    Au = (A.to(u.dtype) @ u.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(Au, lam[:, None] * u, atol=1e-9)  # u is its eigenvector


def test_krylov_left_eigenvector_and_an_invariant_subspace():
    A = _matrices(4)
    mv, mvt = _matvecs(A)
    lam, u, w = krylov_dominant(mv, mvt, randn((B, N), A, 0), randn((B, N), A, 1), N, 1,
                                vectors=True)
    wA = (w.conj().unsqueeze(1) @ A.to(w.dtype)).squeeze(1)
    assert torch.allclose(wA, lam[:, None] * w.conj(), atol=1e-9)  # w^H A = lam w^H
    assert krylov_dominant(mv, mvt, randn((B, N), A, 0), None, 4, 0, vectors=False)[2] is None
    # a start vector inside a 2-dimensional invariant subspace: exact after 2 steps, no NaN
    D = torch.diag(torch.tensor([0.9, 0.5] + [0.1] * (N - 2), dtype=torch.float64))
    v0 = torch.zeros(1, N, dtype=torch.float64)
    v0[0, :2] = 1
    theta, _, vals = ritz(_matvecs(D[None])[0], v0, 5, restarts=0)
    assert torch.isfinite(vals).all() and theta.real.item() == pytest.approx(0.9, abs=1e-14)


def test_dense_solvers_match_torch_linalg():
    A = _matrices(5)
    ref = torch.linalg.eigvals(A)
    assert torch.equal(eigvals(A), ref)
    assert torch.allclose(dominant_eigval(A).abs(), _radius(A), rtol=1e-12)
    lam, u, w = dense_dominant(A)
    Ac = A.to(u.dtype)
    assert torch.allclose((Ac @ u.unsqueeze(-1)).squeeze(-1), lam[:, None] * u, atol=1e-12)
    assert torch.allclose((w.conj().unsqueeze(1) @ Ac).squeeze(1), lam[:, None] * w.conj(),
                          atol=1e-12)


def test_tied_cluster_has_every_eigenvalue_of_the_largest_modulus():
    # a rotation block and a reflection: eigenvalues 0.8 e^{+-i}, -0.8 tie; 0.3 does not
    c, s = 0.8 * math.cos(1.0), 0.8 * math.sin(1.0)
    A = torch.tensor([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, -0.8, 0], [0, 0, 0, 0.3]],
                     dtype=torch.float64)[None]
    lam, U, W, weight = dense_tied(A)
    assert lam.abs().item() == pytest.approx(0.8)
    assert U.shape == W.shape == (1, 4, 4)
    assert torch.allclose(weight, torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0]], dtype=A.dtype))


def test_power_iteration_gives_the_spectral_norm():
    A = _matrices(6)[:, :, :8]  # non-square (12 x 8)
    mv, mvt = _matvecs(A)
    v = power_singular_vector(mv, mvt, randn((B, 8), A, 0), iters=300)
    assert torch.allclose(v.norm(dim=-1), torch.ones(B, dtype=A.dtype))
    assert torch.allclose(mv(v).norm(dim=-1), torch.linalg.svdvals(A)[:, 0], rtol=1e-8)


def test_hutchinson_mean_squared_singular_value():
    A = _matrices(7)[:, :, :8]
    probes = rademacher((4000, B, 8), A, 0)
    assert set(probes.unique().tolist()) == {-1.0, 1.0}
    msv = hutchinson_msv(lambda v: torch.einsum("bij,pbj->pbi", A, v), probes)  # P x (12 x 8)
    ref = torch.linalg.svdvals(A).pow(2).sum(-1) / 8
    assert torch.allclose(msv, ref, rtol=0.05)
    ones = torch.ones(B, dtype=A.dtype)  # exact, with any probes, for an orthogonal matrix
    assert torch.allclose(hutchinson_msv(lambda v: v.flip(-1), probes[:3]), ones)


def test_non_finite_matrices_and_bad_k_are_refused():
    A = _matrices()
    A[1, 2, 3] = math.nan
    for solve in (eigvals, dominant_eigval, dense_dominant, dense_tied):
        with pytest.raises(NonFiniteError, match="the Jacobian X has NaN/Inf entries"):
            solve(A, "Jacobian X")
    with pytest.raises(NonFiniteError, match="Arnoldi Hessenberg matrix"):
        ritz(_matvecs(A)[0], randn((B, N), A, 0), 4, 0)
    assert check_k(None, 100) == 64 and check_k(None, 5) == 5
    with pytest.raises(ValueError, match="k=9 Krylov vectors is larger than the state"):
        check_k(9, 8)
