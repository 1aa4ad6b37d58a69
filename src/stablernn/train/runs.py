"""Run directories: atomic writes, a lock, metrics rows, checkpoints that resume exactly.

A run directory holds ``config.json``, ``metrics.jsonl``, ``checkpoint.pt`` and, written last
and atomically, ``summary.json`` (its presence marks a finished run). Checkpoints are loaded
with ``weights_only=True``.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import torch

from .._io import atomic_save, atomic_write_text

CHECKPOINT, SUMMARY, METRICS, CONFIG = "checkpoint.pt", "summary.json", "metrics.jsonl", \
    "config.json"


class RunLockedError(RuntimeError):
    """Another process is working in this run directory."""


class RunDir:
    """One run directory; use as a context manager to hold its lock.

    Example:
        >>> import tempfile
        >>> with RunDir(Path(tempfile.mkdtemp()) / "r") as run:
        ...     run.append_metrics([{"step": 1, "loss": 0.5}])
        ...     run.read_metrics()
        [{'step': 1, 'loss': 0.5}]
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = None

    def __enter__(self) -> "RunDir":
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RunLockedError(f"run directory {self.path} is in use by another process; "
                                 f"wait for it to finish or pick another run.root") from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def file(self, name: str) -> Path:
        return self.path / name

    def read_json(self, name: str) -> dict | None:
        path = self.file(name)
        return json.loads(path.read_text()) if path.exists() else None

    def write_json(self, name: str, data: dict) -> None:
        atomic_write_text(self.file(name), json.dumps(data, indent=2, sort_keys=True) + "\n")

    def append_metrics(self, rows: list[dict]) -> None:
        with open(self.file(METRICS), "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict]:
        """The readable metric rows; damaged lines (cut by a kill, edited by hand, rows without
        an int ``step``) are skipped: :meth:`damaged_metrics` counts them."""
        return self._parse_metrics()[0]

    def damaged_metrics(self) -> int:
        """How many lines of metrics.jsonl could not be read as a metric row."""
        return self._parse_metrics()[1]

    def _parse_metrics(self) -> tuple[list[dict], int]:
        path = self.file(METRICS)
        if not path.exists():
            return [], 0
        rows, bad = [], 0
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            step = row.get("step") if isinstance(row, dict) else None
            if isinstance(step, bool) or not isinstance(step, int):
                bad += 1
                continue
            rows.append(row)
        return rows, bad

    def truncate_metrics(self, last_step: int) -> None:
        """Drop rows after ``last_step`` (written after the checkpoint a resume starts from)."""
        rows = [r for r in self.read_metrics() if r["step"] <= last_step]
        atomic_write_text(self.file(METRICS), "".join(json.dumps(r) + "\n" for r in rows))

    def save_checkpoint(self, state: dict) -> None:
        atomic_save(state, self.file(CHECKPOINT))

    def load_checkpoint(self) -> dict | None:
        path = self.file(CHECKPOINT)
        return torch.load(path, weights_only=True) if path.exists() else None
