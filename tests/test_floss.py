"""Gradient flossing (docs/floss.md): the differentiable exponents against the linear closed form,
the no-grad ``lyapunov_exponents`` and finite differences; flossing moves them toward 0; bad
input is refused and a failure part-way leaves the module as it was; `--pretrain floss`."""
import importlib
import json
import math
import re

import pytest
import torch
from _support import NAN, assert_unchanged, raises_cleanly, snapshot
from test_stability import LinearCell
from torch import nn
from torch.func import functional_call

from stablernn import DeepRNN
from stablernn.cli import main
from stablernn.errors import NonFiniteError
from stablernn.stability.floss import (
    FlossOptions,
    FlossReport,
    check_floss_args,
    floss,
    lyapunov_loss,
)
from stablernn.stability.lyapunov import lyapunov_exponents
from stablernn.train import Config, ConfigError, apply_overrides
from stablernn.train.loop import check_pretrain

# the module, not the function `stablernn.stability.floss` that shadows it as an attribute
floss_module = importlib.import_module("stablernn.stability.floss")

F64 = torch.float64


def linear_model(moduli: list[float], seed: int = 0) -> tuple[DeepRNN, torch.Tensor]:
    """``s' = A s + B x`` with ``A = Q diag(moduli) Q^T`` (symmetric, so its Lyapunov
    exponents are exactly ``log |moduli|``), and ``A``."""
    gen = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(len(moduli), len(moduli), generator=gen, dtype=F64))[0]
    A = Q @ torch.diag(torch.tensor(moduli, dtype=F64)) @ Q.T
    return DeepRNN([LinearCell(A, torch.randn(len(moduli), 2, generator=gen, dtype=F64))]), A


def log_moduli(A: torch.Tensor) -> torch.Tensor:
    return torch.linalg.eigvals(A).abs().log().sort(descending=True).values


# ------------------------------------------------------------------ the differentiable exponents
def test_linear_exponents_are_log_eigenvalue_moduli_and_the_loss_their_squares():
    model, A = linear_model([1.1, 0.9, -0.6, 0.3])
    term = lyapunov_loss(model, torch.randn(3, 300, 2, dtype=F64), k=4, discard=30)
    want = log_moduli(A)
    assert torch.allclose(term.exponents, want, atol=1e-3)
    assert term.loss.item() == pytest.approx(float(want.square().sum()), abs=1e-3)
    shifted = lyapunov_loss(model, torch.randn(3, 300, 2, dtype=F64), k=2, discard=30,
                            target=-0.5)
    assert shifted.loss.item() == pytest.approx(float((want[:2] + 0.5).square().sum()),
                                                abs=1e-3)


@pytest.mark.parametrize("make,shape", [
    (lambda: DeepRNN.build("gru", 2, 5, num_layers=2, readout=3).double(), (3, 30, 2)),
    (lambda: nn.LSTM(2, 4, num_layers=2).double(), (30, 3, 2))],  # LSTM: (T, B, D)
    ids=["deep-gru", "torch-lstm"])
def test_exponents_equal_the_no_grad_lyapunov_exponents(make, shape):
    torch.manual_seed(1)
    model, x = make(), torch.randn(*shape, dtype=F64)
    term = lyapunov_loss(model, x, k=5, discard=4, seed=3)
    report = lyapunov_exponents(model, x, k=5, discard=4, seed=3)
    assert term.exponents.requires_grad
    torch.testing.assert_close(term.exponents.detach(), report.exponents, rtol=1e-12, atol=1e-12)


def directional_check(params: list, value, slope_of) -> None:
    """``slope_of(direction)`` (from autograd) against a central difference of ``value()``
    along a random direction of ``params``."""
    gen = torch.Generator().manual_seed(0)
    direction = [torch.randn(p.shape, generator=gen, dtype=F64) for p in params]

    def at(step: float) -> float:
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.add_(step * d)
            out = value()
            for p, d in zip(params, direction, strict=True):
                p.sub_(step * d)
        return out

    eps = 1e-6
    assert (at(eps) - at(-eps)) / (2 * eps) == pytest.approx(slope_of(direction), rel=1e-6)


