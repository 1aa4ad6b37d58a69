"""Sequential and permuted MNIST from the user's IDX files, one pixel per step (T = 784).

Le et al. (arXiv 1504.00941, 4.2). The files are LeCun's four IDX files, uncompressed or
``.gz``; the last ``n_valid`` training images form the validation split. Nothing is downloaded.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from .base import Task, register_task, seeded_generator

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
UBYTE = 0x08
PERMUTATION_STREAM = 3


def find_file(root: str, name: str, what: str) -> str:
    """``root/name`` or ``root/name.gz``; otherwise FileNotFoundError saying where to put it."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(root, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"missing file: expected {os.path.join(root, name)} ({what}, "
                            f"uncompressed or .gz); put it in root={root!r}")


def read_idx(path: str, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``ndim`` dimensions.

    Args:
        path: the file (``.gz`` is decompressed).
        ndim: the expected number of dimensions (3 for images, 1 for labels).

    Returns:
        A uint8 array of the stored shape.

    Raises:
        ValueError: bad magic number, wrong dimensions, truncated or corrupt file.
    """
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != UBYTE or raw[3] != ndim:
        raise ValueError(f"{path!r} is not an unsigned-byte IDX file with {ndim} dimensions "
                         f"(bad magic number {raw[:4].hex() or 'empty'}); is it corrupt?")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path!r} is truncated: its header is incomplete")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = math.prod(shape)
    if len(raw) != header + size:
        raise ValueError(f"{path!r} is truncated or corrupt: shape {shape} needs {size} data "
                         f"bytes, the file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise ValueError(f"cannot read {path!r}: {err.strerror or err}") from err
    if not path.endswith(".gz"):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path!r} is not a valid gzip file ({err}); is it truncated?") from err


def load_mnist(root: str) -> dict[str, tuple[Tensor, Tensor]]:
    """The train and test images ``(N, 784)`` uint8 and labels ``(N,)`` long.

    Raises:
        FileNotFoundError: a file is missing (checked before anything is read).
        ValueError: corrupt or truncated files, image and label counts that differ, labels
            outside 0..9.
    """
    paths = {key: find_file(root, name, f"MNIST {key.replace('_', ' ')}, IDX")
             for key, name in MNIST_FILES.items()}
    data = {}
    for split in ("train", "test"):
        images = read_idx(paths[f"{split}_images"], 3)
        labels = read_idx(paths[f"{split}_labels"], 1)
        if len(images) != len(labels) or images.shape[1:] != (28, 28):
            raise ValueError(f"MNIST {split} files disagree: images {images.shape}, labels "
                             f"{labels.shape}; expected (N, 28, 28) and (N,)")
        if labels.size and labels.max() > 9:
            raise ValueError(f"MNIST {split} labels must be in 0..9, found {labels.max()}")
        data[split] = (torch.from_numpy(images.reshape(len(images), -1).copy()),
                       torch.from_numpy(labels.astype(np.int64)))
    return data


@register_task("mnist")
class MNISTTask(Task):
    """Sequential MNIST from IDX files, one pixel per step (T = 784), optionally permuted.

    Inputs ``(N, 784, 1)`` in [0, 1]; labels ``(N,)`` read at the end. Metric: accuracy; chance:
    the test frequency of the commonest class (0.1135 on the real test set).

    Example:
        >>> task = MNISTTask(root="data/mnist", permuted=True)  # doctest: +SKIP
        >>> task.split("test")[0].shape  # doctest: +SKIP
        torch.Size([10000, 784, 1])
    """

    root: str  # PARAMS, set by Task.__init__
    permuted: bool
    n_valid: int
    PARAMS: ClassVar[dict[str, Any]] = {"root": "data/mnist", "permuted": False, "n_valid": 5000}
    LIMITS: ClassVar[dict[str, Any]] = {"n_valid": {"low": 1}}
    EAGER = True

    def _setup(self) -> None:
        data = load_mnist(self.root)
        train_x, train_y = data["train"]
        self._require(self.n_valid < len(train_y), f"n_valid={self.n_valid} leaves no training "
                                                   f"images (the file has {len(train_y)})")
        cut = len(train_y) - self.n_valid
        self._raw = {"train": (train_x[:cut], train_y[:cut]),
                     "valid": (train_x[cut:], train_y[cut:]), "test": data["test"]}
        self.input_size, self.output_size, self.seq_len = 1, 10, 784
        self.permutation = (torch.randperm(784, generator=seeded_generator(
            self.seed, PERMUTATION_STREAM)) if self.permuted else torch.arange(784))

    def _build(self, split: str) -> tuple[Tensor, Tensor]:
        return self._raw[split]

    def _decode(self, store: Tensor) -> Tensor:
        # uint8 (n, 784) -> float (n, 784, 1) in reading (or permuted) order
        return (store[:, self.permutation].float() / 255.0).unsqueeze(-1)


@register_task("pmnist")
class PermutedMNISTTask(MNISTTask):
    """Permuted sequential MNIST from IDX files: one fixed pixel permutation per seed."""

    PARAMS: ClassVar[dict[str, Any]] = {**MNISTTask.PARAMS, "permuted": True}
