"""Initialisations: classical schemes (spectra, variances, ranges), the mean-field calculator
(against closed forms and Monte Carlo) and, at width 1024, against simulated layers."""
import math

import numpy as np
import pytest
import torch
from _support import (
    HYPOTHESIS,
    INF,
    NAN,
    Boom,
    _fail_on_call,
    assert_unchanged,
    bad_floats,
    bad_ints,
    raises_cleanly,
    snapshot,
)
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import stablernn
import stablernn.init as init_module
from stablernn import DeepRNN, GRUCell, LSTMCell, RNNCell, critical_init, init_
from stablernn.cells import BRCCell, SpectralRNNCell
from stablernn.init import INITS, InitReport, estimate_hyper, explain, recurrent_layers
from stablernn.init.critical import apply_hyper
from stablernn.init.meanfield import (
    CRITICAL_BASE,
    GateHyper,
    MeanFieldHyper,
    _mean,
    predict,
    predict_m,
    solve_critical,
)
from stablernn.init.simulate import correlation_curve, decay_time, measure_m, measure_xi


def _blocks(w, h):
    return w.detach().split(h, dim=0)


def _hyper(cell, **gates):
    hp = MeanFieldHyper(cell, CRITICAL_BASE[cell])
    for name, changes in gates.items():
        hp = hp.with_gate(name, **changes)
    return hp


# ----------------------------------------------------------------------------- classical
def test_orthogonal_all_singular_values_one_on_torch_module():
    gru = nn.GRU(5, 16, num_layers=2)
    report = init_(gru, "orthogonal")
    for w in (gru.weight_hh_l0, gru.weight_hh_l1):  # the module's own Parameters changed
        for block in _blocks(w, 16):
            assert torch.allclose(torch.linalg.svdvals(block), torch.ones(16), atol=1e-5)
    assert float(gru.bias_ih_l0.detach().abs().max()) == 0.0
    assert report.layers == ["layer 0 (GRUCell)", "layer 1 (GRUCell)"]


@pytest.mark.parametrize("scheme,var", [
    ("glorot_uniform", lambda fi, fo: 2 / (fi + fo)),
    ("glorot_normal", lambda fi, fo: 2 / (fi + fo)),
    ("he", lambda fi, fo: 2 / fi)])
def test_variance_schemes_per_gate_block(scheme, var):
    cell = LSTMCell(200, 100)
    init_(cell, scheme)
    for w, fan_in in ((cell.weight_ih, 200), (cell.weight_hh, 100)):
        for block in _blocks(w, 100):
            assert float(block.var()) == pytest.approx(var(fan_in, 100), rel=0.08)
    if scheme == "glorot_uniform":
        assert float(cell.weight_ih.detach().abs().max()) <= math.sqrt(6 / 300) + 1e-6


def test_identity_irnn_and_its_domain():
    cell = RNNCell(3, 8, nonlinearity="relu")
    init_(cell, "identity")
    assert torch.equal(cell.weight_hh.detach(), torch.eye(8))
    assert float(cell.weight_ih.detach().std()) < 0.01
    with pytest.raises(ValueError, match="identity.*RNNCell"):
        init_(LSTMCell(3, 8), "identity")


def test_forget_bias_sum_is_one_and_gru_is_rejected():
    lstm = nn.LSTM(3, 8)
    init_(lstm, "forget_bias")
    total = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    assert torch.allclose(total[8:16], torch.ones(8))
    with pytest.raises(ValueError, match="forget_bias"):
        init_(nn.GRU(3, 8), "forget_bias")


def test_chrono_biases_in_range():
    lstm = nn.LSTM(3, 64)
    init_(lstm, "chrono", t_max=50)
    total = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    b_i, b_f = total[:64], total[64:128]
    assert float(b_f.min()) >= 0.0 and float(b_f.max()) <= math.log(49) + 1e-6
    assert torch.allclose(b_i, -b_f)
    gru = GRUCell(3, 64)
    init_(gru, "chrono", seq_len=50)  # the CLI's uniform length option
    b_z = (gru.bias_ih + gru.bias_hh).detach()[64:128]
    assert float(b_z.min()) >= 0.0 and float(b_z.max()) <= math.log(49) + 1e-6


def test_torch_default_bounds():
    cell = DeepRNN([GRUCell(3, 25), GRUCell(25, 25)])
    init_(cell, "orthogonal")
    init_(cell, "torch_default")
    assert all(float(p.detach().abs().max()) <= 0.2 for p in cell.parameters())


