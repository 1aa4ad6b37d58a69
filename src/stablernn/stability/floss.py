"""Gradient flossing: push the leading Lyapunov exponents toward zero (docs/floss.md).

Engelken, "Gradient Flossing: Improving Gradient Descent through Dynamic Control of Jacobians"
(NeurIPS 2023, arXiv 2312.17306). A gradient through ``T`` steps is a product of ``T`` step
Jacobians; the Lyapunov exponents ``lambda_i`` are the mean log growth rates of that product,
so ``lambda_1 > 0`` makes gradients explode like ``e^(lambda_1 T)`` and strongly negative
exponents make them vanish. Flossing minimises

    ``L = sum_{i <= k} (lambda_i - target)^2``   (``target = 0``: the paper's)

over the ``k`` leading exponents, computed by the QR (Benettin) walk of
:func:`~.lyapunov.lyapunov_exponents` (the same code, run with autograd: ``torch.linalg.qr``
and the JVPs of the step are differentiable) along trajectories driven by real inputs.

- :func:`lyapunov_loss`: the differentiable term, for a user's own training loop
  (``loss = task_loss + weight * lyapunov_loss(model, x).loss``);
- :func:`floss`: pre-training, Adam on ``L`` over random windows of the inputs, with the
  exponents measured before and after (held sequences, the same windows every time).

Note [what flossing trains]: every Parameter of the recurrent layers (recurrent, input and
depth weights, biases, gates: all that the dynamics ``S[t-1] -> S[t]`` depend on); never the
readout, which the exponents do not see. Gradients are exact: they flow through the QR, the
step Jacobians and the trajectory itself (tested against finite differences), except through
the tangents of a step where a direction collapses (Note [collapsed directions] in
:mod:`.lyapunov`).

Note [skipped updates]: near a collapse (``|R_ii|`` just above the cut of Note [collapsed
directions], a ReLU cell with nearly dead units) the QR's gradient grows like ``1 / R_ii^2``
and could still overflow in float32.
An update whose gradient is not finite is skipped (weights and Adam state untouched, the
history entry says ``skipped``) rather than taken; only NaN/Inf weights or loss, or
overflowing dynamics, count as divergence.

Robustness (docs/robustness.md): every option is checked by :class:`FlossOptions` before
anything runs (:func:`check_floss_args` runs the checks for the training CLI); flossing is a
loss source of the pre-training harness (:mod:`.harness`), which runs it inside
``transaction(model)``, so a diverging update (NaN loss, NaN weights, overflowing dynamics:
``NonFiniteError``) or an interruption restores the original weights; ``max_seconds`` bounds
the whole call, measurements included (Note [time budget] in :mod:`.harness`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .. import _checks
from .._checks import (
    check_bool,
    check_finite_weights,
    check_float,
    check_int,
    check_options,
    check_seed,
)
from ..adapters import as_deep_rnn
from ..plotting import new_axes
from ..stack import DeepRNN
from .eigen import NonFiniteError, check_k
from .harness import TimeBudget, Verdict, check_max_seconds, resolve_options, run_pretraining
from .local_maps import prepare
from .lyapunov import LyapunovReport, _checked_args, _qr_spectrum
from .warmup import _batches

__all__ = ["FlossOptions", "FlossReport", "FlossTerm", "check_floss_args", "floss",
           "lyapunov_loss"]

DEFAULT_K = 16  # exponents flossed by default (capped at the state width); docs/floss.md
MEASURE_SEQUENCES = 32  # held sequences of the before / after measurement


class FlossTerm(NamedTuple):
    """The flossing loss and the exponents it was computed from.

    Attributes:
        loss: ``sum_i (lambda_i - target)^2``, a differentiable scalar.
        exponents: ``(k,)`` batch-mean exponents (natural log per step), largest first,
            differentiable.
    """

    loss: Tensor
    exponents: Tensor


def _term(per_sample: Tensor, target: float) -> FlossTerm:
    exponents = per_sample.mean(0)
    return FlossTerm((exponents - target).square().sum(), exponents)


def lyapunov_loss(model: nn.Module, x: Tensor, k: int | None = None, *, discard: int = 0,
                  target: float = 0.0, seed: int = 0) -> FlossTerm:
    """The differentiable flossing term of ``model`` along the trajectories driven by ``x``.

    The same exponents as :func:`~.lyapunov.lyapunov_exponents` (same arguments, same numbers
    but for rounding in collapsed directions), computed with autograd so ``loss.backward()``
    reaches every Parameter of the recurrent layers (Note [what flossing trains]). Tens of
    steps are enough (docs/floss.md, "Cost").

    Args:
        model: a DeepRNN or a torch.nn.RNN/LSTM/GRU.
        x: inputs ``(B, T, D)`` (``(T, B, D)`` for a torch module with ``batch_first=False``).
        k: exponents flossed (default ``min(N, 16)``, N = all layers' state width).
        discard: initial steps that only align the tangent basis (not averaged).
        target: the value the exponents are pushed to (0: the paper's).
        seed: seeds the initial orthonormal basis.

    Returns:
        A :class:`FlossTerm` ``(loss, exponents)``: ``loss = sum_i (lambda_i - target)^2``.

    Raises:
        ValueError: ``k`` larger than the state, ``discard >= T``, NaN/Inf weights, bad or
            empty ``x``, a non-finite ``target``; a state or tangent overflowing to NaN/Inf
            (``NonFiniteError``).
        TypeError: ``model`` has no recurrent layers; an option of the wrong kind.

    Example:
        >>> gru = torch.nn.GRU(2, 8, batch_first=True)
        >>> term = lyapunov_loss(gru, torch.randn(4, 30, 2), k=3)
        >>> term.loss.backward()
        >>> term.exponents.shape, gru.weight_hh_l0.grad.abs().sum() > 0
        (torch.Size([3]), tensor(True))
    """
    target = check_float("target", target)
    net, x, k, discard = _checked_args(model, x, k, discard, seed)
    return _term(_qr_spectrum(net, x, k, discard, seed), target)


# --------------------------------------------------------------------------- the report


@dataclass
class FlossReport:
    """What flossing did.

    Attributes:
        k: exponents flossed. target: the value they were pushed to.
        before / after: the exponents of the held sequences (their first ``window`` steps,
            :class:`~.lyapunov.LyapunovReport`); None when ``measure=False``.
        history: per update ``{"loss", "exponents": [k batch means], "skipped"}`` on its
            random windows (``skipped``: Note [skipped updates]).
        out_of_time: the updates stopped at ``max_seconds``.
    """

    k: int
    target: float
    before: LyapunovReport | None
    after: LyapunovReport | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    out_of_time: bool = False

    @property
    def exponents_before(self) -> list[float] | None:
        return None if self.before is None else self.before.exponents.tolist()

    @property
    def exponents_after(self) -> list[float] | None:
        return None if self.after is None else self.after.exponents.tolist()

    @property
    def skipped(self) -> int:
        """Updates skipped for a non-finite gradient (Note [skipped updates])."""
        return sum(bool(h["skipped"]) for h in self.history)

    @property
    def losses(self) -> list[float]:
        """The loss of every update (its own random windows)."""
        return [h["loss"] for h in self.history]

    def loss(self, which: str = "after") -> float | None:
        """``sum_i (lambda_i - target)^2`` of the held measurement ``which`` ("before" or
        "after"); None when it was not measured."""
        spec = getattr(self, _checks.check_choice("which", which, ("before", "after")))
        return None if spec is None else float((spec.exponents - self.target).square().sum())

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "target": self.target, "steps": self.steps,
                "seconds": round(self.seconds, 3),
                "exponents_before": self.exponents_before,
                "exponents_after": self.exponents_after,
                "loss_before": self.loss("before"), "loss_after": self.loss("after"),
                "losses": self.losses, "skipped": self.skipped,
                "out_of_time": self.out_of_time}

    def plot(self, ax: Any = None) -> Any:
        """The batch exponents of every update (lines) and the loss (grey, right axis, log
        scale) against the update; returns the axes."""
        ax = new_axes(ax)
        for i in range(self.k):
            ax.plot([h["exponents"][i] for h in self.history], lw=0.8,
                    label=rf"$\lambda_{{{i + 1}}}$" if i < 4 else None)
        ax.axhline(self.target, color="k", ls="--", lw=0.8)
        title = "gradient flossing"
        if self.before is not None and self.after is not None:
            title += f": max exponent {self.before.max:+.3f} -> {self.after.max:+.3f}"
        ax.set(xlabel="flossing update", ylabel=r"$\lambda_i$ (per step, batch)", title=title)
        if self.history:
            ax.legend(fontsize="small", loc="upper right")
            right = ax.twinx()
            right.semilogy(self.losses, color="0.5", lw=1)
            right.set_ylabel("loss", color="0.5")
        return ax


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class FlossOptions:
    """The options of :func:`floss` as one value, validated on construction; names, defaults
    and meanings are :func:`floss`'s. Use: ``floss(model, x, options=FlossOptions(k=8))``.
    Whether ``k`` fits the state and ``discard`` the inputs is checked when flossing runs.

    Raises:
        TypeError / ValueError: as :func:`floss` does for the same bad option.

    Example:
        >>> FlossOptions(k=4).window, FlossOptions(k=4).steps
        (60, 100)
        >>> FlossOptions(lr=0)
        Traceback (most recent call last):
        ...
        ValueError: lr must be > 0.0, got 0.0
    """

    k: int | None = None
    steps: int = 100
    lr: float = 1e-3
    batch_size: int = 16
    window: int = 60
    discard: int | None = None
    target: float = 0.0
    measure: bool = True
    max_seconds: float | None = None
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        checked = {
            "k": None if self.k is None else check_int("k", self.k),
            "steps": check_int("steps", self.steps),
            "lr": check_float("lr", self.lr, low=0.0, low_open=True),
            "batch_size": check_int("batch_size", self.batch_size),
            "window": check_int("window", self.window, low=2),
            "discard": None if self.discard is None else check_int("discard", self.discard,
                                                                   low=0),
            "target": check_float("target", self.target),
            "max_seconds": check_max_seconds(self.max_seconds),
            "seed": check_seed(self.seed),
        }
        for flag in ("measure", "progress"):
            checked[flag] = check_bool(flag, getattr(self, flag))
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        if self.discard is not None and self.discard >= self.window:
            raise ValueError(f"discard={self.discard} must be < window={self.window} (the "
                             f"steps of each flossed trajectory); lower discard or raise window")


# the options of floss and their defaults: FlossOptions is their one home
FLOSS_OPTIONS = {f.name: f.default for f in fields(FlossOptions)}


def _floss_options(model: nn.Module, options: FlossOptions | None = None,
                   **given: Any) -> tuple[FlossOptions, int]:
    """Every option checked (:class:`FlossOptions`), the model's kind and weights too; the
    options and ``k`` resolved against the model's state width."""
    check_options("flossing", given, FLOSS_OPTIONS)
    net = as_deep_rnn(model)  # TypeError for a model without recurrent layers
    opts = resolve_options(FlossOptions, options, given)
    k = check_k(opts.k, sum(c.state_size for c in net.layers), default=DEFAULT_K,
                what="exponents", width="dimensions, all layers together")
    check_finite_weights(model)
    return opts, k


def check_floss_args(model: nn.Module, **options: Any) -> None:
    """Raise what :func:`floss` would raise for these options on ``model``, without touching
    the model or doing any work (the training CLI calls it before it creates a run directory).
    ``options`` are :func:`floss`'s keyword arguments (``options=`` a :class:`FlossOptions`
    included).

    Raises:
        TypeError: an unknown option (the message lists the valid ones), an option of the
            wrong kind, or a model without recurrent layers.
        ValueError: a bad option value (e.g. ``k`` beyond the state width), NaN/Inf weights.

    Example:
        >>> check_floss_args(torch.nn.GRU(1, 8), k=4, steps=50) is None
        True
        >>> check_floss_args(torch.nn.GRU(1, 8), k=9)
        Traceback (most recent call last):
        ...
        ValueError: k=9 exponents is larger than the state (8 dimensions, ...); use k <= 8
    """
    given = dict(options)
    _floss_options(model, given.pop("options", None), **given)


# --------------------------------------------------------------------------- the verb


def default_discard(window: int) -> int:
    """Steps of a ``window``-step trajectory that align the tangent basis before exponents
    are accumulated: a quarter (the reference code discards 16 of its 55 steps)."""
    return window // 4


def _discard(opts: FlossOptions, window: int) -> int:
    """The steps that align the basis: ``opts.discard``, or :func:`default_discard`."""
    discard = default_discard(window) if opts.discard is None else opts.discard
    if discard >= window:
        raise ValueError(f"discard={discard} must be < {window}, the steps of each flossed "
                         f"trajectory (window={opts.window}, capped at the inputs' length); "
                         f"lower discard")
    return discard


def _diverged(step: int, opts: FlossOptions, why: str) -> NonFiniteError:
    return NonFiniteError(f"flossing diverged at update {step + 1}: {why}. The model's original "
                          f"weights were restored; lower lr (now {opts.lr:g})")


class _Source:
    """Flossing's loss source for the harness: the exponents of the held sequences before and
    after, one Adam step on the flossing loss of a random batch of windows per update, no
    stopping test (every update is taken)."""

    name = "flossing"

    def __init__(self, net: DeepRNN, inputs: Tensor, opts: FlossOptions, k: int) -> None:
        self.net, self.opts, self.k = net, opts, k
        self.window = min(opts.window, inputs.shape[1])
        self.discard = _discard(opts, self.window)
        self.inputs = inputs
        self.held = inputs[:MEASURE_SEQUENCES, :self.window]
        self.params = [p for p in net.cells.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model's recurrent layers have no trainable Parameters (all "
                             "requires_grad=False): nothing to floss; unfreeze them first")
        self.opt = torch.optim.Adam(self.params, lr=opts.lr)
        self.gen = torch.Generator().manual_seed(opts.seed)
        self.batches = _batches(len(inputs), min(opts.batch_size, len(inputs)), self.gen)
        self.exponents = torch.zeros(k)

    def measure_before(self, budget: TimeBudget) -> LyapunovReport | None:
        return self.measure_after()

    def measure_after(self) -> LyapunovReport | None:
        if not self.opts.measure:
            return None
        with torch.no_grad():
            per_sample = _qr_spectrum(self.net, self.held, self.k, self.discard, self.opts.seed)
        return LyapunovReport(per_sample.mean(0).cpu(), per_sample.cpu(),
                              self.window - self.discard)

    def _windows(self, rows: Tensor) -> Tensor:
        """A random window of ``self.window`` steps of each sequence ``rows``."""
        T = self.inputs.shape[1]
        start = torch.randint(0, T - self.window + 1, (len(rows), 1), generator=self.gen)
        steps = start + torch.arange(self.window)
        return self.inputs[rows[:, None].to(self.inputs.device), steps.to(self.inputs.device)]

    def update(self, step: int, budget: TimeBudget) -> dict[str, Any]:
        """One Adam step on the flossing loss; its loss and batch exponents."""
        o = self.opts
        x = self._windows(next(self.batches))
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=self.gen))
        try:
            term = _term(_qr_spectrum(self.net, x, self.k, self.discard, seed), o.target)
        except NonFiniteError as err:
            raise _diverged(step, o, str(err)) from None
        if not bool(torch.isfinite(term.loss)):
            raise _diverged(step, o, f"the loss became {float(term.loss.detach())}")
        self.opt.zero_grad(set_to_none=True)
        term.loss.backward()
        # Note [skipped updates]
        skipped = not _checks.all_finite(p.grad for p in self.params if p.grad is not None)
        if not skipped:
            self.opt.step()
        if not _checks.all_finite(self.params):
            raise _diverged(step, o, "the update made weights NaN/Inf")
        self.exponents = term.exponents.detach()
        return {"loss": term.loss.item(), "exponents": self.exponents.tolist(),
                "skipped": skipped}

    def judge(self, step: int, record: dict[str, Any]) -> Verdict:
        return Verdict(postfix={"loss": f"{record['loss']:.3g}",
                                "max": f"{float(self.exponents[0]):+.3f}"})

    def confirm(self, step: int, budget: TimeBudget) -> None:
        return None  # no stopping test: every update is taken


