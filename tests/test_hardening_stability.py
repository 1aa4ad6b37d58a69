"""Hardening of the stability diagnostics, LSC and warm-up: bad input gets one clear error,
nothing crashes the interpreter, a failed pre-training leaves the model as it was, time
budgets hold, and batch_first=False modules are analysed in their own layout."""
import importlib
import math
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from stablernn import DeepRNN
from stablernn._checks import NonFiniteWeightsError
from stablernn.stability import (
    LocalMap,
    NonFiniteError,
    count_clusters,
    gradient_flow,
    local_maps,
    lyapunov_exponents,
    maps_at,
    radii,
    radius,
    trajectory,
    vaa,
)
from stablernn.stability.lsc import check_lsc_args, lsc_pretrain
from stablernn.stability.warmup import check_warmup_args, vaa_star_layers, warmup

# the modules themselves (stablernn.stability.warmup is also the name of the function)
lsc_mod = importlib.import_module("stablernn.stability.lsc")
warmup_mod = importlib.import_module("stablernn.stability.warmup")


def _gru(batch_first=True, hidden=6, seed=0):
    torch.manual_seed(seed)
    return nn.GRU(3, hidden, 2, batch_first=batch_first)


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _unchanged(model, before):
    after = model.state_dict()
    return set(after) == set(before) and all(
        torch.equal(after[k].isnan(), before[k].isnan())
        and torch.equal(after[k].nan_to_num(), before[k].nan_to_num()) for k in before)


# ---------------------------------------------------------------- 1. NaN weights, eigensolver

CRASH_SCRIPT = textwrap.dedent("""
    import torch
    import stablernn
    from stablernn.stability import (LocalMap, gradient_flow, lyapunov_exponents, maps_at,
                                     radius, radii, vaa)
    from stablernn.stability.lsc import lsc_pretrain
    from stablernn.stability.warmup import warmup
    torch.set_num_threads(1)

    def nan_gru():
        g = torch.nn.GRU(5, 12, 2, batch_first=True)
        g.weight_hh_l0.data[0, 0] = float("nan")
        return g

    def nan_mlp():
        m = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8))
        m[2].weight.data[0, 0] = float("inf")
        return m

    def overflow_rnn():  # finite weights whose relu states overflow float32
        r = torch.nn.RNN(5, 12, 2, nonlinearity="relu", batch_first=True)
        with torch.no_grad():
            for p in r.parameters():
                p.fill_(1e19)
        return r

    # a map whose Jacobian is NaN/Inf: only the eigensolver guard stands in the way
    bad_map = LocalMap("time", 0, lambda s: s * float("inf"), torch.ones(2, 4), 4)
    x = torch.randn(4, 14, 5)
    CASES = {
        "radii": lambda: radii(nan_gru(), x),
        "radii_krylov": lambda: radii(nan_gru(), x, estimator="krylov", k=4),
        "gradient_flow": lambda: gradient_flow(nan_gru(), x),
        "lyapunov": lambda: lyapunov_exponents(nan_gru(), x, k=3),
        "vaa": lambda: vaa(nan_gru(), x, time_steps=10),
        "lsc": lambda: lsc_pretrain(nan_gru(), x, steps=3),
        "lsc_mlp": lambda: lsc_pretrain(nan_mlp(), x[:, 0], steps=3),
        "warmup": lambda: warmup(nan_gru(), x, steps=2, measure_steps=5),
        "maps_at": lambda: maps_at(nan_gru(), x, 3),
        "exact_guard": lambda: radius(bad_map, "exact"),
        "krylov_guard": lambda: radius(bad_map, "krylov", k=2),
        "exact_vectors_guard": lambda: radius(bad_map, "exact", differentiable=True),
        "overflow_radii": lambda: radii(overflow_rnn(), x),
        "overflow_lyapunov": lambda: lyapunov_exponents(overflow_rnn(), x, k=3),
        "overflow_flow": lambda: gradient_flow(overflow_rnn(), x),
    }
    for name, call in CASES.items():
        try:
            call()
            print(name, "|", "no error")
        except (ValueError, TypeError) as err:
            print(name, "|", type(err).__name__, "|", str(err).replace("\\n", " "), flush=True)
""")