def test_bad_input_messages():
    with pytest.raises(ValueError, match="valid inits: .*chrono.*critical.*orthogonal"):
        init_(nn.LSTM(3, 8), "xavier")
    with pytest.raises(ValueError, match="chrono.*LSTMCell, GRUCell"):
        init_(nn.RNN(3, 8), "chrono", t_max=10)
    with pytest.raises(ValueError, match="t_max"):
        init_(nn.LSTM(3, 8), "chrono")
    with pytest.raises(ValueError, match="t_max > 2"):
        init_(nn.LSTM(3, 8), "chrono", t_max=2)
    with pytest.raises(TypeError, match="Linear"):
        init_(nn.Linear(3, 8), "orthogonal")
    with pytest.raises(ValueError, match="seq_len"):
        critical_init(nn.LSTM(3, 8), seq_len=0)
    with pytest.raises(TypeError, match="seq_len must be an int"):  # wrong kind: TypeError
        init_(nn.LSTM(3, 8), "critical", seq_len=2.5)
    with pytest.raises(ValueError, match="LSTM and GRU"):
        critical_init(nn.RNN(3, 8), seq_len=10)
    with pytest.raises(ValueError, match="seq_len"):
        solve_critical("gru", -1)
    assert set(INITS) >= {"glorot_uniform", "he", "orthogonal", "identity", "forget_bias",
                          "chrono", "torch_default", "critical"}


def test_recurrent_layers_share_parameters():
    lstm = nn.LSTM(3, 8, num_layers=3)
    cells = recurrent_layers(lstm)
    assert [c.weight_hh is getattr(lstm, f"weight_hh_l{i}") for i, c in enumerate(cells)] == [
        True] * 3


# ----------------------------------------------------------------------------- calculator
def test_quadrature_closed_forms():
    assert _mean(lambda u: u ** 2, 0.7, 2.0) == pytest.approx(0.49 + 2.0, rel=1e-12)
    assert _mean(lambda u: 0.5 * (1 + np.tanh(u / 2)), 0.0, 3.0) == pytest.approx(0.5, abs=1e-12)


def _mc(fn, mu, var, n=400_000):
    u = np.random.default_rng(0).normal(mu, math.sqrt(var), n)
    return float(fn(u).mean())


@pytest.mark.parametrize("cell,gate", [("lstm", "f"), ("gru", "z")])
def test_calculator_without_recurrence_matches_monte_carlo(cell, gate):
    # sigma = 0: J = diag(f) and the two copies' covariance shrinks by E[f]^2 a step.
    names = "ifgo" if cell == "lstm" else "rzn"
    hp = MeanFieldHyper(cell, {k: GateHyper(sigma=0.0, nu=1.0) for k in names}, q_x=0.8)
    hp = hp.with_gate(gate, mu=2.0, nu=0.6)
    pred = predict(hp)
    sig = lambda u: 1 / (1 + np.exp(-u))
    assert pred.m == pytest.approx(_mc(lambda u: sig(u) ** 2, 2.0, 0.36 * 0.8), rel=2e-3)
    assert pred.chi == pytest.approx(_mc(sig, 2.0, 0.36 * 0.8) ** 2, rel=2e-3)
    assert pred.xi == pytest.approx(-1 / math.log(pred.chi))


def test_m_and_xi_grow_with_the_forget_bias():
    hp = _hyper("lstm")
    preds = [predict(hp.with_gate("f", mu=mu)) for mu in (1.0, 2.0, 3.0)]
    assert preds[0].m < preds[1].m < preds[2].m < 1.0
    assert preds[0].xi < preds[1].xi < preds[2].xi


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_solver_reaches_xi_and_m(cell):
    hp = solve_critical(cell, 40)
    pred = predict(hp)
    assert 40 <= pred.xi < 40 * 1.01
    if cell == "lstm":
        assert pred.m == pytest.approx(1.0, abs=1e-4)
    else:  # Note [critical knobs]: the GRU reaches m = 1 - O(1/T)
        assert 0.95 < pred.m < 1.0


def test_critical_init_report_and_bias_split():
    lstm = nn.LSTM(6, 32, num_layers=2)
    report = critical_init(lstm, seq_len=30)
    assert isinstance(report, InitReport) and report.scheme == "critical"
    d = report.to_dict()
    assert len(d["predictions"]) == 2 and d["predictions"][0]["xi"] >= 30
    assert set(d["predictions"][0]) >= {"q_star", "m", "chi", "xi"}
    mu_f = d["hyper"][0]["gates"]["f"]["mu"]
    assert float(lstm.bias_hh_l0.detach().abs().max()) == 0.0
    assert torch.allclose(lstm.bias_ih_l0[32:64].detach(), torch.full((32,), mu_f))
    assert d["hyper"][1]["q_x"] == pytest.approx(d["predictions"][0]["q_h"])


