"""Experiment configuration: dataclasses, dotted overrides, validation, canonical hash.

``Config`` holds one section per stage of the experiment flow (task -> model -> init ->
pre-training -> optimiser -> run). ``apply_overrides(cfg, ["model.hidden_size=256"])`` edits it
from strings, rejecting unknown keys and values of the wrong type; ``config_hash`` names the run
directory from everything that changes results.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import is_real
from ..errors import ConfigError


@dataclass
class TaskConfig:
    name: str = "adding"
    size: str = "full"  # "full" | "smoke"
    params: dict = field(default_factory=dict)  # task parameters, e.g. {"T": 100}


@dataclass
class ModelConfig:
    cell: str = "gru"
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.0
    options: dict = field(default_factory=dict)  # extra cell options


@dataclass
class InitConfig:
    scheme: str = "default"
    options: dict = field(default_factory=dict)


@dataclass
class PretrainConfig:
    method: str = "none"  # "none" | registered pre-training methods
    rho: Any = 0.5  # LSC target: a float > 0 or "unbalanced"
    options: dict = field(default_factory=dict)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    clip: float = 1.0  # gradient-norm clipping; 0 disables
    schedule: str = "constant"  # "constant" | "cosine" | "linear"
    warmup_steps: int = 0
    name: str = "adamw"  # "adamw" | "adam" | "rmsprop" (docs/training.md)
    spectral_lr: float = 0.0  # lr of spectral reflectors and sigma; 0: optim.lr (docs/spectral.md)
    floss_every: int = 0  # add the gradient-flossing term every N steps; 0: never (docs/floss.md)
    floss_weight: float = 1.0  # its weight in the loss
    floss_k: int = 0  # Lyapunov exponents flossed; 0: min(state width, 16)
    floss_window: int = 60  # steps of the batch's first 16 sequences it runs over


@dataclass
class RunConfig:
    steps: int = 1000
    batch_size: int = 32
    eval_every: int = 100
    patience: int = 0  # evaluations without improvement before stopping; 0 = never
    seed: int = 0
    device: str = "cpu"
    root: str = "runs"
    progress: bool = True
    tensorboard: bool = False
    threads: int = 1  # torch CPU threads while training; 0 keeps torch's setting (docs/training.md)
    monitor_every: int = 0  # stability records (Monitor) every N steps; 0: none (docs/monitor.md)


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    init: InitConfig = field(default_factory=InitConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        """A config from ``{section: {key: value}}`` (what :meth:`to_dict` and config.json hold).

        Raises:
            ConfigError: not a dict of dicts, an unknown key or a value of the wrong type.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be an object of sections, got "
                              f"{type(data).__name__}")
        cfg = cls()
        for section, values in data.items():
            if section == "hash":  # config.json of a run directory also records its hash
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"config section {section!r} must be an object of keys, got "
                                  f"{type(values).__name__} ({values!r:.40})")
            for key, value in values.items():
                set_value(cfg, f"{section}.{key}", value)
        return cfg

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Config:
        """A config from a JSON file (``--config``; a run directory's config.json works too).

        Raises:
            ConfigError: the file is missing, a directory, not JSON or not a config; the message
                names the file.
        """
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise ConfigError(f"config file {path}: cannot read it ({reason}); give the path "
                              f"of a config.json file") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"config file {path} is not valid JSON ({err})") from None
        except ConfigError as err:
            raise ConfigError(f"config file {path}: {err}") from None


# keys that do not change results, so they stay out of the run hash (docs/training.md)
_UNHASHED = {("run", "root"), ("run", "progress"), ("run", "tensorboard"), ("run", "device"),
             ("run", "threads"), ("run", "monitor_every")}
_UNHASHED_OPTIONS = {("pretrain", "options", "progress")}
# Keys added after run directories existed: hashed only when set, so old runs keep their names.
_HASHED_WHEN_SET = {("optim", "name"): "adamw", ("optim", "spectral_lr"): 0.0,
                    ("optim", "floss_every"): 0, ("optim", "floss_weight"): 1.0,
                    ("optim", "floss_k"): 0, ("optim", "floss_window"): 60}
OPTIMIZERS = ("adamw", "adam", "rmsprop")
SCHEDULES = ("constant", "cosine", "linear")
TASK_SIZES = ("full", "smoke")
DEVICE_TYPES = ("cpu", "cuda", "mps")
NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def _field_type(obj: Any, name: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    return hints[name]


def _coerce(value: Any, kind: Any, key: str) -> Any:
    """Convert ``value`` (a string from the command line, or a JSON value) to ``kind``."""
    if kind is Any or kind is dict:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                # Python's spellings of non-finite numbers, so validate() can refuse them
                return float(value) if value.strip().lower() in NON_FINITE else value
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key} expects true/false, got {value!r}")
    if kind in (int, float):
        return _number(value, kind, key)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} expects a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported field type {kind}")  # pragma: no cover


