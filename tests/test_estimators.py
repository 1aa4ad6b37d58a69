"""Radius estimators (stability/estimators.py) against dense Jacobians, finite differences and
autograd through ``torch.linalg.eigvals``; the registry and its dispatch."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor

from stablernn import DeepRNN
from stablernn.stability import Estimator, local_maps, maps_at, radius, radius_all
from stablernn.stability.estimators import ESTIMATORS


def _maps(cell: str, dtype=torch.float64, t: int = 3) -> list:
    torch.manual_seed(0)
    model = DeepRNN.build(cell, 3, 10, num_layers=2, readout=4).to(dtype)
    return maps_at(model, torch.randn(4, 6, 3, dtype=dtype), t)


@pytest.mark.parametrize("cell", ["lstm", "gru", "alif", "lru", "indrnn"])
def test_krylov_radius_matches_exact(cell):
    for m in _maps(cell):
        n = min(m.n_in, m.n_out)
        exact = radius(m, "exact")
        assert torch.allclose(radius(m, "krylov", k=n), exact, rtol=1e-6, atol=1e-7), m.kind
        assert torch.allclose(radius(m, "krylov", k=n, differentiable=True), exact,
                              rtol=1e-6, atol=1e-7)


def test_norm_estimators_match_dense_jacobian():
    for m in _maps("gru"):
        J = m.jacobian()
        assert torch.allclose(radius(m, "spectral_norm", iters=200),
                              torch.linalg.matrix_norm(J, 2), rtol=1e-4)
        msv = J.pow(2).sum((1, 2)) / min(m.n_in, m.n_out)
        assert torch.allclose(radius(m, "msv", probes=4000), msv, rtol=0.1)


def _fixed_time_map(model: DeepRNN, x_t: Tensor, h: Tensor):
    return local_maps(model, x_t, [model.cells[0].State(h)], kinds=["time"])[0]


@pytest.mark.parametrize("estimator", ["exact", "krylov"])
def test_differentiable_radius_gradient_matches_finite_differences(estimator):
    torch.manual_seed(2)
    model = DeepRNN.build("gru", 3, 8).double()
    x_t, h = torch.randn(3, 3, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    w = model.cells[0].weight_hh
    r = radius(_fixed_time_map(model, x_t, h), estimator, differentiable=True).sum()
    (grad,) = torch.autograd.grad(r, w)
    direction, eps = torch.randn_like(w), 1e-6
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            w += sign * eps * direction
            values.append(radius(_fixed_time_map(model, x_t, h), "exact").sum())
            w -= sign * eps * direction
    fd = (values[0] - values[1]) / (2 * eps)
    assert torch.allclose((grad * direction).sum(), fd, rtol=1e-5)


@pytest.mark.parametrize("estimator", ["exact", "krylov"])
def test_radius_all_gradient_equals_autograd_through_eigvals(estimator):
    """Every map of a 3-layer GRU step (depth maps' linearisation points depend on the layers
    below): value and Parameter gradient of the eigenvalue-derivative surrogate = plain autograd
    through a dense jacobian + torch.linalg.eigvals."""
    torch.manual_seed(3)
    model = DeepRNN.build("gru", 3, 12, num_layers=3, readout=2).double()
    maps = maps_at(model, torch.randn(4, 5, 3, dtype=torch.float64), 3)
    params = list(model.parameters())
    ours = radius_all(maps, estimator, differentiable=True, k=12, restarts=2)
    for m, r in zip(maps, ours):
        sq = m.square()
        J = torch.autograd.functional.jacobian(lambda z, sq=sq: sq.fn(z).sum(0), sq.state_in,
                                               create_graph=True).transpose(0, 1)
        ref = torch.linalg.eigvals(J).abs().amax(-1)
        assert torch.allclose(r, ref, atol=1e-9), (m.kind, m.layer)
        g_ours = torch.autograd.grad(r.sum(), params, retain_graph=True, allow_unused=True)
        g_ref = torch.autograd.grad(ref.sum(), params, retain_graph=True, allow_unused=True)
        for a, b in zip(g_ours, g_ref):
            a = torch.zeros(()) if a is None else a
            b = torch.zeros(()) if b is None else b
            assert torch.allclose(a, b, atol=1e-8), (m.kind, m.layer)


def test_warm_started_krylov_tracks_exact_radius_along_a_walk():
    """LSC's use: k = 16 Arnoldi without restart, warm-started from the previous step, stays
    within 0.01 (batch-mean error) of the exact radius of a 64-unit GRU's maps along a walk,
    and closer than the same Arnoldi started cold (measured: 2-10x)."""
    torch.manual_seed(4)
    model = DeepRNN.build("gru", 3, 64, num_layers=2)
    x = torch.randn(8, 12, 3)
    warm, errs, cold_errs = {}, [], []
    for t in range(12):
        maps = maps_at(model, x, t, kinds=["time", "depth"])
        exact = radius_all(maps, "exact")
        warm_r = radius_all(maps, "krylov", differentiable=True, k=16, restarts=0, warm=warm)
        cold_r = radius_all(maps, "krylov", differentiable=True, k=16, restarts=0)
        errs += [float((w.detach() - e).abs().mean()) for w, e in zip(warm_r, exact)]
        cold_errs += [float((c.detach() - e).abs().mean()) for c, e in zip(cold_r, exact)]
    assert set(warm) == {("time", 0), ("time", 1), ("depth", 1)}
    late, late_cold = errs[6:], cold_errs[6:]
    assert max(late) < 0.01 and sum(late) < sum(late_cold) / 1.5


@pytest.mark.parametrize("estimator", ["exact", "krylov"])
def test_differentiable_radius_of_silent_alif_has_finite_gradients(estimator):
    torch.manual_seed(7)
    model = DeepRNN.build("alif", 3, 6, num_layers=2)
    maps = maps_at(model, torch.randn(2, 3, 3), 0)  # from rest: nilpotent depth Jacobians
    total = sum(radius(m, estimator, differentiable=True).sum() for m in maps)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_optimiser_pushes_time_radius_to_target():
    torch.manual_seed(3)
    model = DeepRNN.build("gru", 2, 16, num_layers=2)
    x = torch.randn(4, 5, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(30):
        maps = maps_at(model, x, 4, kinds=["time"])
        loss = sum((radius(m, "krylov", differentiable=True) - 1.0).pow(2).mean() for m in maps)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in maps_at(model, x, 4, kinds=["time"]):
        assert (radius(m, "exact") - 1.0).abs().max() < 0.1


def test_every_estimator_has_one_strategy_and_radius_all_dispatches_through_it():
    assert set(ESTIMATORS) == set(Estimator)
    maps = _maps("lstm")
    for est in Estimator:
        one = [radius(m, est.value, seed=3) for m in maps]
        assert all(torch.equal(a, b) for a, b in zip(radius_all(maps, est, seed=3), one)), est
    with pytest.raises(ValueError, match="unknown estimator 'eig'; valid: 'auto', 'exact'"):
        radius_all(maps, "eig")


def test_auto_is_exact_on_narrow_maps():
    for m in _maps("gru", dtype=torch.float32):
        assert torch.equal(radius(m), radius(m, "exact"))
        assert torch.equal(radius(m, differentiable=True), radius(m, "exact",
                                                                  differentiable=True))
