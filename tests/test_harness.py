"""The pre-training harness on a toy loss source: stopping, best weights, budgets, restore."""
from __future__ import annotations

import math
import time

import pytest
import torch
from torch import nn

from stablernn.stability.harness import (
    OutOfTime,
    Stop,
    TimeBudget,
    Verdict,
    resolve_options,
    run_pretraining,
)
from stablernn.stability.lsc import LSCOptions, check_lsc_args
from stablernn.stability.warmup import WarmupOptions


class Toy:
    """Sets a 1 x 1 weight to ``values[step]``; scores ``|w - best|``; ready from ``ready_at``;
    the stopping test passes at ``stop_at``; raises ``error`` after the update at ``fail_at``."""

    name = "toy"

    def __init__(self, model: nn.Linear, values, *, best=0.0, ready_at=math.inf,
                 stop_at=math.inf, sleep=0.0, fail_at=None, out_of_time_at=None,
                 error=RuntimeError):
        self.model, self.values, self.best = model, values, best
        self.ready_at, self.stop_at, self.sleep = ready_at, stop_at, sleep
        self.fail_at, self.out_of_time_at, self.error = fail_at, out_of_time_at, error
        self.confirmed: list[int] = []

    def weight(self) -> float:
        return float(self.model.weight.detach())

    def measure_before(self, budget: TimeBudget) -> float:
        return self.weight()

    def measure_after(self) -> float:
        return self.weight()

    def update(self, step: int, budget: TimeBudget) -> float:
        time.sleep(self.sleep)
        if step == self.out_of_time_at:
            raise OutOfTime
        with torch.no_grad():
            self.model.weight.fill_(self.values[step])
        if step == self.fail_at:
            raise self.error("diverged")
        return self.weight()

    def judge(self, step: int, record: float) -> Verdict:
        return Verdict(abs(record - self.best), {"w": f"{record:.2f}"},
                       ready=step >= self.ready_at)

    def confirm(self, step: int, budget: TimeBudget) -> Stop | None:
        self.confirmed.append(step)
        return Stop(converged=True, after=-1.0) if step >= self.stop_at else None


def _linear(value: float = 5.0) -> nn.Linear:
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(value)
    return lin


def test_stopping_test_ends_the_updates_and_keeps_the_current_weights():
    lin = _linear()
    toy = Toy(lin, [4.0, 3.0, 0.0, 2.0, 1.0, 7.0], ready_at=2, stop_at=4)
    out = run_pretraining(lin, lin, toy, steps=6)
    assert toy.confirmed == [2, 3, 4]
    assert (out.steps, out.converged, out.best_step, out.after) == (5, True, 4, -1.0)
    assert out.before == 5.0 and out.history == [4.0, 3.0, 0.0, 2.0, 1.0]
    assert float(lin.weight.detach()) == 1.0 and not out.out_of_time


def test_without_a_stop_the_best_scoring_weights_are_restored():
    lin = _linear()
    out = run_pretraining(lin, lin, Toy(lin, [4.0, 3.0, 0.5, 2.0, 1.0]), steps=5)
    assert (out.steps, out.converged, out.best_step) == (5, False, 2)
    assert float(lin.weight.detach()) == 0.5
    assert out.after == 0.5  # measured on the restored weights


def test_no_updates_reports_the_before_measurement_as_after():
    lin = _linear()
    toy = Toy(lin, [1.0], out_of_time_at=0)
    out = run_pretraining(lin, lin, toy, steps=3)
    assert out.steps == 0 and out.after == out.before == 5.0 and out.history == []


def test_time_budget_stops_the_updates():
    lin = _linear()
    start = time.perf_counter()
    out = run_pretraining(lin, lin, Toy(lin, [1.0] * 1000, sleep=0.02), steps=1000,
                          max_seconds=0.2)
    assert out.out_of_time and 1 <= out.steps < 20
    assert time.perf_counter() - start < 1.0


def test_an_update_abandoned_for_time_is_not_recorded():
    lin = _linear()
    out = run_pretraining(lin, lin, Toy(lin, [4.0, 3.0, 2.0], out_of_time_at=2), steps=3)
    assert out.steps == 2 and out.history == [4.0, 3.0]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_part_way_restores_the_original_weights(error):
    lin = _linear()
    weight = lin.weight
    with pytest.raises(error):
        run_pretraining(lin, lin, Toy(lin, [4.0, 3.0, 2.0], fail_at=1, error=error), steps=3)
    assert lin.weight is weight and float(lin.weight.detach()) == 5.0


def test_time_budget_object():
    budget = TimeBudget(1.0)
    assert budget.fits() and budget.share(0.25) == 0.25
    budget.record(0.1)
    budget.record(0.01)
    assert budget.cost == pytest.approx(0.073)  # max(last, 0.7 old + 0.3 new)
    budget.reserve = 2.0
    with pytest.raises(OutOfTime):
        budget.check()
    assert budget.exhausted and not budget.fits()


@pytest.mark.parametrize("cls, kw, error, match", [
    (LSCOptions, {"eval_steps": 0}, ValueError, "eval_steps must be an int >= 1, got 0"),
    (LSCOptions, {"lr": 3.0}, ValueError, "lr must be <= 2"),
    (LSCOptions, {"rho": "balanced"}, ValueError, "rho must be a positive number or"),
    (LSCOptions, {"method": "magic"}, ValueError, "unknown method 'magic'"),
    (LSCOptions, {"progress": 1}, TypeError, "progress must be True or False"),
    (WarmupOptions, {"batch_size": 1}, ValueError, "batch_size must be an int >= 2, got 1"),
    (WarmupOptions, {"target": 1.5}, ValueError, "target must be in"),
    (WarmupOptions, {"max_seconds": 0}, ValueError, "max_seconds must be > 0"),
])
def test_options_are_validated_when_built(cls, kw, error, match):
    with pytest.raises(error, match=match):
        cls(**kw)


def test_options_normalise_and_resolve():
    opts = LSCOptions(estimator="exact", lr=None, optimizer="adamw", max_seconds=3)
    assert opts.step_lr == 7.2e-3 and opts.max_seconds == 3.0 and opts.estimator == "exact"
    with pytest.raises(TypeError, match="options must be a LSCOptions, got WarmupOptions"):
        resolve_options(LSCOptions, WarmupOptions(), {})
    with pytest.raises(TypeError, match="not both; got options and steps, tol"):
        resolve_options(LSCOptions, opts, {"steps": 3, "tol": 0.1, "rho": 0.5})
    assert resolve_options(LSCOptions, opts, {"rho": 0.5}) == opts
    gru = nn.GRU(2, 4)
    check_lsc_args(gru, options=opts)
    with pytest.raises(ValueError, match="gradient-free LRU variant"):
        check_lsc_args(gru, options=LSCOptions(method="rescale"))
