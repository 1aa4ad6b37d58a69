"""Sweep specs: a TOML grid (and zip) over config keys and seeds, expanded into validated
trial configs (nothing runs here; :mod:`stablernn.experiments.sweep` runs them).

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
(:func:`stablernn.tasks.check_task_params`: types and ranges); see docs/sweeps.md.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import is_int, is_real
from ..train.config import Config, ConfigError, config_hash, set_value, validate
from .rundir import first_line, run_dir_for

TOP_KEYS = ("name", "root", "seeds", "base", "grid", "zip", "slurm")
RESERVED = {"run.seed": "use the top-level `seeds = [...]`",
            "run.root": "use the top-level `root = \"...\"`"}
SUBMITIT_CLUSTERS = ("slurm", "local", "debug")  # values of [slurm] cluster
MAX_TRIALS = 100_000  # a larger grid is a typo (e.g. seeds = 1000000), not a plan


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
        return [run_dir_for(cfg) for cfg in self.configs]


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
        stablernn.errors.ConfigError: trial {task.params.T=x, ...}: ...T must be an int...
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
        _require(data.get(key) != {}, f"[{key}] is empty: give at least one key with a "
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
    _require(is_real(poll) and math.isfinite(poll) and poll > 0,
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
    return [[dict(zip(zipped, values, strict=True))
             for values in zip(*zipped.values(), strict=True)]]


def _seeds(data: dict) -> list[int]:
    seeds = data.get("seeds", [0])
    if is_int(seeds):
        _require(0 < seeds <= MAX_TRIALS,
                 f"seeds = {seeds}: give a count in 1..{MAX_TRIALS} or a list of seeds")
        return list(range(seeds))
    _require(isinstance(seeds, list) and len(seeds) > 0 and all(
        is_int(s) and s >= 0 for s in seeds),
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
    from ..registry import registries

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