def test_a_collapsed_direction_keeps_the_live_gradient_exact():
    """Note [collapsed directions]: the eigenvalue 0 kills a tangent direction at every step.
    Its exponent is a large negative number that adds to the loss without a gradient; the live
    exponents keep their values and their exact gradient. (Without the cut the QR of the
    singular ``J Q`` gives a gradient of 1e90 in float64 and NaN in float32.)"""
    model, A = linear_model([1.1, 0.9, 0.5, 0.0], seed=2)
    x = torch.randn(2, 60, 2, dtype=F64)
    term = lyapunov_loss(model, x, k=4, discard=20)
    assert torch.allclose(term.exponents[:3], log_moduli(A)[:3], atol=1e-2)
    assert term.exponents[3].item() < -20
    term.loss.backward()  # the whole loss, the dead exponent's square included
    weight = model.cells[0].A
    assert bool(torch.isfinite(weight.grad).all()) and float(weight.grad.abs().sum()) > 0
    directional_check(  # = the gradient of the live exponents alone
        [weight],
        lambda: lyapunov_loss(model, x, k=4, discard=20).exponents[:3].square().sum().item(),
        lambda d: float((weight.grad * d[0]).sum()))
    single = model.float()
    lyapunov_loss(single, x.float(), k=4, discard=20).loss.backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in single.parameters()
               if p.grad is not None)


def tiny_rnn() -> tuple[DeepRNN, torch.Tensor]:
    torch.manual_seed(2)
    return DeepRNN.build("rnn", 2, 3, num_layers=2).double(), torch.randn(2, 6, 2, dtype=F64)