def test_nan_weights_and_non_finite_matrices_raise_instead_of_crashing():
    # in a subprocess: a regression would segfault the interpreter (LAPACK SGEBAL on NaN)
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT], capture_output=True, text=True,
                          timeout=300, check=False,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(" | ", 1) for line in proc.stdout.splitlines())
    assert "oneMKL" not in proc.stdout + proc.stderr
    for name in ("radii", "radii_krylov", "gradient_flow", "lyapunov", "vaa", "lsc",
                 "warmup", "maps_at"):
        assert lines[name].startswith("NonFiniteWeightsError | GRU.weight_hh_l0 has 1 NaN/Inf"), \
            (name, lines[name])
    assert lines["lsc_mlp"].startswith("NonFiniteWeightsError | Sequential.2.weight has 1")
    for name in ("exact_guard", "krylov_guard", "exact_vectors_guard"):
        assert lines[name].startswith("NonFiniteError | the ") and "time map of layer 0" in \
            lines[name] and "eigensolver" in lines[name], (name, lines[name])
    for name in ("overflow_radii", "overflow_lyapunov", "overflow_flow"):
        assert lines[name].startswith("NonFiniteError |") and "NaN/Inf at step 0" in \
            lines[name] and "overflow" in lines[name], (name, lines[name])


# ---------------------------------------------------------------- 2. batch_first=False

def _twins():
    a = _gru(True)
    b = _gru(False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 7, 3)  # B=4 != T=7, so a swap cannot go unnoticed
    return a, b, x, x.transpose(0, 1).contiguous()


def test_batch_first_false_radii_match_batch_first_twin():
    a, b, x, xt = _twins()
    ra, rb = radii(a, x), radii(b, xt)
    assert ra.steps == rb.steps == list(range(7))
    assert ra.values == rb.values
    # and the layout is really followed: a time-major module fed batch-first data is another input
    assert radii(b, x).steps == list(range(4))


@pytest.mark.parametrize("fn", [
    lambda m, x: gradient_flow(m, x).norms,
    lambda m, x: lyapunov_exponents(m, x, k=3).per_sample,
    lambda m, x: vaa(m, x, time_steps=30).counts,
    lambda m, x: vaa_star_layers(m, x, stabilisation=5),
    lambda m, x: torch.cat([torch.cat(list(s), -1) for s in trajectory(m, x)[-1]], -1),
    lambda m, x: torch.stack([mp.jacobian() for mp in maps_at(m, x, 3, kinds=["time"])]),
], ids=["gradient_flow", "lyapunov", "vaa", "vaa_star_layers", "trajectory", "maps_at"])
def test_batch_first_false_analyses_match_batch_first_twin(fn):
    a, b, x, xt = _twins()
    torch.testing.assert_close(fn(a, x), fn(b, xt), rtol=0, atol=0)


def test_batch_first_false_pretraining_matches_batch_first_twin():
    a, b, x, xt = _twins()
    ra = lsc_pretrain(a, x, steps=4, eval_steps=2, lr=1e-2)
    rb = lsc_pretrain(b, xt, steps=4, eval_steps=2, lr=1e-2)
    assert ra.before == rb.before and ra.after == rb.after and ra.history == rb.history
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    a, b, x, xt = _twins()
    wa = warmup(a, x, steps=3, batch_size=4, measure_steps=10)
    wb = warmup(b, xt, steps=3, batch_size=4, measure_steps=10)
    assert wa.history == wb.history and wa.vaa_after == wb.vaa_after
    assert all(torch.equal(va, vb) for va, vb in zip(a.state_dict().values(),
                                                     b.state_dict().values()))


# ---------------------------------------------------------------- 3. empty batch / sequence

