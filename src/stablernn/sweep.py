"""Sweeps: a TOML grid (and zip) over config keys and seeds, expanded to run directories and run
by a backend: ``local`` (process pool), ``ray`` (Ray core tasks), ``slurm`` (submitit on a Slurm
cluster) or ``slurm-local`` (submitit's local executor, for testing the slurm path).

A sweep file::

    name = "lsc_depth"                     # optional; default: the file's stem
    root = "runs/sweeps/lsc_depth"         # optional; default: runs/sweeps/<name>
    seeds = [0, 1, 2]                      # or a count: seeds = 3
    [base]                                 # dotted config keys -> values (every trial)
    "task.name" = "adding"
    "task.params.T" = 100
    [grid]                                 # key -> list: the cartesian product
    "model.num_layers" = [2, 5]
    [zip]                                  # keys -> lists of equal length, taken together
    "pretrain.method" = ["none", "lsc", "lsc"]
    "pretrain.rho" = [0.5, 0.5, 1.0]
    [slurm]                                # optional: submitit parameters (slurm backend)
    timeout_min = 60

Every trial is checked before anything starts, ``--dry-run`` included: the config layer
(unknown keys, impossible values, duplicate trials) and the task's own parameter checks
(:func:`stablernn.tasks.check_task_params`: types and ranges). Each trial is one call of the
pure :func:`run_trial`; backends only schedule it and never own result files.

Note [crash records]: a trial that raises is recorded as ``crash.json`` (error, traceback and
the number of ``attempts``) in its run directory, *not* as ``summary.json``, which stays the
completion marker (docs/architecture.md). A re-run skips finished, early-stopped and diverged trials
(they have a summary) and retries crashed ones (they do not), until a trial has crashed
``max_attempts`` times: then it is *failed* and re-runs skip it (a trial that can never
succeed, e.g. on a corrupt checkpoint, must not be retried forever; docs/sweeps.md). Deleting
its ``crash.json`` gives it fresh attempts; a retry that succeeds removes ``crash.json``.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import os
import shutil
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._io import atomic_write_text
from .train.config import Config, ConfigError, config_hash, set_value, validate
from .train.runs import SUMMARY

CRASH = "crash.json"
BACKENDS = ("local", "ray", "slurm", "slurm-local")
TOP_KEYS = ("name", "root", "seeds", "base", "grid", "zip", "slurm")
RESERVED = {"run.seed": "use the top-level `seeds = [...]`",
            "run.root": "use the top-level `root = \"...\"`"}
MAX_ATTEMPTS = 3  # crashes of one trial before re-runs stop retrying it (Note [crash records])
MAX_TRIALS = 100_000  # a larger grid is a typo (e.g. seeds = 1000000), not a plan
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")  # values of [slurm] cluster
FINISHED = ("completed", "early_stopped", "diverged")


@dataclass
class Sweep:
    """An expanded sweep: its name, root directory, trial configs and backend options.

    Attributes:
        name: the sweep's name (default: the TOML file's stem).
        root: the directory holding every trial's run directory.
        configs: one validated :class:`Config` per trial (settings x seeds).
        slurm: extra submitit parameters from the ``[slurm]`` table.
    """

    name: str
    root: str
    configs: list[Config]
    slurm: dict = field(default_factory=dict)

    def run_dirs(self) -> list[Path]:
        """The run directory of every trial, in trial order."""
        from .train.loop import run_dir_for

        return [run_dir_for(cfg) for cfg in self.configs]


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


@dataclass
class SweepResult:
    """Every trial's :class:`TrialResult`, in trial order."""

    name: str
    root: str
    trials: list[TrialResult]

    @property
    def crashed(self) -> list[TrialResult]:
        """The trials without a result: crashed, failed or locked."""
        return [t for t in self.trials if t.status in ("crashed", "locked", "failed")]

    def describe(self) -> str:
        """One line of counts, then one line per crashed, failed or locked trial."""
        ran = [t for t in self.trials if t.ran]
        counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(t.status for t in ran).items()))
        given_up = [t for t in self.trials if not t.ran and t.status == "failed"]
        skipped = len(self.trials) - len(ran) - len(given_up)
        head = (f"sweep {self.name}: {len(self.trials)} trials, {len(ran)} ran"
                f"{f' ({counts})' if counts else ''}, {skipped} skipped (already finished)"
                f"{f', {len(given_up)} not retried (failed before)' if given_up else ''}; "
                f"runs in {self.root}")
        return "\n".join([head] + [_problem_line(t) for t in self.crashed])


