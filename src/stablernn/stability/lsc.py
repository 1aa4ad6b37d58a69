"""LSC pre-training: push every local Jacobian radius to the Local Stability Condition target.

Herranz-Celotti & Rouat, arXiv 2308.12075 (section 2). In a deep RNN the gradient from the
corner ``(L, T)`` to node ``(l, t)`` sums over ``C(dt + dl, dt)`` grid paths; with every time and
depth Jacobian at radius 1 that sum explodes combinatorially, with radius 0.5 it stays bounded
(``sum_k C(n, k) 0.5^n = 1``). Pre-training walks real input sequences step by step with the
state carried forward and takes one update per time step that drives every map's batch-mean
radius toward its target: by default a damped Gauss-Newton step on the radii (Note [radius
Newton step] in :mod:`.lsc_step`: scale-free, one default for every cell and width), or the
paper's AdamW on ``mean_maps mean_batch (radius - target)^2`` (``optimizer="adamw"``). Radii
come from :mod:`.estimators` with the eigenvalue-derivative gradient (Note [differentiable
radius] there), so no model is rebuilt and no eigendecomposition is differentiated.

Targets: ``rho`` for time, depth and input maps (``"unbalanced"``: time ``T/(L+T)``, depth and
input ``L/(L+T)``), 1 for the readout. Feed-forward ``nn.Sequential`` MLPs use per-layer maps
``diag(act'(a)) W`` with target 1. LRU stacks also have the reference code's gradient-free
variant (``method="rescale"``): ``|lambda|`` is set so the time radius is on target and the input
matrix ``B`` is rescaled toward the depth / input target, iterated.

Note [LSC time budget]: the harness keeps the budget (Note [time budget] in :mod:`.harness`).
The before measurement walks its steps in a spread order and stops once it has used a quarter of
the budget (at least one step is measured); the after measurement repeats exactly those steps,
so its cost is known and kept in reserve. The loss checks the clock between maps, abandoning an
update that would overrun before anything is applied.

Note [stopping rule]: one step's batch-mean radius is noisy (16 sequences, one step each), so
the walk keeps a running mean (EMA weight 0.3). Once every running radius has
been within ``tol`` for ``patience`` updates, the held sequences are measured exactly as the
final "after" measurement does; if every held radius is within ``tol`` the call stops with
``converged = True`` and that measurement is the report's ``after`` (so stopping costs nothing
extra and ``converged`` speaks of held data); otherwise the walk goes on and checks again
``4 * patience`` updates later. A map whose running error, averaged over the newer half of the
last 100 updates, is beyond ``tol`` and shrank by less than a fifth from the older half counts
as stuck (some targets are out of reach, e.g. the
input map of a sigmoid RNN at radius 1: its Jacobian is bounded by the slope of the sigmoid);
the other maps then decide the stopping, ``converged`` stays False and ``report.stuck`` names
them (the window was 40 updates; an 8 x 64 LSTM's first time radius then counted as stuck at
0.58 after 44 updates, and reached 0.5 by update 91 with 100; and an average, not every update
beyond ``tol``: a 2-layer ReLU RNN's input map hovering at 0.06 with dips below 0.05 kept the
walk going for all 1000 updates). Without convergence the weights with the lowest mean running
error are kept (Note [best weights] in :mod:`.harness`).

Note [staggered walk]: a map's radius depends on where in the sequence it is taken (from the
zero initial state an LSTM at ``rho = 1`` has depth radius 1.2 at step 0 and 0.7 by step 10),
and the target is its mean over the sequence. Walking the whole batch in step (version 1) made
the residual of one update follow that profile, so the update chased it (jumps of +-0.5 in the
depth radii of a 4 x 64 LSTM). Row ``i`` of the walked batch therefore runs ``i T / B`` steps
ahead of row 0 (pre-rolled without updates) and draws a new sequence when it ends, so every
update's batch mean already averages over the sequence; docs/lsc.md has the measurements.

Note [all or nothing]: every option is validated by :class:`LSCOptions` (the one home of the
checks; :func:`check_lsc_args` runs them for the training CLI before it creates a run
directory). The updates run in the pre-training harness (:mod:`.harness`): LSC supplies the
loss source (measurement, update, stopping test), the harness the budgets, the best weights and
the transactional restore, so an error part-way (a diverging update, Ctrl-C) restores the
original weights. See docs/robustness.md.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import (
    all_finite,
    check_bool,
    check_choice,
    check_finite_weights,
    check_float,
    check_int,
    check_options,
    check_positive,
    check_seed,
)
from ..adapters import as_deep_rnn
from ..cells.base import check_input
from ..plotting import new_axes
from ..stack import DeepRNN
from .eigen import NonFiniteError
from .estimators import Estimator, radius_all
from .harness import (
    HarnessReport,
    OutOfTime,
    Stop,
    TimeBudget,
    Verdict,
    check_max_seconds,
    resolve_options,
    run_pretraining,
)
from .local_maps import MAX_READOUT, Kind, LocalMap, _local_maps, _trajectory, parse_enum, prepare
from .lsc_step import make_step
from .radii import radii_at

__all__ = ["LSCOptions", "LSCReport", "OutOfTime", "TimeBudget", "check_lsc_args",
           "lsc_pretrain", "lsc_targets"]

METHODS = ("auto", "gradient", "rescale")
OPTIMIZERS = ("newton", "adamw")
DEFAULT_LR = {"newton": 0.5, "adamw": 7.2e-3}
MEASURE_K = 32  # Krylov dimension of the before / after measurement, warm-started (docs/lsc.md)
EMA = 0.3  # weight of the newest step in the running radii (Note [stopping rule])


@dataclass
class LSCReport:
    """What LSC pre-training did.

    Attributes:
        targets: target radius per kind. before / after: batch- and step-mean radius per
            ``"kind layer"`` key, measured with ``eval_estimator`` on held sequences.
        converged: every held-sequence radius (``after``) is within ``tol`` of its target, checked
            when the walk's running radii had been within ``tol`` for ``patience`` updates
            (Note [stopping rule]).
        seconds: the whole call; update_seconds: the updates alone (without measuring before /
            after).
        history: per update, the batch-mean radius of every map (``"kind layer"`` keys).
        measured_steps: the time steps of the held sequences averaged in before / after
            (fewer than ``eval_steps`` when the time budget cut the measurement short).
        out_of_time: the updates stopped at ``max_seconds`` (Note [time budget]).
        stuck: maps that stopped approaching their target (e.g. an input map a saturating
            cell cannot bring to radius 1); the call stopped once every other map was
            confirmed on target, and ``converged`` is False (Note [stopping rule]).
    """

    targets: dict[str, float]
    method: str
    before: dict[str, float]
    after: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    update_seconds: float = 0.0
    converged: bool = False
    best_step: int = 0
    tol: float = 0.08
    message: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    measured_steps: list[int] = field(default_factory=list)
    out_of_time: bool = False
    stuck: list[str] = field(default_factory=list)

    def max_error(self, which: str = "after") -> float:
        """Largest ``|radius - target|`` over every map (NaN when nothing was measured)."""
        radii = getattr(self, which)
        return max((abs(v - self.targets[k.split()[0]]) for k, v in radii.items()),
                   default=math.nan)

    def table(self) -> str:
        lines = [f"{'map':12s} {'target':>7s} {'before':>8s} {'after':>8s}"]
        for key, after in self.after.items():
            lines.append(f"{key:12s} {self.targets[key.split()[0]]:7.3f} "
                         f"{self.before.get(key, math.nan):8.4f} {after:8.4f}")
        return "\n".join(lines + [self.message])

    def to_dict(self) -> dict[str, Any]:
        return {"targets": self.targets, "method": self.method, "before": self.before,
                "after": self.after, "steps": self.steps, "seconds": round(self.seconds, 3),
                "update_seconds": round(self.update_seconds, 3),
                "converged": self.converged, "best_step": self.best_step, "tol": self.tol,
                "message": self.message, "max_error_after": self.max_error(),
                "measured_steps": list(self.measured_steps), "out_of_time": self.out_of_time,
                "stuck": list(self.stuck)}

    def plot(self, ax: Any = None) -> Any:
        """Radius of every map against the update step, targets dashed."""
        ax = new_axes(ax)
        for key in (self.history[0] if self.history else {}):
            ax.plot([h[key] for h in self.history], label=key, lw=1)
        for target in set(self.targets.values()):
            ax.axhline(target, color="k", ls="--", lw=0.8)
        ax.set(xlabel="update", ylabel="radius (batch mean)", title="LSC pre-training")
        ax.legend(fontsize="small", ncol=2)
        return ax


KINDS = tuple(k.value for k in Kind)


def _check_rho(rho: Any) -> float | str:
    if isinstance(rho, str) and rho == "unbalanced":
        return rho
    try:
        return check_positive("rho", rho)
    except (TypeError, ValueError, OverflowError):  # one message for every kind of bad rho
        raise ValueError(f"rho must be a positive number or 'unbalanced', got {rho!r}") from None


def _check_targets(targets: Any) -> dict[str, float]:
    if targets is None:
        return {}
    if not isinstance(targets, dict):
        raise TypeError(f"targets must be None or a dict of kind -> radius, e.g. "
                        f"{{'time': 0.9}}, got {type(targets).__name__} ({targets!r})")
    for kind in targets:
        if kind not in KINDS:
            raise ValueError(f"unknown target kind {kind!r}; valid: {', '.join(KINDS)}")
    return {kind: check_positive(f"targets[{kind!r}]", v) for kind, v in targets.items()}


def lsc_targets(rho: float | str, num_layers: int, seq_len: int,
                targets: dict[str, float] | None = None) -> dict[str, float]:
    """Target radius per kind: ``rho`` (or the unbalanced split) and 1 for the readout.

    Raises:
        ValueError / TypeError: ``rho`` not a finite number > 0 nor "unbalanced"; ``targets``
            not a dict of known kinds to finite radii > 0.

    Example:
        >>> lsc_targets(0.5, 2, 10, {"time": 0.9})
        {'time': 0.9, 'depth': 0.5, 'input': 0.5, 'readout': 1.0}
    """
    rho = _check_rho(rho)
    if isinstance(rho, str):  # _check_rho passes only "unbalanced" through as a str
        t_time = seq_len / (num_layers + seq_len)
        out = {"time": t_time, "depth": 1 - t_time, "input": 1 - t_time}
    else:
        out = {"time": rho, "depth": rho, "input": rho}
    out["readout"] = 1.0
    out.update(_check_targets(targets))
    return out


# --------------------------------------------------------------------------- model access


def _is_mlp(model: nn.Module) -> bool:
    return isinstance(model, nn.Sequential) and any(isinstance(m, nn.Linear) for m in model)


def _mlp_blocks(model: nn.Sequential) -> list[nn.Sequential]:
    """Split an MLP into blocks, each one Linear and the modules after it up to the next."""
    blocks: list[list[nn.Module]] = []
    for module in model:
        if isinstance(module, nn.Linear) or not blocks:
            blocks.append([])
        blocks[-1].append(module)
    return [nn.Sequential(*b) for b in blocks]


def _mlp_maps(blocks: Sequence[nn.Module], x: Tensor) -> list[LocalMap]:
    """Per-layer maps ``h[l-1] -> h[l]`` of an MLP (kind "depth", target 1)."""
    maps, h = [], x
    for layer, block in enumerate(blocks):
        with torch.no_grad():
            out = block(h)
        maps.append(LocalMap("depth", layer, block, h, out.shape[-1]))
        h = out
    return maps


def _key(m: LocalMap) -> str:
    return f"{m.kind} {m.layer}"


def _check_mlp_inputs(model: nn.Sequential, inputs: Tensor) -> None:
    first = next(m for m in model if isinstance(m, nn.Linear))
    check_input(inputs, first.in_features, rank=2, name="inputs")
    if inputs.shape[0] == 0:
        raise ValueError(f"inputs is empty: batch size 0 (shape {tuple(inputs.shape)}); pass "
                         f"at least one sample")
    if inputs.dtype != first.weight.dtype or inputs.device != first.weight.device:
        raise TypeError(f"inputs is {inputs.dtype} on {inputs.device} but the model's weights "
                        f"are {first.weight.dtype} on {first.weight.device}; convert one")


# --------------------------------------------------------------------------- measurement


def _spread(items: list[int]) -> list[int]:
    """``items`` reordered so that every prefix covers their range evenly (0, 4, 2, 6, 1, ...)."""
    order: list[int] = []
    stride = 1 << max(0, len(items) - 1).bit_length()
    while len(order) < len(items):
        order += [i for i in range(0, len(items), stride) if i not in order]
        stride //= 2
    return [items[i] for i in order]


def _measure(model: nn.Module, x: Tensor, estimator: str, steps: int, seed: int, *,
             chosen: list[int] | None = None,
             allowance: float = math.inf) -> tuple[dict[str, float], list[int]]:
    """Step- and batch-mean radius of every map on held inputs (no gradient), and the steps
    measured: ``chosen``, or up to ``steps`` evenly spaced ones, walked in a spread order that
    stops after ``allowance`` seconds (Note [LSC time budget])."""
    if _is_mlp(model):
        assert isinstance(model, nn.Sequential)
        maps = _mlp_maps(_mlp_blocks(model), x)
        radii = radius_all(maps, estimator, seed=seed)
        return {_key(m): float(r.mean()) for m, r in zip(maps, radii, strict=True)}, []
    assert isinstance(model, DeepRNN)  # lsc_pretrain measures an MLP or a prepared DeepRNN
    T = x.shape[1]
    if chosen is None:
        chosen = sorted({round(i * (T - 1) / max(1, steps - 1)) for i in range(min(steps, T))})
    sums: dict[str, list[float]] = {}
    warm: dict = {}
    t0, done = time.perf_counter(), []
    traj = _trajectory(model, x[:, :max(chosen)])
    for t in _spread(chosen):
        for kind, layer, r in radii_at(model, x, traj[t], t, estimator, list(Kind), seed,
                                       MEASURE_K, MAX_READOUT, warm=warm):
            sums.setdefault(f"{kind} {layer}", []).append(r)
        done.append(t)
        if time.perf_counter() - t0 > allowance:
            break
    return {key: sum(v) / len(v) for key, v in sums.items()}, sorted(done)


# --------------------------------------------------------------------------- heuristics


@torch.no_grad()
def _rescale(model: nn.Module, current: dict[str, float], targets: dict[str, float]) -> None:
    """Reference heuristic: scale each recurrent / input weight by clip(target/r, 0.85, 1.15)."""
    for layer, cell in enumerate(getattr(model, "cells", [])):
        for names, key in ((cell.recurrent_weights, f"time {layer}"),
                           (cell.input_weights,
                            f"input {layer}" if layer == 0 else f"depth {layer}")):
            r = current.get(key)
            if not r:
                continue
            factor = min(max(targets[key.split()[0]] / r, 0.85), 1.15)
            for name in names:
                w = getattr(cell, name, None)
                if isinstance(w, nn.Parameter):
                    w.mul_(factor)


@torch.no_grad()
def _shuffle(model: nn.Module, gen: torch.Generator, p: float = 1 / 3) -> None:
    """Reference heuristic: permute the entries of each weight matrix with probability p."""
    for w in model.parameters():
        if w.dim() == 2 and torch.rand((), generator=gen) < p:
            flat = w.reshape(-1)
            flat.copy_(flat[torch.randperm(flat.numel(), generator=gen).to(w.device)])


# --------------------------------------------------------------------------- the loops


class _Walker:
    """Walks ``batch_size`` sequences step by step, carrying the state (detached); row ``i``
    runs ``i T / batch_size`` steps ahead of row 0 and draws its next sequence when it ends
    (Note [staggered walk])."""

    def __init__(self, model, inputs: Tensor, batch_size: int, seed: int) -> None:
        self.model, self.inputs, self.batch_size = model, inputs, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order: list[int] = []
        self.rows: Tensor | None = None  # (B,) the sequence each row walks
        self.t: Tensor | None = None  # (B,) the step each row is at
        self.states: list | None = None

    def _draw(self, n: int) -> Tensor:
        if len(self.order) < n:
            self.order = torch.randperm(len(self.inputs), generator=self.gen).tolist()
        idx, self.order = self.order[:n], self.order[n:]
        return torch.tensor(idx, dtype=torch.long)

    def next(self) -> tuple[Tensor, list]:
        if self.rows is None:
            self._start()
        assert self.rows is not None and self.t is not None and self.states is not None
        return self.inputs[self.rows.to(self.inputs.device), self.t.to(self.inputs.device)], \
            self.states

    @torch.no_grad()
    def _start(self) -> None:
        B, T = self.batch_size, self.inputs.shape[1]
        self.rows, self.t = self._draw(B), torch.zeros(B, dtype=torch.long)
        self.states = self._fresh()
        lead = torch.arange(B) * T // B
        for s in range(int(lead.max())):
            self._step(lead > s)

    def _fresh(self) -> list:
        x = self.inputs
        return self.model.initial_state(self.batch_size, device=x.device, dtype=x.dtype)

    @torch.no_grad()
    def advance(self) -> None:
        self._step(torch.ones(self.batch_size, dtype=torch.bool))

    def _step(self, move: Tensor) -> None:
        """Advance the rows in ``move``; rows that reach the end restart on a new sequence."""
        x_t, states = self.next()
        assert self.rows is not None and self.t is not None  # next() started the walk
        self.states = _where_rows(move, self.model.step(x_t, states)[1], states)
        self.t += move.long()
        done = self.t == self.inputs.shape[1]
        if bool(done.any()):
            self.rows[done], self.t[done] = self._draw(int(done.sum())), 0
            self.states = _where_rows(done, self._fresh(), self.states)


def _where_rows(mask: Tensor, new, old):
    """``new`` in the rows of ``mask``, ``old`` elsewhere, through (named) tuples and lists."""
    if isinstance(new, Tensor):
        m = mask.to(new.device).reshape(-1, *([1] * (new.dim() - 1)))
        return torch.where(m, new, old)
    parts = [_where_rows(mask, a, b) for a, b in zip(new, old, strict=True)]
    return type(new)(*parts) if hasattr(new, "_fields") else type(new)(parts)


def _loss(maps: list[LocalMap], targets: dict, estimator: str, k: int | None, seed: int,
          warm: dict, budget: TimeBudget) -> tuple[list[Tensor], dict[str, float]]:
    radii, means = [], {}
    for m in maps:  # one map at a time: the clock is checked in between (Note [LSC time budget])
        budget.check()
        r = radius_all([m], estimator, differentiable=True, seed=seed, k=k, restarts=0,
                       warm=warm)[0]
        radii.append(r)
        means[_key(m)] = float(r.detach().mean())
    return radii, means


def _diverged(step: int, opts: LSCOptions, why: object) -> NonFiniteError:
    extra = " (or turn off rescale / shuffle)" if opts.rescale or opts.shuffle else ""
    return NonFiniteError(f"LSC pre-training diverged at update {step + 1}: {why}. The "
                          f"model's original weights were restored; lower lr (now "
                          f"{opts.step_lr:g}){extra}")


STALL = 100  # updates over which a map that does not approach its target counts as stuck


def _stuck(past: list[dict[str, float]], tol: float) -> set[str]:
    """Maps whose running error, averaged over the newer half of the last ``STALL`` updates,
    is beyond ``tol`` and at least 0.8x that of the older half on the same side (Note
    [stopping rule])."""
    if len(past) < STALL:
        return set()
    half, window = STALL // 2, past[-STALL:]
    out = set()
    for k in window[-1]:
        old = sum(w[k] for w in window[:half]) / half
        new = sum(w[k] for w in window[half:]) / (STALL - half)
        if abs(new) > tol and new * old > 0 and abs(new) > 0.8 * abs(old):
            out.add(k)
    return out


class _Source:
    """What both LSC variants measure: every map's radius on the held sequences, at the steps
    the before measurement reached (Note [LSC time budget])."""

    name = "LSC"

    def __init__(self, net: nn.Module, held: Tensor, targets: dict[str, float],
                 opts: LSCOptions) -> None:
        self.net, self.held, self.targets, self.opts = net, held, targets, opts
        self.chosen: list[int] = []
        self.stuck: list[str] = []  # reported: the maps left out when the test stopped

    def measure_before(self, budget: TimeBudget) -> dict[str, float]:
        o = self.opts
        before, self.chosen = _measure(self.net, self.held, o.eval_estimator, o.eval_steps,
                                       o.seed, allowance=budget.share(0.25))
        return before

    def measure_after(self) -> dict[str, float]:
        o = self.opts
        return _measure(self.net, self.held, o.eval_estimator, o.eval_steps, o.seed,
                        chosen=self.chosen)[0]


class _GradientSource(_Source):
    """One update per walked step toward every target, stopped by Note [stopping rule]."""

    def __init__(self, net: nn.Module, held: Tensor, targets: dict[str, float],
                 opts: LSCOptions, walker: _Walker | None, blocks: list | None,
                 inputs: Tensor) -> None:
        super().__init__(net, held, targets, opts)
        self.walker, self.blocks, self.inputs = walker, blocks, inputs
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.opt = make_step(opts.optimizer, self.params, opts.step_lr, opts.weight_decay,
                             opts.tol)
        self.gen = torch.Generator().manual_seed(opts.seed)
        self.warm: dict = {}  # Arnoldi warm starts between consecutive steps (Note [warm starts])
        self.ema: dict[str, float] = {}
        self.past: list[dict[str, float]] = []  # running signed errors per update
        self.running_stuck: set[str] = set()
        self.streak = self.wait = 0

    def _maps(self) -> list[LocalMap]:
        """The maps of the next update: a random MLP batch, or the walker's next step."""
        if self.blocks is not None:
            idx = torch.randint(len(self.inputs), (self.opts.batch_size,), generator=self.gen)
            return _mlp_maps(self.blocks, self.inputs[idx])
        assert self.walker is not None and isinstance(self.net, DeepRNN)  # not an MLP
        x_t, states = self.walker.next()
        return _local_maps(self.net, x_t, states, list(Kind), MAX_READOUT)

    def update(self, step: int, budget: TimeBudget) -> dict[str, float]:
        """One LSC update; the batch-mean radius of every map before it."""
        o, targets = self.opts, self.targets
        maps = self._maps()
        try:  # one seeded square subset for the whole call, the one _measure reports
            radii, means = _loss(maps, targets, o.estimator, o.k, o.seed, self.warm, budget)
        except NonFiniteError as err:
            raise _diverged(step, o, err) from None
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise _diverged(step, o, f"the radii of {', '.join(bad)} became NaN/Inf")
        self.opt.step(radii, [targets[m.kind] for m in maps])
        if o.rescale:
            _rescale(self.net, means, targets)
        if o.shuffle:
            _shuffle(self.net, self.gen)
        if not all_finite(self.params):
            raise _diverged(step, o, "the update made weights NaN/Inf")
        if self.walker is not None:
            self.walker.advance()
        return means

    def judge(self, step: int, means: dict[str, float]) -> Verdict:
        """Running radii, stuck maps and the streak within ``tol`` (Note [stopping rule])."""
        ema, tol = self.ema, self.opts.tol
        self.ema = {k: v if k not in ema else (1 - EMA) * ema[k] + EMA * v
                    for k, v in means.items()}
        signed = {k: v - self.targets[k.split()[0]] for k, v in self.ema.items()}
        self.past.append(signed)
        self.running_stuck = _stuck(self.past, tol)
        errs = [abs(e) for k, e in signed.items() if k not in self.running_stuck]
        err, mean_err = max(errs, default=0.0), sum(errs) / max(1, len(errs))
        self.streak = self.streak + 1 if err < tol else 0
        self.wait -= 1
        return Verdict(mean_err, {"max_err": f"{err:.3f}"},
                       ready=self.streak >= self.opts.patience and self.wait <= 0)

    def confirm(self, step: int, budget: TimeBudget) -> Stop | None:
        """Measure the held sequences; stop when every map but the stuck ones is on target."""
        if budget.left() <= budget.reserve:
            return None
        after = self.measure_after()
        held = {k: abs(v - self.targets[k.split()[0]]) for k, v in after.items()}
        stuck = self.running_stuck
        if max((e for k, e in held.items() if k not in stuck), default=0.0) <= self.opts.tol:
            self.stuck = sorted(stuck)
            return Stop(converged=not stuck, after=after)
        self.wait = 4 * self.opts.patience  # not yet: walk on before re-checking
        return None