ANALYSES = {
    "radii": lambda m, x: radii(m, x),
    "gradient_flow": lambda m, x: gradient_flow(m, x),
    "lyapunov": lambda m, x: lyapunov_exponents(m, x, k=2),
    "vaa": lambda m, x: vaa(m, x, time_steps=5),
    "lsc": lambda m, x: lsc_pretrain(m, x, steps=2),
    "warmup": lambda m, x: warmup(m, x, steps=2, measure_steps=5),
    "maps_at": lambda m, x: maps_at(m, x, 0),
    "trajectory": lambda m, x: trajectory(m, x),
}


@pytest.mark.parametrize("name", sorted(ANALYSES))
@pytest.mark.parametrize("batch_first", [True, False])
def test_empty_batch_or_sequence_raises(name, batch_first):
    model = _gru(batch_first)
    before = _snapshot(model)
    empty_batch = torch.randn(0, 5, 3) if batch_first else torch.randn(5, 0, 3)
    with pytest.raises(ValueError, match=r"inputs? is empty: batch size 0|x is empty: batch size"):
        ANALYSES[name](model, empty_batch)
    no_steps = torch.randn(4, 0, 3) if batch_first else torch.randn(0, 4, 3)
    with pytest.raises(ValueError, match="is empty: no time steps"):
        ANALYSES[name](model, no_steps)
    assert _unchanged(model, before)


# ---------------------------------------------------------------- 4./5. LSC and warm-up options

@pytest.mark.parametrize("kw, error, match", [
    ({"lr": math.inf}, ValueError, "lr must be finite, got inf"),
    ({"lr": math.nan}, ValueError, "lr must be finite"),
    ({"lr": True}, TypeError, "lr must be a number, got bool"),
    ({"tol": 0}, ValueError, "tol must be > 0"),
    ({"weight_decay": -1e-3}, ValueError, "weight_decay must be >= 0"),
    ({"steps": 2.0}, TypeError, "steps must be an int, got float"),
    ({"rho": math.nan}, ValueError, "rho must be a positive number"),
    ({"targets": {"time": math.inf}}, ValueError, r"targets\['time'\] must be finite"),
    ({"targets": 0.5}, TypeError, "targets must be None or a dict"),
    ({"estimator": "eig"}, ValueError, "unknown estimator 'eig'"),
    ({"eval_estimator": None}, ValueError, "unknown eval_estimator None"),
    ({"method": "magic"}, ValueError, "unknown method 'magic'"),
    ({"method": "rescale"}, ValueError, "gradient-free LRU variant"),
    ({"k": 0}, ValueError, "k must be an int >= 1"),
    ({"seed": 1.5}, TypeError, "seed must be an int"),
    ({"seed": 2 ** 70}, ValueError, "seed must be an int <="),
    ({"seed": -1}, ValueError, "seed must be an int >= 0"),
    ({"progress": "yes"}, TypeError, "progress must be True or False"),
    ({"rescale": 1}, TypeError, "rescale must be True or False"),
    ({"eval_steps": 0}, ValueError, "eval_steps must be an int >= 1, got 0"),
    ({"max_seconds": -1}, ValueError, "max_seconds must be > 0"),
    ({"max_seconds": math.inf}, ValueError, "max_seconds must be finite"),
    ({"patience": False}, TypeError, "patience must be an int, got bool"),
])
def test_lsc_options_are_checked_before_anything_runs(kw, error, match):
    model = _gru()
    before = _snapshot(model)
    x = torch.randn(4, 5, 3)
    with pytest.raises(error, match=match) as raised:
        lsc_pretrain(model, x, **{"steps": 3, **kw})
    assert _unchanged(model, before)
    # check_lsc_args is the one home of these checks: same type, same message, no work done
    kw = dict(kw)
    rho = kw.pop("rho", 0.5)
    with pytest.raises(error) as checked:
        check_lsc_args(model, rho=rho, **kw)
    assert str(checked.value) == str(raised.value)
    assert _unchanged(model, before)


