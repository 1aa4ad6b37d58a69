"""Language modelling: character level from any text file, and PTB at the word level.

The token stream of each split is cut into non-overlapping windows of ``T`` inputs; the targets
are the same windows shifted by one token (next-token prediction on every step). Inputs are
one-hot floats ``(N, T, V)``, kept as token ids until a batch is drawn.

PTB is the Mikolov et al. (2010) preprocessing, read the way Zaremba et al. (arXiv 1409.2329)
read it: every newline becomes ``<eos>``, the vocabulary is the training words (10k).
"""
from __future__ import annotations

import collections
import os
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import SPLITS, Task, register_task

PTB_FILES = {split: f"ptb.{split}.txt" for split in SPLITS}


def read_text(path: str, what: str, hint: str) -> str:
    """Read a UTF-8 text file; a missing, unreadable, empty or undecodable file raises a clear
    error (FileNotFoundError / ValueError naming the file)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"missing file {path!r}: expected {what}; {hint}")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise ValueError(f"cannot read {path!r} ({what}): {err.strerror or err}") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path!r} is not UTF-8 text ({err}); is the file corrupt?") from err
    if not text.strip():
        raise ValueError(f"{path!r} is empty")
    return text


def windows(ids: Tensor, T: int, where: str) -> tuple[Tensor, Tensor]:
    """Cut a token stream into ``(N, T)`` inputs and next-token targets.

    Raises:
        ValueError: fewer than ``T + 1`` tokens.
    """
    n = (len(ids) - 1) // T
    if n < 1:
        raise ValueError(f"{where} has {len(ids)} tokens; T={T} needs at least {T + 1}. "
                         f"Use a smaller T or more text")
    return ids[:n * T].view(n, T), ids[1:n * T + 1].view(n, T)


class LanguageModelTask(Task):
    """Shared windows, one-hot decoding and sizes of the LM tasks (not registered)."""

    EAGER = True
    T: int  # the subclasses' parameter, set by Task.__init__
    readout_mode, higher_is_better = "all", False

    def _set_streams(self, streams: dict[str, Tensor], vocab: list[str]) -> None:
        self.vocab = vocab
        self.input_size = self.output_size = len(vocab)
        self.seq_len = self.T
        self._streams = streams
        for split in SPLITS:  # check every split before anything is built
            windows(streams[split], self.T, f"the {split} split")

    def _build(self, split: str) -> tuple[Tensor, Tensor]:
        return windows(self._streams[split], self.T, f"the {split} split")

    def _decode(self, store: Tensor) -> Tensor:
        return F.one_hot(store, self.input_size).float()  # (n, T) ids -> (n, T, V)


@register_task("char_lm")
class CharLMTask(LanguageModelTask):
    """Character-level language modelling on any UTF-8 text file (bits per character).

    The text is split contiguously: train first, then ``valid_frac``, then ``test_frac`` of the
    characters; the vocabulary is every character of the file. Chance: the entropy of the test
    split's character frequencies, in bits.

    Example:
        >>> task = CharLMTask(path="input.txt", T=50)  # doctest: +SKIP
        >>> x, y = task.split("valid")  # (N, 50, V) one-hot, (N, 50) ids  # doctest: +SKIP
    """

    path: str  # PARAMS, set by Task.__init__
    valid_frac: float
    test_frac: float
    PARAMS: ClassVar[dict[str, Any]] = {"path": "data/input.txt", "T": 100, "valid_frac": 0.05,
                                        "test_frac": 0.05}
    SMOKE: ClassVar[dict[str, Any]] = {"T": 32}
    LIMITS: ClassVar[dict[str, Any]] = {
        "T": {"low": 1},
        **{key: {"low": 0, "low_open": True, "high": 0.5, "high_open": True}
           for key in ("valid_frac", "test_frac")}}
    metric_name = "bpc"

    def _setup(self) -> None:
        text = read_text(self.path, "a UTF-8 text file for char_lm",
                         "pass path=<your text file>")
        vocab = sorted(set(text))
        index = {c: i for i, c in enumerate(vocab)}
        ids = torch.tensor([index[c] for c in text], dtype=torch.long)
        self._set_streams(self._cut(ids), vocab)

    def _cut(self, ids: Tensor) -> dict[str, Tensor]:
        n_valid, n_test = int(len(ids) * self.valid_frac), int(len(ids) * self.test_frac)
        n_train = len(ids) - n_valid - n_test
        return {"train": ids[:n_train], "valid": ids[n_train:n_train + n_valid],
                "test": ids[n_train + n_valid:]}


@register_task("ptb")
class PTBTask(LanguageModelTask):
    """Penn Treebank word-level language modelling from ptb.{train,valid,test}.txt (perplexity).

    Chance: the perplexity of the test split's word frequencies (the best unigram model).

    Example:
        >>> task = PTBTask(root="data/ptb", T=35)  # doctest: +SKIP
        >>> task.input_size                        # 10000 for the standard files  # doctest: +SKIP
    """

    root: str  # PARAMS, set by Task.__init__
    PARAMS: ClassVar[dict[str, Any]] = {"root": "data/ptb", "T": 35}
    SMOKE: ClassVar[dict[str, Any]] = {"T": 20}
    LIMITS: ClassVar[dict[str, Any]] = {"T": {"low": 1}}
    metric_name = "perplexity"

    def _setup(self) -> None:
        paths = {s: os.path.join(self.root, name) for s, name in PTB_FILES.items()}
        for split, path in paths.items():  # report a missing file before reading any
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"missing file {path!r}: expected the PTB {split} split "
                    f"{PTB_FILES[split]} (Mikolov's simple-examples/data) in root={self.root!r}")
        words = {s: read_text(p, "PTB text", "").replace("\n", " <eos> ").split()
                 for s, p in paths.items()}
        counts = collections.Counter(words["train"])
        vocab = sorted(counts, key=lambda w: (-counts[w], w))
        self._set_streams({s: self._encode(w, vocab, paths[s]) for s, w in words.items()}, vocab)

    def _encode(self, words: list[str], vocab: list[str], path: str) -> Tensor:
        index = {w: i for i, w in enumerate(vocab)}
        unk = index.get("<unk>")
        unknown = [w for w in set(words) if w not in index]
        if unknown and unk is None:
            raise ValueError(f"{path!r} has words missing from ptb.train.txt and no <unk> token "
                             f"to map them to, e.g. {sorted(unknown)[:5]}")
        return torch.tensor([index.get(w, unk) for w in words], dtype=torch.long)
