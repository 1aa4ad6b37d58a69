"""One trial of a sweep: train one config (resuming a killed run, returning the summary of a
finished one) and never raise; plus the bookkeeping of what a re-run skips or retries.

Note [crash records]: a trial that raises is recorded as ``crash.json`` (error, traceback and
the number of ``attempts``) in its run directory, *not* as ``summary.json``, which stays the
completion marker. So a re-run skips completed, early-stopped and diverged trials (they have a
summary) and retries crashed ones (they do not), until a trial has crashed ``max_attempts``
times: then it is *failed* and re-runs skip it (a trial that can never succeed, e.g. on a
corrupt checkpoint, must not be retried forever; docs/sweeps.md). Deleting its ``crash.json``
gives it fresh attempts; a retry that succeeds removes ``crash.json``.
"""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .._checks import is_int
from .._io import atomic_write_text
from ..train.config import Config, config_hash
from .rundir import CRASH, SUMMARY, RunLockedError, error_line, run_dir_for

MAX_ATTEMPTS = 3  # crashes of one trial before re-runs stop retrying it (Note [crash records])
FINISHED = ("completed", "early_stopped", "diverged")


@dataclass
class TrialResult:
    """The outcome of one trial: its run directory, status, summary and whether it ran now.

    ``status`` is a summary's (``completed``, ``early_stopped``, ``diverged``), ``crashed``
    (it raised; a re-run retries it), ``failed`` (it crashed ``max_attempts`` times; re-runs
    skip it) or ``locked`` (another process held its run directory).
    """

    path: str
    status: str
    summary: dict
    ran: bool


def run_trial(config: dict) -> dict:
    """Train one config (resuming, or returning the summary of a finished run) and never raise.

    A trial that raises gets a crash record (Note [crash records]) and this returns
    ``{"status": "crashed", "error": ..., "traceback": ..., "attempts": n}``; another process
    holding the run directory gives ``{"status": "locked", ...}`` and writes nothing.

    Args:
        config: ``Config.to_dict()`` of the trial (plain data, so every backend can ship it).

    Returns:
        The run's summary dict (``summary.json``) or the crash record.

    Example:
        >>> cfg = Config()
        >>> cfg.task.size, cfg.run.steps = "smoke", 2          # doctest: +SKIP
        >>> run_trial(cfg.to_dict())["status"]                  # doctest: +SKIP
        'completed'
    """
    from ..train.loop import train

    cfg = Config.from_dict(config)
    path = run_dir_for(cfg)
    try:
        summary = train(cfg, run_dir=path)
    except RunLockedError as err:
        return {"status": "locked", "error": str(err)}
    except Exception as err:  # noqa: BLE001 - one trial's failure must not stop the sweep
        return _record_crash(path, cfg, err)
    (path / CRASH).unlink(missing_ok=True)
    return summary


def _record_crash(path: Path, cfg: Config, err: Exception) -> dict:
    record = {"status": "crashed", "error": error_line(err),
              "traceback": traceback.format_exc(), "config_hash": config_hash(cfg),
              "attempts": _attempts(path) + 1, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path / CRASH, json.dumps(record, indent=2) + "\n")
    return record


def _read_record(file: Path) -> dict | None:
    """A JSON object file, or None when it is missing or damaged (cut by a kill, edited)."""
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _attempts(path: Path) -> int:
    """Crashes recorded for this run directory so far: 0 without a record, 1 for a record
    that does not say (older, or damaged)."""
    file = path / CRASH
    if not file.exists():
        return 0
    attempts = (_read_record(file) or {}).get("attempts")
    return attempts if is_int(attempts) and attempts > 0 else 1


def limit_threads() -> None:
    """One torch thread per worker process (parallelism comes from the trials)."""
    import torch

    torch.set_num_threads(1)


def trial_one_thread(config: dict) -> dict:
    """:func:`run_trial` on one torch thread (what a remote worker runs: Ray, Slurm)."""
    limit_threads()
    return run_trial(config)


def previous_result(path: Path, max_attempts: int) -> TrialResult | None:
    """A trial that needs no run: finished (it has a summary) or failed too often."""
    summary = _finished(path)
    if summary is not None:
        return TrialResult(str(path), summary["status"], summary, ran=False)
    attempts = _attempts(path)
    if attempts >= max_attempts:
        crash = _read_record(path / CRASH) or {"error": f"{CRASH} is damaged"}
        return TrialResult(str(path), "failed", {**crash, "attempts": attempts}, ran=False)
    return None


def trial_outcome(path: Path, summary: dict, max_attempts: int, *, ran: bool) -> TrialResult:
    """The :class:`TrialResult` of a trial that returned ``summary`` (a crash that used up
    ``max_attempts`` is ``failed``)."""
    status = summary.get("status", "crashed")
    if status == "crashed" and summary.get("attempts", 0) >= max_attempts:
        status = "failed"
    return TrialResult(str(path), status, summary, ran)


def _finished(path: Path) -> dict | None:
    """The trial's summary, or None when it has none (a damaged one does not count: the
    trial runs again, and its run directory reports the damage)."""
    summary = _read_record(path / SUMMARY)
    return summary if summary is not None and summary.get("status") in FINISHED else None


def trial_state(path: Path, max_attempts: int) -> str:
    """``done``, ``failed`` (not retried), ``retry`` (crashed before) or ``todo``."""
    previous = previous_result(path, max_attempts)
    if previous is not None:
        return "failed" if previous.status == "failed" else "done"
    return "retry" if (path / CRASH).exists() else "todo"