@pytest.mark.parametrize("kw, error, match", [
    ({"lr": math.inf}, ValueError, "lr must be finite"),
    ({"target": math.nan}, ValueError, "target must be in"),
    ({"eps": 0}, ValueError, "eps must be > 0"),
    ({"steps": True}, TypeError, "steps must be an int, got bool"),
    ({"batch_size": 2.0}, TypeError, "batch_size must be an int"),
    ({"s_increment": -1}, ValueError, "s_increment must be an int >= 0"),
    ({"measure_steps": 1.5}, TypeError, "measure_steps must be an int"),
    ({"layers": [2]}, ValueError, "layers must be"),
    ({"layers": "0"}, TypeError, "layers must be"),
    ({"seed": "a"}, TypeError, "seed must be an int"),
    ({"max_seconds": 0}, ValueError, "max_seconds must be > 0"),
    ({"progress": None}, TypeError, "progress must be True or False"),
])
def test_warmup_options_are_checked_before_anything_runs(kw, error, match):
    model = _gru()
    before = _snapshot(model)
    with pytest.raises(error, match=match) as raised:
        warmup(model, torch.randn(4, 5, 3), **{"steps": 2, "measure_steps": 5, **kw})
    with pytest.raises(error) as checked:
        check_warmup_args(model, **kw)
    assert str(checked.value) == str(raised.value)
    assert _unchanged(model, before)


def test_check_args_accept_good_options_and_refuse_bad_ones():
    model = _gru()
    with pytest.raises(TypeError, match=r"unknown LSC option\(s\) speed; valid: rho, targets, "
                       r"estimator, k, method, steps, optimizer, lr, .*, seed, progress$"):
        check_lsc_args(model, speed=1)
    with pytest.raises(TypeError, match=r"unknown warm-up option\(s\) rho; valid: target, "
                       r"steps, lr, .*, max_seconds, seed, progress$"):
        check_warmup_args(model, rho=0.5)
    check_lsc_args(model, rho="unbalanced", steps=10, lr=None, max_seconds=5.0, k=None)
    check_warmup_args(model, steps=10, layers=[1], max_seconds=2)
    mlp = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4))
    check_lsc_args(mlp, steps=10)
    with pytest.raises(ValueError, match="gradient-free LRU variant"):
        check_lsc_args(mlp, method="rescale")
    with pytest.raises(TypeError, match="no recurrent layers"):
        check_lsc_args(nn.Conv1d(3, 3, 1))
    with pytest.raises(TypeError, match="no recurrent layers"):
        check_warmup_args(nn.Conv1d(3, 3, 1))
    model.weight_ih_l1.data[1, 1] = math.nan
    with pytest.raises(NonFiniteWeightsError, match="weight_ih_l1"):
        check_lsc_args(model)
    with pytest.raises(NonFiniteWeightsError, match="weight_ih_l1"):
        check_warmup_args(model)


def test_lsc_divergence_part_way_restores_the_original_weights(monkeypatch):
    model = _gru()
    before = _snapshot(model)
    real, calls = lsc_mod.radius_all, []

    def nan_on_third_update(maps, *args, **kw):  # one call per map, 4 maps per update
        calls.append(1)
        out = real(maps, *args, **kw)
        return [r * math.nan for r in out] if len(calls) > 8 else out

    monkeypatch.setattr(lsc_mod, "radius_all", nan_on_third_update)
    with pytest.raises(NonFiniteError, match=r"diverged at update 3: the radii of input 0, .* "
                       r"became NaN/Inf\. The model's original weights were restored; lower lr "
                       r"\(now 0\.5\)"):
        lsc_pretrain(model, torch.randn(4, 5, 3), steps=10, eval_steps=2)
    assert len(calls) > 8 and _unchanged(model, before)

    def interrupt(maps, *args, **kw):  # Ctrl-C during the third update
        calls.append(1)
        if len(calls) > 10:
            raise KeyboardInterrupt
        return real(maps, *args, **kw)

    calls.clear()
    monkeypatch.setattr(lsc_mod, "radius_all", interrupt)
    with pytest.raises(KeyboardInterrupt):
        lsc_pretrain(model, torch.randn(4, 5, 3), steps=10, eval_steps=2)
    assert _unchanged(model, before)


