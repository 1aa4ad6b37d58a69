"""Warm-up (docs/algorithms.md section 4): VAA*, soft count, curriculum, partial warm-up, wiring."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from stablernn.cells.base import flatten_state
from stablernn import double_stack
from stablernn.cells.double import DoubleCell, DoubleState, make_double
from stablernn.stability.vaa import vaa
from stablernn.stability.warmup import (
    WarmupOptions,
    check_warmup_args,
    curriculum_length,
    soft_counts,
    vaa_star,
    vaa_star_layers,
    warmup,
    warmup_loss,
)
from stablernn.stack import DeepRNN

CELLS = ["gru", "lstm", "mgu", "brc", "nbrc"]


def _hard_counts(z: torch.Tensor, eps: float) -> torch.Tensor:
    """Independent reference: loop over pairs, count ||z_j - z_i|| < eps."""
    n = len(z)
    return torch.tensor([sum(float((z[j] - z[i]).norm()) < eps for j in range(n))
                         for i in range(n)], dtype=torch.float)


def test_soft_count_equals_hard_count_far_from_eps():
    gen = torch.Generator().manual_seed(1)
    centres = 3 * torch.randn(5, 6, generator=gen)           # well separated (d >> eps)
    z = centres[torch.tensor([0, 0, 0, 1, 2, 2, 3, 4])]
    z = z + 1e-7 * torch.randn(z.shape, generator=gen)       # within a cluster: d << eps
    hard = _hard_counts(z, 1e-4)
    assert torch.equal(hard, torch.tensor([3., 3, 3, 1, 2, 2, 1, 1]))
    torch.testing.assert_close(soft_counts(z, 1e-4), hard, atol=1e-3, rtol=0)
    ref = (1 / _hard_counts(torch.tanh(z), 1e-4)).mean()
    torch.testing.assert_close(vaa_star(z), ref, atol=1e-3, rtol=0)


def test_vaa_star_limits_and_loss():
    assert float(vaa_star(torch.zeros(8, 3))) == pytest.approx(1 / 8)
    assert float(vaa_star(torch.eye(8))) == pytest.approx(1.0, abs=1e-3)
    stars = torch.tensor([0.5, 0.95])
    assert float(warmup_loss(stars, 0.95)) == pytest.approx(0.45 ** 2 / 2)


def test_curriculum_bounds():
    gen = torch.Generator().manual_seed(0)
    assert curriculum_length(0, gen) == 1
    for k in (1, 5, 19, 50):
        high = min(1 + 10 * k, 200)
        draws = [curriculum_length(k, gen, s_max=200, s_increment=10) for _ in range(300)]
        assert min(draws) >= 1 and 0.9 * high <= max(draws) <= high


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_reaches_every_parameter(cell):
    model = DeepRNN.build(cell, 2, 6, 2)
    loss = warmup_loss(vaa_star_layers(model, torch.randn(8, 5, 2), stabilisation=15))
    loss.backward()
    for name, p in model.cells.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


@pytest.mark.parametrize("cell", ["gru", "lstm", "brc"])
def test_partial_gradient_only_to_the_warm_half(cell):
    model = double_stack(cell, 2, 8, 2, readout=1)
    flags = [p.requires_grad for p in model.parameters()]
    vaa_star_layers(model, torch.randn(8, 5, 2), stabilisation=15).sum().backward()
    for layer in model.cells:
        for name, p in layer.first.named_parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
        assert all(p.grad is None for p in layer.second.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags  # unfrozen afterwards


def test_partial_warmup_keeps_the_cold_half():
    model = double_stack("gru", 1, 8, 2)
    cold = {k: v.clone() for k, v in model.state_dict().items() if ".second." in k}
    warm = {k: v.clone() for k, v in model.state_dict().items() if ".first." in k}
    report = warmup(model, torch.randn(16, 6, 1), steps=3, batch_size=8, measure_steps=0)
    state = model.state_dict()
    assert report.partial and report.steps == 3 and report.before is None
    assert all(torch.equal(state[k], v) for k, v in cold.items())
    assert any(not torch.equal(state[k], v) for k, v in warm.items())


@pytest.mark.parametrize("cell", CELLS)
def test_warmup_runs_for_every_cell(cell):
    model = DeepRNN.build(cell, 2, 6, 2, readout=1)
    before = [p.clone() for p in model.cells.parameters()]
    report = warmup(model, torch.randn(12, 5, 2), steps=2, batch_size=6, measure_steps=10)
    assert len(report.history) == 2 and report.vaa_after is not None
    assert any(not torch.equal(a, b) for a, b in zip(before, model.cells.parameters()))


@pytest.mark.parametrize("kind", [nn.GRU, nn.LSTM])
def test_warmup_changes_a_torch_module_in_place(kind):
    module = kind(2, 6, num_layers=2, batch_first=True)
    w = module.weight_hh_l1.detach().clone()
    report = warmup(module, torch.randn(12, 5, 2), steps=2, batch_size=6, measure_steps=0)
    assert report.layers == [0, 1] and not torch.equal(w, module.weight_hh_l1)
    assert isinstance(module, kind)


@pytest.mark.slow
def test_warmup_raises_vaa_of_a_two_layer_gru():
    """Acceptance: 2-layer GRU, H = 64: VAA from ~1/n to >= 0.5 (measure with S = 10000)."""
    model = DeepRNN.build("gru", 1, 64, 2)
    x = torch.randn(32, 20, 1)
    report = warmup(model, x, steps=60, measure_steps=10000)
    assert report.vaa_before <= 2 / 32 and report.attractors_before <= 2
    assert report.vaa_after >= 0.5 and report.attractors_after >= 16
    again = vaa(model, x, time_steps=10000)  # the report's numbers are the shared measure's
    assert again.vaa == pytest.approx(report.vaa_after)
    d = report.to_dict()
    assert d["measure_steps"] == 10000 and d["attractors_after"] == report.attractors_after


def test_report_plot_and_dict():
    pytest.importorskip("matplotlib")
    report = warmup(DeepRNN.build("gru", 1, 4, 1), torch.randn(4, 3, 1), steps=2, batch_size=4,
                    measure_steps=5)
    ax = report.plot()
    assert len(ax.lines) == 2  # one layer + target
    assert set(report.to_dict()) >= {"vaa_before", "vaa_after", "attractors_before",
                                     "attractors_after", "final_vaa_star"}


@pytest.mark.parametrize("kw, match", [
    ({"target": 0.0}, "target must be in"), ({"target": 1.5}, "target must be in"),
    ({"steps": 0}, "steps must be"), ({"batch_size": 1}, "batch_size must be an int >= 2"),
    ({"lr": -1.0}, "lr must be"), ({"layers": [2]}, "layers must be"),
    ({"s_max": 0}, "s_max must be"),
])
def test_bad_options_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        warmup(DeepRNN.build("gru", 1, 4, 2), torch.randn(4, 3, 1), **kw)


def test_bad_inputs_raise():
    model = DeepRNN.build("gru", 1, 4, 1)
    with pytest.raises(ValueError, match="at least 2 sequences"):
        warmup(model, torch.randn(1, 3, 1))
    with pytest.raises(ValueError, match="features"):
        warmup(model, torch.randn(4, 3, 2))
    with pytest.raises(TypeError, match="DeepRNN"):
        warmup(nn.Linear(2, 2), torch.randn(4, 3, 2))


def test_double_cell_matches_its_halves():
    cell = make_double("lstm", 3, 8)
    x = torch.randn(4, 7, 3)
    y, state = cell.forward_sequence(x, cell.initial_state(4))  # fused halves
    s1, s2 = cell.first.initial_state(4), cell.second.initial_state(4)
    y1, s1 = cell.first.forward_sequence(x, s1)   # reference: the halves' step loops
    y2, s2 = cell.second.forward_sequence(x, s2)
    torch.testing.assert_close(y, torch.cat([y1, y2], -1))
    torch.testing.assert_close(state.first, flatten_state(s1))
    assert (DoubleCell(3, 7).first.hidden_size, DoubleCell(3, 7).second.hidden_size) == (4, 3)
    with pytest.raises(ValueError, match="at least 2"):
        DoubleCell(3, 1)
    model = DeepRNN.build("double", 3, 8, 2, half="brc", readout=2)  # the config route
    assert model(x)[0].shape == (4, 7, 2)


@pytest.mark.parametrize("half", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("width", [8, 7])
def test_double_stack_runs_as_one_fused_layer_with_the_halves_values_and_gradients(half, width):
    """Note [fused double]: a stack of double layers is one kernel call on composed weights;
    outputs, final states and gradients equal the halves stepped one time step at a time."""
    from stablernn.cells.fused import stack_kernel

    torch.manual_seed(0)
    model = double_stack(half, 3, width, 2).double()
    assert stack_kernel(model.layers) is not None
    x = torch.randn(5, 9, 3, dtype=torch.float64)
    y, last = model(x)
    state, ys = model.initial_state(5, dtype=torch.float64), []
    for t in range(x.shape[1]):  # reference: each half's own step, per layer
        out = x[:, t]
        for i, cell in enumerate(model.layers):
            s1, s2 = cell.halves(state[i])
            (y1, s1), (y2, s2) = cell.first(out, s1), cell.second(out, s2)
            state[i] = DoubleState(flatten_state(s1), flatten_state(s2))
            out = torch.cat([y1, y2], -1)
        ys.append(out)
    ref = torch.stack(ys, 1)
    torch.testing.assert_close(y, ref)
    for got, want in zip(last, state, strict=True):
        torch.testing.assert_close(got.first, want.first)
        torch.testing.assert_close(got.second, want.second)
    grads = [torch.autograd.grad(out.square().sum(), list(model.parameters()))
             for out in (y, ref)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    assert stack_kernel(double_stack("brc", 3, 8, 2).layers) is None  # no kernel: step path


def test_pretrain_registry_runs_warmup(tmp_path):
    from stablernn.train.config import Config
    from stablernn.train.loop import train

    cfg = Config()
    cfg.task.name, cfg.task.size = "copy_first", "smoke"
    cfg.model.hidden_size, cfg.model.num_layers = 8, 1
    cfg.pretrain.method = "warmup"
    cfg.pretrain.options = {"steps": 2, "measure_steps": 5}
    cfg.run.steps, cfg.run.eval_every, cfg.run.progress = 2, 2, False
    summary = train(cfg, run_dir=tmp_path / "run")
    assert summary["status"] == "completed" and summary["pretrain"]["steps"] == 2


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_options_dataclass_and_deprecated_batch_match_the_keywords():
    x = torch.randn(8, 4, 1)
    runs = []
    for call in (lambda m: warmup(m, x, steps=2, batch_size=4, measure_steps=0),
                 lambda m: warmup(m, x, options=WarmupOptions(steps=2, batch_size=4,
                                                              measure_steps=0))):
        torch.manual_seed(0)
        model = DeepRNN.build("gru", 1, 4, 2)
        runs.append((call(model).history, _weights(model)))
    torch.manual_seed(0)
    model = DeepRNN.build("gru", 1, 4, 2)
    with pytest.warns(DeprecationWarning, match=r"warmup\(batch=\.\.\.\) is deprecated; use "
                      r"batch_size="):
        runs.append((warmup(model, x, steps=2, batch=4, measure_steps=0).history,
                     _weights(model)))
    for history, weights in runs[1:]:
        assert history == runs[0][0]
        assert all(torch.equal(a, b) for a, b in zip(weights, runs[0][1]))
    with pytest.raises(TypeError, match="got both batch= .* and batch_size="):
        warmup(model, x, batch=4, batch_size=4)
    with pytest.raises(TypeError, match="not both; got options and steps"):
        warmup(model, x, steps=3, options=WarmupOptions())
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="batch_size must"):
        check_warmup_args(model, batch=1)


def test_pretrain_registry_maps_the_old_option_name():
    from stablernn.train.config import Config
    from stablernn.train.pretrain import PRETRAIN

    cfg = Config().pretrain
    cfg.options = {"batch": 4, "steps": 2}
    with pytest.warns(DeprecationWarning, match=r"pretrain\.options\.batch is deprecated; use "
                      r"pretrain\.options\.batch_size instead"):
        assert PRETRAIN["warmup"].kwargs(cfg) == {"batch_size": 4, "steps": 2}
