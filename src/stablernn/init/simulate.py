"""Measure, by simulation, what the mean-field calculator predicts (tests, docs, examples).

Two experiments on one LSTM or GRU cell (our step cells; torch modules via ``from_torch``),
driven by i.i.d. inputs ``x ~ N(0, q_x)``:

- :func:`measure_m`: ``tr(J J^T)/N`` of the state-to-state Jacobian at stationary states, by
  Hutchinson's estimator ``E_v |J v|^2 / N`` (``v ~ N(0, I)``, ``torch.func.jvp``). For the LSTM
  ``J = d c_t / d c_{t-1}`` with ``h_{t-1} = o_{t-1} tanh(c_{t-1})`` substituted (``o_{t-1}``
  held at its value), for the GRU ``J = d h_t / d h_{t-1}``.
- :func:`measure_xi`: two copies start from the same stationary state and are driven by two input
  sequences of correlation ``c_x``; the correlation of their states
  ``corr_t = <s^a s^b> / <(s^a s^a + s^b s^b) / 2>`` (means over units and pairs) relaxes to
  ``corr*`` as ``chi^t``; ``xi`` is minus the inverse slope of ``ln(corr_t - corr*)``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_float, check_int, check_seed
from .._deprecation import renamed_kwargs
from .critical import cell_kind


def _check(cell, *, q_x: float, c_x: float = 0.0, seed: int = 0, **counts: int) -> None:
    """Check the cell and every option of a simulation before it runs (docs/robustness.md)."""
    if cell_kind(cell) is None:
        raise TypeError(f"simulation covers the cells the mean-field theory covers (LSTMCell "
                        f"and GRUCell), got {type(cell).__name__}")
    check_float("q_x", q_x, low=0.0)
    check_float("c_x", c_x, low=-1.0, high=1.0)
    check_seed(seed)
    for name, value in counts.items():
        check_int(name, value, low=0 if name == "burn" else 1)


def _inputs(cell, batch: int, q_x: float, gen: torch.Generator) -> Tensor:
    ref = cell.weight_hh
    return math.sqrt(q_x) * torch.randn(batch, cell.input_size, generator=gen,
                                        dtype=ref.dtype).to(ref.device)


def _out_gate(cell, p_t: Tensor, h_prev: Tensor) -> Tensor:
    """The LSTM output gate of the step with projected input ``p_t`` from ``h_prev``."""
    gates = p_t + F.linear(h_prev, cell.weight_hh, cell.bias_hh)
    return torch.sigmoid(gates[..., cell.gate_rows("o")])


def _state_map(cell, p_t: Tensor, state, o_prev: Tensor | None):
    """The map state_{t-1} -> state_t the Jacobian is taken of (a flat ``(B, N)`` tensor)."""
    if cell_kind(cell) == "gru":
        return lambda h: cell.recur(p_t, cell.State(h)).h
    assert o_prev is not None  # _run's output gate of the LSTM
    return lambda c: cell.recur(p_t, cell.State(o_prev * torch.tanh(c), c)).c


def _key(cell, state) -> Tensor:
    """The state the theory follows: the LSTM's cell state ``c``, the GRU's ``h``."""
    return state.c if cell_kind(cell) == "lstm" else state.h


@torch.no_grad()
def _run(cell, state, steps: int, q_x: float, gen: torch.Generator):
    """Advance ``steps`` steps; returns the state and the last output gate (LSTM)."""
    o_prev = None
    for _ in range(steps):
        p = cell.project(_inputs(cell, state[0].shape[0], q_x, gen))
        if cell_kind(cell) == "lstm":
            o_prev = _out_gate(cell, p, state.h)
        state = cell.recur(p, state)
    return state, o_prev


@renamed_kwargs(batch="batch_size")
def measure_m(cell, *, q_x: float = 1.0, batch_size: int = 8, burn: int = 200, probes: int = 4,
              seed: int = 0) -> float:
    """Measured mean squared singular value ``tr(J J^T)/N`` of a cell at stationarity.

    Args:
        cell: an ``LSTMCell`` or ``GRUCell``.
        q_x: mean square of the i.i.d. Gaussian inputs.
        batch_size: independent chains (``batch``: its deprecated name).
        burn: time steps to reach stationarity; probes: time steps measured.
        seed: seed of the inputs and probe vectors.

    Returns:
        The Hutchinson estimate averaged over ``batch_size x probes`` states.

    Example:
        >>> from stablernn import GRUCell
        >>> m = measure_m(GRUCell(16, 64), burn=20, probes=1)
    """
    batch = batch_size
    _check(cell, q_x=q_x, seed=seed, batch_size=batch, burn=burn, probes=probes)
    gen = torch.Generator().manual_seed(seed)
    state, o_prev = _run(cell, cell.initial_state(batch), burn, q_x, gen)
    total = 0.0
    for _ in range(probes):
        p = cell.project(_inputs(cell, batch, q_x, gen)).detach()
        fn = _state_map(cell, p, state, o_prev)
        v = torch.randn(batch, cell.hidden_size, generator=gen, dtype=p.dtype).to(p.device)
        with torch.no_grad():
            jv = torch.func.jvp(fn, (_key(cell, state),), (v,))[1]  # (output, J v)
        total += float((jv ** 2).sum(-1).mean()) / cell.hidden_size
        state, o_prev = _run(cell, state, 1, q_x, gen)  # fresh input, fresh state
    return total / probes


@torch.no_grad()
def correlation_curve(cell, time_steps: int, *, q_x: float = 1.0, c_x: float = 0.0,
                      pairs: int = 8,
                      burn: int = 200, seed: int = 0) -> np.ndarray:
    """``corr_t`` for ``t = 0..time_steps`` of two copies split at a common stationary state."""
    _check(cell, q_x=q_x, c_x=c_x, seed=seed, time_steps=time_steps, pairs=pairs, burn=burn)
    gen = torch.Generator().manual_seed(seed)
    state, _ = _run(cell, cell.initial_state(pairs), burn, q_x, gen)
    state = type(state)(*(torch.cat([s, s]) for s in state))  # (2P, N): copies a then b
    curve = []
    for _ in range(time_steps + 1):
        s = _key(cell, state)
        a, b = s[:pairs], s[pairs:]
        curve.append(float((a * b).mean() / (0.5 * (a * a + b * b).mean())))
        xa = _inputs(cell, pairs, q_x, gen)
        xb = c_x * xa + math.sqrt(1.0 - c_x ** 2) * _inputs(cell, pairs, q_x, gen)
        state = cell.recur(cell.project(torch.cat([xa, xb])), state)
    return np.array(curve)


def decay_time(curve: np.ndarray, *, lo: float = 0.1, hi: float = 0.9) -> float:
    """Time scale of ``curve -> curve*`` (``curve*`` = mean of its last quarter): minus the
    inverse slope of ``ln(gap)`` fitted where the gap lies in ``[lo, hi]`` of its start."""
    tail = curve[-max(len(curve) // 4, 1):].mean()
    gap = (curve - tail) / (curve[0] - tail)
    idx = np.nonzero((gap >= lo) & (gap <= hi))[0]
    idx = idx[idx <= (np.argmax(gap < lo) if (gap < lo).any() else len(gap))]
    if idx.size < 2:
        idx = np.arange(0, 3)
    slope = np.polyfit(idx, np.log(np.maximum(gap[idx], 1e-12)), 1)[0]
    return math.inf if slope >= 0 else -1.0 / slope


@renamed_kwargs(steps="time_steps")
def measure_xi(cell, *, time_steps: int, q_x: float = 1.0, c_x: float = 0.0, pairs: int = 8,
               burn: int = 200, seed: int = 0) -> float:
    """Measured correlation time scale ``xi`` of a cell (see the module docstring).

    Args:
        cell: an ``LSTMCell`` or ``GRUCell``.
        time_steps: length of the two-copy run (about ``8 xi``; ``steps``: its deprecated
            name).
        q_x, c_x: input mean square and the two sequences' correlation.
        pairs: independent pairs of copies; burn: steps to stationarity; seed: input seed.

    Returns:
        The fitted decay time in steps.

    Example:
        >>> from stablernn import GRUCell
        >>> xi = measure_xi(GRUCell(16, 64), time_steps=20, burn=20)
    """
    return decay_time(correlation_curve(cell, time_steps, q_x=q_x, c_x=c_x, pairs=pairs, burn=burn,
                                        seed=seed))