def test_lsc_with_a_huge_lr_raises_and_restores():
    model = _gru()
    before = _snapshot(model)
    with pytest.raises(NonFiniteError, match="lower lr"):
        lsc_pretrain(model, torch.randn(4, 5, 3), steps=20, eval_steps=2, optimizer="adamw",
                     lr=1e30)
    assert _unchanged(model, before)


def test_warmup_divergence_part_way_restores_the_original_weights(monkeypatch):
    model = _gru()
    before = _snapshot(model)
    real, calls = warmup_mod.warmup_loss, []

    def nan_at_step_3(stars, target):
        calls.append(1)
        return real(stars, target) * (math.nan if len(calls) == 3 else 1.0)

    monkeypatch.setattr(warmup_mod, "warmup_loss", nan_at_step_3)
    with pytest.raises(NonFiniteError, match=r"warm-up diverged at step 3: the loss became nan"
                       r"\. The model's original weights were restored; lower lr") as err:
        warmup(model, torch.randn(4, 5, 3), steps=5, measure_steps=5)
    assert isinstance(err.value, FloatingPointError)  # the error warm-up raised before
    assert _unchanged(model, before)


def test_eval_steps_are_measured_honestly():
    report = lsc_pretrain(_gru(), torch.randn(4, 9, 3), steps=2, eval_steps=1, lr=1e-4)
    assert report.measured_steps == [0] and set(report.before) == set(report.after)
    assert len(report.before) == 4 and math.isfinite(report.max_error())
    report = lsc_pretrain(_gru(), torch.randn(4, 9, 3), steps=2, eval_steps=3, lr=1e-4)
    assert report.measured_steps == [0, 4, 8]


# ---------------------------------------------------------------- 6. time budgets

# Budgets of a few seconds: 10 % of the budget plus a fixed slack for one clock check that
# lands after a slow step on a loaded CI machine (bigger budgets are measured in docs/lsc.md).
BUDGET, SLACK = 2.0, 0.5


@pytest.fixture(scope="module")
def optimiser_imported():
    # torch imports its compiler stack (~1-10 s on a loaded machine) the first time any
    # optimiser is built in a process; a fresh interpreter pays it once, whatever the budget
    torch.optim.AdamW([nn.Parameter(torch.zeros(1))])


def test_lsc_honours_max_seconds_including_measurements(optimiser_imported):
    torch.manual_seed(0)
    model = nn.GRU(3, 48, 2, batch_first=True)  # ~0.05-0.3 s per update, by machine load
    x = torch.randn(16, 40, 3)
    t0 = time.perf_counter()
    report = lsc_pretrain(model, x, steps=10_000, max_seconds=BUDGET, tol=1e-6, batch_size=8,
                          estimator="exact")
    wall = time.perf_counter() - t0
    assert wall <= 1.1 * BUDGET + SLACK, (wall, report.steps, report.update_seconds)
    assert report.seconds <= wall and report.out_of_time and not report.converged
    assert 1 <= report.steps < 10_000 and report.after and report.measured_steps
    assert "stopped at its time budget" in report.message


def test_lsc_budget_cuts_a_long_measurement_short(optimiser_imported):
    torch.manual_seed(0)
    model = nn.GRU(3, 32, 2, batch_first=True)
    x = torch.randn(8, 400, 3)
    t0 = time.perf_counter()
    report = lsc_pretrain(model, x, steps=10_000, max_seconds=BUDGET, eval_steps=400,
                          batch_size=8, estimator="exact")
    wall = time.perf_counter() - t0
    assert wall <= 1.1 * BUDGET + SLACK, wall
    assert 1 <= len(report.measured_steps) < 400
    assert report.measured_steps[0] == 0  # walked in a spread order: 0, 256, 128, 384, ...
    assert len(report.measured_steps) == 1 or max(report.measured_steps) >= 256
    assert set(report.before) == set(report.after)


def test_warmup_honours_max_seconds(optimiser_imported):
    torch.manual_seed(0)
    model = nn.GRU(3, 16, 2, batch_first=True)
    t0 = time.perf_counter()
    report = warmup(model, torch.randn(16, 20, 3), steps=10_000, s_max=100_000,
                    s_increment=1_000, measure_steps=200, max_seconds=BUDGET)
    wall = time.perf_counter() - t0
    assert wall <= 1.1 * BUDGET + SLACK, (wall, report.steps)
    assert report.out_of_time and 1 <= report.steps < 10_000 and report.after is not None