def _problem_line(trial: TrialResult) -> str:
    error = trial.summary.get("error", "")
    attempts = trial.summary.get("attempts")
    if trial.status == "failed":
        times = "time" if attempts == 1 else "times"
        how = f"failed {attempts} {times}, not retried (delete its {CRASH} to retry)"
    elif trial.status == "crashed" and attempts:
        how = f"crashed (attempt {attempts}; a re-run retries it)"
    else:
        how = trial.status
    return f"  {how}: {trial.path}: {error}"


# parsing and expansion ----------------------------------------------------------------------
def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep TOML file and expand it into validated trial configs (nothing runs).

    Args:
        path: the ``.toml`` file (format in the module docstring).

    Returns:
        The :class:`Sweep`.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: not a readable text file, malformed TOML, unknown keys or names,
            impossible values (task parameters included), an empty grid, or two trials with
            the same config; the message names the file (and the trial).

    Example:
        >>> sweep = load_sweep("benchmarks/reproduce/warmup.toml")  # doctest: +SKIP
        >>> len(sweep.configs)                                      # doctest: +SKIP
        12
    """
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: malformed TOML: {err}") from None
    try:
        return parse_sweep(data, name=path.stem)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _read_text(path: Path) -> str:
    if not path.exists():
        raise FileNotFoundError(f"sweep file {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give a sweep .toml file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (UTF-8) file; give a sweep .toml file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the sweep file: {err.strerror or err}") from None


def parse_sweep(data: dict, *, name: str = "sweep") -> Sweep:
    """Expand parsed sweep data (the TOML as a dict) into validated trial configs.

    Args:
        data: ``{"base": {...}, "grid": {...}, "zip": {...}, "seeds": [...], ...}``.
        name: the sweep name used when ``data`` has none.

    Returns:
        The :class:`Sweep`.

    Raises:
        ConfigError: see :func:`load_sweep`.

    Example:
        >>> s = parse_sweep({"grid": {"model.num_layers": [1, 2]}, "seeds": 2}, name="demo")
        >>> [(c.model.num_layers, c.run.seed) for c in s.configs]
        [(1, 0), (1, 1), (2, 0), (2, 1)]
        >>> parse_sweep({"grid": {"task.params.T": ["x", 5]}})
        Traceback (most recent call last):
        ...
        stablernn.train.config.ConfigError: trial {task.params.T=x, run.seed=0}: ...T must be an int...
    """
    _require(isinstance(data, dict), f"a sweep must be a table (dict), got {type(data).__name__}")
    unknown = sorted(set(data) - set(TOP_KEYS))
    _require(not unknown, f"unknown top-level key(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(TOP_KEYS)} (config keys go in [base], [grid] or [zip])")
    name = _typed(data.get("name", name), str, "name")
    root = _typed(data.get("root", f"runs/sweeps/{name}"), str, "root")
    _require(bool(root.strip()), "root is empty: give the directory of the trials' runs")
    base = _table(data, "base")
    for key in ("grid", "zip"):
        _require(data.get(key, None) != {}, f"[{key}] is empty: give at least one key with a "
                                            f"list of values, or drop the table")
    grid, zipped = _table(data, "grid"), _table(data, "zip")
    both = sorted(set(grid) & set(zipped))
    _require(not both, f"{', '.join(both)} in both [grid] and [zip]: vary a key in one of them")
    axes, seeds = _grid_axes(grid, "grid") + _zip_axes(zipped), _seeds(data)
    total = math.prod(len(axis) for axis in axes) * len(seeds)
    _require(total <= MAX_TRIALS, f"{total:,} trials (more than {MAX_TRIALS:,}): check the "
                                  f"grid and seeds")
    varied = [*grid, *zipped, "run.seed"]
    settings = [_merge(base, combo) for combo in itertools.product(*axes)]
    trials = [{**s, "run.seed": seed} for s in settings for seed in seeds]
    configs = [_build(trial, root, varied) for trial in trials]
    _check_unique(configs)
    return Sweep(name, root, configs, _slurm_table(data))


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _typed(value: Any, kind: type, key: str) -> Any:
    _require(isinstance(value, kind), f"{key} must be a {kind.__name__}, got {value!r}")
    return value


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """``{"task": {"name": "x"}}`` -> ``{"task.name": "x"}`` (quoted and nested keys alike)."""
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _table(data: dict, key: str) -> dict:
    table = data.get(key, {})
    _require(isinstance(table, dict), f"[{key}] must be a table, got {table!r}")
    flat = _flatten(table)
    for k in flat:
        _require(k not in RESERVED, f"[{key}] sets {k}: {RESERVED.get(k)}")
    return flat


def _slurm_table(data: dict) -> dict:
    """The ``[slurm]`` table, its own keys checked (the rest is submitit's, checked by it
    before any job is submitted)."""
    table = data.get("slurm", {})
    _require(isinstance(table, dict), f"[slurm] must be a table, got {table!r}")
    cluster = table.get("cluster")
    _require(cluster is None or cluster in SUBMITIT_CLUSTERS,
             f"[slurm] cluster = {cluster!r}; valid: {', '.join(SUBMITIT_CLUSTERS)}")
    poll = table.get("poll", 10)
    _require(isinstance(poll, (int, float)) and not isinstance(poll, bool)
             and math.isfinite(poll) and poll > 0,
             f"[slurm] poll must be a number of seconds > 0, got {poll!r}")
    return dict(table)


def _grid_axes(grid: dict, where: str) -> list[list[dict]]:
    for key, values in grid.items():
        _require(isinstance(values, list) and len(values) > 0,
                 f"[{where}] {key!r} must be a non-empty list of values, got {values!r}")
    return [[{key: v} for v in values] for key, values in grid.items()]


def _zip_axes(zipped: dict) -> list[list[dict]]:
    if not zipped:
        return []
    _grid_axes(zipped, "zip")
    lengths = {key: len(values) for key, values in zipped.items()}
    _require(len(set(lengths.values())) == 1,
             f"[zip] lists must have equal lengths, got {lengths}")
    return [[dict(zip(zipped, values)) for values in zip(*zipped.values())]]


def _seeds(data: dict) -> list[int]:
    seeds = data.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        _require(0 < seeds <= MAX_TRIALS,
                 f"seeds = {seeds}: give a count in 1..{MAX_TRIALS} or a list of seeds")
        return list(range(seeds))
    _require(isinstance(seeds, list) and len(seeds) > 0 and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds),
             f"seeds must be a count > 0 or a non-empty list of ints >= 0, got {seeds!r}")
    _require(len(set(seeds)) == len(seeds), f"seeds has duplicates: {seeds}")
    return seeds


def _merge(base: dict, combo: tuple[dict, ...]) -> dict[str, Any]:
    setting = dict(base)
    for part in combo:
        setting.update(part)
    return setting


def _build(trial: dict[str, Any], root: str, varied: list[str]) -> Config:
    """One trial's :class:`Config`, checked by the config layer (which runs the task's own
    parameter checks); errors name the trial by the values that vary (grid, zip and seed)."""
    from .registry import registries

    cfg = Config()
    cfg.run.progress = False  # one bar over trials, not one per trial
    try:
        for key, value in trial.items():
            set_value(cfg, key, copy.deepcopy(value))
        cfg.run.root = root
        validate(cfg, registries())
        _plain_data(cfg)
    except (ValueError, TypeError, AttributeError, KeyError) as err:
        shown = ", ".join(f"{k}={_shown(trial[k])}" for k in varied if k in trial)
        message = err if isinstance(err, ConfigError) else first_line(err)
        raise ConfigError(f"trial {{{shown}}}: {message}") from err
    return cfg


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type when the message is empty)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def error_line(err: BaseException) -> str:
    """``Type: first line``: how crash records and reports name an error."""
    return f"{type(err).__name__}: {first_line(err)}"


def _plain_data(cfg: Config) -> None:
    """Trials travel as JSON (run directories, Ray, Slurm): refuse TOML dates and times."""
    try:
        json.dumps(cfg.to_dict())
    except TypeError as err:
        raise TypeError(f"config values must be numbers, strings, booleans, lists or tables "
                        f"({err})") from None


def _check_unique(configs: list[Config]) -> None:
    seen: dict[str, int] = {}
    for i, cfg in enumerate(configs):
        key = config_hash(cfg)
        _require(key not in seen, f"trials {seen.get(key)} and {i} have the same config "
                                  f"(hash {key}); a grid key that does not change results?")
        seen[key] = i


# one trial --------------------------------------------------------------------------------
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
    from .train.loop import run_dir_for, train
    from .train.runs import RunLockedError

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
    return attempts if isinstance(attempts, int) and not isinstance(attempts, bool) \
        and attempts > 0 else 1


def limit_threads() -> None:
    """One torch thread per worker process (parallelism comes from the trials)."""
    import torch

    torch.set_num_threads(1)


def _init_local_worker() -> None:
    """One torch thread, and exit when the sweep process dies (a killed ``stablernn sweep``
    must not leave workers training; their checkpoints let the next run resume)."""
    import threading

    limit_threads()
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _trial_one_thread(config: dict) -> dict:
    limit_threads()
    return run_trial(config)


# running a sweep ----------------------------------------------------------------------------
def run_sweep(sweep: Sweep, *, backend: str = "local", workers: int | None = None,
              address: str | None = None, progress: bool = True,
              max_attempts: int = MAX_ATTEMPTS) -> SweepResult:
    """Run every unfinished trial of ``sweep`` on ``backend``; finished ones are skipped.

    Args:
        sweep: from :func:`load_sweep` or :func:`parse_sweep`.
        backend: ``"local"`` (process pool, one torch thread per worker), ``"ray"`` (a local
            Ray instance, or the cluster at ``address``), ``"slurm"`` (submitit; refused where
            there is no ``sbatch``) or ``"slurm-local"`` (submitit's local executor).
        workers: parallel trials (local: processes, default the CPU count; ray: CPUs of a
            local instance, unused with ``address``; slurm: the job array's parallelism,
            default unlimited).
        address: Ray cluster address (``ray`` only), e.g. ``"auto"`` or ``"ray://host:10001"``.
        progress: show a progress bar over trials (only on a terminal).
        max_attempts: a trial that crashed this many times is ``failed`` and not retried
            (Note [crash records]).

    Returns:
        A :class:`SweepResult` (crashed trials included; their records are in the run dirs).

    Raises:
        ValueError: unknown backend, ``workers < 1``, ``max_attempts < 1``, ``address``
            without ``ray``, ``slurm`` on a machine without Slurm, or a ``[slurm]`` parameter
            submitit does not know.
        ImportError: the backend's extra is not installed (the message names it).

    Example:
        >>> result = run_sweep(load_sweep("sweep.toml"), workers=2)  # doctest: +SKIP
        >>> print(result.describe())                                 # doctest: +SKIP
    """
    check_run_args(sweep, backend, workers, address, max_attempts)
    paths = sweep.run_dirs()
    results: list[TrialResult | None] = [_previous(path, max_attempts) for path in paths]
    todo = [i for i, r in enumerate(results) if r is None]
    configs = [sweep.configs[i].to_dict() for i in todo]
    for k, summary in _with_bar(_backend(backend, configs, workers, address, sweep), len(todo),
                                sweep.name, progress):
        results[todo[k]] = _outcome(paths[todo[k]], summary, max_attempts, ran=True)
    return SweepResult(sweep.name, sweep.root, results)


def check_run_args(sweep: Sweep, backend: str, workers: int | None = None,
                   address: str | None = None, max_attempts: int = MAX_ATTEMPTS) -> None:
    """Check how a sweep is to be run, before anything runs (``--dry-run`` included).

    Raises:
        ValueError: see :func:`run_sweep`.
        TypeError: ``workers`` or ``max_attempts`` is not an int.

    Example:
        >>> check_run_args(parse_sweep({}), "dask")
        Traceback (most recent call last):
        ...
        ValueError: unknown backend 'dask'; valid: local, ray, slurm, slurm-local
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise ValueError(f"--address joins a Ray cluster; it needs --backend ray, not {backend}")
    for name, value in (("workers", workers), ("max_attempts", max_attempts)):
        if value is None and name == "workers":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if backend.startswith("slurm"):
        _submitit_cluster(backend, sweep.slurm)


def _submitit_cluster(backend: str, params: dict) -> str:
    """submitit's executor for ``backend``: never its silent fallback to local processes."""
    if backend == "slurm-local":
        return "local"
    cluster = params.get("cluster") or "slurm"
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ValueError("--backend slurm: no `sbatch` on PATH, so this machine cannot submit "
                         "Slurm jobs (submitit would quietly run them here); run it on a Slurm "
                         "login node, or ask for local runs: --backend local, or --backend "
                         "slurm-local for submitit's local executor")
    return cluster


def _previous(path: Path, max_attempts: int) -> TrialResult | None:
    """A trial that needs no run: finished (it has a summary) or failed too often."""
    summary = _finished(path)
    if summary is not None:
        return TrialResult(str(path), summary["status"], summary, ran=False)
    attempts = _attempts(path)
    if attempts >= max_attempts:
        crash = _read_record(path / CRASH) or {"error": f"{CRASH} is damaged"}
        return TrialResult(str(path), "failed", {**crash, "attempts": attempts}, ran=False)
    return None


def _outcome(path: Path, summary: dict, max_attempts: int, *, ran: bool) -> TrialResult:
    status = summary.get("status", "crashed")
    if status == "crashed" and summary.get("attempts", 0) >= max_attempts:
        status = "failed"
    return TrialResult(str(path), status, summary, ran)


def _finished(path: Path) -> dict | None:
    """The trial's summary, or None when it has none (a damaged one does not count: the
    trial runs again, and its run directory reports the damage)."""
    summary = _read_record(path / SUMMARY)
    return summary if summary is not None and summary.get("status") in FINISHED else None


def _with_bar(results: Iterator[tuple[int, dict]], total: int, name: str,
              progress: bool) -> Iterator[tuple[int, dict]]:
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=f"sweep {name}", unit="trial",
              disable=None if progress else True) as bar:
        for k, summary in results:
            bar.update(1)
            bar.set_postfix(last=summary.get("status"))
            yield k, summary