class _RescaleSource(_Source):
    """Gradient-free LRU variant: set |lambda| and rescale B until radii are on target."""

    def __init__(self, net: nn.Module, held: Tensor, targets: dict[str, float],
                 opts: LSCOptions) -> None:
        super().__init__(net, held, targets, opts)
        self.err = math.inf

    @torch.no_grad()
    def update(self, step: int, budget: TimeBudget) -> dict[str, float]:
        """Measure; unless on target, one rescaling. The radii before it."""
        model, targets = self.net, self.targets
        current = _measure(model, self.held, "exact", 4, self.opts.seed)[0]
        self.err = max(abs(v - targets[k.split()[0]]) for k, v in current.items())
        if self.err < self.opts.tol:
            return current
        assert isinstance(model, DeepRNN)  # method="rescale" runs on LRU stacks only
        for layer, cell in enumerate(model.layers):
            assert cell.set_time_radius is not None
            cell.set_time_radius(targets["time"])
            r = current.get(f"input {layer}" if layer == 0 else f"depth {layer}")
            if r:
                scale = targets["input" if layer == 0 else "depth"] / r
                for name in cell.input_weights:
                    getattr(cell, name).mul_(scale)
        if model.readout is not None and isinstance(model.readout, nn.Linear) and \
                f"readout {model.num_layers}" in current:
            model.readout.weight.mul_(targets["readout"] / current[f"readout {model.num_layers}"])
        if not all_finite(model.parameters()):
            raise _diverged(step, self.opts, "the rescaling made weights NaN/Inf")
        return current

    def judge(self, step: int, current: dict[str, float]) -> Verdict:
        return Verdict(ready=self.err < self.opts.tol)

    def confirm(self, step: int, budget: TimeBudget) -> Stop | None:
        return Stop(converged=True)