# ---------------------------------------------------------------- other bad input

def test_other_bad_inputs_get_clear_errors():
    model = DeepRNN.build("gru", 3, 6, 2)
    x = torch.randn(4, 5, 3)
    m = maps_at(model, x, 1)[1]
    with pytest.raises(ValueError, match="restarts must be an int >= 0"):
        radius(m, "krylov", restarts=-1)
    with pytest.raises(ValueError, match="probes must be an int >= 1"):
        radius(m, "msv", probes=0)
    with pytest.raises(TypeError, match="expected a LocalMap"):
        radius(torch.eye(3))
    with pytest.raises(TypeError, match="steps must be None or a non-empty list"):
        radii(model, x, time_steps=[])
    with pytest.raises(ValueError, match="max_readout must be an int >= 0"):
        radii(model, x, max_readout=-1)
    with pytest.raises(TypeError, match="kinds must be None"):
        radii(model, x, kinds=5)
    with pytest.raises(TypeError, match="k must be an int, got float"):
        radii(model, x, k=2.5)
    with pytest.raises(TypeError, match="discard must be an int, got bool"):
        lyapunov_exponents(model, x, discard=True)
    with pytest.raises(ValueError, match="eps must be finite"):
        vaa(model, x, eps=math.nan)
    with pytest.raises(TypeError, match="steps must be an int, got bool"):
        vaa(model, x, time_steps=True)
    with pytest.raises(NonFiniteError, match="loss returned nan"):
        gradient_flow(model, x, loss=lambda y: y.sum() * math.nan)
    with pytest.raises(TypeError, match="loss must be None or a function"):
        gradient_flow(model, x, loss=5)
    with pytest.raises(TypeError, match="x is torch.float64 .* weights are torch.float32"):
        radii(model, x.double())
    with pytest.raises(ValueError, match=r"x must have shape \(time, batch, features\)"):
        radii(_gru(False), x[0])
    with pytest.raises(TypeError, match="square boolean tensor"):
        count_clusters(torch.ones(3, 2))
    bad_states = model.initial_state(4)
    bad_states[1] = bad_states[1]._replace(h=bad_states[1].h * math.nan)
    with pytest.raises(ValueError, match=r"states\[1\] contains NaN"):
        local_maps(model, x[:, 0], bad_states)
    with pytest.raises(TypeError, match="z must be a float tensor"):
        warmup_mod.soft_counts(torch.zeros(3))
    custom = LocalMap("time", 0, lambda s: s, torch.ones(2, 3), 3)
    assert torch.equal(radius(custom, "exact"), torch.ones(2))  # a good map still works


# ---------------------------------------------------------------- 8. property test

NAN, INF = math.nan, math.inf
BAD_POOL = [NAN, INF, -INF, -1, 0, -1.5, 1.5, 0.5, True, False, "a", "", None, [1], 2 ** 70,
            10 ** 30, -2 ** 70, 1e300, 1e-300, 2]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


VALID = {  # kind of argument -> predicate of the values it accepts
    "int1": lambda v: _is_int(v) and v >= 1,
    "int0": lambda v: _is_int(v) and v >= 0,
    "int2": lambda v: _is_int(v) and v >= 2,
    "k_lyapunov": lambda v: v is None or (_is_int(v) and 1 <= v <= 6),  # <= the state width
    "discard": lambda v: _is_int(v) and 0 <= v <= 3,  # T = 4 steps
    "opt_int1": lambda v: v is None or (_is_int(v) and v >= 1),
    "pos": lambda v: _is_num(v) and math.isfinite(v) and v > 0,
    "nonneg": lambda v: _is_num(v) and math.isfinite(v) and v >= 0,
    "opt_pos": lambda v: v is None or (_is_num(v) and math.isfinite(v) and v > 0),
    "target01": lambda v: _is_num(v) and math.isfinite(v) and 0 < v <= 1,
    "rho": lambda v: v == "unbalanced" or (_is_num(v) and math.isfinite(v) and v > 0),
    "flag": lambda v: isinstance(v, bool),
    "seed": lambda v: _is_int(v) and 0 <= v <= 2 ** 64 - 2,
}

