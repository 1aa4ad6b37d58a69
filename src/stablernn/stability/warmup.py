"""Warm-up: unsupervised pre-training to reachable multistability (docs/algorithms.md section 4).

Lambrechts, De Geeter, Vecoven, Ernst & Drion, "Warming up recurrent neural networks to
maximise reachable multistability greatly improves learning" (arXiv 2106.01001, section 4).
A network that forgets (one attractor under constant input, VAA = 1/n) cannot carry
information over long gaps; warm-up pushes a differentiable surrogate of VAA to a target before
ordinary training, using input sequences only:

- reachable states: run every sequence on a random prefix ``c_i in 1..T`` (with gradient);
- per layer ``l``: feed *only that layer* its own constant random input ``u_l`` for ``S`` steps
  from its reachable states, squash the final states with tanh and take the soft count
  ``VAA*_l = mean_i 1 / sum_j C_ij`` (Note [soft count]);
- loss ``mean_l (VAA*_l - target)^2``, Adam, ``S ~ U{1..min(1 + s_increment k, s_max)}`` at step
  ``k`` (the stabilisation-length curriculum: short horizons first, so early gradients are not
  lost through hundreds of contracting steps).

Partial warm-up: layers built as double layers (:mod:`stablernn.cells.double`) warm only their
first half; the second half's parameters are frozen during warm-up, so no gradient of the VAA*
term reaches it (not even through the prefix runs of the layers below).

Note [soft count]: ``C_ij = 1 - relu(d_ij - eps) / (d_ij + 1e-6)`` is exactly 1 for
``d_ij <= eps`` (the hard "same attractor" test) and ``(eps + 1e-6) / (d_ij + 1e-6) ~ eps / d``
for ``d_ij >> eps``, so away from ``d = eps`` the soft count equals the hard count up to
``~ n eps / d_min``; between, it decays smoothly and gives a gradient that pushes states apart.

Note [collapse penalty]: once every final state of a layer lies within ``eps`` of every other
(VAA* = 1/n, one attractor), each ``C_ij`` is exactly 1 and the soft count has zero gradient:
the loss cannot leave the collapse, however far VAA* is from the target. This is how warm-up
often leaves an LSTM layer beyond T = 100 (the target-seeking loss overshoots, merges the
states, and stays there). ``repulsion > 0`` adds ``repulsion * mean_l P_l`` with
``P_l = mean_{i<j} relu(log eps - log d_ij)`` on the same tanh-squashed final states: zero when
no two states share an attractor (the paper's loss is unchanged there), positive otherwise, and
its gradient ``d log d_ij = d d_ij / d_ij`` does not shrink with the distance: under a
contraction both ``d_ij`` and its gradient scale with the same factor, so their ratio (a
finite-time log expansion rate of the constant-input dynamics) survives where the soft count's
gradient is zero. Pairs that coincide exactly (``d_ij = 0`` in floating point) contribute the
constant ``log(eps / 1e-30)`` and no gradient (the distance's gradient is 0 there).

Robustness (docs/robustness.md): every option is checked by :class:`WarmupOptions` before
anything runs (:func:`check_warmup_args` runs the checks for the training CLI); warm-up is a
loss source of the pre-training harness (:mod:`.harness`), which runs it inside
``transaction(model)``, so a diverging step (NaN loss or weights: ``NonFiniteError``) or an
interruption restores the original weights; ``max_seconds`` bounds the whole call as in LSC
(Note [time budget] in :mod:`.harness`; the constant-input loop checks the clock at every step).
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import (
    all_finite,
    check_bool,
    check_finite_weights,
    check_float,
    check_int,
    check_options,
    check_positive,
    check_seed,
    is_int,
)
from .._deprecation import rename_kwargs, renamed_kwargs
from ..adapters import as_deep_rnn
from ..cells.base import Cell, flatten_state
from ..cells.fused import stack_kernel
from ..plotting import new_axes
from ..stack import DeepRNN
from .eigen import NonFiniteError
from .harness import (
    HarnessReport,
    Stop,
    Verdict,
    check_max_seconds,
    resolve_options,
    run_pretraining,
)
from .local_maps import prepare
from .lsc import OutOfTime, TimeBudget
from .vaa import VAAReport, constant_input_run, reachable_states, vaa

__all__ = ["WarmupOptions", "WarmupReport", "check_warmup_args", "collapse_penalty",
           "curriculum_length", "soft_counts", "vaa_star", "vaa_star_layers", "warmup",
           "warmup_loss"]

EPS = 1e-4            # the VAA distance threshold (docs/algorithms.md section 1.5)
SOFT_DENOM = 1e-6     # Note [soft count]
LOG_FLOOR = 1e-30     # Note [collapse penalty]: log(d + LOG_FLOOR), finite at d = 0
MEASURE_SEQUENCES = 32  # sequences used for the before / after VAA measure (the paper's n)


# --------------------------------------------------------------------------- the report


@dataclass
class WarmupReport:
    """What warm-up did.

    Attributes:
        target: the VAA* target. layers: the warmed layers (0-based). partial: True when the
            warmed layers are double layers and only their first halves were warmed.
        before / after: the VAA measure (docs/algorithms.md section 1.5; ``measure_steps`` steps) of
            the whole network on held sequences; None when ``measure_steps=0``.
        history: per warm-up step ``{"S", "loss", "vaa_star": [per layer]}``.
        out_of_time: the steps stopped at ``max_seconds``.
    """

    target: float
    layers: list[int]
    partial: bool
    before: VAAReport | None
    after: VAAReport | None = None
    steps: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    out_of_time: bool = False

    @property
    def vaa_before(self) -> float | None:
        return None if self.before is None else self.before.vaa

    @property
    def vaa_after(self) -> float | None:
        return None if self.after is None else self.after.vaa

    @property
    def attractors_before(self) -> int | None:
        return None if self.before is None else self.before.attractors

    @property
    def attractors_after(self) -> int | None:
        return None if self.after is None else self.after.attractors

    def to_dict(self) -> dict[str, Any]:
        final = self.history[-1]["vaa_star"] if self.history else []
        return {"target": self.target, "layers": self.layers, "partial": self.partial,
                "steps": self.steps, "seconds": round(self.seconds, 3),
                "vaa_before": self.vaa_before, "vaa_after": self.vaa_after,
                "attractors_before": self.attractors_before,
                "attractors_after": self.attractors_after,
                "measure_steps": None if self.before is None else self.before.steps,
                "final_vaa_star": final,
                "out_of_time": self.out_of_time}

    def plot(self, ax: Any = None) -> Any:
        """VAA* of every warmed layer against the warm-up step, target dashed; returns axes."""
        ax = new_axes(ax)
        for i, layer in enumerate(self.layers):
            ax.plot([h["vaa_star"][i] for h in self.history], lw=1, label=f"layer {layer}")
        ax.axhline(self.target, color="k", ls="--", lw=0.8, label="target")
        title = "warm-up"
        if self.vaa_before is not None and self.vaa_after is not None:
            title += f": VAA {self.vaa_before:.3f} -> {self.vaa_after:.3f}"
        ax.set(xlabel="warm-up step", ylabel="VAA* (batch)", ylim=(0, 1.02), title=title)
        ax.legend(fontsize="small")
        return ax


# --------------------------------------------------------------------------- VAA*


def soft_counts(z: Tensor, eps: float = EPS) -> Tensor:
    """Soft neighbour count ``sum_j C_ij`` of each row of ``z`` ``(n, N)`` (Note [soft count]).

    Example:
        >>> soft_counts(torch.tensor([[0.0], [0.0], [5.0]])).round(decimals=3)
        tensor([2., 2., 1.])
    """
    if not isinstance(z, Tensor) or z.dim() != 2 or not z.is_floating_point():
        raise TypeError(f"z must be a float tensor (n, N), got "
                        f"{tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}")
    check_positive("eps", eps)
    # the matmul form of cdist loses ~sqrt(float eps) |z|: far too coarse for eps = 1e-4
    d = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")  # (n, n)
    return (1 - F.relu(d - eps) / (d + SOFT_DENOM)).sum(1)


def vaa_star(final_states: Tensor, eps: float = EPS) -> Tensor:
    """Differentiable VAA* of final states ``(n, N)``: tanh-squash, then ``mean_i 1 / count_i``.

    Args:
        final_states: the states after the constant-input run, one row per sample.
        eps: the distance under which two states count as one attractor.

    Returns:
        A scalar tensor in ``[1/n, 1]`` (up to the soft count's tails).

    Example:
        >>> float(vaa_star(torch.zeros(4, 3)))     # one attractor: 1/n
        0.25
    """
    return (1.0 / soft_counts(torch.tanh(final_states), eps)).mean()


def warmup_loss(vaa_stars: Tensor, target: float = 0.95) -> Tensor:
    """``mean_l (VAA*_l - target)^2`` over the per-layer values ``(L,)``."""
    return (vaa_stars - _check_target(target)).square().mean()


def curriculum_length(k: int, gen: torch.Generator, *, s_max: int = 200,
                      s_increment: int = 10) -> int:
    """Stabilisation length of warm-up step ``k``: ``S ~ U{1 .. min(1 + s_increment k, s_max)}``.

    Example:
        >>> curriculum_length(0, torch.Generator().manual_seed(0))
        1
    """
    k = check_int("k", k, low=0)
    s_max, s_increment = _check_curriculum(s_max, s_increment)
    high = min(1 + s_increment * k, s_max)
    return int(torch.randint(1, high + 1, (), generator=gen))


def _no_clock() -> None:
    pass


def collapse_penalty(final_states: Tensor, eps: float = EPS) -> Tensor:
    """Log-distance repulsion of final states ``(n, N)`` that share an attractor (Note
    [collapse penalty]): ``mean_{i<j} relu(log eps - log d_ij)`` on the tanh-squashed states.

    Zero when every pair is farther apart than ``eps``; positive, with a gradient that does
    not shrink with the distances, when some states fall within ``eps`` of each other (where
    the soft count is flat).

    Example:
        >>> float(collapse_penalty(torch.tensor([[0.0], [1.0]])))      # far apart: zero
        0.0
        >>> round(float(collapse_penalty(torch.tensor([[0.0], [1e-6]]), eps=1e-4)), 3)
        4.605
    """
    z = final_states
    if not isinstance(z, Tensor) or z.dim() != 2 or not z.is_floating_point() or len(z) < 2:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise TypeError(f"final_states must be a float tensor (n >= 2, N), got {got}")
    eps = check_positive("eps", eps)
    z = torch.tanh(final_states)
    d = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")  # exact: see soft_counts
    i, j = torch.triu_indices(len(z), len(z), 1, device=z.device)
    return F.relu(math.log(eps) - torch.log(d[i, j] + LOG_FLOOR)).mean()


def _layer_final(cell: Cell, state: tuple, u: Tensor, S: int,
                 clock: Callable[[], None] = _no_clock, fused: bool = True) -> Tensor:
    """The warm part's flattened state ``(n, N)`` after ``S`` steps of the constant ``u``."""
    part, s = cell.warm_part(), cell.warm_state(state)
    kernel = stack_kernel([part], fused)
    if kernel is not None:  # Note [fused VAA runs]; the clock is checked between chunks
        (s,) = constant_input_run([part], kernel, u, [s], S, clock)
        return flatten_state(s)
    p = part.project(u)  # the input is constant: project it once
    for _ in range(S):
        clock()  # the long loop of a step: the time budget is checked here (raises OutOfTime)
        s = part.recur(p, s)
    return flatten_state(s)


def _cold_params(model: DeepRNN, layers: Sequence[int]) -> list[nn.Parameter]:
    """Parameters warm-up must not change: cold halves and the layers not warmed."""
    cold = []
    for layer, cell in enumerate(model.layers):
        if layer not in layers:
            cold += list(cell.parameters())
        else:
            cold += list(cell.cold_parameters())
    return cold


@contextlib.contextmanager
def _frozen(params: Sequence[nn.Parameter]) -> Iterator[None]:
    """Leave ``params`` out of the autograd graph built inside the block."""
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def vaa_star_layers(model: nn.Module, x: Tensor, *, stabilisation: int = 200,
                    layers: Sequence[int] | None = None, eps: float = EPS,
                    seed: int = 0) -> Tensor:
    """Differentiable VAA* of each warmed layer from the states reachable from ``x``.

    Double layers contribute their first half only, and their second halves (and layers not
    in ``layers``) stay out of the graph, so the VAA* term sends them no gradient.

    Args:
        model: a DeepRNN or a torch.nn.RNN/LSTM/GRU. x: ``(n, T, D)`` sequences, ``n >= 2``
            (``(T, n, D)`` for a torch module with ``batch_first=False``).
        stabilisation: constant-input steps ``S``. layers: 0-based layers (default all).
        eps: attractor distance. seed: seeds the prefix lengths and the inputs ``u_l``.

    Returns:
        ``(len(layers),)`` tensor of VAA* values.

    Raises:
        ValueError: NaN/Inf weights, bad ``x``, ``layers``, ``eps`` or ``stabilisation < 1``.
        TypeError: not an RNN; an option of the wrong kind.

    Example:
        >>> v = vaa_star_layers(torch.nn.GRU(2, 8, 2, batch_first=True), torch.randn(6, 5, 2),
        ...                     stabilisation=20)
        >>> v.shape, bool(((v >= 1 / 6 - 1e-3) & (v <= 1)).all())
        (torch.Size([2]), True)
    """
    net, x = _prepare(model, x, "x")
    layers = _check_layers(layers, net.num_layers)
    check_int("stabilisation", stabilisation)
    eps = check_positive("eps", eps)
    finals = _final_states(net, x, stabilisation, layers,
                           torch.Generator().manual_seed(check_seed(seed)))
    return torch.stack([vaa_star(z, eps) for z in finals])


def _final_states(model: DeepRNN, x: Tensor, S: int, layers: list[int], gen: torch.Generator,
                  clock: Callable[[], None] = _no_clock) -> list[Tensor]:
    """Per warmed layer, its warm part's final states ``(n, N)`` after ``S`` constant-input
    steps from the states reachable from ``x`` (differentiable; cold parameters frozen)."""
    cells = model.layers
    cut = torch.randint(1, x.shape[1] + 1, (x.shape[0],), generator=gen).to(x.device)
    us = [torch.randn(cells[layer].input_size, generator=gen).to(x) for layer in layers]
    with _frozen(_cold_params(model, layers)):
        states = reachable_states(model, x, cut)
        return [_layer_final(cells[layer], states[layer], u.expand(x.shape[0], -1), S, clock,
                             model.fused)
                for layer, u in zip(layers, us, strict=True)]


# --------------------------------------------------------------------------- validation


INT_MAX = 2 ** 62  # counts beyond this overflow torch's samplers


def _check_target(target: Any) -> float:
    try:
        return check_float("target", target, low=0.0, low_open=True, high=1.0)
    except ValueError:
        raise ValueError(f"target must be in (0, 1] (the VAA* to reach: 1/n is one attractor, 1 "
                         f"every sample its own), got {target!r}; the paper uses 0.95") from None


def _check_curriculum(s_max: Any, s_increment: Any) -> tuple[int, int]:
    return (check_int("s_max", s_max, high=INT_MAX),
            check_int("s_increment", s_increment, low=0, high=INT_MAX))


def _check_repulsion(repulsion: Any) -> float:
    try:
        return check_float("repulsion", repulsion, low=0.0)
    except ValueError:
        raise ValueError(f"repulsion must be a finite float >= 0 (the weight of the collapse "
                         f"penalty, Note [collapse penalty]; 0 turns it off), got "
                         f"{repulsion!r}") from None


def _check_layers(layers: Any, num_layers: int) -> list[int]:
    if layers is None:
        return list(range(num_layers))
    if is_int(layers):
        layers = [layers]
    if not isinstance(layers, (list, tuple, range)):
        raise TypeError(f"layers must be a non-empty list of layer indices in "
                         f"0..{num_layers - 1}, got {layers!r}")
    layers = list(layers)
    bad = [layer for layer in layers
           if not is_int(layer) or not -num_layers <= int(layer) < num_layers]
    if bad or not layers:
        raise ValueError(f"layers must be a non-empty list of layer indices in 0..{num_layers - 1}"
                         f", got {layers!r}")
    return sorted({int(layer) % num_layers for layer in layers})


def _prepare(model: nn.Module, inputs: Tensor, name: str) -> tuple[DeepRNN, Tensor]:
    """:func:`~.local_maps.prepare`, and at least 2 sequences (VAA* compares them)."""
    net, inputs = prepare(model, inputs, name=name)
    if inputs.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 sequences of at least 1 step (VAA* "
                         f"compares sequences), got {inputs.shape[0]} (shape "
                         f"{tuple(inputs.shape)} batch-first)")
    return net, inputs


@dataclass(frozen=True)
class WarmupOptions:
    """Every option of :func:`warmup`, checked when built (same names, defaults and meanings;
    see there): ``warmup(model, x, options=WarmupOptions(steps=50))``. ``layers`` is checked
    against the model when warm-up runs.

    Raises:
        TypeError / ValueError: an option of the wrong kind or a bad value (the same messages
            as :func:`warmup`).

    Example:
        >>> WarmupOptions(steps=50, batch_size=16).batch_size
        16
        >>> WarmupOptions(batch_size=1)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be an int >= 2, got 1
    """

    target: float = 0.95
    steps: int = 100
    lr: float = 1e-2
    batch_size: int = 32
    s_max: int = 200
    s_increment: int = 10
    layers: Sequence[int] | None = None
    eps: float = EPS
    repulsion: float = 0.0
    measure_steps: int = 10000
    max_seconds: float | None = None
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        s_max, s_increment = _check_curriculum(self.s_max, self.s_increment)
        checked = {
            "target": _check_target(self.target),
            "steps": check_int("steps", self.steps),
            "lr": check_positive("lr", self.lr),
            "batch_size": check_int("batch_size", self.batch_size, low=2),
            "s_max": s_max, "s_increment": s_increment,
            "eps": check_positive("eps", self.eps),
            "repulsion": _check_repulsion(self.repulsion),
            "measure_steps": check_int("measure_steps", self.measure_steps, low=0),
            "max_seconds": check_max_seconds(self.max_seconds),
            "seed": check_seed(self.seed),
            "progress": check_bool("progress", self.progress),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)


# the options of warmup and their defaults: WarmupOptions is their one home
WARMUP_OPTIONS = {f.name: f.default for f in fields(WarmupOptions)}
RENAMED = {"batch": "batch_size"}  # old option names, accepted with a DeprecationWarning


def _warmup_options(model: nn.Module, options: WarmupOptions | None = None,
                    **given: Any) -> WarmupOptions:
    """Every option checked (:class:`WarmupOptions`), ``layers`` resolved against the model,
    the model's kind and weights checked too."""
    check_options("warm-up", given, WARMUP_OPTIONS)
    net = as_deep_rnn(model)
    opts = resolve_options(WarmupOptions, options, given)
    opts = replace(opts, layers=_check_layers(opts.layers, net.num_layers))
    check_finite_weights(model)
    return opts


def _resolved_layers(opts: WarmupOptions) -> list[int]:
    """``opts.layers`` as :func:`_warmup_options` resolved them against the model."""
    assert isinstance(opts.layers, list)
    return opts.layers


def check_warmup_args(model: nn.Module, **options: Any) -> None:
    """Raise what :func:`warmup` would raise for these options on ``model``, without touching
    the model or doing any work (the training CLI calls it before it creates a run directory).
    ``options`` are :func:`warmup`'s keyword arguments (``options=`` a :class:`WarmupOptions`
    included; the deprecated ``batch`` too).

    Raises:
        TypeError: an unknown option (the message lists the valid ones), an option of the
            wrong kind, or a model without recurrent layers.
        ValueError: a bad option value (e.g. ``layers`` the model does not have), NaN/Inf
            weights.

    Example:
        >>> check_warmup_args(torch.nn.GRU(1, 8), steps=50, lr=1e-2) is None
        True
        >>> check_warmup_args(torch.nn.GRU(1, 8), batch_size=1)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be an int >= 2, got 1
    """
    given = rename_kwargs("check_warmup_args", options, RENAMED)
    _warmup_options(model, given.pop("options", None), **given)


# --------------------------------------------------------------------------- the verb


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[Tensor]:
    """Epoch-wise random batches of indices, forever (the reference code's sampling)."""
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i:i + batch_size]