@dataclass(frozen=True)
class LSCOptions:
    """Every option of :func:`lsc_pretrain`, checked when built (same names, defaults and
    meanings; see there). Build one to reuse or log a configuration:
    ``lsc_pretrain(model, x, options=LSCOptions(rho=1.0, steps=300))``; change one with
    ``dataclasses.replace``.

    Raises:
        TypeError / ValueError: an option of the wrong kind or a bad value (the same messages
            as :func:`lsc_pretrain`; checks that need the model run when it is called).

    Example:
        >>> LSCOptions(rho=1.0, optimizer="adamw").step_lr
        0.0072
        >>> LSCOptions(eval_steps=0)
        Traceback (most recent call last):
        ...
        ValueError: eval_steps must be an int >= 1, got 0
    """

    rho: float | str = 0.5
    targets: dict[str, float] | None = None
    estimator: str = "auto"
    k: int | None = 8
    method: str = "auto"
    steps: int = 1000
    optimizer: str = "newton"
    lr: float | None = None
    weight_decay: float = 1e-4
    batch_size: int = 16
    tol: float = 0.05
    patience: int = 5
    max_seconds: float | None = None
    rescale: bool = False
    shuffle: bool = False
    eval_steps: int = 8
    eval_estimator: str = "auto"
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        checked = {
            "rho": _check_rho(self.rho), "targets": _check_targets(self.targets),
            "estimator": parse_enum(Estimator, self.estimator, "estimator").value,
            "eval_estimator": parse_enum(Estimator, self.eval_estimator,
                                         "eval_estimator").value,
            "k": None if self.k is None else check_int("k", self.k),
            "method": check_choice("method", self.method, METHODS),
            "steps": check_int("steps", self.steps),
            "optimizer": check_choice("optimizer", self.optimizer, OPTIMIZERS),
            "lr": None if self.lr is None else check_float(
                "lr", self.lr, low=0, low_open=True,
                high=2 if self.optimizer == "newton" else None),
            "weight_decay": check_float("weight_decay", self.weight_decay, low=0.0),
            "batch_size": check_int("batch_size", self.batch_size),
            "tol": check_positive("tol", self.tol),
            "patience": check_int("patience", self.patience),
            "max_seconds": check_max_seconds(self.max_seconds),
            "eval_steps": check_int("eval_steps", self.eval_steps),
            "seed": check_seed(self.seed),
        }
        for flag in ("rescale", "shuffle", "progress"):
            checked[flag] = check_bool(flag, getattr(self, flag))
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def step_lr(self) -> float:
        """``lr``, or the optimiser's default when it is None."""
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr


# the options of lsc_pretrain and their defaults: LSCOptions is their one home
LSC_OPTIONS = {f.name: f.default for f in fields(LSCOptions)}


def lsc_pretrain(model: nn.Module, inputs: Tensor, *, rho: float | str = 0.5,
                 targets: dict[str, float] | None = None, estimator: str = "auto",
                 k: int | None = 8, method: str = "auto", steps: int = 1000,
                 optimizer: str = "newton", lr: float | None = None,
                 weight_decay: float = 1e-4, batch_size: int = 16, tol: float = 0.05,
                 patience: int = 5, max_seconds: float | None = None, rescale: bool = False,
                 shuffle: bool = False, eval_steps: int = 8, eval_estimator: str = "auto",
                 seed: int = 0, progress: bool = False,
                 options: LSCOptions | None = None) -> LSCReport:
    """Pre-train ``model`` in place so every local Jacobian radius sits at its LSC target.

    Args:
        model: a DeepRNN, a ``torch.nn.RNN/LSTM/GRU`` (changed in place, stays a torch module)
            or an ``nn.Sequential`` MLP.
        inputs: real task inputs, ``(N, T, D)`` batch-first (``(T, N, D)`` for a torch module
            with ``batch_first=False``; ``(N, D)`` for an MLP).
        rho: target for time / depth / input maps, or "unbalanced"; readout target is 1.
        targets: per-kind overrides, e.g. ``{"time": 0.9}``.
        estimator: radius estimator for the loss ("auto": exact eigendecomposition up to 64
            units, Arnoldi above; see :func:`~stablernn.stability.radius_all`).
        k: Krylov dimension when Arnoldi is used; it starts from the previous step's
            eigenvectors, so 8 is enough (see docs/lsc.md for the accuracy measured).
        method: "gradient", "rescale" (LRU only, gradient-free) or "auto" (rescale for LRU
            stacks, gradient otherwise).
        steps: budget of updates (one per time step walked).
        optimizer: "newton" (default; Note [radius Newton step] in ``lsc_step``: ``lr`` is the
            fraction of every map's residual removed per update, default 0.5, the same for
            every cell and width) or "adamw" (the paper's; ``lr`` default 7.2e-3).
        lr: see ``optimizer``. weight_decay: AdamW only.
        batch_size: sequences walked in parallel. tol, patience: Note [stopping rule].
        max_seconds: optional time budget of the whole call, measurements included (Note
            [time budget]). rescale, shuffle: the reference code's heuristics.
        eval_steps, eval_estimator: how the before / after radii are measured (held batch,
            ``eval_steps >= 1`` evenly spaced steps).
        seed: seeds the walk, the estimators and the square subsets. progress: a tqdm bar.
        options: all of the above as one :class:`LSCOptions` (then pass no other option).

    Returns:
        An :class:`LSCReport`; when the budget ends first, ``converged`` is False and
        ``message`` says so (the best weights seen are kept).

    Raises:
        TypeError: no recurrent layers (and not an MLP); an unknown option or one of the wrong
            kind (e.g. ``steps=2.5``, ``progress="yes"``); ``options`` with other options.
        ValueError: a bad option value (checked by :class:`LSCOptions` before anything
            runs), NaN/Inf weights, empty or non-finite inputs; ``NonFiniteError`` when an
            update diverges (the message says which option to lower). On any error the model
            keeps its original weights (Note [all or nothing]).

    Example:
        >>> gru = torch.nn.GRU(3, 16, num_layers=2, batch_first=True)
        >>> report = lsc_pretrain(gru, torch.randn(16, 20, 3), rho=0.5, steps=400)
        >>> report.max_error() < 0.1
        True
    """
    given, start = dict(locals()), time.perf_counter()
    opts, mlp, method = _lsc_options(model, given["options"],
                                     **{name: given[name] for name in LSC_OPTIONS})
    assert opts.targets is not None  # LSCOptions.__post_init__ made it a dict
    net: DeepRNN | nn.Sequential
    if mlp:
        assert isinstance(model, nn.Sequential)
        _check_mlp_inputs(model, inputs)
        net, blocks, held, walker = model, _mlp_blocks(model), inputs[:64], None
        tgt = {**{k: 1.0 for k in KINDS}, **opts.targets}
    else:
        net, inputs = prepare(model, inputs, name="inputs")
        tgt = lsc_targets(opts.rho, net.num_layers, inputs.shape[1], opts.targets)
        blocks, held = None, inputs[:opts.batch_size]
        walker = _Walker(net, inputs, min(opts.batch_size, len(inputs)), opts.seed)
    source = _RescaleSource(net, held, tgt, opts) if method == "rescale" else \
        _GradientSource(net, held, tgt, opts, walker, blocks, inputs)
    outcome = run_pretraining(model, net, source, steps=opts.steps, start=start,
                              max_seconds=opts.max_seconds, progress=opts.progress)
    return _report(outcome, source, method)


