"""Digits tasks on scikit-learn's bundled 8x8 digits (1797 images, no download).

- digits / pdigits: the image read pixel by pixel (T = 64), a small stand-in for sequential and
  permuted MNIST (Le et al., arXiv 1504.00941, 4.2), optionally followed by ``pad`` blank steps
  so the label is asked for long after the evidence.
- sl_digits: the spike-latency encoding of sl-MNIST (Zenke & Vogels, Neural Computation 2021,
  arXiv 2006.04436 / the SpyTorch tutorials): each pixel is one input unit that fires once, at
  ``tau * ln(x / (x - threshold))`` steps for intensity ``x > threshold``, earlier when brighter.

The train/valid/test split is fixed (the same for every seed, so seeds compare on one test set);
the seed chooses the pixel permutation.
"""
from __future__ import annotations

import functools
from typing import Any, ClassVar

import torch
from torch import Tensor

from .base import COUNT_LIMITS, Task, register_task, seeded_generator

N_DIGITS = 1797
PIXELS = 64
SPLIT_STREAM = (0, 1000)   # fixed seed of the train/valid/test assignment
PERMUTATION_STREAM = 3     # per-seed stream of the pixel permutation


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[Tensor, Tensor]:
    """scikit-learn's 8x8 digits as ``(1797, 64)`` intensities in [0, 1] and labels.

    Raises:
        ImportError: scikit-learn is missing (``pip install stablernn[digits]``).
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as err:
        raise ImportError("the digits tasks need scikit-learn: pip install stablernn[digits]"
                          ) from err
    images, labels = sk_load_digits(return_X_y=True)
    return torch.as_tensor(images, dtype=torch.float32) / 16.0, torch.as_tensor(labels).long()


class DigitsBase(Task):
    """Shared split and labels of the digits tasks (not registered)."""

    COUNTS: ClassVar[dict[str, Any]] = {"n_train": 1297, "n_valid": 200, "n_test": 300}
    SMOKE: ClassVar[dict[str, Any]] = {"n_train": 64, "n_valid": 32, "n_test": 32}
    n_train: int  # PARAMS, set by Task.__init__
    n_valid: int
    LIMITS: ClassVar[dict[str, Any]] = dict(COUNT_LIMITS)

    @classmethod
    def _check_config(cls, config: dict[str, Any]) -> None:
        total = config["n_train"] + config["n_valid"] + config["n_test"]
        cls._require(total <= N_DIGITS, f"n_train + n_valid + n_test = {total} exceeds the "
                                        f"{N_DIGITS} digits")

    def _setup_split(self) -> None:
        self._images, self._labels = load_digits()
        self.output_size = 10

    def _rows(self, split: str) -> Tensor:
        order = torch.randperm(N_DIGITS, generator=seeded_generator(*SPLIT_STREAM))
        start = {"train": 0, "valid": self.n_train,
                 "test": self.n_train + self.n_valid}[split]
        return order[start:start + self._count(split)]


@register_task("digits")
class DigitsTask(DigitsBase):
    """Sequential 8x8 digits, one pixel per step (T = 64 + pad), optionally permuted.

    Inputs ``(N, 64 + pad, 1)`` intensities in [0, 1]; labels ``(N,)`` in 0..9 read at the end.
    Metric: accuracy; chance: the test frequency of the commonest class (about 0.1).

    Example:
        >>> task = DigitsTask(pad=16, size="smoke")
        >>> task.split("train")[0].shape
        torch.Size([64, 80, 1])
    """

    pad: int  # PARAMS, set by Task.__init__
    permuted: bool
    PARAMS: ClassVar[dict[str, Any]] = {"pad": 0, "permuted": False, **DigitsBase.COUNTS}
    LIMITS: ClassVar[dict[str, Any]] = {"pad": {"low": 0}, **COUNT_LIMITS}

    @classmethod
    def _check_config(cls, config: dict[str, Any]) -> None:
        super()._check_config(config)
        cls._check_store(config, PIXELS + config["pad"], 1)

    def _setup(self) -> None:
        self._setup_split()
        self.input_size, self.seq_len = 1, PIXELS + self.pad
        self.permutation = self._permutation()

    def _permutation(self) -> Tensor:
        if not self.permuted:
            return torch.arange(PIXELS)
        return torch.randperm(PIXELS, generator=seeded_generator(self.seed, PERMUTATION_STREAM))

    def _build(self, split: str) -> tuple[Tensor, Tensor]:
        rows = self._rows(split)
        pixels = self._images[rows][:, self.permutation]  # (N, 64) in reading order
        x = torch.zeros(len(rows), self.seq_len, 1)
        x[:, :PIXELS, 0] = pixels
        return x, self._labels[rows]


@register_task("pdigits")
class PermutedDigitsTask(DigitsTask):
    """Permuted sequential 8x8 digits: one fixed pixel permutation per seed (T = 64 + pad)."""

    PARAMS: ClassVar[dict[str, Any]] = {**DigitsTask.PARAMS, "permuted": True}


@register_task("sl_digits")
class SpikeLatencyDigitsTask(DigitsBase):
    """Spike-latency digits (the sl-MNIST code): each pixel fires once, brighter ones earlier.

    Inputs ``(N, T, 64)`` binary spikes: unit ``i`` fires at step
    ``floor(tau * ln(x_i / (x_i - threshold)))`` when its intensity ``x_i > threshold`` and that
    step is below ``T``; dimmer pixels stay silent. Labels ``(N,)`` read at the end.

    Example:
        >>> x, _ = SpikeLatencyDigitsTask(size="smoke").split("valid")
        >>> bool((x.sum(1) <= 1).all())  # at most one spike per unit
        True
    """

    T: int  # PARAMS, set by Task.__init__
    tau: float
    threshold: float
    PARAMS: ClassVar[dict[str, Any]] = {"T": 100, "tau": 20.0, "threshold": 0.2,
                                        **DigitsBase.COUNTS}
    LIMITS: ClassVar[dict[str, Any]] = {"T": {"low": 1}, "tau": {"low": 0, "low_open": True},
                                        "threshold": {"low": 0, "high": 1, "high_open": True},
                                        **COUNT_LIMITS}

    @classmethod
    def _check_config(cls, config: dict[str, Any]) -> None:
        super()._check_config(config)
        cls._check_store(config, config["T"] + 1, PIXELS)

    def _setup(self) -> None:
        self._setup_split()
        self.input_size, self.seq_len = PIXELS, self.T

    def _build(self, split: str) -> tuple[Tensor, Tensor]:
        rows = self._rows(split)
        steps = latency_steps(self._images[rows], self.tau, self.threshold)  # (N, 64)
        fires = steps < self.T
        spikes = torch.zeros(len(rows), self.T + 1, PIXELS, dtype=torch.uint8)
        # silent units write into the spare step T, which is then dropped
        spikes.scatter_(1, torch.where(fires, steps, self.T).unsqueeze(1), 1)
        return spikes[:, :self.T], self._labels[rows]

    def _decode(self, store: Tensor) -> Tensor:
        return store.float()


def latency_steps(x: Tensor, tau: float, threshold: float) -> Tensor:
    """Firing step of a leaky integrator driven by constant current ``x`` (long tensor).

    ``T = tau * ln(x / (x - threshold))`` for ``x > threshold``, a very large step otherwise
    (the unit never fires).
    """
    above = x > threshold
    safe = torch.where(above, x, torch.ones_like(x) + threshold)
    t = tau * torch.log(safe / (safe - threshold))
    never = torch.iinfo(torch.int32).max
    return torch.where(above, t.floor().clamp(max=never), torch.full_like(t, never)).long()
