"""Warm-up's way out of a collapsed layer (Note [collapse penalty] in stablernn.stability.warmup):
on an LSTM whose final states all lie within eps, the soft count's loss has zero gradient and
the collapse penalty a non-zero one, which then lifts VAA* above 1/n."""
from __future__ import annotations

import math

import pytest
import torch

from stablernn.stability.warmup import (
    EPS,
    WarmupOptions,
    _final_states,
    check_warmup_args,
    collapse_penalty,
    vaa_star,
    vaa_star_layers,
    warmup,
    warmup_loss,
)
from stablernn.stack import DeepRNN


def _reference_penalty(z: torch.Tensor, eps: float) -> float:
    """Independent reference: a loop over pairs of the tanh-squashed states."""
    t = torch.tanh(z.double())
    terms = [max(0.0, math.log(eps) - math.log(float((t[i] - t[j]).norm()) + 1e-30))
             for i in range(len(t)) for j in range(i + 1, len(t))]
    return sum(terms) / len(terms)


def test_collapse_penalty_matches_the_pairwise_reference():
    gen = torch.Generator().manual_seed(0)
    far = 3 * torch.randn(4, 5, generator=gen, dtype=torch.float64)
    assert float(collapse_penalty(far)) == 0.0
    z = torch.cat([far, far[:2] + 1e-7 * torch.randn(2, 5, generator=gen, dtype=torch.float64),
                   far[:1]])  # two pairs within eps and one exact duplicate
    assert float(collapse_penalty(z, 1e-4)) == pytest.approx(_reference_penalty(z, 1e-4),
                                                             rel=1e-9)
    with pytest.raises(TypeError, match="final_states must be"):
        collapse_penalty(torch.zeros(1, 3))


def _collapsed_lstm() -> tuple[DeepRNN, torch.Tensor]:
    """A one-layer LSTM that forgets in one step: forget gate shut, recurrent weights tiny, so
    after one constant-input step every reachable state is within ~1e-6 (< eps) of the others,
    yet not exactly equal."""
    torch.manual_seed(0)
    model = DeepRNN.build("lstm", 1, 8, 1).double()
    cell = model.layers[0]
    with torch.no_grad():
        cell.weight_hh.mul_(1e-5)
        cell.bias_ih[cell.gate_rows("f")] = -30.0
    return model, torch.randn(32, 10, 1, dtype=torch.float64)


def test_old_loss_is_flat_on_a_collapsed_lstm_and_the_penalty_is_not():
    model, x = _collapsed_lstm()
    (z,) = _final_states(model, x, 1, [0], torch.Generator().manual_seed(0))
    d = torch.pdist(torch.tanh(z.detach()))
    assert float(d.max()) < EPS and float(d.min()) > 0  # collapsed, not identical
    assert float(vaa_star(z.detach())) == pytest.approx(1 / 32)
    params = list(model.parameters())
    old = torch.autograd.grad(warmup_loss(vaa_star(z)[None]), params, retain_graph=True,
                              allow_unused=True)
    assert all(g is None or bool((g == 0).all()) for g in old)  # the flat region
    new = torch.autograd.grad(warmup_loss(vaa_star(z)[None]) + 0.1 * collapse_penalty(z),
                              params, allow_unused=True)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in new)


def test_repulsion_leaves_the_collapse_where_the_paper_loss_stays():
    """s_increment = 0: every step uses S = 1, where the LSTM above is collapsed."""
    results = {}
    for repulsion in (0.0, 0.1):
        model, x = _collapsed_lstm()
        before = [p.detach().clone() for p in model.parameters()]
        warmup(model, x, steps=20, s_increment=0, measure_steps=0, repulsion=repulsion)
        star = float(vaa_star_layers(model, x, stabilisation=1, seed=5).detach())
        moved = any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
        results[repulsion] = (star, moved)
    assert results[0.0] == (pytest.approx(1 / 32), False)  # zero gradient: Adam never moves
    assert results[0.1][1] and results[0.1][0] > 0.5


@pytest.mark.parametrize("bad, error", [(-0.1, ValueError), (math.nan, ValueError),
                                         (math.inf, ValueError), (True, TypeError),
                                         ("0.1", TypeError)])
def test_bad_repulsion_is_refused_naming_it(bad, error):
    with pytest.raises(error, match="repulsion"):
        WarmupOptions(repulsion=bad)
    with pytest.raises(error, match="repulsion"):
        check_warmup_args(torch.nn.LSTM(1, 4), repulsion=bad)


def test_repulsion_zero_is_the_paper_loss_and_reaches_the_history():
    x = torch.randn(8, 5, 1)
    runs = []
    for kw in ({}, {"repulsion": 0.0}, {"repulsion": 0.5}):
        torch.manual_seed(0)
        model = DeepRNN.build("lstm", 1, 4, 2)
        runs.append((warmup(model, x, steps=2, batch_size=4, measure_steps=0, **kw).history,
                     [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0] and "penalty" not in runs[0][0][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    assert len(runs[2][0][0]["penalty"]) == 2
    assert WarmupOptions(repulsion=0.5).repulsion == 0.5


def test_pretrain_options_carry_repulsion_into_the_run_hash():
    from stablernn.train.config import Config, config_hash
    from stablernn.train.pretrain import PRETRAIN

    a, b = Config(), Config()
    a.pretrain.method = b.pretrain.method = "warmup"
    b.pretrain.options = {"repulsion": 0.1}
    assert PRETRAIN["warmup"].kwargs(b.pretrain) == {"repulsion": 0.1}
    assert config_hash(a) != config_hash(b)
