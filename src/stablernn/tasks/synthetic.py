"""Synthetic long-memory tasks: copy, adding, copy-first-input and denoising.

- copy: Hochreiter & Schmidhuber (1997), in the form of Arjovsky et al. (arXiv 1511.06464, 4.1).
- adding: Hochreiter & Schmidhuber (1997), as in Le et al. (arXiv 1504.00941, 4.1).
- copy-first-input and denoising: Vecoven et al., bistable recurrent cells (arXiv 2006.05252,
  section 4), also used by Lambrechts et al. (arXiv 2106.01001).
- delayed XOR: Engelken, gradient flossing (arXiv 2312.17306, the delayed copy / XOR tasks).

Every split is generated from its own seeded stream, so a split never changes when another
split's size does.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import COUNT_LIMITS, Task, register_task

COUNTS = {"n_train": 10000, "n_valid": 1000, "n_test": 1000}
SMOKE_COUNTS = {"n_train": 64, "n_valid": 32, "n_test": 32}

COPY_SYMBOLS = 10     # symbols to remember
COPY_CATEGORIES = 8   # symbol ids 1..8; 0 is the blank, 9 the delimiter


@register_task("copy")
class CopyTask(Task):
    """Copy memory: recall 10 symbols after T blanks (Arjovsky et al. 2016).

    Inputs are one-hot over 10 ids (0 blank, 1..8 symbols, 9 delimiter), ``seq_len = T + 20``:
    10 symbols, ``T - 1`` blanks, the delimiter, 10 blanks. The target is blank everywhere but
    the last 10 steps, which hold the 10 symbols. Loss: cross-entropy over all steps (chance
    ``10 ln 8 / (T + 20)``); metric: accuracy on the last 10 steps (chance 1/8).

    Example:
        >>> task = CopyTask(T=5, size="smoke")
        >>> x, y = task.split("train")
        >>> bool((y[:, -10:] == x[:, :10].argmax(-1)).all())
        True
    """

    T: int  # PARAMS, set by Task.__init__
    PARAMS: ClassVar[dict[str, Any]] = {"T": 100, **COUNTS}
    SMOKE: ClassVar[dict[str, Any]] = {"T": 10, **SMOKE_COUNTS}
    LIMITS: ClassVar[dict[str, Any]] = {"T": {"low": 1}, **COUNT_LIMITS}
    readout_mode = "all"

    @classmethod
    def _check_config(cls, config: dict[str, Any]) -> None:
        cls._check_store(config, config["T"] + 2 * COPY_SYMBOLS, 1)

    def _setup(self) -> None:
        self.input_size, self.output_size = COPY_CATEGORIES + 2, COPY_CATEGORIES + 1
        self.seq_len = self.T + 2 * COPY_SYMBOLS

    def _build(self, split: str) -> tuple[Tensor, Tensor]:
        n, T = self._count(split), self.T
        symbols = torch.randint(1, COPY_CATEGORIES + 1, (n, COPY_SYMBOLS),
                                generator=self._generator(split))
        ids = torch.zeros(n, self.seq_len, dtype=torch.long)  # (N, T + 20) token ids
        ids[:, :COPY_SYMBOLS] = symbols
        ids[:, COPY_SYMBOLS + T - 1] = COPY_CATEGORIES + 1  # the delimiter
        y = torch.zeros_like(ids)
        y[:, -COPY_SYMBOLS:] = symbols
        return ids, y

    def _decode(self, store: Tensor) -> Tensor:
        return F.one_hot(store, self.input_size).float()

    def _scored(self, pred: Tensor, y: Tensor, *, for_metric: bool) -> tuple[Tensor, Tensor]:
        self._check_pred(pred, y)
        if for_metric:  # accuracy on the recall steps only: blanks would swamp it
            return pred[:, -COPY_SYMBOLS:], y[:, -COPY_SYMBOLS:]
        return pred, y

    def _chance(self) -> tuple[float, float]:
        # Input-blind but position-aware: certain blanks, then uniform over 8 symbols.
        return 1.0 / COPY_CATEGORIES, COPY_SYMBOLS * math.log(COPY_CATEGORIES) / self.seq_len


@register_task("adding")
class AddingTask(Task):
    """Adding problem: sum the two marked values of a length-T sequence (Le et al. 2015).

    Channel 0 holds values ``U(0, 1)``, channel 1 marks one step in each half. Target: the sum
    of the two marked values, ``(N, 1)``. Metric: MSE; chance ``Var = 1/6`` (predict 1).

    Example:
        >>> x, y = AddingTask(T=20, size="smoke").split("test")
        >>> torch.allclose((x[..., 0] * x[..., 1]).sum(1, keepdim=True), y)
        True
    """

    T: int  # PARAMS, set by Task.__init__
    PARAMS: ClassVar[dict[str, Any]] = {"T": 200, **COUNTS}
    SMOKE: ClassVar[dict[str, Any]] = {"T": 20, **SMOKE_COUNTS}
    LIMITS: ClassVar[dict[str, Any]] = {"T": {"low": 2}, **COUNT_LIMITS}
    metric_name, higher_is_better = "mse", False

    @classmethod
    def _check_config(cls, config: dict[str, Any]) -> None:
        cls._check_store(config, config["T"], 2)

    def _setup(self) -> None:
        self.input_size, self.output_size, self.seq_len = 2, 1, self.T

    def _build(self, split: str) -> tuple[Tensor, Tensor]:
        n, T, g = self._count(split), self.T, self._generator(split)
        half = T // 2
        values = torch.rand(n, T, generator=g)
        first = torch.randint(0, half, (n,), generator=g)
        second = torch.randint(half, T, (n,), generator=g)
        marks = torch.zeros(n, T)
        rows = torch.arange(n)
        marks[rows, first] = 1.0
        marks[rows, second] = 1.0
        y = (values[rows, first] + values[rows, second]).unsqueeze(1)  # (N, 1)
        return torch.stack([values, marks], -1), y

    def _chance(self) -> tuple[float, float]:
        return 1.0 / 6.0, 1.0 / 6.0  # the sum of two U(0, 1) has variance 2/12


@register_task("copy_first")
class CopyFirstTask(Task):
    """Copy-first-input (information restitution): output x_1 after T steps of N(0, 1) noise.

    Inputs ``(N, T, 1)`` with ``x_t ~ N(0, 1)``; target ``x_1``, ``(N, 1)``, read at the end
    (Vecoven et al. 2021). Metric: MSE; chance 1 (predict 0).

    Example:
        >>> x, y = CopyFirstTask(T=30, size="smoke").split("train")
        >>> bool((y == x[:, 0]).all())
        True
    """

    T: int  # PARAMS, set by Task.__init__
    PARAMS: ClassVar[dict[str, Any]] = {"T": 100, **COUNTS}
    SMOKE: ClassVar[dict[str, Any]] = {"T": 20, **SMOKE_COUNTS}
    LIMITS: ClassVar[dict[str, Any]] = {"T": {"low": 1}, **COUNT_LIMITS}
    metric_name, higher_is_better = "mse", False

    @classmethod
    def _check_config(cls, config: dict[str, Any]) -> None:
        cls._check_store(config, config["T"], 1)

    def _setup(self) -> None:
        self.input_size, self.output_size, self.seq_len = 1, 1, self.T

    def _build(self, split: str) -> tuple[Tensor, Tensor]:
        x = torch.randn(self._count(split), self.T, 1, generator=self._generator(split))
        return x, x[:, 0].clone()

    def _chance(self) -> tuple[float, float]:
        return 1.0, 1.0


@register_task("denoising")
class DenoisingTask(Task):
    """Denoising: recall n_marks marked values of a length-T noise sequence after a trigger.

    Channel 0: ``N(0, 1)`` noise on the first T steps, 0 after; channel 1: 1 at the
    ``n_marks`` marked steps (never in the last ``gap`` noise steps), -1 on the final
    ``n_marks`` steps (the trigger). ``seq_len = T + n_marks``; targets ``(N, seq_len, 1)``
    hold the marked values in order on the final steps (0 elsewhere, unscored). Loss and metric:
    MSE on the final ``n_marks`` steps; chance 1 (predict 0) (Vecoven et al. 2021).

    Example:
        >>> task = DenoisingTask(T=20, gap=5, size="smoke")
        >>> x, y = task.split("train")
        >>> marked = x[..., 0][x[..., 1] == 1].reshape(-1, 5)
        >>> torch.equal(marked, y[:, -5:, 0])
        True
    """

    T: int  # PARAMS, set by Task.__init__
    n_marks: int
    gap: int
    PARAMS: ClassVar[dict[str, Any]] = {"T": 200, "n_marks": 5, "gap": 10, **COUNTS}
    SMOKE: ClassVar[dict[str, Any]] = {"T": 20, "gap": 5, **SMOKE_COUNTS}
    LIMITS: ClassVar[dict[str, Any]] = {"T": {"low": 1}, "n_marks": {"low": 1},
                                        "gap": {"low": 0}, **COUNT_LIMITS}
    readout_mode, metric_name, higher_is_better = "all", "mse", False

    @classmethod
    def _check_config(cls, config: dict[str, Any]) -> None:
        need = config["n_marks"] + config["gap"]
        cls._require(config["T"] >= need, f"T must be >= n_marks + gap = {need} (the marks "
                                          f"avoid the last gap steps), got T={config['T']}")
        cls._check_store(config, config["T"] + config["n_marks"], 3)

    def _setup(self) -> None:
        self.input_size, self.output_size = 2, 1
        self.seq_len = self.T + self.n_marks

    def _build(self, split: str) -> tuple[Tensor, Tensor]:
        n, T, k, g = self._count(split), self.T, self.n_marks, self._generator(split)
        noise = torch.randn(n, T, generator=g)
        allowed = T - self.gap
        pos = torch.rand(n, allowed, generator=g).argsort(1)[:, :k].sort(1).values  # (N, k)
        x = torch.zeros(n, self.seq_len, 2)
        x[:, :T, 0] = noise
        x[:, :, 1].scatter_(1, pos, 1.0)
        x[:, T:, 1] = -1.0
        y = torch.zeros(n, self.seq_len, 1)
        y[:, T:, 0] = noise.gather(1, pos)
        return x, y

    def _scored(self, pred: Tensor, y: Tensor, *, for_metric: bool) -> tuple[Tensor, Tensor]:
        self._check_pred(pred, y)
        return pred[:, -self.n_marks:], y[:, -self.n_marks:]

    def _chance(self) -> tuple[float, float]:
        return 1.0, 1.0


@register_task("delayed_xor")
class DelayedXORTask(Task):
    """Delayed XOR: at every step, the XOR of the input bits ``delay, 2 delay, ..`` steps back.

    Inputs ``(N, T, 1)``: a stream of fair random bits ``s_t in {0, 1}``. Target at step ``t``:
    ``s_{t-d} xor s_{t-2d} xor .. xor s_{t-order d}`` (``d = delay``), class ids ``(N, T)``,
    scored from step ``order d`` on (earlier steps would need bits from before the sequence).
    ``order = 1`` is the delayed copy task, ``order = 2`` the delayed XOR of the gradient
    flossing paper (Engelken 2023, docs/tasks.md); the horizon a network must bridge is
    ``order d`` steps. Loss: cross-entropy over the scored steps; metric: their accuracy
    (chance 1/2: every target bit is a fair coin, independent of the current input).

    Example:
        >>> task = DelayedXORTask(T=12, delay=3, size="smoke")
        >>> x, y = task.split("train")
        >>> s = x[..., 0].long()
        >>> torch.equal(y[:, 6:], s[:, 3:9] ^ s[:, 0:6])
        True
    """

    T: int  # PARAMS, set by Task.__init__
    delay: int
    order: int
    PARAMS: ClassVar[dict[str, Any]] = {"T": 300, "delay": 10, "order": 2, **COUNTS}
    SMOKE: ClassVar[dict[str, Any]] = {"T": 30, "delay": 3, **SMOKE_COUNTS}
    LIMITS: ClassVar[dict[str, Any]] = {"T": {"low": 2}, "delay": {"low": 1},
                                        "order": {"low": 1}, **COUNT_LIMITS}
    readout_mode = "all"

    @classmethod
    def _check_config(cls, config: dict[str, Any]) -> None:
        horizon = config["order"] * config["delay"]
        cls._require(config["T"] > horizon,
                     f"T must be > order x delay = {horizon} (the first scored step), got "
                     f"T={config['T']}; raise T or lower delay / order")
        cls._check_store(config, config["T"], 1)

    def _setup(self) -> None:
        self.input_size, self.output_size, self.seq_len = 1, 2, self.T
        self.horizon = self.order * self.delay

    def _build(self, split: str) -> tuple[Tensor, Tensor]:
        bits = torch.randint(0, 2, (self._count(split), self.T), dtype=torch.uint8,
                             generator=self._generator(split))
        y = torch.zeros(bits.shape, dtype=torch.long)
        for j in range(1, self.order + 1):  # y_t = xor_j s_{t - j d}, for t >= order d
            shift = j * self.delay
            y[:, self.horizon:] ^= bits[:, self.horizon - shift:self.T - shift].long()
        return bits, y

    def _decode(self, store: Tensor) -> Tensor:
        return store.float().unsqueeze(-1)

    def _scored(self, pred: Tensor, y: Tensor, *, for_metric: bool) -> tuple[Tensor, Tensor]:
        self._check_pred(pred, y)
        return pred[:, self.horizon:], y[:, self.horizon:]

    def _chance(self) -> tuple[float, float]:
        return 0.5, math.log(2)


def synthetic_names() -> list[str]:
    """Names of the generated (file-free) tasks, for tours and smoke tests."""
    return ["copy", "adding", "copy_first", "denoising", "delayed_xor"]