def _diverged(k: int, opts: WarmupOptions, why: str) -> NonFiniteError:
    return NonFiniteError(f"warm-up diverged at step {k + 1}: {why}. The model's original "
                          f"weights were restored; lower lr (now {opts.lr:g}) or s_max (now "
                          f"{opts.s_max})")


BACKWARD_RATIO = 2.0  # backward through an unroll / its forward, with a margin (measured ~1-1.5)


def _step_clock(budget: TimeBudget) -> Callable[[], None]:
    """The clock of one step's unroll: stop it (OutOfTime) once the backward through what is
    unrolled so far would no longer fit; the curriculum makes each step's unroll longer than
    the last, so the previous step's cost does not predict this one."""
    start = time.perf_counter()

    def clock() -> None:
        if budget.left() < BACKWARD_RATIO * (time.perf_counter() - start):
            budget.exhausted = True
            raise OutOfTime

    return clock


class _Source:
    """Warm-up's loss source for the harness: the VAA measure before and after, one Adam step
    on ``mean_l (VAA*_l - target)^2`` per update, no stopping test (every step is taken)."""

    name = "warm-up"

    def __init__(self, net: DeepRNN, inputs: Tensor, opts: WarmupOptions) -> None:
        self.net, self.inputs, self.opts = net, inputs, opts
        self.held = inputs[:MEASURE_SEQUENCES]
        layers, cells = _resolved_layers(opts), net.layers
        cold = {id(p) for p in _cold_params(net, layers)}
        self.params = [p for layer in layers for p in cells[layer].warm_part().parameters()
                       if p.requires_grad and id(p) not in cold]
        self.opt = torch.optim.Adam(self.params, lr=opts.lr)
        self.gen = torch.Generator().manual_seed(opts.seed)
        self.batches = _batches(len(inputs), min(opts.batch_size, len(inputs)), self.gen)
        self.stars = torch.zeros(0)

    def measure_before(self, budget: TimeBudget) -> VAAReport | None:
        return self.measure_after()

    def measure_after(self) -> VAAReport | None:
        o = self.opts
        return vaa(self.net, self.held, time_steps=o.measure_steps, eps=o.eps, seed=o.seed) \
            if o.measure_steps else None

    def update(self, k: int, budget: TimeBudget) -> dict[str, Any]:
        """One warm-up step; its curriculum length, loss and every warmed layer's VAA*."""
        o = self.opts
        S = curriculum_length(k, self.gen, s_max=o.s_max, s_increment=o.s_increment)
        batch = self.inputs[next(self.batches)]
        finals = _final_states(self.net, batch, S, _resolved_layers(o), self.gen,
                               _step_clock(budget))
        stars = torch.stack([vaa_star(z, o.eps) for z in finals])
        loss = warmup_loss(stars, o.target)
        extra: dict[str, Any] = {}
        if o.repulsion:  # Note [collapse penalty]
            penalty = torch.stack([collapse_penalty(z, o.eps) for z in finals])
            loss = loss + o.repulsion * penalty.mean()
            extra["penalty"] = penalty.detach().tolist()
        if not bool(torch.isfinite(loss)):
            raise _diverged(k, o, f"the loss became {float(loss.detach())}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if not all_finite(self.params):
            raise _diverged(k, o, "the update made weights NaN/Inf")
        self.stars = stars.detach()
        return {"S": S, "loss": loss.item(), "vaa_star": self.stars.tolist(), **extra}

    def judge(self, k: int, record: dict[str, Any]) -> Verdict:
        return Verdict(postfix={"vaa_star": f"{float(self.stars.mean()):.3f}"})

    def confirm(self, k: int, budget: TimeBudget) -> Stop | None:
        return None


@renamed_kwargs(**RENAMED)
def warmup(model: nn.Module, inputs: Tensor, *, target: float = 0.95, steps: int = 100,
           lr: float = 1e-2, batch_size: int = 32, s_max: int = 200, s_increment: int = 10,
           layers: Sequence[int] | None = None, eps: float = EPS, repulsion: float = 0.0,
           measure_steps: int = 10000, max_seconds: float | None = None, seed: int = 0,
           progress: bool = False, options: WarmupOptions | None = None) -> WarmupReport:
    """Warm ``model`` up in place so its reachable states stay in many attractors.

    Args:
        model: a DeepRNN (of any cells; double layers warm their first half only) or a
            ``torch.nn.GRU/LSTM/RNN`` (changed in place through shared Parameters).
        inputs: task input sequences only, ``(N, T, D)`` batch-first, ``N >= 2`` (``(T, N, D)``
            for a torch module with ``batch_first=False``).
        target: VAA* target in ``(0, 1]`` (paper: 0.95).
        steps: Adam steps (paper: 100). lr: Adam learning rate (paper: 1e-2).
        batch_size: sequences per step (>= 2; paper 32; capped at ``N``; ``batch`` is its
            deprecated old name).
        s_max, s_increment: the curriculum ``S ~ U{1..min(1 + s_increment k, s_max)}``.
        layers: 0-based layers to warm (default all); others are left unchanged.
        eps: attractor distance (1e-4).
        repulsion: weight of the collapse penalty added to the loss, ``repulsion * mean_l
            collapse_penalty_l`` (Note [collapse penalty]): a way out for a layer whose final
            states all fall within ``eps`` (VAA* = 1/n, zero gradient of the soft count); 0
            (the default, the paper's loss) turns it off.
        measure_steps: constant-input steps of the before / after VAA measure (10000 in
            docs/algorithms.md section 1.5) on the first 32 sequences; 0 skips the measure.
        max_seconds: optional time budget of the whole call, the before / after measure
            included (its cost is kept in reserve; only a before measure longer than the
            budget overruns it).
        seed: seeds batches, prefixes, constant inputs and curriculum. progress: a tqdm bar.
        options: all of the above as one :class:`WarmupOptions` (then pass no other option).

    Returns:
        A :class:`WarmupReport` (VAA and attractor count before and after, VAA* history).

    Raises:
        ValueError: target outside (0, 1], steps < 1, batch_size < 2, bad inputs / layers / options
            (all checked by :func:`check_warmup_args` first), NaN/Inf weights;
            ``NonFiniteError`` (also a ``FloatingPointError``) when a step diverges. On any
            error the model keeps its original weights.
        TypeError: ``model`` has no recurrent layers; an unknown option or one of the wrong
            kind; ``options`` with other options.

    Example:
        >>> gru = torch.nn.GRU(1, 32, num_layers=2, batch_first=True)
        >>> report = warmup(gru, torch.randn(64, 50, 1), steps=60, measure_steps=1000)
        >>> report.vaa_after > report.vaa_before
        True
    """
    given, start = dict(locals()), time.perf_counter()
    opts = _warmup_options(model, given["options"],
                           **{name: given[name] for name in WARMUP_OPTIONS})
    net, inputs = _prepare(model, inputs, "inputs")
    source = _Source(net, inputs, opts)
    outcome = run_pretraining(model, net, source, steps=opts.steps, start=start,
                              max_seconds=opts.max_seconds, progress=opts.progress)
    return _report(outcome, net, opts)


def _report(outcome: HarnessReport, net: DeepRNN, opts: WarmupOptions) -> WarmupReport:
    layers, cells = _resolved_layers(opts), net.layers
    partial = any(cells[layer].warm_part() is not cells[layer] for layer in layers)
    return WarmupReport(opts.target, layers, partial, outcome.before, outcome.after,
                        outcome.steps, outcome.seconds, outcome.history, outcome.out_of_time)