def test_gate_rows_orthogonal_and_scaled():
    cell = GRUCell(64, 48)
    apply_hyper(cell, _hyper("gru", r={"nu": 0.5}, n={"nu": 2.0}))
    u = cell.weight_ih.detach().double().reshape(3, 48, 64)  # (G*H, D) -> (G, H, D)
    gram = torch.einsum("ahd,bhd->hab", u, u)
    off = gram - torch.diag_embed(torch.diagonal(gram, dim1=1, dim2=2))
    assert float(off.abs().max()) < 1e-5
    assert float(u[2].pow(2).sum(-1).mean()) == pytest.approx(4.0, rel=0.1)


def test_explain_reads_back_the_calculator():
    gru = nn.GRU(4, 256)
    report = critical_init(gru, seq_len=25)
    table = explain(gru, seq_len=25)
    assert table.splitlines()[0].startswith("layer") and "GRUCell" in table
    hp = estimate_hyper(recurrent_layers(gru)[0])
    assert predict(hp).xi == pytest.approx(report.predictions[0]["xi"], rel=0.05)
    assert "no mean-field" in explain(DeepRNN([RNNCell(4, 8)]))


@pytest.mark.parametrize("module, seq_len", [
    (lambda: nn.LSTM(13, 40, 3), 30), (lambda: nn.LSTM(1, 64), 784),
    (lambda: nn.LSTM(4, 16, 2), 50), (lambda: nn.GRU(13, 40, 3), 30),
    (lambda: nn.GRU(4, 16, 2), 50), (lambda: nn.GRU(8, 32, 2), 100)])
def test_explain_reports_critical_every_layer_critical_init_set(module, seq_len):
    model = module()
    report = critical_init(model, seq_len=seq_len)
    rows = explain(model, seq_len=seq_len).splitlines()[1:]
    assert len(rows) == len(report.layers)
    assert all(row.endswith("  yes") for row in rows), rows
    # Note [exact sample moments]: the weights read back as the solved hyperparameters
    for cell, hp in zip(recurrent_layers(model), report.hyper):
        read = estimate_hyper(cell, q_x=hp["q_x"]).to_dict()["gates"]
        for gate, values in hp["gates"].items():
            assert read[gate] == pytest.approx(values, rel=1e-5, abs=1e-6), gate


def test_simulation_smoke_small_width():
    cell = LSTMCell(16, 32)
    apply_hyper(cell, _hyper("lstm"))
    assert 0.0 < measure_m(cell, burn=10, probes=1) < 2.0
    assert measure_xi(cell, time_steps=10, burn=10, pairs=2) > 0.0


