"""Stability diagnostics against independent references: gradient flow, radii, Lyapunov
exponents, VAA and diagnose (docs/algorithms.md section 1; the estimators in test_estimators.py)."""
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
    gradient_flow,
    load_model,
    lyapunov_exponents,
    maps_at,
    radii,
    radius,
    vaa,
)
from stablernn.stability.diagnose import diagnose_file


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
    report = vaa(DeepRNN([LinearCell(0.5 * eye, drive)]), x, time_steps=200)
    assert report.vaa == pytest.approx(1 / n) and report.attractors == 1
    # s' = s + B u translates every reachable state alike: nothing merges
    report = vaa(DeepRNN([LinearCell(eye, drive)]), x, time_steps=200)
    assert report.vaa == 1.0 and report.attractors == n


def test_radii_report_on_torch_module_and_readout_skip():
    gru = nn.GRU(2, 6, num_layers=2, batch_first=True)
    report = radii(gru, torch.randn(3, 4, 2), time_steps=[0, -1])
    assert report.steps == [0, 3] and set(report.values) == {"input", "time", "depth"}
    assert "depth        1" in report.table()
    wide = DeepRNN.build("gru", 2, 6, readout=101)
    assert "readout" not in radii(wide, torch.randn(2, 3, 2)).values


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
    res = diagnose(gru, torch.randn(4, 8, 2), tmp_path / "d", vaa_time_steps=20, max_time_steps=3)
    for name in ("gradient_flow", "radii", "spectrum", "json"):
        assert (tmp_path / "d").joinpath(res["files"][name]).is_file()
    data = json.loads((tmp_path / "d" / "diagnostics.json").read_text())
    assert data["radii"]["steps"] == [0, 4, 7] and len(data["gradient_flow"]["norms"]) == 2
    torch.save(gru, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="trust_pickle"):  # a pickle runs code: opt in
        load_model(tmp_path / "model.pt")
    assert isinstance(load_model(tmp_path / "model.pt", trust_pickle=True), nn.GRU)
    with pytest.warns(DeprecationWarning, match="diagnose_file is deprecated; use diagnose"):
        res = diagnose_file(tmp_path / "model.pt", tmp_path / "e", batch=3, seq_len=5,
                            vaa_time_steps=10, plots=False, trust_pickle=True)
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
    a = diagnose(bf, x, tmp_path / "a", vaa_time_steps=10, max_time_steps=3, plots=False)
    b = diagnose(tm, x.transpose(0, 1), tmp_path / "b", vaa_time_steps=10, max_time_steps=3, plots=False)
    assert a["input_shape"] == b["input_shape"] == [3, 9, 2]
    assert a["radii"] == b["radii"] and a["time_eigenvalues"] == b["time_eigenvalues"]
