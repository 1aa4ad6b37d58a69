"""One pre-training harness for every method that changes a model before training (LSC, warm-up).

A method supplies a :class:`LossSource`: what it measures before and after, one update, and its
stopping test. The harness owns everything else, once: the progress bar, the time budget, the
update budget, best-weights keeping, the before / after measurement and the transactional
restore (an error part-way, Ctrl-C included, puts the original weights back; docs/robustness.md).
docs/lsc.md and docs/warmup.md show the two sources.

Note [time budget]: ``max_seconds`` bounds the whole call, the before / after measurements
included. The before measurement is timed and 1.25 times its cost is kept in reserve for the
after measurement (a source may cut its before measurement short, see :func:`TimeBudget.share`).
An update starts only when the running estimate of one update's cost (``max(last, EMA)``) fits
in what is left; a source checks the clock inside long updates (:meth:`TimeBudget.check`) and
abandons one that would overrun before anything is applied. Only a single measurement step
longer than the budget can overrun it.

Note [best weights]: a source's stopping test scores every update (lower is better, e.g. the
mean distance of the radii from their targets). When the updates end without the test stopping
them (update or time budget spent), the weights of the best-scoring update are put back; when
the test stops them, the current weights are kept (``best_step`` is then the last update). A
source that scores nothing keeps the last weights and reports ``best_step = 0``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from torch import nn
from tqdm.auto import tqdm

from .._checks import check_positive
from .._transaction import transaction

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["HarnessReport", "LossSource", "OutOfTime", "Stop", "TimeBudget", "Verdict",
           "check_max_seconds", "resolve_options", "run_pretraining"]


class OutOfTime(Exception):
    """Raised inside an update that would overrun the time budget (caught by the harness)."""


class TimeBudget:
    """The clock of a call with an optional ``max_seconds`` (Note [time budget]).

    Example:
        >>> budget = TimeBudget(None)
        >>> budget.fits(), budget.left() == math.inf
        (True, True)
    """

    def __init__(self, max_seconds: float | None, start: float | None = None) -> None:
        self.start = time.perf_counter() if start is None else start
        self.max_seconds = max_seconds
        self.deadline = math.inf if max_seconds is None else self.start + max_seconds
        self.reserve = 0.0  # kept for the final measurement
        self.cost = 0.0  # running estimate of one update: max(last, EMA)
        self.exhausted = False

    def left(self) -> float:
        """Seconds left for updates (the reserve excluded)."""
        return self.deadline - time.perf_counter() - self.reserve

    def share(self, fraction: float) -> float:
        """``fraction`` of the whole budget (inf without one)."""
        return math.inf if self.max_seconds is None else fraction * self.max_seconds

    def fits(self) -> bool:
        """Whether one more update is expected to end within the budget."""
        self.exhausted = self.left() < self.cost
        return not self.exhausted

    def check(self) -> None:
        """Raise :class:`OutOfTime` once the budget for updates is spent."""
        if self.left() < 0:
            self.exhausted = True
            raise OutOfTime

    def record(self, seconds: float) -> None:
        """Account one update of ``seconds``."""
        ema = seconds if not self.cost else 0.7 * self.cost + 0.3 * seconds
        self.cost = max(seconds, ema)


@dataclass
class Verdict:
    """A source's reading of one update: ``score`` for best-weights keeping (lower is better,
    None: not tracked; Note [best weights]), ``postfix`` for the progress bar, and ``ready``:
    the stopping test should be tried now (:meth:`LossSource.confirm`)."""

    score: float | None = None
    postfix: dict[str, str] = field(default_factory=dict)
    ready: bool = False


@dataclass
class Stop:
    """The stopping test passed: ``converged`` for the report, and ``after`` when the test
    took the final measurement itself (None: the harness measures)."""

    converged: bool
    after: Any = None


class LossSource(Protocol):
    """What a pre-training method plugs into :func:`run_pretraining`."""

    name: str  # the progress bar's label

    def measure_before(self, budget: TimeBudget) -> Any:
        """The before measurement (may stop early at ``budget.share(...)``)."""

    def measure_after(self) -> Any:
        """The after measurement, comparable with the before one."""

    def update(self, step: int, budget: TimeBudget) -> Any:
        """One update (raise :class:`OutOfTime` before applying it when the clock runs out);
        returns the history entry of this update."""

    def judge(self, step: int, record: Any) -> Verdict:
        """Score the update just taken and say whether to try the stopping test."""

    def confirm(self, step: int, budget: TimeBudget) -> Stop | None:
        """The stopping test, tried when :meth:`judge` said ``ready``: a :class:`Stop` or None
        to go on."""


@dataclass
class HarnessReport:
    """What the harness did (measurements, history, counts, flags, timings); each method turns
    it into its own report (:class:`~.lsc.LSCReport`, :class:`~.warmup.WarmupReport`)."""

    before: Any
    after: Any = None
    history: list[Any] = field(default_factory=list)
    steps: int = 0
    best_step: int = 0
    converged: bool = False
    out_of_time: bool = False
    seconds: float = 0.0
    update_seconds: float = 0.0


def check_max_seconds(max_seconds: Any) -> float | None:
    """The optional time budget: None or a finite number of seconds > 0."""
    return None if max_seconds is None else check_positive("max_seconds", max_seconds)


OptionsT = TypeVar("OptionsT", bound="DataclassInstance")


def resolve_options(cls: type[OptionsT], options: Any, given: dict[str, Any]) -> OptionsT:
    """The options of a call: ``options`` (an instance of ``cls``, validated again) or, when it
    is None, ``cls(**given)``. Passing both ``options`` and a keyword that differs from its
    default is refused: one of them would be silently ignored.

    Raises:
        TypeError: ``options`` is not a ``cls``, or keyword options came with it.
    """
    if options is None:
        return cls(**given)
    if not isinstance(options, cls):
        raise TypeError(f"options must be a {cls.__name__}, got {type(options).__name__}")
    defaults = {f.name: f.default for f in fields(cls)}
    clash = [name for name, value in given.items() if not _same(value, defaults[name])]
    if clash:
        raise TypeError(f"pass either options= or keyword options, not both; got options and "
                        f"{', '.join(clash)} (set them with dataclasses.replace(options, ...))")
    return replace(options)


def _same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and a == b)


def run_pretraining(model: nn.Module, net: nn.Module, source: LossSource, *, steps: int,
                    max_seconds: float | None = None, progress: bool = False,
                    start: float | None = None) -> HarnessReport:
    """Run ``source``'s updates on ``net`` (``model`` itself or a view sharing its Parameters)
    inside ``transaction(model)``: before measurement, at most ``steps`` updates within
    ``max_seconds`` (counted from ``start``, default now), best weights, after measurement.

    Raises:
        Whatever the source raises (e.g. ``NonFiniteError`` on a diverging update); the model
        then keeps its original weights.
    """
    budget = TimeBudget(max_seconds, start)
    with transaction(model):
        t_measure = time.perf_counter()
        outcome = HarnessReport(source.measure_before(budget))
        budget.reserve = 1.25 * (time.perf_counter() - t_measure)  # the after measurement
        t_updates = time.perf_counter()
        with tqdm(total=steps, disable=not progress, desc=source.name) as bar:
            _loop(net, source, steps, outcome, budget, bar.update, bar.set_postfix)
        outcome.update_seconds = time.perf_counter() - t_updates
        if outcome.after is None:
            outcome.after = outcome.before if outcome.steps == 0 else source.measure_after()
        outcome.seconds = time.perf_counter() - budget.start
        return outcome


def _loop(net: nn.Module, source: LossSource, steps: int, outcome: HarnessReport,
          budget: TimeBudget, tick: Callable[[int], Any], postfix: Callable[..., Any]) -> None:
    """The updates, until the stopping test passes or a budget is spent (Note [best
    weights])."""
    best, best_state = math.inf, None
    for step in range(steps):
        if not budget.fits():
            break
        t0 = time.perf_counter()
        try:
            record = source.update(step, budget)
        except OutOfTime:
            break
        outcome.history.append(record)
        verdict = source.judge(step, record)
        if verdict.score is not None and verdict.score < best:
            best, outcome.best_step = verdict.score, step
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        tick(1)
        if verdict.postfix:
            postfix(**verdict.postfix)
        outcome.steps = step + 1
        budget.record(time.perf_counter() - t0)
        stop = source.confirm(step, budget) if verdict.ready else None
        if stop is not None:
            outcome.converged, outcome.after = stop.converged, stop.after
            if verdict.score is not None:
                outcome.best_step = step
            return
    outcome.out_of_time = budget.exhausted
    if best_state is not None:
        net.load_state_dict(best_state)