# ----------------------------------------------------------------------------- simulation
# Width 1024 (hidden and input), i.i.d. N(0, 1) inputs. Critical: critical_init on a torch
# module (T = 20); two off-critical settings per cell from the same family (docs/init.md).
SETTINGS = {
    "lstm-critical": ("lstm", None),
    "lstm-short": ("lstm", {"f": {"mu": 2.5}, "i": {"sigma": 3.0}}),
    "lstm-fast": ("lstm", {"f": {"mu": 1.5}, "i": {"sigma": 6.0, "mu": 0.0}}),
    "gru-critical": ("gru", None),
    "gru-short": ("gru", {"z": {"mu": 2.5, "sigma": 2.0}, "n": {"sigma": 0.5},
                          "r": {"sigma": 1.0}}),
    "gru-mid": ("gru", {"z": {"mu": 3.0}, "n": {"sigma": 0.8}, "r": {"sigma": 0.5}}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_calculator_matches_simulation_at_width_1024(name):
    kind, gates = SETTINGS[name]
    torch.manual_seed(1)
    if gates is None:
        module = (nn.LSTM if kind == "lstm" else nn.GRU)(1024, 1024)
        pred = stablernn.init.predict(MeanFieldHyper(**_from_report(critical_init(module, 20))))
        cell = recurrent_layers(module)[0]
    else:
        hp = _hyper(kind, **gates)
        pred = predict(hp)
        cell = (LSTMCell if kind == "lstm" else GRUCell)(1024, 1024)
        apply_hyper(cell, hp)
    burn = int(5 * pred.xi) + 30
    m = measure_m(cell, burn=burn, batch_size=8, probes=2)
    xi = measure_xi(cell, time_steps=int(8 * pred.xi) + 10, burn=burn, pairs=16)
    print(f"{name}: m pred {pred.m:.4f} meas {m:.4f} | xi pred {pred.xi:.2f} meas {xi:.2f}")
    assert m == pytest.approx(pred.m, rel=0.10)
    assert xi == pytest.approx(pred.xi, rel=0.20)
    if gates is None:
        assert m == pytest.approx(1.0, rel=0.10)
        assert pred.xi >= 20


def _from_report(report):
    d = report.hyper[0]
    return {"cell": d["cell"], "q_x": d["q_x"], "c_x": d["c_x"],
                "gates": {k: GateHyper(**v) for k, v in d["gates"].items()}}


def test_predict_m_equals_predict():
    hp = _hyper("gru", z={"mu": 2.0})
    assert predict_m(hp) == pytest.approx(predict(hp).m, rel=1e-12)


@pytest.mark.slow
def test_correlated_inputs_limit_correlation_at_width_1024():
    # Input sequences of correlation 0.5: the copies settle at the predicted corr* > 0.
    hp = MeanFieldHyper("gru", CRITICAL_BASE["gru"], c_x=0.5).with_gate("z", mu=3.0)
    hp = hp.with_gate("n", sigma=0.8).with_gate("r", sigma=0.5)
    pred = predict(hp)
    cell = GRUCell(1024, 1024)
    apply_hyper(cell, hp)
    curve = correlation_curve(cell, 80, c_x=0.5, burn=60, pairs=16)
    assert float(curve[-20:].mean()) == pytest.approx(pred.c_star, abs=0.03)
    assert decay_time(curve) == pytest.approx(pred.xi, rel=0.20)


# ----- case 1: NaN and other bad options of every init scheme -----
@pytest.mark.parametrize("scheme, options", [
    ("forget_bias", {"value": NAN}), ("forget_bias", {"value": INF}),
    ("forget_bias", {"value": "1"}), ("chrono", {"t_max": NAN}), ("chrono", {"t_max": INF}),
    ("chrono", {"t_max": "abc"}), ("chrono", {"t_max": True}), ("chrono", {"seq_len": 2.5}),
    ("chrono", {"t_max": 10, "seq_len": 10}), ("orthogonal", {"gain": 2.0}),
    ("critical", {"seq_len": 10, "q_x": NAN}), ("critical", {"seq_len": 10, "q_x": -1.0}),
    ("critical", {"seq_len": NAN}), ("critical", {"q_x": 1.0}), ("critical", {"seq_len": 0}),
])
def test_init_options_are_checked_before_any_change(scheme, options):
    lstm = nn.LSTM(3, 8, num_layers=2)
    message = raises_cleanly(lambda: init_(lstm, scheme, **options), lstm)
    assert any(key in message for key in (*options, "seq_len"))


def test_forget_bias_nan_names_the_option():
    cell = LSTMCell(3, 4)
    message = raises_cleanly(lambda: init_(cell, "forget_bias", value=NAN), cell)
    assert message == "value must be finite, got nan"


# ----- case 2: a scheme that does not apply to a later layer -----
def _mixed(scheme: str) -> nn.Module:
    """A model whose last layer the scheme does not apply to (the first one it does)."""
    if scheme in ("identity", "henaff"):
        return DeepRNN([RNNCell(3, 6), GRUCell(6, 6)])
    if scheme == "forget_bias":
        return DeepRNN([LSTMCell(3, 6), GRUCell(6, 6)])
    if scheme in ("chrono", "critical"):
        return DeepRNN([GRUCell(3, 6), RNNCell(6, 6)])
    if scheme == "torch_default":  # applies to every cell, not to parametrised weights
        return DeepRNN([GRUCell(3, 6), SpectralRNNCell(6, 6)])
    return DeepRNN([GRUCell(3, 6), BRCCell(6, 6)])  # BRC has no gate-block weight_hh


@pytest.mark.parametrize("scheme", sorted(INITS))
def test_every_scheme_checks_every_layer_first(scheme):
    model = _mixed(scheme)
    options = {"seq_len": 10} if scheme in ("chrono", "critical") else {}
    message = raises_cleanly(lambda: init_(model, scheme, **options), model)
    assert message.startswith("layer 1 (")


def test_chrono_on_gru_then_rnn_names_layer_and_scheme():
    model = DeepRNN([GRUCell(3, 6), RNNCell(6, 6)])
    message = raises_cleanly(lambda: init_(model, "chrono", t_max=10), model)
    assert message == ("layer 1 (RNNCell): init 'chrono' applies to LSTMCell, GRUCell layers, "
                       "got RNNCell")


def test_critical_init_solves_every_layer_before_writing_any():
    model = DeepRNN([LSTMCell(3, 6), LSTMCell(6, 6, bias=False)])  # layer 1 cannot take mu_f
    message = raises_cleanly(lambda: critical_init(model, seq_len=10), model)
    assert message.startswith("layer 1 (LSTMCell)") and "bias=False" in message
    mixed = DeepRNN([LSTMCell(3, 6), GRUCell(6, 6)])
    base = stablernn.init.meanfield.CRITICAL_BASE["lstm"]  # an LSTM base cannot fit the GRU
    assert "missing" in raises_cleanly(lambda: critical_init(mixed, 10, base=base), mixed)
    raises_cleanly(lambda: critical_init(mixed, 10, base={"f": 1.0}), mixed)


def test_explain_refuses_bad_arguments_and_diverged_weights():
    lstm = nn.LSTM(3, 4)
    raises_cleanly(lambda: stablernn.explain(lstm, seq_len=0))
    raises_cleanly(lambda: stablernn.explain(lstm, q_x=NAN))
    with torch.no_grad():
        lstm.weight_hh_l0[0, 0] = NAN
    assert "weight_hh_l0" in raises_cleanly(lambda: stablernn.explain(lstm, seq_len=5))
    raises_cleanly(lambda: init_(lstm, None))


def test_classical_failure_part_way_restores_every_layer(monkeypatch):
    gru = nn.GRU(3, 6, num_layers=3)
    # orthogonal writes 3 recurrent blocks per layer: fail in the middle of layer 2
    monkeypatch.setattr(nn.init, "orthogonal_", _fail_on_call(8, nn.init.orthogonal_))
    snap = snapshot(gru)
    with pytest.raises(Boom):
        init_(gru, "orthogonal")
    assert_unchanged(gru, snap)


def test_critical_failure_part_way_restores_every_layer(monkeypatch):
    lstm = nn.LSTM(3, 6, num_layers=2)
    monkeypatch.setattr(init_module, "apply_hyper", _fail_on_call(2, init_module.apply_hyper))
    snap = snapshot(lstm)
    with pytest.raises(Boom):
        critical_init(lstm, seq_len=5)
    assert_unchanged(lstm, snap)


INIT_TARGETS = {
    "forget_bias.value": (bad_floats(), lambda m, v: init_(m, "forget_bias", value=v)),
    "chrono.t_max": (bad_floats(2.0), lambda m, v: init_(m, "chrono", t_max=v)),
    "chrono.seq_len": (bad_ints(3), lambda m, v: init_(m, "chrono", seq_len=v)),
    "critical.seq_len": (bad_ints(1), lambda m, v: critical_init(m, seq_len=v)),
    "critical.q_x": (bad_floats(0.0, inclusive=True),
                     lambda m, v: critical_init(m, seq_len=5, q_x=v)),
    "init_critical.seq_len": (bad_ints(1), lambda m, v: init_(m, "critical", seq_len=v)),
    "spectral.r": (bad_floats(0.0), lambda m, v: stablernn.spectral(m, "weight_hh", r=v)),
    "spectral.sigma_star": (bad_floats(0.01, inclusive=True),
                            lambda m, v: stablernn.spectral(m, "weight_hh", sigma_star=v)),
    "spectral.k": (st.one_of(bad_ints(1, none=False), st.integers(min_value=6)),
                   lambda m, v: stablernn.spectral(m, "weight_hh", k=v)),
    "spectral.blocks": (st.one_of(bad_ints(1, none=False), st.sampled_from([3, 6, 7])),
                        lambda m, v: stablernn.spectral(m, "weight_hh", blocks=v)),
}


@HYPOTHESIS
@given(data=st.data(), target=st.sampled_from(sorted(INIT_TARGETS)),
       torch_module=st.booleans())
def test_module_methods_refuse_bad_numbers_and_change_nothing(data, target, torch_module):
    strategy, call = INIT_TARGETS[target]
    value = data.draw(strategy, label="value")
    model = nn.LSTM(3, 5, num_layers=2) if torch_module else DeepRNN.build("lstm", 3, 5, 2)
    raises_cleanly(lambda: call(model, value), model)
