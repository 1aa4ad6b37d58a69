"""The environment registry: names ``stablernn train`` accepts as ``task.name`` besides the
supervised tasks, with their parameters (docs/rl.md).

An entry knows its environment's parameters (``length``, ``stochasticity`` for the T-maze) and
the DRQN agent's (:data:`AGENT_PARAMS`: exploration rate, updates per episode, ...); both travel
in ``task.params`` of a config and are checked here before anything runs. The environment class
itself is imported on first use, so reading the registry (every ``stablernn`` command does)
does not import gymnasium.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..tasks.base import check_param

# the DRQN agent's parameters: task.params of an environment task (docs/rl.md)
AGENT_PARAMS: dict[str, Any] = {
    "epsilon": 0.2,              # exploration rate of the epsilon-greedy policy
    "updates_per_episode": 10,   # gradient steps after each episode
    "target_every": 20,          # episodes between copies of the network into the target
    "buffer_capacity": 8192,     # transitions the replay buffer holds (whole episodes)
    "warmup_histories": 200,     # random-policy histories pre-training (warm-up) runs on
    "vaa_steps": 10000,          # constant-input steps of the VAA measures; 0 skips them
}
AGENT_LIMITS: dict[str, dict[str, Any]] = {
    "epsilon": {"low": 0.0, "high": 1.0},
    "updates_per_episode": {"low": 1},
    "target_every": {"low": 1},
    "buffer_capacity": {"low": 1},
    "warmup_histories": {"low": 2},
    "vaa_steps": {"low": 0},
}


class EnvEntry:
    """A registered environment: what ``stablernn list envs`` prints and configs are checked
    against.

    Args:
        name: the registry key (``task.name``).
        summary: one line for ``stablernn list``.
        loader: returns the environment class (imported on first use).
        params: the environment's parameters and their defaults (the default's type is the
            parameter's type).
        limits: ``check_int`` / ``check_float`` bounds per parameter.
        check: cross-parameter rules on the resolved parameters (raise ValueError).

    Example:
        >>> ENVS["tmaze"].params()["length"], ENVS["tmaze"].params()["epsilon"]
        (10, 0.2)
    """

    def __init__(self, name: str, summary: str, loader: Callable[[], type], *,
                 params: dict[str, Any], limits: dict[str, dict[str, Any]],
                 check: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.name, self.__doc__, self._loader = name, summary, loader
        self.env_params, self.limits, self._check = dict(params), dict(limits), check

    def params(self) -> dict[str, Any]:
        """Every parameter ``task.params`` accepts (environment, then agent) with its default."""
        return {**self.env_params, **AGENT_PARAMS}

    def resolve(self, params: dict[str, Any] | None = None) -> tuple[dict[str, Any],
                                                                   dict[str, Any]]:
        """``(env_params, agent_params)``: the defaults updated with ``params``, every value
        checked.

        Raises:
            ValueError: an unknown parameter (the message lists the valid ones), a value out of
                range or not finite. TypeError: a value of the wrong type.

        Example:
            >>> ENVS["tmaze"].resolve({"length": 4})[0]
            {'length': 4, 'stochasticity': 0.0}
            >>> ENVS["tmaze"].resolve({"length": 0})
            Traceback (most recent call last):
            ...
            ValueError: task 'tmaze': length must be an int >= 1, got 0
        """
        params = dict(params or {})
        valid = self.params()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(f"environment {self.name!r} has no parameter {', '.join(unknown)}; "
                             f"valid parameters: {', '.join(valid)}")
        limits = {**self.limits, **AGENT_LIMITS}
        resolved = {key: check_param(self.name, key, params.get(key, default), default,
                                     limits.get(key))
                    for key, default in valid.items()}
        env = {k: resolved[k] for k in self.env_params}
        agent = {k: resolved[k] for k in AGENT_PARAMS}
        if self._check is not None:
            self._check({**env, **agent})
        return env, agent

    def env_class(self) -> type:
        """The environment class (imports its module)."""
        return self._loader()

    def make(self, **params: Any) -> Any:
        """A new environment with these (environment) parameters, checked first."""
        env, _ = self.resolve(params)
        return self.env_class()(**env)


def _lazy(module: str, name: str) -> Callable[[], type]:
    return lambda: getattr(importlib.import_module(f"stablernn.rl.{module}"), name)


def _check_tmaze(params: dict[str, Any]) -> None:
    horizon = 3 * params["length"] - 1
    if params["buffer_capacity"] < horizon:
        raise ValueError(f"task 'tmaze': buffer_capacity={params['buffer_capacity']} cannot hold "
                         f"one episode of up to {horizon} transitions (horizon 3 x length - 1); "
                         f"use at least {horizon}")


ENVS: dict[str, EnvEntry] = {
    "tmaze": EnvEntry(
        "tmaze", "T-maze: recall the cue of the first cell at the junction, L cells later "
                 "(DRQN; Lambrechts et al. 2106.01001)",
        _lazy("tmaze", "TMaze"), params={"length": 10, "stochasticity": 0.0},
        limits={"length": {"low": 1, "high": 10 ** 6}, "stochasticity": {"low": 0.0, "high": 1.0}},
        check=_check_tmaze),
}


def env_entry(name: str) -> EnvEntry:
    """The registry entry of environment ``name``.

    Raises:
        TypeError: ``name`` is not a string. ValueError: unknown environment (the message lists
            the valid ones).

    Example:
        >>> env_entry("maze")
        Traceback (most recent call last):
        ...
        ValueError: unknown environment 'maze'; valid environments: tmaze
    """
    if not isinstance(name, str):
        raise TypeError(f"environment name must be a str, got {type(name).__name__} ({name!r})")
    if name not in ENVS:
        raise ValueError(f"unknown environment {name!r}; valid environments: "
                         f"{', '.join(sorted(ENVS))}")
    return ENVS[name]


def make_env(name: str, **params: Any) -> Any:
    """Build a registered environment by name, e.g. ``make_env("tmaze", length=5)``.

    Raises:
        ValueError / TypeError: unknown name or parameter, a value out of range or of the wrong
            type (the message names it).

    Example:
        >>> make_env("tmaze", length=3).horizon
        8
    """
    return env_entry(name).make(**params)


def is_env(name: Any) -> bool:
    """Whether ``name`` is a registered environment (``task.name`` of an RL run).

    Example:
        >>> is_env("tmaze"), is_env("copy")
        (True, False)
    """
    return isinstance(name, str) and name in ENVS
