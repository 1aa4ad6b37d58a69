"""Run directories: every file name inside one, atomic writes, a lock, metrics rows,
checkpoints that resume exactly, and the error lines crash records carry.

A run directory holds ``config.json``, ``metrics.jsonl``, ``checkpoint.pt`` (and the one before
it, ``checkpoint.prev.pt``), ``pretrained.pt`` (the weights right after pre-training),
``model.pt`` (the best weights), a sweep's ``crash.json`` and, written last and atomically,
``summary.json`` (its presence marks a finished run). The names are the constants below; the
rest of the library spells them only through this module. Checkpoints are loaded with
``weights_only=True``. Damaged files (a disk filled up, a file cut by a crash, edited by hand)
never block a run: they are reported in one warning and the run falls back to the last good
state (see docs/training.md, "Resuming and damaged files").
"""
from __future__ import annotations

import fcntl
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TextIO

import torch

from .._checks import is_int
from .._io import atomic_save, atomic_write_text, remove_stale_temps
from ..errors import RunDirError, RunLockedError

if TYPE_CHECKING:
    from ..train.config import Config

# every file name inside a run directory (no other module spells them)
CONFIG, METRICS, SUMMARY = "config.json", "metrics.jsonl", "summary.json"
CHECKPOINT, PREVIOUS, PRETRAINED = "checkpoint.pt", "checkpoint.prev.pt", "pretrained.pt"
MODEL = "model.pt"  # the best weights (by the validation metric)
CRASH = "crash.json"  # a sweep trial's crash record (docs/sweeps.md, "Run directories, ...")
LOCK, TENSORBOARD = ".lock", "tensorboard"
RUN_FILES = (CONFIG, SUMMARY, METRICS, CRASH, CHECKPOINT)  # any of them marks a run directory
# a report's folder (default: ``<runs root>/report``) and its files
REPORT_DIR, REPORT, TABLE, WIN_RATES = "report", "report.md", "table.csv", "win_rates.csv"
TABLE_JSON = "table.json"  # the demo's table
# what the CLI prints of a summary: a summary.json without these keys is damaged
SUMMARY_KEYS = ("status", "step", "metric", "valid", "test", "chance")



def run_dir_for(cfg: Config) -> Path:
    """``<run.root>/<task>-<cell>-L<layers>-<hash>``: one directory per distinct config."""
    from ..train.config import config_hash

    return Path(cfg.run.root) / (f"{cfg.task.name}-{cfg.model.cell}-L{cfg.model.num_layers}-"
                                 f"{config_hash(cfg)}")


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type when the message is empty)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def error_line(err: BaseException) -> str:
    """``Type: first line``: how crash records and reports name an error."""
    return f"{type(err).__name__}: {first_line(err)}"


class DamagedFileWarning(UserWarning):
    """A file of a run directory could not be read; the run falls back to earlier state."""


def damaged(path: Path, err: BaseException | str, action: str) -> None:
    """Warn (one line) that ``path`` is unreadable and what the run does instead."""
    warnings.warn(f"{path} is damaged ({short_reason(err)}); {action}", DamagedFileWarning,
                  stacklevel=3)


def short_reason(err: BaseException | str) -> str:
    """The first sentence of an error, with its type: torch's errors run over many lines."""
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    text = " ".join(text.split())
    return text.split(". ")[0][:200]


def read_summary(path: str | os.PathLike) -> dict | None:
    """The ``summary.json`` of run directory ``path``; None when absent or damaged (not JSON,
    not an object, or missing :data:`SUMMARY_KEYS`: a warning says the run is re-run)."""
    file = Path(path) / SUMMARY
    if not file.exists():
        return None
    try:
        data = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        damaged(file, err, "the run is finished again from its checkpoint")
        return None
    missing = [k for k in SUMMARY_KEYS if k not in data] if isinstance(data, dict) else ["all"]
    if missing:
        damaged(file, f"missing {', '.join(missing)}",
                "the run is finished again from its checkpoint")
        return None
    return data


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
        self._lock: TextIO | None = None  # the open lock file while entered

    def __enter__(self) -> Self:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path / LOCK, "w")
        except OSError as err:
            raise RunDirError(
                f"cannot create the run directory {self.path} ({err.strerror or err}); "
                f"choose a writable run.root (--root)") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RunLockedError(f"run directory {self.path} is in use by another process; "
                                 f"wait for it to finish or pick another run.root") from None
        remove_stale_temps(self.path)  # ours alone now: leftovers of a killed writer
        return self

    def __exit__(self, *exc) -> None:
        assert self._lock is not None  # __enter__ opened it
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def file(self, name: str) -> Path:
        return self.path / name

    def read_json(self, name: str) -> Any:
        """The JSON content of file ``name``; None if absent.

        Raises:
            ValueError: the file is not valid JSON (the message names it).
        """
        path = self.file(name)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is damaged (not valid JSON: {err}); delete it or re-run "
                             f"stablernn train with this run's config") from None

    def write_json(self, name: str, data: dict) -> None:
        atomic_write_text(self.file(name), json.dumps(data, indent=2, sort_keys=True) + "\n")

    def append_metrics(self, rows: list[dict]) -> None:
        with open(self.file(METRICS), "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
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
            if not is_int(step):
                bad += 1
                continue
            rows.append(row)
        return rows, bad

    def truncate_metrics(self, last_step: int) -> None:
        """Keep only the readable rows up to ``last_step`` (rows written after the checkpoint a
        run resumes from would be duplicated; damaged lines are dropped, with a warning)."""
        rows, bad = self._parse_metrics()
        if bad:
            damaged(self.file(METRICS), f"{bad} unreadable line(s)", "they are dropped")
        kept = [r for r in rows if r["step"] <= last_step]
        if bad or len(kept) != len(rows):
            atomic_write_text(self.file(METRICS), "".join(json.dumps(r) + "\n" for r in kept))

    def save_checkpoint(self, state: dict) -> None:
        """Write ``checkpoint.pt``; the previous one stays as ``checkpoint.prev.pt``."""
        atomic_save(state, self.file(CHECKPOINT), previous=self.file(PREVIOUS))

    def load_checkpoint(self) -> dict | None:
        """The newest readable checkpoint (``checkpoint.pt``, else ``checkpoint.prev.pt``, with
        a warning), or None. :meth:`checkpoints` gives each candidate to try in turn."""
        return next((state for _, state in self.checkpoints()), None)

    def checkpoints(self):
        """Yield ``(path, state)`` for each checkpoint that loads, newest first; unreadable
        ones are skipped with a warning. A caller that finds a state unusable takes the next."""
        for name in (CHECKPOINT, PREVIOUS):
            path = self.file(name)
            if not path.exists():
                continue
            state = self.load_file(path, "the run resumes from the last good state")
            if state is not None:
                yield path, state

    def load_file(self, path: Path, action: str) -> dict | None:
        """``torch.load(path, weights_only=True)`` as a dict; None and a warning ending with
        ``action`` (what happens instead) if the file is damaged."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - zip, pickle and OS errors all mean damaged
            damaged(path, err, action)
            return None
        if not isinstance(state, dict):
            damaged(path, f"holds a {type(state).__name__}", action)
            return None
        return state

    def save_pretrained(self, state: dict) -> None:
        atomic_save(state, self.file(PRETRAINED))