def _number(value: Any, kind: type, key: str) -> int | float:
    bad = ConfigError(f"{key} expects {kind.__name__}, got {value!r}")
    if isinstance(value, bool):
        raise bad
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad from None
    if kind is int:
        if not number.is_integer():
            raise bad
        return int(number)
    return number


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set a dotted ``key`` (``section.field`` or ``section.dictfield.name``) on ``cfg``."""
    parts = key.split(".")
    sections = [f.name for f in dataclasses.fields(cfg)]
    if parts[0] not in sections:
        raise ConfigError(f"unknown config section {parts[0]!r} in {key!r}; valid: "
                          f"{', '.join(sections)}")
    section = getattr(cfg, parts[0])
    names = [f.name for f in dataclasses.fields(section)]
    if len(parts) < 2 or parts[1] not in names:
        raise ConfigError(f"unknown config key {key!r}; valid keys of {parts[0]}: "
                          f"{', '.join(names)}")
    kind = _field_type(section, parts[1])
    if len(parts) == 3 and kind is dict:
        getattr(section, parts[1])[parts[2]] = _coerce(value, Any, key)
    elif len(parts) == 2:
        value = _coerce(value, kind, key)
        if kind is dict and not isinstance(value, dict):
            raise ConfigError(f"{key} expects an object such as {{\"T\": 50}}, got {value!r}; "
                              f"or set one entry: {key}.NAME=VALUE")
        setattr(section, parts[1], dict(value) if kind is dict else value)
    else:
        raise ConfigError(f"config key {key!r} is too deep; {parts[0]}.{parts[1]} is not a dict")


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``key=value`` strings (``--set model.hidden_size=256``) to ``cfg`` in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. "
                              f"model.hidden_size=256")
        key, value = item.split("=", 1)
        set_value(cfg, key.strip(), value.strip())
    return cfg


def canonical(cfg: Config) -> dict:
    """The part of the config that changes results, as plain sorted JSON data."""
    data = cfg.to_dict()
    for section, key in _UNHASHED:
        data[section].pop(key)
    for section, key, option in _UNHASHED_OPTIONS:
        data[section][key].pop(option, None)
    for (section, key), default in _HASHED_WHEN_SET.items():
        if data[section][key] == default:
            data[section].pop(key)
    return json.loads(json.dumps(data, sort_keys=True))


def config_hash(cfg: Config) -> str:
    """A short stable hash of :func:`canonical` (names run directories)."""
    blob = json.dumps(canonical(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _finite(x: float) -> bool:
    return is_real(x) and math.isfinite(x)


def _check_finite_options(key: str, value: Any) -> None:
    """NaN / Infinity anywhere in a free-form dict (``--set pretrain.options.lr=Infinity``)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be finite, got {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite_options(f"{key}.{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite_options(f"{key}[{i}]", v)


def validate(cfg: Config, registries: dict[str, dict]) -> None:
    """Reject impossible configs before any work: sizes, rates, names, targets, task
    parameters (every number finite). Machine-dependent checks (is ``run.device`` present?)
    are :func:`check_device`'s.

    Raises:
        ConfigError: one line naming the key, the value and what is accepted.

    Example:
        >>> from stablernn.registry import registries
        >>> validate(Config(), registries())
    """
    m, o, r, p = cfg.model, cfg.optim, cfg.run, cfg.pretrain
    envs = registries.get("envs", {})  # environments are tasks too (docs/rl.md)
    for kind, name in (("tasks", cfg.task.name), ("cells", m.cell), ("inits", cfg.init.scheme),
                       ("pretrain", p.method)):
        valid = {**registries.get(kind, {}), **(envs if kind == "tasks" else {})}
        _check(name in valid, f"unknown {kind[:-1] if kind != 'pretrain' else kind} {name!r}; "
                              f"valid: {', '.join(sorted(valid))}")
    _check(m.hidden_size > 0, f"model.hidden_size must be > 0, got {m.hidden_size}")
    _check(m.num_layers > 0, f"model.num_layers must be > 0, got {m.num_layers}")
    _check(0 <= m.dropout < 1, f"model.dropout must be in [0, 1), got {m.dropout}")
    _check(o.lr > 0 and _finite(o.lr), f"optim.lr must be > 0 and finite, got {o.lr}")
    _check(o.weight_decay >= 0 and _finite(o.weight_decay),
           f"optim.weight_decay must be >= 0 and finite, got {o.weight_decay}")
    _check(o.clip >= 0 and _finite(o.clip),
           f"optim.clip must be >= 0 and finite (0 disables clipping), got {o.clip}")
    _check(o.schedule in SCHEDULES, f"unknown optim.schedule {o.schedule!r}; valid: "
                                    f"{', '.join(SCHEDULES)}")
    _check(o.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {o.warmup_steps}")
    _check(o.name in OPTIMIZERS, f"unknown optim.name {o.name!r}; valid: {', '.join(OPTIMIZERS)}")
    _check(o.spectral_lr >= 0 and _finite(o.spectral_lr),
           f"optim.spectral_lr must be >= 0 and finite (0: optim.lr), got {o.spectral_lr}")
    _check(o.floss_every >= 0, f"optim.floss_every must be >= 0 (0: no flossing), got "
                               f"{o.floss_every}")
    _check(o.floss_weight > 0 and _finite(o.floss_weight),
           f"optim.floss_weight must be > 0 and finite, got {o.floss_weight}")
    _check(o.floss_k >= 0, f"optim.floss_k must be >= 0 (0: min(state width, 16)), got "
                           f"{o.floss_k}")
    _check(r.monitor_every >= 0, f"run.monitor_every must be >= 0 (0: no stability records), "
                                 f"got {r.monitor_every}")
    _check(o.floss_window >= 2, f"optim.floss_window must be >= 2 steps, got {o.floss_window}")
    _check(cfg.task.size in TASK_SIZES, f"task.size must be one of {TASK_SIZES}, got "
                                        f"{cfg.task.size!r}")
    valid = {**registries["tasks"], **envs}[cfg.task.name].params()
    unknown = sorted(set(cfg.task.params) - set(valid))
    _check(not unknown, f"unknown parameter(s) {', '.join(unknown)} of task "
                        f"{cfg.task.name!r}; valid: {', '.join(valid)}")
    for key, options in (("task.params", cfg.task.params), ("model.options", m.options),
                         ("init.options", cfg.init.options), ("pretrain.options", p.options)):
        _check_finite_options(key, options)
    if cfg.task.name in envs:
        _check_env(cfg, envs[cfg.task.name])
    else:
        _check_task_params(cfg)
    _check(r.steps > 0 and r.batch_size > 0 and r.eval_every > 0,
           f"run.steps, run.batch_size and run.eval_every must be > 0, got {r.steps}, "
           f"{r.batch_size}, {r.eval_every}")
    _check(r.patience >= 0, f"run.patience must be >= 0, got {r.patience}")
    _check(r.seed >= 0, f"run.seed must be >= 0, got {r.seed}")
    _check(r.threads >= 0, f"run.threads must be >= 0 (0 keeps torch's setting), got "
                           f"{r.threads}")
    _device(r.device)
    rho = p.rho
    _check(rho == "unbalanced" or (_finite(rho) and rho > 0),
           f"pretrain.rho must be > 0 and finite, or 'unbalanced'; got {rho!r}")


def _check_task_params(cfg: Config) -> None:
    from ..tasks.base import check_task_params

    try:
        check_task_params(cfg.task.name, cfg.task.size, cfg.task.params)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"task.params: {err}") from None


def _check_env(cfg: Config, entry: Any) -> None:
    """An environment task (docs/rl.md): its and the agent's parameters, and no option the
    RL loop does not implement."""
    try:
        entry.resolve(cfg.task.params)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"task.params: {err}") from None
    o, r = cfg.optim, cfg.run
    _check(o.floss_every == 0, f"optim.floss_every={o.floss_every}: gradient flossing during "
                               f"training is not available for environment {cfg.task.name!r}; "
                               f"set it to 0")
    _check(r.monitor_every == 0, f"run.monitor_every={r.monitor_every}: the stability monitor is "
                                 f"not available for environment {cfg.task.name!r}; set it to 0")


def _device(name: str):
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        device = None
    _check(device is not None and device.type in DEVICE_TYPES,
           f"run.device {name!r} is not a device stablernn trains on; use cpu, cuda, cuda:N "
           f"or mps")
    return device


def check_device(name: str):
    """``torch.device(name)`` if this machine has it; ConfigError otherwise (``--device cuda``
    without a GPU names the fix instead of failing inside torch).

    Example:
        >>> check_device("cpu")
        device(type='cpu')
    """
    import torch

    device = _device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        _check(count > 0, f"run.device {name!r}: torch sees no CUDA GPU on this machine; use "
                          f"--device cpu (or install a CUDA build of torch)")
        _check((device.index or 0) < count,
               f"run.device {name!r}: this machine has {count} CUDA GPU(s), cuda:0 .. "
               f"cuda:{count - 1}")
    if device.type == "mps":
        _check(torch.backends.mps.is_available(),
               f"run.device {name!r}: MPS is not available here; use --device cpu")
    return device
