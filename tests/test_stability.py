"""Stability diagnostics against independent references (docs/algorithms.md section 1)."""
from __future__ import annotations

import json
import math
from typing import NamedTuple

import pytest
import torch
from torch import Tensor, nn

from stablernn import Cell, DeepRNN
from stablernn.stability import (
    diagnose,
    diagnose_file,
    gradient_flow,
    load_model,
    local_maps,
    lyapunov_exponents,
    maps_at,
    radii,
    radius,
    radius_all,
    vaa,
)


class _S(NamedTuple):
    h: Tensor


class LinearCell(Cell):
    """``s' = A s + B x``, output ``s``: the linear reference dynamics."""

    State = _S

    def __init__(self, A: Tensor, B: Tensor) -> None:
        super().__init__(B.shape[1], A.shape[0])
        self.A, self.B = nn.Parameter(A), nn.Parameter(B)

    def step(self, x_t: Tensor, state: _S) -> _S:
        return _S(state.h @ self.A.T + x_t @ self.B.T)


def pascal_rnn(r: float, layers: int) -> DeepRNN:
    """``h[l,t] = r h[l-1,t] + r h[l,t-1]`` with scalar states (docs/algorithms.md section 1.3)."""
    one = torch.ones(1, 1, dtype=torch.float64)
    return DeepRNN([LinearCell(r * one, r * one) for _ in range(layers)])


@pytest.mark.parametrize("r", [1.0, 0.5])
def test_gradient_flow_reproduces_pascal_rnn_closed_form(r):
    L, T = 4, 7
    flow = gradient_flow(pascal_rnn(r, L), torch.randn(1, T, 1, dtype=torch.float64))
    dl = torch.arange(L - 1, -1, -1)[:, None]  # layers below the top
    dt = torch.arange(T - 1, -1, -1)[None, :]  # steps before the last
    expect = torch.tensor([[math.comb(a + b, b) * r ** (a + b) for b in dt[0].tolist()]
                           for a in dl[:, 0].tolist()], dtype=torch.float64)
    assert torch.equal(flow.norms, expect)
    if r == 0.5:
        assert flow.norms.max() <= 1.0


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


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_time_jacobian_matches_torch_module(kind):
    torch.manual_seed(1)
    module = getattr(nn, kind.upper())(3, 5, batch_first=True).double()
    x, h0 = torch.randn(2, 1, 3, dtype=torch.float64), torch.randn(2, 10, dtype=torch.float64)
    m = local_maps(module, x[:, 0], [_state(kind, h0)], kinds=["time"])[0]

    def ref(s: Tensor) -> Tensor:  # torch's fused kernel on one sample, one step
        hc = (s[:5].view(1, 1, 5), s[5:].view(1, 1, 5)) if kind == "lstm" else s.view(1, 1, 5)
        _, out = module(x[:1], hc)
        return torch.cat([o.view(-1) for o in out]) if kind == "lstm" else out.view(-1)

    n = 10 if kind == "lstm" else 5
    expect = torch.autograd.functional.jacobian(ref, h0[0, :n])
    assert torch.allclose(m.jacobian()[0], expect, atol=1e-12)


def _state(kind: str, flat: Tensor):
    from stablernn import GRUCell, LSTMCell

    if kind == "lstm":
        return LSTMCell.State(flat[:, :5], flat[:, 5:])
    return GRUCell.State(flat[:, :5])


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


@pytest.mark.parametrize("estimator", ["exact", "krylov"])
def test_lru_time_radius_is_max_lambda(estimator):
    torch.manual_seed(4)
    model = DeepRNN.build("lru", 3, 6, num_layers=2, r_min=0.3, r_max=0.95).double()
    report = radii(model, torch.randn(2, 5, 3, dtype=torch.float64), kinds=["time"],
                   estimator=estimator)
    for layer, cell in enumerate(model.cells):
        expect = float(cell.magnitude().max().detach())
        assert report.values["time"][layer] == pytest.approx([expect] * 5, rel=1e-12)


def test_indrnn_time_radius_is_max_abs_u_times_slope():
    """IndRNN's time Jacobian is diag(tanh'(pre) u): its radius is max |tanh'(pre) u|."""
    torch.manual_seed(5)
    model = DeepRNN.build("indrnn", 3, 6, nonlinearity="tanh").double()
    cell, x = model.cells[0], torch.randn(2, 4, 3, dtype=torch.float64)
    h, want = cell.initial_state(2).h, []
    with torch.no_grad():
        for t in range(4):
            h_new = cell(x[:, t], cell.State(h))[0]
            want.append(float(((1 - h_new ** 2) * cell.weight_hh).abs().max(1).values.mean()))
            h = h_new
    report = radii(model, x, kinds=["time"], estimator="exact")
    assert report.values["time"][0] == pytest.approx(want, rel=1e-10)


def test_lyapunov_exponents_of_linear_map_are_log_abs_eigenvalues():
    torch.manual_seed(5)
    eig = torch.tensor([0.9, -0.6, 0.3, 0.1], dtype=torch.float64)
    Q = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    model = DeepRNN([LinearCell(Q @ torch.diag(eig) @ Q.T, torch.randn(4, 2).double())])
    spec = lyapunov_exponents(model, torch.randn(3, 300, 2, dtype=torch.float64), k=4,
                              discard=30)
    assert torch.allclose(spec.exponents, eig.abs().log(), atol=1e-3)