def floss(model: nn.Module, inputs: Tensor, *, k: int | None = None, steps: int = 100,
          lr: float = 1e-3, batch_size: int = 16, window: int = 60, discard: int | None = None,
          target: float = 0.0, measure: bool = True, max_seconds: float | None = None,
          seed: int = 0, progress: bool = False,
          options: FlossOptions | None = None) -> FlossReport:
    """Floss ``model`` in place: push its ``k`` leading Lyapunov exponents toward ``target``.

    Args:
        model: a DeepRNN (of any cells) or a ``torch.nn.RNN/LSTM/GRU`` (changed in place
            through shared Parameters). Every Parameter of its recurrent layers is trained,
            never the readout (Note [what flossing trains]).
        inputs: task input sequences ``(N, T, D)`` batch-first (``(T, N, D)`` for a torch
            module with ``batch_first=False``); labels are not used.
        k: exponents flossed (default ``min(state width, 16)``; docs/floss.md, "Options").
        steps: Adam updates. lr: Adam learning rate (1e-3, the reference code's).
        batch_size: sequences per update (capped at ``N``).
        window: steps of each flossed trajectory, a random window of each sequence (capped
            at ``T``); every trajectory starts from the initial state.
        discard: initial steps of each trajectory that only align the tangent basis (default
            ``window // 4``; must be < the window).
        target: the value the exponents are pushed to (0: the paper's).
        measure: measure the exponents of the first 32 sequences (their first ``window``
            steps) before and after.
        max_seconds: optional time budget of the whole call, measurements included.
        seed: seeds batches, windows and tangent bases. progress: a tqdm bar.
        options: all of the above as one :class:`FlossOptions` (then pass no other option).

    Returns:
        A :class:`FlossReport` (exponents before and after, loss and exponents per update).

    Raises:
        ValueError: a bad option value (checked by :func:`check_floss_args` first: ``k``
            beyond the state width, ``steps < 1``, ``lr <= 0``, ...), ``discard`` not below
            the window, NaN/Inf weights, bad or non-finite inputs, no trainable Parameter in
            the recurrent layers; ``NonFiniteError`` (also a
            ``FloatingPointError``) when an update diverges. On any error the model keeps its
            original weights.
        TypeError: ``model`` has no recurrent layers; an unknown option or one of the wrong
            kind; ``options`` with other options.

    Example:
        >>> rnn = torch.nn.RNN(2, 8, batch_first=True)
        >>> report = floss(rnn, torch.randn(16, 30, 2), k=2, steps=15, lr=1e-2, batch_size=8)
        >>> report.loss("after") < report.loss("before")
        True
    """
    given, start = dict(locals()), time.perf_counter()
    opts, k = _floss_options(model, given["options"],
                             **{name: given[name] for name in FLOSS_OPTIONS})
    net, inputs = prepare(model, inputs, name="inputs")
    source = _Source(net, inputs, opts, k)
    outcome = run_pretraining(model, net, source, steps=opts.steps, start=start,
                              max_seconds=opts.max_seconds, progress=opts.progress)
    return FlossReport(k, opts.target, outcome.before, outcome.after, history=outcome.history,
                       steps=outcome.steps, seconds=outcome.seconds,
                       out_of_time=outcome.out_of_time)
