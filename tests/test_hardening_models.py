"""Hardening of the model-side API: every bad argument of init_, critical_init, spectral,
make_task / check_task_params, make_cell / DeepRNN gets one clear ValueError / TypeError, and
the methods that change a module leave it exactly as it was when they fail (docs/robustness.md).
"""
import gzip
import math
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample
from torch import nn
from torch.nn.utils import parametrize

import stablernn
import stablernn.init as init_module
from stablernn import DeepRNN, GRUCell, LSTMCell, RNNCell, critical_init, init_, make_cell
from stablernn.cells import BRCCell, SpectralRNNCell
from stablernn.init import INITS
from stablernn.tasks import check_task_params, make_task

NAN, INF = float("nan"), float("inf")
HYPOTHESIS = settings(max_examples=30, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


# ----- helpers -----------------------------------------------------------------------------
def _parametrised(module: nn.Module) -> list:
    return [(name, sorted(m.parametrizations)) for name, m in module.named_modules()
            if parametrize.is_parametrized(m)]


def snapshot(module: nn.Module) -> dict:
    """Every parameter / buffer (object and a copy of its value), the classes of the modules
    and which tensors are parametrised."""
    return {"tensors": {name: (t, t.detach().clone()) for name, t in
                        [*module.named_parameters(), *module.named_buffers()]},
            "classes": [type(m) for m in module.modules()],
            "parametrised": _parametrised(module)}


def assert_unchanged(module: nn.Module, snap: dict) -> None:
    """Same tensor objects holding the same values; no parametrisation added or left behind."""
    now = dict([*module.named_parameters(), *module.named_buffers()])
    assert set(now) == set(snap["tensors"])
    for name, (obj, value) in snap["tensors"].items():
        assert now[name] is obj, f"{name} was replaced"
        torch.testing.assert_close(now[name].detach(), value, rtol=0, atol=0, equal_nan=True,
                                   msg=f"{name} was changed")
    assert [type(m) for m in module.modules()] == snap["classes"]
    assert _parametrised(module) == snap["parametrised"]


def raises_cleanly(fn, module=None):
    """Call ``fn``; it must raise ValueError / TypeError (one line) and leave ``module``."""
    snap = None if module is None else snapshot(module)
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    message = str(info.value)
    assert message and "\n" not in message
    assert "unexpected keyword" not in message and "not supported between" not in message
    if module is not None:
        assert_unchanged(module, snap)
    return message


# ----- case 1: NaN and other bad options of every init scheme ----------------------------------
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


# ----- case 2: a scheme that does not apply to a later layer -----------------------------------
def _mixed(scheme: str) -> nn.Module:
    """A model whose last layer the scheme does not apply to (the first one it does)."""
    if scheme in ("identity",):
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


class Boom(RuntimeError):
    pass


def _fail_on_call(n: int, fn):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise Boom("interrupted part-way")
        return fn(*args, **kwargs)

    return wrapper


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


# ----- case 3: spectral on several targets ---------------------------------------------------
def test_spectral_already_parametrised_layer_is_found_before_any_change():
    gru = nn.GRU(3, 5, num_layers=3)
    stablernn.spectral(gru, "weight_hh_l2")
    before = {n: p.detach().clone() for n, p in gru.named_parameters()}
    with pytest.raises(ValueError, match="'weight_hh_l2' already has a spectral"):
        stablernn.spectral(gru, "weight_hh")
    assert list(gru.parametrizations) == ["weight_hh_l2"]
    assert all(torch.equal(p, before[n]) for n, p in gru.named_parameters())


def test_spectral_failure_part_way_removes_what_it_added(monkeypatch):
    import stablernn.spectral as sp

    gru = nn.GRU(3, 5, num_layers=3)
    x = torch.randn(4, 2, 3)
    y = gru(x)[0].detach()
    monkeypatch.setattr(sp, "_register", _fail_on_call(3, sp._register))
    snap = snapshot(gru)
    with pytest.raises(Boom):
        stablernn.spectral(gru, "weight_hh")
    assert_unchanged(gru, snap)
    assert type(gru) is nn.GRU and "forward" not in gru.__dict__
    torch.testing.assert_close(gru(x)[0], y, rtol=0, atol=0)  # _flat_weights point back too


@pytest.mark.parametrize("options", [
    {"r": NAN}, {"r": INF}, {"r": "0.1"}, {"sigma_star": NAN}, {"sigma_star": -INF},
    {"sigma_star": 0.001}, {"k": True}, {"k": 2.5}, {"k": 6}, {"k": 0}, {"blocks": 0},
    {"blocks": 2}, {"blocks": 1.0}])
def test_spectral_bad_options_change_nothing(options):
    gru = nn.GRU(3, 5, num_layers=2)
    raises_cleanly(lambda: stablernn.spectral(gru, "weight_hh", **options), gru)


def test_spectral_bad_targets():
    lin = nn.Linear(3, 3)
    raises_cleanly(lambda: stablernn.spectral(lin, 3), lin)
    raises_cleanly(lambda: stablernn.spectral("gru", "weight"))
    with torch.no_grad():
        lin.weight[0, 0] = NAN
    assert "NaN" in raises_cleanly(lambda: stablernn.spectral(lin, "weight"), lin)
    half = nn.Linear(3, 3).half()
    raises_cleanly(lambda: stablernn.spectral(half, "weight"), half)


# ----- case 4: the module and the function under one name ----------------------------------------
def test_spectral_module_and_function_spellings():
    import stablernn.spectral as sp
    from stablernn import spectral as exported
    from stablernn.spectral import spectral as function

    assert sp is exported and callable(sp) and callable(function)
    gru = stablernn.spectral(nn.GRU(2, 4), "weight_hh", r=0.05)  # the package attribute
    U, sigma, _ = sp.spectral_factors(gru, "weight_hh_l0")
    assert U.shape == (3, 4, 4) and sigma.shape == (3, 4)
    assert bool((sigma.abs() <= 1.05 + 1e-6).all())
    lin = exported(nn.Linear(3, 3), "weight")
    assert parametrize.is_parametrized(lin, "weight")
    assert function(nn.Linear(3, 3), "weight").weight.shape == (3, 3)
    assert "sigma_star" in str(__import__("inspect").signature(sp))


# ----- case 5: losses on what a DeepRNN returns ---------------------------------------------------
def test_task_loss_metric_evaluate_accept_a_deeprnn_tuple():
    task = make_task("adding", T=10, size="smoke")
    model = DeepRNN.build("gru", 2, 8, 2, readout=1, readout_mode="last")
    x, y = task.split("valid")
    out = model(x)
    assert isinstance(out, tuple)
    torch.testing.assert_close(task.loss(out, y), task.loss(out[0], y))
    assert task.metric(out, y) == task.metric(out[0], y)
    loss = task.loss(out, y)
    loss.backward()  # still differentiable through the tuple
    assert model.cells[0].weight_hh.grad is not None
    report = task.evaluate(model, "valid", batch_size=16)
    with torch.no_grad():
        expected = float(torch.nn.functional.mse_loss(model(x)[0], y))
    assert report["loss"] == pytest.approx(expected, rel=1e-5)


def test_task_loss_on_a_copy_task_with_readout_all():
    task = make_task("copy", T=5, size="smoke")
    model = DeepRNN.build("lstm", 10, 8, 2, readout=9)
    x, y = task.split("test")
    out = model(x)
    torch.testing.assert_close(task.loss(out, y), task.loss(out[0], y))
    with pytest.raises(TypeError, match="floating-point"):
        task.loss(("not", "a tensor"), y)


# ----- case 7: corrupt data files ------------------------------------------------------------------
def _write_mnist(root, images_raw: bytes | None = None):
    """Valid tiny MNIST IDX files; the train images replaced by ``images_raw`` if given."""
    for prefix, n in (("train", 8), ("t10k", 4)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        raw_i = bytes([0, 0, 8, 3]) + struct.pack(">3I", n, 28, 28) + images.tobytes()
        raw_l = bytes([0, 0, 8, 1]) + struct.pack(">I", n) + labels.tobytes()
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(raw_i)
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(raw_l)
    if images_raw is not None:
        (root / "train-images-idx3-ubyte").write_bytes(images_raw)


@pytest.mark.parametrize("raw, what", [
    (b"\x12\x34\x08\x03" + b"\x00" * 20, "magic"), (b"\x00\x00\x08", "magic"),
    (b"", "magic"), (b"\x00\x00\x08\x03\x00\x00", "header"),
    (bytes([0, 0, 8, 3]) + struct.pack(">3I", 8, 28, 28) + b"\x00" * 100, "truncated"),
    (bytes([0, 0, 8, 3]) + struct.pack(">3I", 2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1), "truncated"),
])
def test_corrupt_mnist_names_the_file(tmp_path, raw, what):
    _write_mnist(tmp_path, raw)
    message = raises_cleanly(lambda: make_task("mnist", root=str(tmp_path), n_valid=2))
    assert "train-images-idx3-ubyte" in message and what in message


def test_corrupt_mnist_gzip_names_the_file(tmp_path):
    _write_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    data = gzip.compress(path.read_bytes())
    path.unlink()
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(data[:len(data) // 2])
    message = raises_cleanly(lambda: make_task("mnist", root=str(tmp_path), n_valid=2))
    assert "train-labels-idx1-ubyte.gz" in message and "gzip" in message


def _write_ptb(root, train: bytes):
    text = b" the cat sat on the mat \n the dog sat <unk> \n" * 4
    for split in ("train", "valid", "test"):
        (root / f"ptb.{split}.txt").write_bytes(train if split == "train" else text)


@pytest.mark.parametrize("raw, what", [(b"", "empty"), (b" \n\t\n", "empty"),
                                       (b"\xff\xfe\x00 cat", "UTF-8")])
def test_corrupt_ptb_names_the_file(tmp_path, raw, what):
    _write_ptb(tmp_path, raw)
    message = raises_cleanly(lambda: make_task("ptb", root=str(tmp_path), T=3))
    assert "ptb.train.txt" in message and what in message


def test_unreadable_text_file_names_it(tmp_path, monkeypatch):
    from stablernn.tasks import lm

    _write_ptb(tmp_path, b" a b c \n" * 5)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lm, "open", denied, raising=False)
    message = raises_cleanly(lambda: make_task("ptb", root=str(tmp_path), T=3))
    assert "ptb.train.txt" in message and "Permission denied" in message


def _shd_file(path, layout: str):
    h5py = pytest.importorskip("h5py")
    if layout == "not hdf5":
        path.write_bytes(b"\x1f\x8b gzip, not gunzipped")
        return
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=np.array([1, 2], dtype=np.uint16))
        if layout == "no spikes":
            return
        if layout == "group":
            f.create_group("spikes/times")
        elif layout == "strings":
            f.create_dataset("spikes/times", data=np.array([b"a", b"b"]))
        f.create_dataset("spikes/units", data=np.array([1, 2], dtype=np.uint16))


@pytest.mark.parametrize("layout, what", [
    ("not hdf5", "HDF5"), ("no spikes", "spikes/times, spikes/units"),
    ("group", "spikes/times"), ("strings", "cannot be read")])
def test_corrupt_shd_names_the_file(tmp_path, layout, what):
    for split in ("train", "test"):
        _shd_file(tmp_path / f"shd_{split}.h5", layout)
    message = raises_cleanly(lambda: make_task("shd", root=str(tmp_path)))
    assert "shd_train.h5" in message and what in message


# ----- case 8 and check_task_params: one home for task parameter checks ---------------------------
@pytest.mark.parametrize("name, params, kind, text", [
    ("adding", {"T": 0}, ValueError, "task 'adding': T must be an int >= 2, got 0"),
    ("adding", {"T": "abc"}, TypeError, "task 'adding': T must be an int, got str ('abc')"),
    ("copy", {"T": 1.0}, TypeError, "task 'copy': T must be an int, got float (1.0)"),
    ("copy", {"n_train": -5}, ValueError, "task 'copy': n_train must be an int >= 1, got -5"),
    ("sl_digits", {"tau": NAN}, ValueError, "task 'sl_digits': tau must be finite, got nan"),
    ("sl_digits", {"threshold": 1.0}, ValueError, "threshold must be < 1"),
    ("shd", {"max_time": -INF}, ValueError, "task 'shd': max_time must be finite, got -inf"),
    ("char_lm", {"valid_frac": 0.5}, ValueError, "valid_frac must be < 0.5"),
    ("digits", {"permuted": 1}, TypeError, "permuted must be bool"),
    ("denoising", {"T": 10}, ValueError, "T must be >= n_marks + gap = 15"),
    ("copy", {"T": 10 ** 9}, ValueError, "lower T or n_train"),
    ("ptb", {"root": "a\0b"}, ValueError, "NUL"),
])
def test_task_parameters_checked_the_same_cheap_way(name, params, kind, text):
    with pytest.raises(kind) as info:
        check_task_params(name, "full", params)
    assert text in str(info.value)
    with pytest.raises(kind) as again:  # the constructor runs the very same checks
        make_task(name, **params)
    assert str(again.value) == str(info.value)


def test_check_task_params_resolves_without_data(tmp_path):
    missing = str(tmp_path / "nowhere")  # no files: check_task_params never reads them
    assert check_task_params("ptb", "smoke", {"root": missing}) == {"root": missing, "T": 20}
    assert check_task_params("sl_digits", params={"tau": 5, "seed": 2})["tau"] == 5.0
    resolved = check_task_params("denoising", "smoke", {"gap": 2})
    assert resolved == make_task("denoising", size="smoke", gap=2).config
    assert check_task_params("copy") == make_task("copy").config
    for bad, kind in [(("copyy",), ValueError), ((3,), TypeError),
                      (("copy", "tiny"), ValueError), (("copy", "full", [1]), TypeError),
                      (("copy", "full", {"size": "smoke"}), ValueError),
                      (("copy", "full", {"seed": -1}), ValueError),
                      (("copy", "full", {"blanks": 3}), ValueError)]:
        with pytest.raises(kind):
            check_task_params(*bad)


# ----- case 9: cells and DeepRNN ---------------------------------------------------------------
@pytest.mark.parametrize("call, kind, text", [
    (lambda: DeepRNN.build("gru", 3, 8, 2, foo=1), ValueError,
     "cell 'gru' has no option foo; valid options: bias"),
    (lambda: make_cell("lstm", 3, 8, nonlinearity="x"), ValueError,
     "cell 'lstm' has no option nonlinearity; valid options: bias"),
    (lambda: make_cell("rnn", 3, 8, nonlinearity="x"), ValueError,
     "unknown nonlinearity 'x'; valid: 'tanh', 'relu', 'sigmoid'"),
    (lambda: make_cell("rnn", 3, 8, nonlinearity=["tanh"]), ValueError, "nonlinearity"),
    (lambda: make_cell("gru", 3, 8, bias="no"), TypeError, "bias must be True or False"),
    (lambda: make_cell("alif", 3, 8, tau=NAN), ValueError, "tau must be finite, got nan"),
    (lambda: make_cell("alif", 3, 8, tau_adapt=-1.0), ValueError, "tau_adapt must be > 0"),
    (lambda: make_cell("alif", 3, 8, b0=INF), ValueError, "b0 must be finite"),
    (lambda: make_cell("alif", 3, 8, spike=1), TypeError, "spike must be a function"),
    (lambda: make_cell("lru", 3, 8, r_min=NAN), ValueError, "r_min must be finite"),
    (lambda: make_cell("lru", 3, 8, r_max=1.5), ValueError, "r_max must be <= 1"),
    (lambda: make_cell("lru", 3, 8, max_phase=0.0), ValueError, "max_phase must be > 0"),
    (lambda: make_cell("lru", 3, 8, state_size=0), ValueError, "state_size"),
    (lambda: make_cell("spectral", 3, 8, r=NAN), ValueError, "r must be finite"),
    (lambda: make_cell("spectral", 3, 8, k=-1), ValueError, "k must be"),
    (lambda: make_cell("double", 3, 8, half="gru", foo=2), ValueError, "no option foo"),
    (lambda: make_cell("double", 3, 8, half=None), TypeError, "half"),
    (lambda: make_cell(None, 3, 8), TypeError, "cell name must be a str"),
    (lambda: DeepRNN.build("gru", 3, 8, dropout=NAN), ValueError, "dropout must be finite"),
    (lambda: DeepRNN.build("gru", 3, 8, dropout="0.1"), TypeError, "dropout must be a number"),
    (lambda: DeepRNN.build("gru", 3, 8, readout="x"), TypeError, "readout must be None"),
    (lambda: DeepRNN.build("gru", 3, 8, fused="yes"), TypeError, "fused must be True"),
    (lambda: DeepRNN([nn.GRU(3, 8)]), TypeError, "from_torch"),
    (lambda: DeepRNN([]), ValueError, "non-empty"),
])
def test_bad_cell_options_name_the_option(call, kind, text):
    with pytest.raises(kind) as info:
        call()
    assert text in str(info.value)


def test_deeprnn_forward_checks_dtype_length_and_states():
    model = DeepRNN.build("lstm", 3, 4, 2)
    x = torch.randn(2, 5, 3)
    raises_cleanly(lambda: model(x.double()))
    raises_cleanly(lambda: model(torch.randn(2, 0, 3)))
    good = model.initial_state(2)
    y, _ = model(x, good)
    bad_batch = [type(s)(*(t[:1] for t in s)) for s in good]
    assert "shape (2, 4)" in raises_cleanly(lambda: model(x, bad_batch))
    raises_cleanly(lambda: model(x, good[:1]))
    raises_cleanly(lambda: model(x, [good[0], (good[1].h,)]))
    raises_cleanly(lambda: model(x, "state"))
    nan_state = [good[0], type(good[1])(good[1].h, torch.full((2, 4), NAN))]
    assert "NaN" in raises_cleanly(lambda: model(x, nan_state))
    plain = [tuple(s) for s in good]  # plain tuples of the right shapes are accepted
    torch.testing.assert_close(model(x, plain)[0], y)
    gru = DeepRNN.build("mgu", 3, 4, 2)  # the loop path (no fused kernel)
    torch.testing.assert_close(gru(x, [tuple(s) for s in gru.initial_state(2)])[0], gru(x)[0])


# ----- case 10: random bad values, property-based -----------------------------------------------
def bad_ints(low: int, *, none: bool = True) -> st.SearchStrategy:
    """Values an int argument ``>= low`` must refuse (None too unless ``none=False``: None
    means "the default" for ``k``, ``blocks``, ``state_size``)."""
    return st.one_of(st.integers(max_value=low - 1), st.floats(allow_nan=True),
                     st.booleans(), st.text(max_size=3), *([st.none()] if none else []),
                     st.sampled_from([NAN, INF, -INF, 2.5, 3.0]))


def bad_floats(low: float | None = None, *, inclusive: bool = False) -> st.SearchStrategy:
    """Values a finite float argument (``> low``, or ``>= low`` if ``inclusive``) must refuse."""
    special = st.sampled_from([NAN, INF, -INF])
    wrong = st.one_of(st.booleans(), st.text(max_size=3), st.none(), st.just([1.0]))
    if low is None:
        return st.one_of(special, wrong)
    below = st.floats(max_value=low, allow_nan=False, allow_infinity=False,
                      exclude_max=inclusive)
    return st.one_of(special, wrong, below)


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


TASK_TARGETS = {
    ("copy", "T"): bad_ints(1), ("adding", "T"): bad_ints(2), ("copy", "n_train"): bad_ints(1),
    ("denoising", "n_marks"): bad_ints(1), ("denoising", "gap"): bad_ints(0),
    ("digits", "pad"): bad_ints(0), ("sl_digits", "tau"): bad_floats(0.0),
    ("sl_digits", "threshold"): st.one_of(bad_floats(0.0), st.floats(min_value=1.0)),
    ("shd", "valid_frac"): st.one_of(bad_floats(0.0), st.floats(min_value=1.0)),
    ("char_lm", "test_frac"): st.one_of(bad_floats(0.0), st.floats(min_value=0.5)),
    ("mnist", "n_valid"): bad_ints(1), ("ptb", "T"): bad_ints(1),
}


@HYPOTHESIS
@given(data=st.data(), target=st.sampled_from(sorted(TASK_TARGETS)))
def test_task_parameters_refuse_bad_numbers(data, target):
    name, key = target
    value = data.draw(TASK_TARGETS[target], label="value")
    first = raises_cleanly(lambda: check_task_params(name, "smoke", {key: value}))
    assert raises_cleanly(lambda: make_task(name, size="smoke", **{key: value})) == first
    assert key in first


CELL_TARGETS = {
    ("gru", "hidden_size"): bad_ints(1), ("lstm", "input_size"): bad_ints(1),
    ("gru", "num_layers"): bad_ints(1), ("gru", "dropout"): st.one_of(
        bad_floats(0.0, inclusive=True), st.floats(min_value=1.0)),
    ("alif", "tau"): bad_floats(0.0), ("alif", "tau_adapt"): bad_floats(0.0),
    ("alif", "beta"): bad_floats(), ("lru", "r_min"): st.one_of(
        bad_floats(0.0, inclusive=True), st.floats(min_value=1.0)),
    ("lru", "max_phase"): bad_floats(0.0), ("lru", "state_size"): bad_ints(1, none=False),
    ("spectral", "r"): bad_floats(0.0), ("spectral", "k"): st.one_of(
        bad_ints(1, none=False), st.integers(min_value=7)),
}


@HYPOTHESIS
@given(data=st.data(), target=st.sampled_from(sorted(CELL_TARGETS)))
def test_cells_refuse_bad_numbers(data, target):
    cell, key = target
    value = data.draw(CELL_TARGETS[target], label="value")
    args = {"input_size": 3, "hidden_size": 6, "num_layers": 2, key: value}
    sizes = [args.pop(k) for k in ("input_size", "hidden_size", "num_layers")]
    assert key in raises_cleanly(lambda: DeepRNN.build(cell, *sizes, **args))
    if key != "num_layers" and key != "dropout":
        assert key in raises_cleanly(lambda: make_cell(cell, *sizes[:2], **args))


def _valid_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _valid_positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


@pytest.mark.parametrize("strategy, valid", [(bad_ints(1), _valid_int),
                                             (bad_floats(0.0), _valid_positive)])
def test_bad_value_strategies_never_draw_a_valid_value(strategy, valid):
    """The property tests mean something only if their strategies never draw a valid value."""
    with pytest.raises(NoSuchExample):
        find(strategy, valid, settings=settings(max_examples=500, database=None))