def test_vaa_is_one_over_n_for_contraction_and_one_for_identity():
    n, eye = 8, torch.eye(3, dtype=torch.float64)
    x = torch.randn(n, 6, 2, dtype=torch.float64)
    drive = torch.randn(3, 2, dtype=torch.float64)
    report = vaa(DeepRNN([LinearCell(0.5 * eye, drive)]), x, steps=200)
    assert report.vaa == pytest.approx(1 / n) and report.attractors == 1
    # s' = s + B u translates every reachable state alike: nothing merges
    report = vaa(DeepRNN([LinearCell(eye, drive)]), x, steps=200)
    assert report.vaa == 1.0 and report.attractors == n


def test_radii_report_on_torch_module_and_readout_skip():
    gru = nn.GRU(2, 6, num_layers=2, batch_first=True)
    report = radii(gru, torch.randn(3, 4, 2), steps=[0, -1])
    assert report.steps == [0, 3] and set(report.values) == {"input", "time", "depth"}
    assert "depth        1" in report.table()
    wide = DeepRNN.build("gru", 2, 6, readout=101)
    assert "readout" not in radii(wide, torch.randn(2, 3, 2)).values


def test_square_subset_is_a_submatrix():
    m = _maps("gru")[0]  # input map: 3 -> 20
    J, Js = m.jacobian(), m.square(seed=7).jacobian()
    rows = [i for i in range(J.shape[1]) if any(torch.equal(J[:, i], Js[:, j])
                                                for j in range(3))]
    assert Js.shape == (4, 3, 3) and len(rows) == 3
    m = _maps("gru")[-1]  # readout 10 -> 4: keeps 4 columns
    J, Js = m.jacobian(), m.square(seed=7).jacobian()
    assert Js.shape == (4, 4, 4)
    assert all(any(torch.equal(Js[..., j], J[..., i]) for i in range(10)) for j in range(4))


def test_bad_inputs_raise_clear_errors():
    model = DeepRNN.build("gru", 2, 4)
    x = torch.randn(2, 5, 2)
    with pytest.raises(TypeError, match="no recurrent layers"):
        radii(nn.Linear(2, 4), x)
    with pytest.raises(ValueError, match="outside the sequence"):
        maps_at(model, x, 5)
    with pytest.raises(ValueError, match="larger than the state"):
        lyapunov_exponents(model, x, k=5)
    with pytest.raises(ValueError, match="larger than the state"):
        radius(maps_at(model, x, 1, kinds=["time"])[0], "krylov", k=9)
    with pytest.raises(ValueError, match="'exact', 'krylov'"):
        radii(model, x, estimator="eig")
    with pytest.raises(ValueError, match="Jacobian kind"):
        radii(model, x, kinds=["space"])
    with pytest.raises(ValueError, match="features"):
        gradient_flow(model, torch.randn(2, 5, 3))


def test_diagnose_writes_plots_and_json(tmp_path):
    torch.manual_seed(6)
    gru = nn.GRU(2, 6, num_layers=2, batch_first=True)
    res = diagnose(gru, torch.randn(4, 8, 2), tmp_path / "d", vaa_steps=20, max_steps=3)
    for name in ("gradient_flow", "radii", "spectrum", "json"):
        assert (tmp_path / "d").joinpath(res["files"][name]).is_file()
    data = json.loads((tmp_path / "d" / "diagnostics.json").read_text())
    assert data["radii"]["steps"] == [0, 4, 7] and len(data["gradient_flow"]["norms"]) == 2
    torch.save(gru, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="trust_pickle"):  # a pickle runs code: opt in
        load_model(tmp_path / "model.pt")
    assert isinstance(load_model(tmp_path / "model.pt", trust_pickle=True), nn.GRU)
    res = diagnose_file(tmp_path / "model.pt", tmp_path / "e", batch=3, seq_len=5,
                        vaa_steps=10, plots=False, trust_pickle=True)
    assert res["input_shape"] == [3, 5, 2]
    torch.save(gru.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(TypeError, match="not a model"):
        load_model(tmp_path / "sd.pt", trust_pickle=True)


def test_diagnose_follows_batch_first_of_a_torch_module(tmp_path):
    torch.manual_seed(7)
    bf = nn.GRU(2, 6, num_layers=2, batch_first=True)
    tm = nn.GRU(2, 6, num_layers=2, batch_first=False)
    tm.load_state_dict(bf.state_dict())
    x = torch.randn(3, 9, 2)  # (B, T, D)
    a = diagnose(bf, x, tmp_path / "a", vaa_steps=10, max_steps=3, plots=False)
    b = diagnose(tm, x.transpose(0, 1), tmp_path / "b", vaa_steps=10, max_steps=3, plots=False)
    assert a["input_shape"] == b["input_shape"] == [3, 9, 2]
    assert a["radii"] == b["radii"] and a["time_eigenvalues"] == b["time_eigenvalues"]
