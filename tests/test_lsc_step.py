"""The LSC update rules on toy residuals whose exact answer is known."""
import torch

from stablernn.stability.lsc_step import NewtonStep


def _settle(ki: float, disturbance: float, updates: int = 200) -> float:
    """A radius equal to a gain, pulled down by ``disturbance`` after every update (the
    second-order loss of a saturating stack); returns the final error."""
    w = torch.nn.Parameter(torch.tensor([0.6]))
    step = NewtonStep([w], lr=0.5, ki=ki)  # ki is off by default (Note [radius Newton step])
    for _ in range(updates):
        step.step([w.clone()], [1.0])
        with torch.no_grad():
            w -= disturbance
    return float(w.detach()) - 1.0


def test_integral_term_removes_a_constant_disturbance():
    """Note [radius Newton step]: a proportional rule leaves an offset of about
    disturbance / rate; the integral term removes it."""
    assert _settle(ki=0.0, disturbance=0.03) < -0.04  # the offset the integral exists for
    assert abs(_settle(ki=0.1, disturbance=0.03)) < 0.01
    assert abs(_settle(ki=0.1, disturbance=0.0)) < 1e-3  # and does nothing without one


def test_gains_and_gradients_solve_two_maps_at_once():
    """Two residuals on two tensors, linear in them: a full step (lr 1, no damping or caps)
    removes both in one update."""
    a, b = torch.nn.Parameter(torch.tensor([1.0, 2.0])), torch.nn.Parameter(torch.tensor([3.0]))
    step = NewtonStep([a, b], lr=1.0, mu=0.0, max_change=10.0, max_gain=10.0, spread=0.0)
    step.step([(a.sum() + b.sum())[None], (a[0] - b[0])[None]], [5.0, -1.0])
    torch.testing.assert_close(float((a.sum() + b.sum()).detach()), 5.0, atol=1e-4, rtol=0)
    torch.testing.assert_close(float((a[0] - b[0]).detach()), -1.0, atol=1e-4, rtol=0)


def test_stuck_maps_are_the_ones_that_stopped_approaching():
    """Note [stopping rule]: a steady offset beyond tol is stuck, dips below tol included;
    noise around the target and a slow approach are not."""
    import math

    from stablernn.stability.lsc import STALL, _stuck
    n = STALL
    past = [{"steady": 0.06 if i % 7 else 0.04,  # hovering above tol with dips below
             "noisy": 0.08 * math.sin(i),  # around the target
             "approach": 0.3 * (1 - i / n) + 0.01,  # falling from 0.31 to 0.01
             "far": -0.5} for i in range(n)]
    assert _stuck(past, tol=0.05) == {"steady", "far"}
    assert _stuck(past[:-1], tol=0.05) == set()  # fewer than STALL updates: too early to say
