"""The task protocol, the task registry and the shared seeding, batching, loss and metric code.

A task is a data set of batch-first sequences with the loss and metric that fit it and the
*chance* value of that metric: what the best input-blind predictor scores
(docs/algorithms.md section 7), so reports can print "chance" beside every result.

Subclasses declare their parameters once, as ``PARAMS = {name: default}`` (the default's type is
the parameter's type) with their ranges in ``LIMITS`` and cross-parameter rules in
``_check_config``: :func:`check_task_params` runs exactly these checks without building data
(``stablernn sweep --dry-run``, ``stablernn train`` before a run directory exists), and so does
the constructor. Subclasses fill three hooks: ``_setup`` (data-dependent checks, sizes),
``_build(split)`` (make or load one split as a compact *store* and targets) and
``_decode(store)`` (store -> float inputs ``(N, T, D)``). Stores stay compact (token ids,
uint8 pixels or spike counts) so a split of PTB or SHD is only expanded one batch at a time.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_float, check_int

TASKS: dict[str, type[Task]] = {}

SPLITS = ("train", "valid", "test")
SIZES = ("full", "smoke")
METRICS = ("accuracy", "mse", "bpc", "perplexity")
SMOKE_COUNTS = {"train": 64, "valid": 32, "test": 32}
COUNT_LIMITS = {f"n_{split}": {"low": 1} for split in SPLITS}  # LIMITS of split sizes
MAX_SPLIT_ELEMENTS = 2 ** 30  # 4 GiB of float32; above this split() asks for batches()
MAX_STORE_ELEMENTS = 2 ** 31  # a generated split's compact store: refused above (memory)


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Register a :class:`Task` subclass under ``name`` (sets ``cls.name``).

    Args:
        name: the registry key, e.g. ``"copy"``.

    Returns:
        The class decorator.

    Raises:
        ValueError: ``name`` is registered twice.
    """

    def deco(cls: type[Task]) -> type[Task]:
        if name in TASKS:
            raise ValueError(f"task name {name!r} is registered twice")
        cls.name = name
        TASKS[name] = cls
        return cls

    return deco


def task_class(name: str) -> type[Task]:
    """The registered class of task ``name``.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: unknown task (the message lists the valid ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"task name must be a str, got {type(name).__name__} ({name!r})")
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def make_task(name: str, **params: Any) -> Task:
    """Build a registered task by name, e.g. ``make_task("copy", T=50, seed=1)``.

    Args:
        name: a key of :data:`TASKS`.
        **params: ``seed``, ``size`` and the task's own parameters (see ``TASKS[name].params()``).

    Returns:
        The task instance.

    Raises:
        ValueError: unknown task name or parameter (the message lists the valid ones), or a
            parameter out of range.
        TypeError: a parameter of the wrong type.

    Example:
        >>> make_task("adding", T=20, size="smoke").split("train")[0].shape
        torch.Size([64, 20, 2])
    """
    return task_class(name)(**params)


def check_task_params(name: str, size: str = "full", params: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    """Validate a task's name, size and parameters without building or reading any data.

    The same checks the task's constructor runs (types, ranges, cross-parameter rules); only
    what needs the data itself (files, their lengths) is left to :func:`make_task`. Cheap, so
    ``stablernn sweep --dry-run`` and ``stablernn train`` call it before creating anything.

    Args:
        name: a key of :data:`TASKS`.
        size: ``"full"`` or ``"smoke"``.
        params: the task's parameters (``seed`` allowed too); None for the defaults.

    Returns:
        The resolved parameters: defaults (smoke defaults for ``size="smoke"``) updated with
        ``params``, converted (ints for float parameters become floats); ``seed`` if given.

    Raises:
        ValueError: unknown task, size or parameter, or a value out of range.
        TypeError: a value of the wrong type.

    Example:
        >>> check_task_params("adding", "smoke", {"T": 50})["T"]
        50
        >>> check_task_params("adding", params={"T": 0})
        Traceback (most recent call last):
        ...
        ValueError: task 'adding': T must be an int >= 2, got 0
    """
    cls = task_class(name)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"task {name!r}: params must be a dict, got {type(params).__name__}")
    params = dict(params)
    if "size" in params:
        raise ValueError(f"task {name!r}: pass size as check_task_params(name, size=...), not "
                         f"in params")
    seed = {"seed": check_seed(params.pop("seed"))} if "seed" in params else {}
    return {**cls.resolve(size, params), **seed}


def describe_tasks() -> list[str]:
    """One line per registered task: ``name  summary  (param=default, ...)``, sorted by name."""
    return [TASKS[name].describe() for name in sorted(TASKS)]


def seeded_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator for the stream ``(seed, *keys)``; streams never overlap across seeds."""
    words = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(words[0]) << 31) ^ int(words[1]))