TARGETS = {  # function -> {argument: kind}
    "radii": {"seed": "seed", "k": "opt_int1", "max_readout": "int0"},
    "lyapunov": {"k": "k_lyapunov", "discard": "discard", "seed": "seed"},
    "vaa": {"steps": "int1", "eps": "pos", "seed": "seed"},
    "lsc": {"rho": "rho", "lr": "pos", "tol": "pos", "weight_decay": "nonneg", "steps": "int1",
            "batch_size": "int1", "patience": "int1", "k": "opt_int1", "seed": "seed",
            "eval_steps": "int1", "max_seconds": "opt_pos", "rescale": "flag",
            "shuffle": "flag", "progress": "flag"},
    "warmup": {"target": "target01", "steps": "int1", "lr": "pos", "batch_size": "int2",
               "s_max": "int1", "s_increment": "int0", "eps": "pos", "measure_steps": "int0",
               "max_seconds": "opt_pos", "seed": "seed", "progress": "flag",
               "repulsion": "nonneg"},
}
CALLS = {
    "radii": lambda m, x, kw: radii(m, x, **kw),
    "gradient_flow": lambda m, x, kw: gradient_flow(m, x, **kw),
    "lyapunov": lambda m, x, kw: lyapunov_exponents(m, x, **{"k": 2, **kw}),
    "vaa": lambda m, x, kw: vaa(m, x, **{"time_steps": 5, **kw}),
    "lsc": lambda m, x, kw: lsc_pretrain(m, x, **{"steps": 2, "eval_steps": 1, **kw}),
    "warmup": lambda m, x, kw: warmup(m, x, **{"steps": 2, "measure_steps": 3, **kw}),
}
BAD_TENSORS = {
    "nan": lambda x: x.index_fill(0, torch.tensor([1]), NAN),
    "inf": lambda x: x.index_fill(1, torch.tensor([2]), -INF),
    "rank2": lambda x: x[0],
    "rank4": lambda x: x[None],
    "empty batch": lambda x: x[:0],
    "no steps": lambda x: x[:, :0],
    "width": lambda x: x[..., :2],
    "int": lambda x: x.long(),
    "float64": lambda x: x.double(),
    "not a tensor": lambda x: x.tolist(),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fn=st.sampled_from(sorted(TARGETS)), data=st.data())
def test_property_bad_numbers_raise_and_leave_the_model_unchanged(fn, data):
    arg = data.draw(st.sampled_from(sorted(TARGETS[fn])), label="argument")
    value = data.draw(st.one_of(st.sampled_from(BAD_POOL),
                                st.floats(allow_nan=True, allow_infinity=True),
                                st.integers(-2 ** 80, 2 ** 80)), label="value")
    assume(not VALID[TARGETS[fn][arg]](value))
    model = _gru(hidden=3)
    before = _snapshot(model)
    with pytest.raises((ValueError, TypeError)) as err:
        CALLS[fn](model, torch.randn(3, 4, 3), {arg: value})
    assert "\n" not in str(err.value) and arg in str(err.value)
    assert _unchanged(model, before)


@settings(max_examples=40, deadline=None)
@given(fn=st.sampled_from(sorted(CALLS)), bad=st.sampled_from(sorted(BAD_TENSORS)),
       batch_first=st.booleans())
def test_property_bad_tensors_raise_and_leave_the_model_unchanged(fn, bad, batch_first):
    model = _gru(batch_first, hidden=3)
    before = _snapshot(model)
    x = torch.randn(3, 4, 3) if batch_first else torch.randn(4, 3, 3)
    with pytest.raises((ValueError, TypeError)) as err:
        CALLS[fn](model, BAD_TENSORS[bad](x), {})
    assert "\n" not in str(err.value)
    assert _unchanged(model, before)
