"""Spiking Heidelberg Digits (SHD) from its HDF5 files, spikes binned to T steps.

Cramer et al., "The Heidelberg spiking data sets" (arXiv 1910.07407): 700 input units, 20
classes (spoken digits 0-9 in English and German), spike times in seconds. The files
``shd_train.h5`` and ``shd_test.h5`` hold ``spikes/times``, ``spikes/units`` (one variable-length
array per sample) and ``labels``. A fixed ``valid_frac`` of the training samples (the same for
every seed) forms the validation split. Nothing is downloaded.
"""
from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from .base import MAX_STORE_ELEMENTS, Task, register_task, seeded_generator

SHD_FILES = {"train": "shd_train.h5", "test": "shd_test.h5"}
SHD_DATASETS = ("spikes/times", "spikes/units", "labels")
SHD_UNITS = 700
SHD_CLASSES = 20
SPLIT_STREAM = (0, 2000)


def import_h5py() -> Any:
    """h5py, or ImportError with the install hint."""
    try:
        import h5py
    except ImportError as err:
        raise ImportError("the SHD loader needs h5py: pip install stablernn[hdf5]") from err
    return h5py


def read_shd(path: str) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Spike times, spike units (one array per sample) and labels of one SHD file.

    Raises:
        ValueError: not an HDF5 file, missing datasets, or inconsistent lengths.
    """
    h5py = import_h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path!r} is not a readable HDF5 file ({err}); is it truncated? "
                         f"(the downloaded shd_*.h5.gz files must be gunzipped)") from err
    with f:
        missing = [key for key in SHD_DATASETS
                   if not isinstance(f.get(key), h5py.Dataset)]
        if missing:
            raise ValueError(f"{path!r} lacks the SHD dataset(s) {', '.join(missing)} (expected "
                             f"{', '.join(SHD_DATASETS)}); is it an SHD file?")
        try:
            times = [np.asarray(a, dtype=np.float64).reshape(-1) for a in f["spikes/times"][:]]
            units = [np.asarray(a, dtype=np.int64).reshape(-1) for a in f["spikes/units"][:]]
            labels = np.asarray(f["labels"][:], dtype=np.int64).reshape(-1)
        except (OSError, TypeError, ValueError) as err:
            raise ValueError(f"{path!r}: the SHD datasets cannot be read as spike times, units "
                             f"and integer labels ({err}); is the file corrupt?") from err
    check_shd(path, times, units, labels)
    return times, units, labels


def check_shd(path: str, times: list[np.ndarray], units: list[np.ndarray],
              labels: np.ndarray) -> None:
    """Raise ValueError unless the arrays form a consistent SHD file."""
    if not len(times) == len(units) == len(labels) or len(labels) == 0:
        raise ValueError(f"{path!r}: {len(times)} time arrays, {len(units)} unit arrays and "
                         f"{len(labels)} labels; expected equal, non-zero counts")
    for i, (t, u) in enumerate(zip(times, units, strict=True)):
        if len(t) != len(u):
            raise ValueError(f"{path!r}: sample {i} has {len(t)} spike times but {len(u)} units")
        if len(u) and (u.min() < 0 or u.max() >= SHD_UNITS):
            raise ValueError(f"{path!r}: sample {i} has units outside 0..{SHD_UNITS - 1}")
        if not np.all(np.isfinite(t)) or (len(t) and t.min() < 0):
            raise ValueError(f"{path!r}: sample {i} has negative or non-finite spike times")
    if labels.min() < 0 or labels.max() >= SHD_CLASSES:
        raise ValueError(f"{path!r}: labels must be in 0..{SHD_CLASSES - 1}")


def bin_spikes(times: list[np.ndarray], units: list[np.ndarray], T: int,
               max_time: float) -> Tensor:
    """Spike counts per step and unit, ``(N, T, 700)`` uint8 (saturating at 255).

    Step ``floor(t / max_time * T)``; spikes at ``t >= max_time`` are dropped.
    """
    out = np.zeros((len(times), T, SHD_UNITS), dtype=np.uint8)
    for i, (t, u) in enumerate(zip(times, units, strict=True)):
        steps = np.floor(t / max_time * T).astype(np.int64)
        keep = steps < T
        counts = np.bincount(steps[keep] * SHD_UNITS + u[keep], minlength=T * SHD_UNITS)
        out[i] = np.minimum(counts, 255).reshape(T, SHD_UNITS)
    return torch.from_numpy(out)


@register_task("shd")
class SHDTask(Task):
    """Spiking Heidelberg Digits from shd_train.h5 / shd_test.h5, binned to T steps.

    Inputs ``(N, T, 700)`` spike counts per step (as floats); labels ``(N,)`` in 0..19 read at
    the end. Metric: accuracy; chance: the test frequency of the commonest class (about 0.05).

    Example:
        >>> task = SHDTask(root="data/shd", T=100)  # doctest: +SKIP
        >>> task.split("test")[0].shape  # doctest: +SKIP
        torch.Size([2264, 100, 700])
    """

    root: str  # PARAMS, set by Task.__init__
    T: int
    max_time: float
    valid_frac: float
    PARAMS: ClassVar[dict[str, Any]] = {"root": "data/shd", "T": 100, "max_time": 1.4,
                                        "valid_frac": 0.1}
    LIMITS: ClassVar[dict[str, Any]] = {
        "T": {"low": 1}, "max_time": {"low": 0, "low_open": True},
        "valid_frac": {"low": 0, "low_open": True, "high": 1, "high_open": True}}
    EAGER = True

    def _setup(self) -> None:
        paths = {s: os.path.join(self.root, name) for s, name in SHD_FILES.items()}
        for split, path in paths.items():  # report a missing file before reading any
            if not os.path.isfile(path):
                raise FileNotFoundError(f"missing file {path!r}: expected the SHD {split} set "
                                        f"{SHD_FILES[split]} (gunzipped HDF5) in "
                                        f"root={self.root!r}")
        loaded = {s: read_shd(p) for s, p in paths.items()}
        for split, (_, _, labels) in loaded.items():  # before binning allocates (N, T, 700)
            size = len(labels) * self.T * SHD_UNITS
            self._require(size <= MAX_STORE_ELEMENTS, f"binning the {split} set at T={self.T} "
                                                      f"needs {size:,} counts; lower T")
        self._raw = {s: (bin_spikes(t, u, self.T, self.max_time), torch.from_numpy(y))
                     for s, (t, u, y) in loaded.items()}
        self._raw["train"], self._raw["valid"] = self._carve_valid(*self._raw["train"])
        self.input_size, self.output_size, self.seq_len = SHD_UNITS, SHD_CLASSES, self.T

    def _carve_valid(self, x: Tensor, y: Tensor) -> tuple[tuple[Tensor, Tensor], ...]:
        n_valid = round(len(y) * self.valid_frac)
        self._require(0 < n_valid < len(y), f"valid_frac={self.valid_frac} of {len(y)} "
                                            f"training samples leaves an empty split")
        order = torch.randperm(len(y), generator=seeded_generator(*SPLIT_STREAM))
        train, valid = order[n_valid:], order[:n_valid]
        return (x[train], y[train]), (x[valid], y[valid])

    def _build(self, split: str) -> tuple[Tensor, Tensor]:
        return self._raw[split]

    def _decode(self, store: Tensor) -> Tensor:
        return store.float()