def _backend(backend: str, configs: list[dict], workers: int | None, address: str | None,
             sweep: Sweep) -> Iterator[tuple[int, dict]]:
    if not configs:
        return iter(())
    if backend.startswith("slurm"):
        cluster = _submitit_cluster(backend, sweep.slurm)
        return _run_slurm(configs, workers, sweep, cluster)  # None: the cluster's own limit
    workers = workers or os.cpu_count() or 1
    if backend == "local":
        return _run_local(configs, workers)
    return _run_ray(configs, workers, address)


def _lost(err: BaseException) -> dict:
    """A trial whose worker died (nothing recorded on disk, so a re-run retries it)."""
    return {"status": "crashed", "error": f"worker lost: {type(err).__name__}: {err}"}


def _run_local(configs: list[dict], workers: int) -> Iterator[tuple[int, dict]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: a forked child of a process that already ran OpenMP threads can hang
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(min(workers, len(configs)), mp_context=ctx,
                               initializer=_init_local_worker)
    try:
        futures = {pool.submit(run_trial, c): k for k, c in enumerate(configs)}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], _lost(error) if error else future.result()
    finally:  # Ctrl-C: drop the queued trials instead of running them all first
        pool.shutdown(wait=True, cancel_futures=True)


def _optional(module: str, extra: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{what} needs {module}: pip install 'stablernn[{extra}]'") from err


def _run_ray(configs: list[dict], workers: int, address: str | None) -> Iterator[tuple[int, dict]]:
    ray = _optional("ray", "ray", "the ray backend")
    started = not ray.is_initialized()
    if started:
        local = {} if address else {"num_cpus": workers}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
    try:
        task = ray.remote(num_cpus=1)(_trial_one_thread)
        pending = {task.remote(c): k for k, c in enumerate(configs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(done[0]), _ray_result(ray, done[0])
    finally:
        if started:
            ray.shutdown()


def _ray_result(ray: Any, ref: Any) -> dict:
    try:
        return ray.get(ref)
    except Exception as err:  # noqa: BLE001 - a dead worker or node is one lost trial
        return _lost(err)


def _run_slurm(configs: list[dict], workers: int | None, sweep: Sweep,
               cluster: str) -> Iterator[tuple[int, dict]]:
    submitit = _optional("submitit", "slurm", "the slurm backend")
    executor, poll = _slurm_executor(submitit, sweep, workers, cluster)
    jobs = executor.map_array(_trial_one_thread, configs)
    index = {id(job): k for k, job in enumerate(jobs)}
    for job in submitit.helpers.as_completed(jobs, poll_frequency=poll):
        yield index[id(job)], _job_result(job)


def _slurm_executor(submitit: Any, sweep: Sweep, workers: int | None,
                    cluster: str) -> tuple[Any, float]:
    """The configured executor and the poll interval; a parameter submitit refuses is one
    ValueError line (submitit raises NameError/AssertionError with a long listing)."""
    params = dict(sweep.slurm)
    poll = params.pop("poll", 10)  # seconds between job-state queries
    params.pop("cluster", None)
    limit = {"slurm_array_parallelism": workers} if workers else {}
    executor = submitit.AutoExecutor(folder=Path(sweep.root) / "submitit", cluster=cluster)
    try:
        executor.update_parameters(**{"cpus_per_task": 1, **limit, **params})
    except (NameError, AssertionError, TypeError, ValueError) as err:
        raise ValueError(f"[slurm] table of sweep {sweep.name}: {first_line(err)}") from None
    return executor, poll


def _job_result(job: Any) -> dict:
    try:
        return job.result()
    except Exception as err:  # noqa: BLE001 - a cancelled or killed job is one lost trial
        return _lost(err)


def sweep_command(path: str, *, backend: str = "local", workers: int | None = None,
                  address: str | None = None, dry_run: bool = False,
                  max_attempts: int = MAX_ATTEMPTS, out: Callable[[str], None] = print) -> int:
    """What ``stablernn sweep`` does: load, validate, run (or list), print; the exit code.

    Every trial and the run arguments are checked before anything runs, ``dry_run`` too.
    ``backend="slurm-local"`` asks for submitit's local executor explicitly.

    Returns:
        0 when no trial crashed or failed (diverged runs are results), 1 otherwise; the
        printed summary names every crashed or failed trial with its error.
    """
    sweep = load_sweep(path)
    check_run_args(sweep, backend, workers, address, max_attempts)
    if dry_run:
        for cfg, run_dir in zip(sweep.configs, sweep.run_dirs()):
            out(f"{_state(run_dir, max_attempts):6s} {run_dir}  seed={cfg.run.seed}")
        return 0
    result = run_sweep(sweep, backend=backend, workers=workers, address=address,
                       max_attempts=max_attempts)
    out(result.describe())
    return 1 if result.crashed else 0


def _state(path: Path, max_attempts: int) -> str:
    """``done``, ``failed`` (not retried), ``retry`` (crashed before) or ``todo``."""
    previous = _previous(path, max_attempts)
    if previous is not None:
        return "failed" if previous.status == "failed" else "done"
    return "retry" if (path / CRASH).exists() else "todo"
