"""Warm-up and the VAA measure through the fused kernels (Note [fused VAA runs] in
stablernn.stability.vaa): the same values and gradients as the Python step path."""
from __future__ import annotations

import pytest
import torch

from stablernn import double_stack
from stablernn.stability.vaa import CHUNK, reachable_states, vaa
from stablernn.stability.warmup import _final_states, vaa_star_layers, warmup, warmup_loss
from stablernn.stack import DeepRNN

FUSED = ["lstm", "gru", "rnn"]


def _twins(build, recurrent_scale: float = 1.0):
    """The same weights twice: one stack with the fused path, one stepping in Python
    (``recurrent_scale`` > 1 makes the dynamics less contracting)."""
    torch.manual_seed(0)
    fused = build(True).double()
    with torch.no_grad():
        for name, p in fused.named_parameters():
            if "weight_hh" in name:
                p.mul_(recurrent_scale)
    stepped = build(False).double()
    stepped.load_state_dict(fused.state_dict())
    return fused, stepped


def _grads(model):
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def _reference_reachable(model, x, cut):
    """Independent reference: each sequence run alone on its own prefix, layer by layer."""
    out = [[] for _ in model.layers]
    for i in range(len(x)):
        states = model.initial_state(1, dtype=x.dtype)
        for t in range(int(cut[i])):
            inp = x[i:i + 1, t]
            for layer, cell in enumerate(model.layers):
                inp, states[layer] = cell(inp, states[layer])
        for layer, s in enumerate(states):
            out[layer].append(s)
    return [[torch.cat(f) for f in zip(*rows, strict=True)] for rows in out]


@pytest.mark.parametrize("cell", FUSED)
def test_reachable_states_fused_match_one_sequence_at_a_time(cell):
    fused, stepped = _twins(lambda f: DeepRNN.build(cell, 2, 5, 2, fused=f))
    x = torch.randn(7, 9, 2, dtype=torch.float64)
    cut = torch.tensor([9, 1, 4, 4, 7, 2, 9])
    ref = _reference_reachable(stepped, x, cut)
    for model in (fused, stepped):
        for got, want in zip(reachable_states(model, x, cut), ref, strict=True):
            for g, w in zip(got, want, strict=True):
                torch.testing.assert_close(g, w)


@pytest.mark.parametrize("cell", FUSED)
@pytest.mark.parametrize("S", [1, CHUNK + 7])
def test_vaa_star_and_its_gradient_are_the_same_fused_or_stepped(cell, S):
    fused, stepped = _twins(lambda f: DeepRNN.build(cell, 2, 6, 2, fused=f), 2.0)
    x = torch.randn(8, 12, 2, dtype=torch.float64)
    with torch.no_grad():  # eps between the two middle distances: pairs on both sides, a live
        # gradient, and no pair at the soft count's kink d = eps (where rounding picks the side)
        z = torch.tanh(_final_states(stepped, x, S, [0, 1], torch.Generator().manual_seed(3))[1])
        d = torch.pdist(z).sort().values
        eps = float(d[len(d) // 2 - 1:len(d) // 2 + 1].mean())
    stars = []
    for model in (fused, stepped):
        v = vaa_star_layers(model, x, stabilisation=S, eps=eps, seed=3)
        warmup_loss(v).backward()
        stars.append(v.detach())
    torch.testing.assert_close(stars[0], stars[1])
    for a, b in zip(_grads(fused), _grads(stepped), strict=True):
        torch.testing.assert_close(a, b)
    assert any(bool(g.abs().sum() > 0) for g in _grads(fused))


def test_partial_warmup_constant_run_is_fused_and_exact():
    """Double layers: the reachable states through the composed kernel (Note [fused double]),
    the warm half's constant-input run through its own; same numbers as stepping."""
    fused, stepped = _twins(lambda f: double_stack("lstm", 2, 8, 2, fused=f))
    x = torch.randn(8, 6, 2, dtype=torch.float64)
    for model in (fused, stepped):
        warmup_loss(vaa_star_layers(model, x, stabilisation=20, eps=1e-2)).backward()
    for a, b in zip(_grads(fused), _grads(stepped), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_vaa_measure_is_the_same_fused_or_stepped(cell):
    fused, stepped = _twins(lambda f: DeepRNN.build(cell, 1, 8, 2, fused=f))
    x = torch.randn(16, 10, 1, dtype=torch.float64)
    a, b = vaa(fused, x, time_steps=2 * CHUNK + 3), vaa(stepped, x, time_steps=2 * CHUNK + 3)
    assert a.vaa == b.vaa and a.attractors == b.attractors and torch.equal(a.counts, b.counts)


def test_warmup_steps_agree_fused_or_stepped():
    """A few whole warm-up steps: the same history and weights (float64, to rounding)."""
    fused, stepped = _twins(lambda f: DeepRNN.build("lstm", 1, 6, 2, fused=f))
    x = torch.randn(16, 10, 1, dtype=torch.float64)
    reports = [warmup(m, x, steps=3, batch_size=8, measure_steps=0) for m in (fused, stepped)]
    for ha, hb in zip(reports[0].history, reports[1].history, strict=True):
        assert ha["S"] == hb["S"]
        assert ha["vaa_star"] == pytest.approx(hb["vaa_star"], abs=1e-9)
    for a, b in zip(fused.parameters(), stepped.parameters(), strict=True):
        torch.testing.assert_close(a, b)