def _report(outcome: HarnessReport, source: _Source, method: str) -> LSCReport:
    report = LSCReport(source.targets, method, outcome.before, dict(outcome.after),
                       outcome.steps, outcome.seconds, outcome.update_seconds, outcome.converged,
                       outcome.best_step, source.opts.tol, history=outcome.history,
                       measured_steps=source.chosen, out_of_time=outcome.out_of_time,
                       stuck=source.stuck)
    report.message = _message(report)
    return report


def _method(method: str, model: nn.Module, mlp: bool) -> str:
    """The method to run: "auto" resolved, "rescale" refused where it does not apply."""
    lru = not mlp and all(c.set_time_radius is not None for c in as_deep_rnn(model).cells)
    if method == "rescale" and not lru:
        raise ValueError("method='rescale' is the gradient-free LRU variant; this model has "
                         "non-LRU layers, use method='gradient'")
    return ("rescale" if lru else "gradient") if method == "auto" else method


def _lsc_options(model: nn.Module, options: LSCOptions | None = None,
                 **given: Any) -> tuple[LSCOptions, bool, str]:
    """Every option checked (:class:`LSCOptions`), the model's kind and weights checked too
    (Note [all or nothing]); the options, whether the model is an MLP, and the method to run."""
    check_options("LSC", given, LSC_OPTIONS)
    mlp = _is_mlp(model)
    if not mlp:
        as_deep_rnn(model)  # TypeError for a model without recurrent layers
    opts = resolve_options(LSCOptions, options, given)
    method = _method(opts.method, model, mlp)
    check_finite_weights(model)
    return opts, mlp, method