def check_seed(seed: Any) -> int:
    """A data seed: an int >= 0."""
    return check_int("seed", seed, low=0)


def check_param(task: str, key: str, value: Any, default: Any,
                limits: dict[str, Any] | None = None) -> Any:
    """Check ``value`` against the type of ``default`` and the range ``limits``.

    ``limits`` are the keyword bounds of :func:`stablernn._checks.check_int` /
    :func:`~stablernn._checks.check_float` (ints default to ``>= 0``); floats must be finite
    and accept ints; strings accept path-likes. Returns the (converted) value.

    Raises:
        TypeError: wrong type. ValueError: out of range, NaN / Inf, or a NUL in a string.
    """
    label, limits = f"task {task!r}: {key}", dict(limits or {})
    kind = type(default)
    if kind is int:
        return check_int(label, value, **{"low": 0, **limits})
    if kind is float:
        return check_float(label, value, **limits)
    if kind is str and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise TypeError(f"{label} must be {kind.__name__}, got {type(value).__name__} "
                        f"({value!r})")
    if kind is str and "\0" in value:
        raise ValueError(f"{label} contains a NUL character: {value!r}")
    return value


class Task:
    """Base class of every task: splits, batches, loss, metric and chance level.

    Args:
        seed: the data seed (non-negative int); equal seeds give equal data.
        size: ``"full"`` or ``"smoke"`` (small counts and short sequences for quick runs; a
            parameter set explicitly is never changed).
        **params: the task's parameters, see :meth:`params`.

    Raises:
        ValueError: unknown parameter, bad ``size`` or a parameter out of range.
        TypeError: a parameter of the wrong type.
    """

    name: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Any]] = {}
    SMOKE: ClassVar[dict[str, Any]] = {}
    LIMITS: ClassVar[dict[str, dict[str, Any]]] = {}  # key -> check_int / check_float bounds
    EAGER: ClassVar[bool] = False        # real data: load and check every split at construction
    readout_mode: ClassVar[str] = "last"  # "all": (B, T, O) predictions; "last": (B, O)
    metric_name: ClassVar[str] = "accuracy"
    higher_is_better: ClassVar[bool] = True
    input_size: int
    output_size: int
    seq_len: int

    def __init__(self, *, seed: int = 0, size: str = "full", **params: Any) -> None:
        self.seed = check_seed(seed)
        self.config = self.resolve(size, params)
        self.size = size
        for key, value in self.config.items():
            setattr(self, key, value)
        self._cache: dict[str, tuple[Any, Tensor]] = {}
        self._setup()
        if self.EAGER:  # build into a local dict first: nothing half-loaded on error
            self._cache = {s: self._build_limited(s) for s in SPLITS}

    # ----- parameters ---------------------------------------------------------------------
    @classmethod
    def params(cls) -> dict[str, Any]:
        """The task's parameters and their defaults (``seed`` and ``size`` not included)."""
        return dict(cls.PARAMS)

    @classmethod
    def describe(cls) -> str:
        """One line for ``stablernn list``: ``name  summary  (param=default, ...)``."""
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        opts = ", ".join(f"{k}={v!r}" for k, v in cls.PARAMS.items())
        return f"{cls.name:12s} {doc}  ({opts})"

    @classmethod
    def resolve(cls, size: str = "full", params: dict[str, Any] | None = None
                ) -> dict[str, Any]:
        """Defaults (smoke defaults for ``size="smoke"``) updated with ``params``, every value
        checked (type, ``LIMITS``, :meth:`_check_config`); reads no data.

        Raises:
            ValueError: bad ``size``, unknown parameter, value out of range.
            TypeError: a value of the wrong type.
        """
        if not isinstance(size, str) or size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
        params = params or {}
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            valid = ", ".join(["seed", "size", *cls.PARAMS]) or "none"
            raise ValueError(f"task {cls.name!r} has no parameter {', '.join(unknown)}; valid "
                             f"parameters: {valid}")
        config = dict(cls.PARAMS)
        if size == "smoke":
            config.update(cls.SMOKE)
        config.update(params)
        config = {key: check_param(cls.name, key, value, cls.PARAMS[key], cls.LIMITS.get(key))
                  for key, value in config.items()}
        cls._check_config(config)
        return config

    @classmethod
    def _check_config(cls, config: dict[str, Any]) -> None:
        """Cross-parameter rules (each value already passed its own check); reads no data."""

    @classmethod
    def _require(cls, ok: bool, message: str) -> None:
        if not ok:
            raise ValueError(f"task {cls.name!r}: {message}")

    @classmethod
    def _check_store(cls, config: dict[str, Any], seq_len: int, width: int) -> None:
        """Refuse splits whose generated store would exceed MAX_STORE_ELEMENTS entries."""
        for split in SPLITS:
            n = config.get(f"n_{split}", 0)
            cls._require(n * seq_len * width <= MAX_STORE_ELEMENTS,
                         f"the {split} split would hold n_{split} x {seq_len} steps x {width} = "
                         f"{n * seq_len * width:,} values (limit {MAX_STORE_ELEMENTS:,}); "
                         f"lower T or n_{split}")

    # ----- hooks ----------------------------------------------------------------------------
    def _setup(self) -> None:  # pragma: no cover - abstract
        """Validate parameters; set ``input_size``, ``output_size``, ``seq_len``."""
        raise NotImplementedError

    def _build(self, split: str) -> tuple[Any, Tensor]:  # pragma: no cover - abstract
        """Make or load one split: ``(store, targets)`` with ``len(store) == len(targets)``."""
        raise NotImplementedError

    def _decode(self, store: Any) -> Tensor:
        """Compact store (indexable by rows) -> float inputs ``(n, T, D)``."""
        return store

    def _generator(self, split: str) -> torch.Generator:
        return seeded_generator(self.seed, SPLITS.index(split))

    def _count(self, split: str) -> int:
        return self.config[f"n_{split}"]

    # ----- data -----------------------------------------------------------------------------
    def _build_limited(self, split: str) -> tuple[Any, Tensor]:
        store, y = self._build(split)
        if self.EAGER and self.size == "smoke":  # real data: smoke keeps the first rows
            store, y = store[:SMOKE_COUNTS[split]], y[:SMOKE_COUNTS[split]]
        return store, y

    def _data(self, split: str) -> tuple[Any, Tensor]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        if split not in self._cache:
            self._cache[split] = self._build_limited(split)
        return self._cache[split]

    def num_examples(self, split: str) -> int:
        """Number of sequences in ``split``."""
        return len(self._data(split)[1])

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """The whole split in memory: float inputs ``(N, T, D)`` and targets.

        Args:
            name: ``"train"``, ``"valid"`` or ``"test"``.

        Returns:
            ``(x, y)``; ``y`` is long class ids ``(N,)`` / ``(N, T)`` or float ``(N, O)`` /
            ``(N, T, O)``, as the task's readout and kind require.

        Raises:
            ValueError: unknown split, or a split too large to expand at once (use
                :meth:`batches`).

        Example:
            >>> x, y = make_task("copy", T=5, size="smoke").split("valid")
            >>> x.shape, y.shape
            (torch.Size([32, 25, 10]), torch.Size([32, 25]))
        """
        store, y = self._data(name)
        elements = len(y) * self.seq_len * self.input_size
        self._require(elements <= MAX_SPLIT_ELEMENTS,
                      f"the {name} split would need {elements:,} floats; iterate over "
                      f"task.batches({name!r}, batch_size, shuffle=False) instead")
        return self._decode(store), y

    def batches(self, name: str, batch_size: int, *, shuffle: bool,
                generator: torch.Generator | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """Iterate over ``(x, y)`` mini-batches of a split; the last batch may be smaller.

        Args:
            name: ``"train"``, ``"valid"`` or ``"test"``.
            batch_size: sequences per batch (>= 1).
            shuffle: visit the sequences in a random order.
            generator: the generator of that order (torch's global one when ``None``).

        Returns:
            An iterator of ``(x (b, T, D) float, y)`` pairs.

        Raises:
            ValueError: unknown split or a non-positive ``batch_size``.
            TypeError: ``batch_size`` is not an int.

        Example:
            >>> task = make_task("adding", T=10, size="smoke")
            >>> [len(y) for _, y in task.batches("train", 40, shuffle=False)]
            [40, 24]
        """
        check_int("batch_size", batch_size, low=1)
        store, y = self._data(name)
        order = (torch.randperm(len(y), generator=generator) if shuffle
                 else torch.arange(len(y)))
        return self._iterate(store, y, order, batch_size)

    def rows(self, name: str, idx: Tensor) -> tuple[Tensor, Tensor]:
        """The examples ``idx`` of a split as float inputs ``(b, T, D)`` and targets (decodes
        only those rows, so it works on splits too large for :meth:`split`)."""
        store, y = self._data(name)
        return self._decode(store[idx]), y[idx]

    def _iterate(self, store: Any, y: Tensor, order: Tensor,
                 batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield self._decode(store[idx]), y[idx]

    # ----- loss, metric, chance ----------------------------------------------------------------
    @property
    def is_classification(self) -> bool:
        return self.metric_name != "mse"

    def _scored(self, pred: Tensor, y: Tensor, *, for_metric: bool) -> tuple[Tensor, Tensor]:
        """Check shapes and keep the scored steps; hook for tasks scoring some steps only."""
        self._check_pred(pred, y)
        return pred, y

    @staticmethod
    def _unwrap(pred: Tensor | tuple) -> Any:
        """The predictions of a model output: a ``DeepRNN`` returns ``(outputs, states)``
        (any other value comes back as it is, for :meth:`_check_pred` to reject)."""
        if isinstance(pred, (tuple, list)) and pred and isinstance(pred[0], Tensor):
            return pred[0]
        return pred

    def _check_pred(self, pred: Tensor, y: Tensor) -> None:
        if not isinstance(pred, Tensor) or not pred.is_floating_point():
            raise TypeError(f"pred must be a floating-point tensor, got "
                            f"{getattr(pred, 'dtype', type(pred).__name__)}")
        lead = (len(y), self.seq_len) if self.readout_mode == "all" else (len(y),)
        expected = (*lead, self.output_size)
        if tuple(pred.shape) != expected:
            layout = "(B, T, O)" if self.readout_mode == "all" else "(B, O)"
            raise ValueError(f"task {self.name!r} expects predictions {layout} = {expected} "
                             f"for these targets, got {tuple(pred.shape)}")

    def loss(self, pred: Tensor | tuple, y: Tensor) -> Tensor:
        """The training loss: mean cross-entropy (classes) or mean squared error.

        Args:
            pred: logits or values, ``(B, O)`` (readout ``"last"``) or ``(B, T, O)`` (``"all"``),
                or a model's ``(outputs, states)`` tuple as a ``DeepRNN`` returns it.
            y: the targets of the same batch.

        Returns:
            A differentiable scalar.

        Raises:
            ValueError / TypeError: ``pred`` of the wrong shape or dtype.

        Example:
            >>> from stablernn import DeepRNN
            >>> task = make_task("adding", T=10, size="smoke")
            >>> model = DeepRNN.build("gru", 2, 8, 2, readout=1, readout_mode="last")
            >>> x, y = task.split("valid")
            >>> task.loss(model(x), y).shape
            torch.Size([])
        """
        pred, y = self._scored(self._unwrap(pred), y, for_metric=False)
        if self.is_classification:
            return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1))
        return F.mse_loss(pred, y)

    def metric(self, pred: Tensor | tuple, y: Tensor) -> float:
        """The task's metric (``metric_name``) of one batch, as a float.

        Args:
            pred: as in :meth:`loss` (a ``DeepRNN``'s ``(outputs, states)`` too).
            y: the targets of the same batch.

        Returns:
            accuracy, mse, bits per character or perplexity.
        """
        with torch.no_grad():
            pred, y = self._scored(self._unwrap(pred), y, for_metric=True)
            pred = pred.detach()
            if self.metric_name == "accuracy":
                return float((pred.argmax(-1) == y).double().mean())
            if self.metric_name == "mse":
                return float(F.mse_loss(pred, y))
            xent = float(F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1)))
            return self.metric_from_xent(xent)

    def metric_from_xent(self, xent: float) -> float:
        """Bits per character or perplexity from a mean cross-entropy in nats."""
        return xent / math.log(2) if self.metric_name == "bpc" else math.exp(xent)

    def evaluate(self, predict: Callable[[Tensor], Tensor], name: str = "test",
                 batch_size: int = 256) -> dict[str, float]:
        """Mean loss and metric of ``predict`` over a whole split, without gradients.

        Perplexity is ``exp`` of the split's mean cross-entropy, not a mean of per-batch
        perplexities.

        Args:
            predict: maps inputs ``(b, T, D)`` to predictions as :meth:`loss` expects (a
                ``DeepRNN`` itself will do: its ``(outputs, states)`` are accepted).
            name: the split.
            batch_size: sequences per forward pass.

        Returns:
            ``{"loss": ..., "metric": ...}``.
        """
        total, loss_sum, metric_sum = 0, 0.0, 0.0
        with torch.no_grad():
            for x, y in self.batches(name, batch_size, shuffle=False):
                pred = predict(x)
                loss_sum += float(self.loss(pred, y)) * len(y)
                metric_sum += self.metric(pred, y) * len(y)
                total += len(y)
        loss, metric = loss_sum / total, metric_sum / total
        if self.metric_name == "perplexity":
            metric = math.exp(loss)
        return {"loss": loss, "metric": metric}

    @property
    def chance(self) -> float:
        """The metric of the best input-blind predictor (see docs/tasks.md for each task)."""
        return self._chance()[0]

    @property
    def chance_loss(self) -> float:
        """The loss of the best input-blind predictor."""
        return self._chance()[1]

    def _chance(self) -> tuple[float, float]:
        """Default for real data: the best constant predictor fitted to the test split."""
        if "_chance_value" not in self.__dict__:
            labels = self._data("test")[1]
            self._chance_value = label_chance(labels.reshape(-1), self.output_size,
                                              self.metric_name)
        return self._chance_value

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({opts}, seed={self.seed}, size={self.size!r})"


def label_chance(labels: Tensor, classes: int, metric_name: str) -> tuple[float, float]:
    """Metric and cross-entropy of the best constant predictor of ``labels``.

    The best constant distribution is the empirical label frequency ``p``: its cross-entropy is
    the entropy ``H(p)`` (nats); its accuracy is ``max p``.
    """
    freq = torch.bincount(labels, minlength=classes).double() / len(labels)
    nz = freq[freq > 0]
    entropy = float(-(nz * nz.log()).sum())
    if metric_name == "accuracy":
        return float(freq.max()), entropy
    return (entropy / math.log(2) if metric_name == "bpc" else math.exp(entropy)), entropy
