"""Loading run directories for reports: every readable file of each run, damaged files
skipped with a warning naming them (docs/sweeps.md, "Reports")."""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..rundir import CONFIG, CRASH, METRICS, RUN_FILES, SUMMARY, RunDir, error_line

# summary.json fields a report reads, and their types (a summary without them is damaged)
NUMBER = (int, float)
SUMMARY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "status": str, "task": str, "metric": str, "higher_is_better": bool,
    "chance": NUMBER, "chance_loss": NUMBER}
SPLIT_FIELDS: dict[str, type | tuple[type, ...]] = {"metric": NUMBER, "loss": NUMBER}


class DamagedRunWarning(UserWarning):
    """A file of a run directory the report cannot read; the report skips it and goes on."""


def load_run(path: str | Path, *, finished: bool = True) -> dict:
    """``{"path", "config", "summary", "crash", "metrics", "problems", "status"}`` of one run
    directory; damaged files are skipped with a :class:`DamagedRunWarning` each.

    A file that cannot be read (cut short by a kill, edited, missing fields) leaves its entry
    None (``metrics``: the readable rows), adds ``"<file>: <problem>"`` to ``problems`` and
    makes ``status`` ``"damaged"`` (see :func:`run_status`).

    Args:
        path: the run directory.
        finished: require ``summary.json`` and ``config.json``; with ``finished=False`` an
            unfinished, crashed or damaged run loads too.

    Raises:
        FileNotFoundError: no ``config.json`` or ``summary.json`` while ``finished``.
    """
    path = Path(path)
    for name, what in ((SUMMARY, "the run did not finish"), (CONFIG, "not a run directory")):
        if finished and not (path / name).exists():
            raise FileNotFoundError(f"{path} has no {name}: {what}")
    problems: list[str] = []
    run: dict[str, Any] = {"path": str(path), "config": _read_config(path, problems),
           "summary": _read_json(path, SUMMARY, problems, _summary_problem),
           "crash": _read_json(path, CRASH, problems), "metrics": _read_metrics(path, problems)}
    if not any((path / name).exists() for name in RUN_FILES):
        problems.append(f"empty run directory (none of {', '.join(RUN_FILES)})")
    for problem in problems:
        warnings.warn(f"run directory {path}: {problem}", DamagedRunWarning, stacklevel=2)
    run["problems"] = problems
    run["status"] = run_status(run)
    return run


def _read_json(path: Path, name: str, problems: list[str], check: Any = None) -> dict | None:
    """A JSON object file, or None (missing; damaged, with a line added to ``problems``)."""
    file = path / name
    if not file.exists():
        return None
    problem: str | None
    try:
        data = json.loads(file.read_text())
    except UnicodeDecodeError:
        problem = "not a text file"
    except ValueError as err:
        problem = f"not valid JSON ({err})"
    except OSError as err:
        problem = f"cannot be read ({err.strerror or err})"
    else:
        problem = "not a JSON object" if not isinstance(data, dict) else \
            (check(data) if check else None)
    if problem:
        problems.append(f"{name}: {problem}; skipped")
        return None
    return data


def _summary_problem(data: dict) -> str | None:
    """What a summary lacks for the report's tables, or None."""
    bad = [k for k, kind in SUMMARY_FIELDS.items() if not is_a(data.get(k), kind)]
    for split in ("valid", "test"):
        part = data.get(split)
        bad += [f"{split}.{k}" for k, kind in SPLIT_FIELDS.items()
                if not (isinstance(part, dict) and is_a(part.get(k), kind))]
    return f"missing or wrong field(s) {', '.join(bad)}" if bad else None


def is_a(value: Any, kind: type | tuple) -> bool:
    """``isinstance`` where a bool is no number (JSON's ``true`` is not a metric)."""
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _read_config(path: Path, problems: list[str]) -> dict | None:
    from ...train.config import Config

    config = _read_json(path, CONFIG, problems)
    if config is None:
        if not (path / CONFIG).exists() and any((path / n).exists() for n in RUN_FILES):
            problems.append(f"{CONFIG}: missing; the run is in no setting")
        return None
    try:
        Config.from_dict({k: v for k, v in config.items() if k != "hash"})
    except Exception as err:  # noqa: BLE001 - any unreadable config is one damaged run
        problems.append(f"{CONFIG}: not a stablernn config ({error_line(err)}); skipped")
        return None
    return config


def _read_metrics(path: Path, problems: list[str]) -> list[dict]:
    run = RunDir(path)
    try:
        rows, damaged = run.read_metrics(), run.damaged_metrics()
    except OSError as err:
        problems.append(f"{METRICS}: cannot be read ({err.strerror or err}); skipped")
        return []
    if damaged:
        problems.append(f"{METRICS}: {damaged} damaged line(s) (cut short, not JSON or "
                        f"without a step) skipped")
    return rows


def run_status(run: dict) -> str:
    """``"damaged"`` (a file could not be read), the summary's status (``completed``,
    ``early_stopped``, ``diverged``), ``"crashed"`` (a crash record) or ``"unfinished"``.

    Example:
        >>> run_status({"summary": None, "crash": {"error": "boom"}, "problems": []})
        'crashed'
    """
    if run.get("problems"):
        return "damaged"
    if run.get("summary"):
        return run["summary"]["status"]
    return "crashed" if run.get("crash") else "unfinished"


def load_runs(root: str | Path, *, ignore: Iterable[str | Path] = ()) -> list[dict]:
    """Every run directory under ``root`` (any depth), finished or not, damaged ones too
    (with a warning each), sorted by path.

    A run directory is one holding any of ``config.json``, ``summary.json``,
    ``metrics.jsonl``, ``crash.json`` or ``checkpoint.pt``, or an empty folder below
    ``root`` (a trial killed before it wrote anything), which loads as damaged; folders in
    ``ignore`` (e.g. the report's own output folder) and below them are skipped.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no run directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no directory {root}")
    runs = [load_run(p, finished=False) for p in _run_dirs(root, [Path(p) for p in ignore])]
    if not runs:
        raise FileNotFoundError(f"no run directories (with {CONFIG}) under {root}")
    return runs


def _run_dirs(root: Path, ignore: list[Path]) -> list[Path]:
    found, empty = set(), []
    inside = [p.resolve() for p in ignore if root.resolve() in p.resolve().parents]
    for top, dirs, files in os.walk(root):
        here = Path(top).resolve()
        if any(here == p or p in here.parents for p in inside):
            continue
        if any(name in files for name in RUN_FILES):
            found.add(Path(top))
        elif Path(top) != root and not dirs and all(name.startswith(".") for name in files):
            empty.append(Path(top))
    # an empty folder inside a run directory (e.g. tensorboard's) is not a run
    empty = [p for p in empty if not any(run in p.parents for run in found)]
    return sorted(found | set(empty))


def configured_runs(runs: Iterable[dict]) -> list[dict]:
    """Runs with a readable config (the others belong to no setting)."""
    return [r for r in runs if r.get("config") is not None]


def finished_runs(runs: Iterable[dict]) -> list[dict]:
    """Runs with a readable config and summary: the ones tables average and pair."""
    return [r for r in configured_runs(runs) if r.get("summary")]