def check_lsc_args(model: nn.Module, rho: float | str = 0.5, **options: Any) -> None:
    """Raise what :func:`lsc_pretrain` would raise for these options on ``model``, without
    touching the model or doing any work (the training CLI calls it before it creates a run
    directory). ``options`` are :func:`lsc_pretrain`'s keyword arguments (``options=`` an
    :class:`LSCOptions` included).

    Raises:
        TypeError: an unknown option (the message lists the valid ones), an option of the
            wrong kind, or a model without recurrent layers (and not an MLP).
        ValueError: a bad option value, or NaN/Inf weights.

    Example:
        >>> gru = torch.nn.GRU(3, 8)
        >>> check_lsc_args(gru, rho=0.5, steps=100, lr=1e-3) is None
        True
        >>> check_lsc_args(gru, eval_steps=0)
        Traceback (most recent call last):
        ...
        ValueError: eval_steps must be an int >= 1, got 0
    """
    given = dict(options)
    _lsc_options(model, given.pop("options", None), rho=rho, **given)


def _message(report: LSCReport) -> str:
    err = report.max_error()
    within = err <= report.tol  # False for NaN: nothing measured is not success
    if report.stuck and not report.converged:
        return (f"LSC reached every target but {', '.join(report.stuck)}, which stopped "
                f"approaching its target (largest |radius - target| = {err:.3f}); see "
                f"docs/lsc.md, known limits")
    if report.converged and within:
        return (f"reached the LSC targets in {report.steps} updates ({report.seconds:.1f} s); "
                f"largest |radius - target| = {err:.3f}")
    why = "converged on the walked batches" if report.converged else \
        f"stopped at its time budget after {report.steps} updates" if report.out_of_time else \
        f"did not converge within its budget of {report.steps} updates"
    if not within:
        return (f"LSC {why}; largest |radius - target| on held sequences = {err:.3f} > tol "
                f"{report.tol}: raise " + ("max_seconds, " if report.out_of_time else "")
                + "steps, lr or batch_size")
    return (f"LSC {why}; held-sequence radii are within tol ({err:.3f}); kept the best weights "
            f"(update {report.best_step})")