def test_gradient_matches_gradcheck():
    model, x = tiny_rnn()

    class Loss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return lyapunov_loss(self.net, x, k=3, discard=1).loss

    loss = Loss()
    names = ["net.cells.0.weight_hh", "net.cells.1.weight_hh"]
    weights = tuple(loss.get_parameter(n).detach().clone().requires_grad_() for n in names)
    def of(*w: torch.Tensor) -> torch.Tensor:
        return functional_call(loss, dict(zip(names, w, strict=True)), (x,))

    assert torch.autograd.gradcheck(of, weights, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradient_matches_a_directional_finite_difference_over_every_parameter():
    model, x = tiny_rnn()
    lyapunov_loss(model, x, k=4, discard=1).loss.backward()
    params = list(model.parameters())
    directional_check(
        params, lambda: lyapunov_loss(model, x, k=4, discard=1).loss.item(),
        lambda d: sum(float((p.grad * v).sum()) for p, v in zip(params, d, strict=True)))


@pytest.mark.parametrize("make", [
    lambda: DeepRNN.build("gru", 2, 4, num_layers=2, readout=3),
    lambda: nn.LSTM(2, 4, num_layers=2, batch_first=True)], ids=["deep-gru", "torch-lstm"])
def test_gradient_reaches_every_recurrent_parameter_and_not_the_readout(make):
    torch.manual_seed(3)
    model = make()
    lyapunov_loss(model, torch.randn(4, 20, 2), k=4).loss.backward()
    cells = model.cells if isinstance(model, DeepRNN) else model
    for name, p in cells.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, f"{name} got no gradient"
    if isinstance(model, DeepRNN):
        assert all(p.grad is None for p in model.readout.parameters())


# ------------------------------------------------------------------ flossing
def test_floss_moves_the_exponents_of_a_linear_model_toward_zero():
    model, A = linear_model([1.25, 0.8, -0.5, 0.25], seed=1)
    before, drive = log_moduli(A), model.cells[0].B.detach().clone()
    x = torch.randn(16, 50, 2, dtype=F64)
    report = floss(model, x, k=4, steps=60, lr=2e-2, batch_size=8, window=40, discard=8)
    assert isinstance(report, FlossReport) and report.steps == 60 and report.skipped == 0
    # the held measurement of the untouched model is the closed form (up to the short window)
    assert torch.allclose(report.before.exponents.double(), before, atol=0.05)
    assert report.loss("after") < 0.1 * report.loss("before")
    assert max(map(abs, report.exponents_after)) < 0.5 * max(map(abs, report.exponents_before))
    # and independently of the QR walk: the trained A's eigenvalues moved toward |z| = 1
    after = log_moduli(model.cells[0].A.detach())
    assert float(after.abs().max()) < 0.5 * float(before.abs().max())
    assert float(after.square().sum()) < 0.1 * float(before.square().sum())
    assert torch.equal(model.cells[0].B, drive)  # B never enters the exponents: no gradient


def test_floss_on_a_time_major_torch_gru_changes_its_own_parameters():
    torch.manual_seed(4)
    gru = nn.GRU(2, 6)  # batch_first=False: inputs (T, N, D)
    weight = gru.weight_hh_l0
    before = weight.detach().clone()
    report = floss(gru, torch.randn(25, 12, 2), k=3, steps=12, lr=1e-2, batch_size=6,
                   window=20, seed=1)
    assert gru.weight_hh_l0 is weight and not torch.equal(weight, before)
    assert report.loss("after") < report.loss("before")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["k"] == 3 and data["steps"] == 12 and len(data["losses"]) == 12
    assert len(data["exponents_before"]) == len(data["exponents_after"]) == 3
    report.plot()


def test_floss_is_deterministic_for_a_seed():
    def run() -> dict:
        torch.manual_seed(5)
        model = DeepRNN.build("rnn", 2, 4)
        floss(model, torch.randn(8, 15, 2), k=2, steps=3, lr=1e-2, batch_size=4, seed=7)
        return model.state_dict()

    first, second = run(), run()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_options_dataclass_and_time_budget():
    model = DeepRNN.build("rnn", 2, 4)
    x = torch.randn(8, 15, 2)
    report = floss(model, x, options=FlossOptions(k=2, steps=5, measure=False))
    assert report.before is None and report.after is None and report.loss() is None
    with pytest.raises(ValueError, match="unknown which 'middle'"):
        report.loss("middle")
    snap = snapshot(model)
    report = floss(model, x, k=2, steps=50, max_seconds=1e-9)
    assert report.out_of_time and report.steps == 0 and report.after is report.before
    report.plot()  # nothing to draw but the measurement: no warning
    assert_unchanged(model, snap)


def test_a_non_finite_gradient_skips_the_update(monkeypatch):
    """Note [skipped updates]: a NaN gradient (forward finite) is not taken."""
    model = DeepRNN.build("gru", 2, 4)
    weight = model.cells[0].weight_hh
    original = floss_module._qr_spectrum

    def nan_gradient(net, x, *args):
        out = original(net, x, *args)
        return out + torch.sqrt((weight * 0).sum()) if torch.is_grad_enabled() else out

    monkeypatch.setattr(floss_module, "_qr_spectrum", nan_gradient)
    snap = snapshot(model)
    report = floss(model, torch.randn(8, 15, 2), k=2, steps=2)
    assert report.skipped == 2 and report.to_dict()["skipped"] == 2
    assert_unchanged(model, snap)


# ------------------------------------------------------------------ refusals, all or nothing
def test_bad_arguments_are_refused_before_anything_changes():
    model = DeepRNN.build("gru", 2, 4, num_layers=2)
    x = torch.randn(6, 12, 2)
    bad_x = x.clone()
    bad_x[0, 3, 1] = NAN
    cases = {
        "NaN inputs": (lambda: floss(model, bad_x, steps=1), "NaN or Inf"),
        "NaN inputs, loss": (lambda: lyapunov_loss(model, bad_x), "NaN or Inf"),
        "k too large": (lambda: floss(model, x, k=9), r"k=9 exponents is larger .* k <= 8"),
        "k too large, loss": (lambda: lyapunov_loss(model, x, k=9), "k <= 8"),
        "steps 0": (lambda: floss(model, x, steps=0), "steps must be an int >= 1"),
        "steps float": (lambda: floss(model, x, steps=2.5), "steps must be an int"),
        "lr 0": (lambda: floss(model, x, lr=0), "lr must be > 0"),
        "lr nan": (lambda: floss(model, x, lr=NAN), "lr must be finite"),
        "lr str": (lambda: floss(model, x, lr="big"), "lr must be a number"),
        "batch 0": (lambda: floss(model, x, batch_size=0), "batch_size must be an int >= 1"),
        "discard >= window": (lambda: floss(model, x, window=10, discard=10), "discard=10"),
        "discard >= T": (lambda: floss(model, x, discard=20), "discard=20 must be < 12"),
        "discard >= T, loss": (lambda: lyapunov_loss(model, x, discard=12), "discard=12"),
        "target inf": (lambda: floss(model, x, target=math.inf), "target must be finite"),
        "progress str": (lambda: floss(model, x, progress="yes"), "progress must be True"),
        "unknown option": (lambda: check_floss_args(model, stps=3), "unknown flossing option"),
        "options and keywords": (lambda: floss(model, x, steps=3, options=FlossOptions()),
                                 "not both"),
        "not an RNN": (lambda: floss(nn.Linear(2, 2), x), "no recurrent layers"),
        "window 1": (lambda: floss(model, x, window=1), "window must be an int >= 2"),
    }
    for name, (call, pattern) in cases.items():
        message = raises_cleanly(call, model)
        assert re.search(pattern, message), (name, message)
    frozen = DeepRNN.build("gru", 2, 4).requires_grad_(False)
    assert "no trainable Parameters" in raises_cleanly(lambda: floss(frozen, x), frozen)
    broken = DeepRNN.build("gru", 2, 4)
    with torch.no_grad():
        broken.cells[0].weight_hh[0, 0] = NAN
    for call in (lambda: floss(broken, x), lambda: lyapunov_loss(broken, x),
                 lambda: check_floss_args(broken)):
        assert "NaN/Inf" in raises_cleanly(call, broken)


def test_check_floss_args_validates_without_touching_the_model():
    model = nn.GRU(2, 4)
    snap = snapshot(model)
    assert check_floss_args(model, k=4, steps=3, options=None) is None
    with pytest.raises(ValueError, match="k <= 4"):
        check_floss_args(model, k=5)
    with pytest.raises(TypeError, match="unknown flossing option"):
        check_floss_args(model, rho=0.5)
    assert_unchanged(model, snap)


def test_a_failure_part_way_restores_the_module(monkeypatch):
    """An update that diverges after earlier updates changed the weights: all or nothing."""
    model = nn.LSTM(2, 4, num_layers=2, batch_first=True)
    original, calls = floss_module._qr_spectrum, []

    def overflow_on_third(*args):  # 1: the before measurement, 2: update 1, 3: update 2
        calls.append(1)
        if len(calls) == 3:
            raise NonFiniteError("the state or its tangents became NaN/Inf at step 4")
        return original(*args)

    monkeypatch.setattr(floss_module, "_qr_spectrum", overflow_on_third)
    message = raises_cleanly(lambda: floss(model, torch.randn(6, 12, 2), k=2, steps=5, lr=0.5),
                             model)
    assert re.search("diverged at update 2: .*original weights were restored; lower lr", message)
    assert len(calls) == 3


# ------------------------------------------------------------------ `stablernn train`
TINY = ["--task", "adding", "--size", "smoke", "--layers", "2", "--hidden", "4", "--steps", "2",
        "--set", "run.eval_every=1", "--set", "task.params.T=10", "--set", "run.progress=false",
        "--set", "run.threads=1"]


def test_cli_train_with_floss_pretraining(tmp_path, capsys):
    assert main(["train", "--root", str(tmp_path), *TINY, "--pretrain", "floss",
                 "--set", "pretrain.options.steps=2", "--set", "pretrain.options.k=3"]) == 0
    assert '"status": "completed"' in capsys.readouterr().out
    run = next(tmp_path.iterdir())
    pre = json.loads((run / "summary.json").read_text())["pretrain"]
    assert pre["steps"] == 2 and pre["k"] == 3 and len(pre["exponents_after"]) == 3
    assert pre["loss_after"] < pre["loss_before"] and (run / "pretrained.pt").exists()


def test_cli_refuses_bad_floss_options_before_the_run_directory(tmp_path, capsys):
    assert main(["train", "--root", str(tmp_path), *TINY, "--pretrain", "floss",
                 "--set", "pretrain.options.k=99"]) == 2
    assert "k=99 exponents is larger than the state" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    cfg = apply_overrides(Config(), ["pretrain.method=floss", "pretrain.options.lr=0"])
    with pytest.raises(ConfigError, match="pretrain 'floss': lr must be > 0"):
        check_pretrain(cfg, DeepRNN.build("gru", 1, 4))
