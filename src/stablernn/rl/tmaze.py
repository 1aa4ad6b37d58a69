"""The T-maze (Bakker 2001; in the form of Lambrechts et al., arXiv 2106.01001, appendix).

A corridor of ``length`` cells ends at a junction with two arms, up and down. The first cell
shows which arm holds the goal (the *cue*); every other cell looks the same, so the agent has
to remember the cue for ``length`` steps. Positions are ``(x, y)``: ``x = 0`` is the cue cell,
``x = 1 .. length - 1`` the corridor, ``(length, 0)`` the junction and ``(length, +-1)`` the
arms.

- Observations: one-hot of size 4: *up* or *down* (the cue, in the first cell only), then
  *corridor*, then *junction* (the junction and both arms).
- Actions: ``0`` right, ``1`` up, ``2`` left, ``3`` down.
- Rewards: ``+4`` for entering the goal arm; ``-0.1`` for bumping into a wall (left in the
  first cell, right at the junction, up or down anywhere in the corridor) and for entering the
  wrong arm; ``0`` otherwise. Entering either arm ends the episode (``terminated``); otherwise it
  is cut (``truncated``) after the horizon ``3 length - 1`` steps. The optimal return is 4 in
  ``length + 1`` steps.
- Stochasticity ``lambda``: in the first cell and the corridor, the chosen action is replaced
  by a uniformly random one with probability ``lambda``; the reward is that of the chosen
  action (as in the authors' code).
- Discount ``gamma = 0.98`` (:attr:`TMaze.gamma`, used by the agent).

The interface is gymnasium's (``reset(seed=..., options=...) -> (obs, info)``, ``step(a) ->
(obs, reward, terminated, truncated, info)``, ``observation_space``, ``action_space``); the
class subclasses ``gymnasium.Env`` when gymnasium is installed (the ``[rl]`` extra) and keeps
the same interface without it.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

_gym: Any
_spaces: Any
try:  # the [rl] extra
    import gymnasium as _gym
    from gymnasium import spaces as _spaces
except ImportError:  # pragma: no cover - exercised without the extra
    _gym = _spaces = None

__all__ = ["ACTIONS", "GYM_ID", "OBSERVATIONS", "TMaze"]

OBSERVATIONS = ("up", "down", "corridor", "junction")
ACTIONS = ("right", "up", "left", "down")
RIGHT, UP, LEFT, DOWN = range(4)
O_UP, O_DOWN, O_CORRIDOR, O_JUNCTION = range(4)
GOAL_REWARD, BUMP_REWARD = 4.0, -0.1
GOALS = {"up": 1, "down": -1}


class _Box:
    """A stand-in for ``gymnasium.spaces.Box`` (used without gymnasium)."""

    def __init__(self, low: float, high: float, shape: tuple[int, ...], dtype: Any) -> None:
        self.low, self.high, self.shape, self.dtype = low, high, shape, np.dtype(dtype)
        self._rng = np.random.default_rng()

    def contains(self, x: Any) -> bool:
        x = np.asarray(x)
        return bool(x.shape == self.shape and ((x >= self.low) & (x <= self.high)).all())

    def sample(self) -> np.ndarray:
        return self._rng.uniform(self.low, self.high, self.shape).astype(self.dtype)

    def seed(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)


class _Discrete:
    """A stand-in for ``gymnasium.spaces.Discrete`` (used without gymnasium)."""

    def __init__(self, n: int) -> None:
        self.n, self.shape, self.dtype = n, (), np.dtype(np.int64)
        self._rng = np.random.default_rng()

    def contains(self, x: Any) -> bool:
        return bool(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
                    and 0 <= x < self.n)

    def sample(self) -> int:
        return int(self._rng.integers(self.n))

    def seed(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)


_Base: Any = _gym.Env if _gym is not None else object


class TMaze(_Base):
    """The T-maze environment (module docstring: cells, observations, actions, rewards).

    Args:
        length: corridor length ``L >= 1``: the cue cell, ``L - 1`` corridor cells, then the
            junction; the goal is ``L + 1`` steps away.
        stochasticity: probability in ``[0, 1]`` that an action taken before the junction is
            replaced by a uniformly random one (default 0).
        render_mode: None or ``"ansi"`` (:meth:`render` returns the maze as text).

    Raises:
        ValueError / TypeError: ``length < 1``, ``stochasticity`` outside ``[0, 1]`` or NaN, a
            value of the wrong type, an unknown ``render_mode``.

    Example:
        >>> env = TMaze(length=2)
        >>> obs, info = env.reset(seed=0, options={"goal": "down"})
        >>> obs.tolist(), info["goal"]
        ([0.0, 1.0, 0.0, 0.0], 'down')
        >>> [env.step(a)[1:4] for a in (0, 0, 3)]     # right, right, down: the goal
        [(0.0, False, False), (0.0, False, False), (4.0, True, False)]
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    observation_size = len(OBSERVATIONS)
    num_actions = len(ACTIONS)
    gamma = 0.98
    optimal_return = GOAL_REWARD
    # the random policy (initial buffer, epsilon-greedy exploration): right half the time, as
    # in the authors' code, so random episodes reach the junction
    exploration_probs = (0.5, 1 / 6, 1 / 6, 1 / 6)
    # the resets a greedy evaluation plays: one episode per cue
    eval_options: ClassVar[tuple[dict[str, str], ...]] = ({"goal": "up"}, {"goal": "down"})

    def __init__(self, length: int = 10, stochasticity: float = 0.0, *,
                 render_mode: str | None = None) -> None:
        from .envs import ENVS

        env, _ = ENVS["tmaze"].resolve({"length": length, "stochasticity": stochasticity})
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.length, self.stochasticity = env["length"], env["stochasticity"]
        self.render_mode = render_mode
        if _spaces is not None:
            self.observation_space = _spaces.Box(0.0, 1.0, (self.observation_size,), np.float32)
            self.action_space = _spaces.Discrete(self.num_actions)
        else:  # pragma: no cover - without gymnasium
            self.observation_space = _Box(0.0, 1.0, (self.observation_size,), np.float32)
            self.action_space = _Discrete(self.num_actions)
            self._rng = np.random.default_rng()
        self._goal: int | None = None  # +1 up, -1 down; None before reset
        self._x, self._y, self._t, self._done = 0, 0, 0, False

    @property
    def horizon(self) -> int:
        """Steps after which an episode is truncated: ``3 length - 1``."""
        return 3 * self.length - 1

    @property
    def optimal_steps(self) -> int:
        """Steps of an optimal episode: ``length + 1`` (right ``length`` times, then the arm)."""
        return self.length + 1

    @property
    def rng(self) -> np.random.Generator:
        """The generator of cues and action noise (gymnasium's ``np_random``)."""
        return self.np_random if _gym is not None else self._rng

    @property
    def position(self) -> tuple[int, int]:
        """The agent's cell ``(x, y)``."""
        return self._x, self._y

    @property
    def goal(self) -> str | None:
        """``"up"`` or ``"down"`` (None before the first reset)."""
        return None if self._goal is None else ("up" if self._goal == 1 else "down")

    # ---------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode in the cue cell; returns ``(observation, info)``.

        Args:
            seed: reseeds the generator of cues and action noise.
            options: ``{"goal": "up" | "down"}`` fixes the cue (default: drawn at random,
                each with probability 1/2).

        Raises:
            ValueError: an unknown option or goal.
        """
        if _gym is not None:
            super().reset(seed=seed)
        elif seed is not None:  # pragma: no cover - without gymnasium
            self._rng = np.random.default_rng(seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"goal"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {', '.join(unknown)}; valid: goal")
        goal = options.get("goal")
        if goal is None:
            self._goal = 1 if self.rng.random() < 0.5 else -1
        elif goal in GOALS:
            self._goal = GOALS[goal]
        else:
            raise ValueError(f"options['goal'] must be 'up' or 'down', got {goal!r}")
        self._x, self._y, self._t, self._done = 0, 0, 0, False
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take ``action`` (0 right, 1 up, 2 left, 3 down).

        Returns:
            ``(observation, reward, terminated, truncated, info)``.

        Raises:
            ValueError: an action outside 0..3. RuntimeError: the episode is over (or never
                started): call :meth:`reset`.
        """
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        if not isinstance(action, (int, np.integer)) or isinstance(action, bool) \
                or not 0 <= action < self.num_actions:
            raise ValueError(f"action must be an int in 0..{self.num_actions - 1} (0 right, "
                             f"1 up, 2 left, 3 down), got {action!r}")
        if self._goal is None or self._done:
            raise RuntimeError("the episode is over (or was never started); call reset() first")
        action = int(action)
        reward = self._reward(action)
        if self._x < self.length and self.stochasticity > 0 \
                and self.rng.random() < self.stochasticity:
            action = int(self.rng.integers(self.num_actions))
        self._move(action)
        self._t += 1
        terminated = self._y != 0
        truncated = not terminated and self._t >= self.horizon
        self._done = terminated or truncated
        return self._observation(), reward, terminated, truncated, self._info()

    def _reward(self, a: int) -> float:
        """The reward of action ``a`` in the current cell (before any noise replaces it)."""
        x, L = self._x, self.length
        if (x == 0 and a == LEFT) or (x == L and a == RIGHT) or (x < L and a in (UP, DOWN)):
            return BUMP_REWARD  # a wall
        if a in (RIGHT, LEFT):
            return 0.0
        return GOAL_REWARD if (a == UP) == (self._goal == 1) else BUMP_REWARD  # an arm

    def _move(self, a: int) -> None:
        if a == RIGHT and self._x < self.length:
            self._x += 1
        elif a == LEFT and self._x > 0:
            self._x -= 1
        elif a in (UP, DOWN) and self._x == self.length:
            self._y = 1 if a == UP else -1

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.observation_size, dtype=np.float32)
        if self._x == 0:
            obs[O_UP if self._goal == 1 else O_DOWN] = 1.0
        elif self._x < self.length:
            obs[O_CORRIDOR] = 1.0
        else:
            obs[O_JUNCTION] = 1.0
        return obs

    def _info(self) -> dict[str, Any]:
        return {"goal": self.goal, "position": self.position, "t": self._t}

    def render(self) -> str | None:
        """The maze as three lines of text (``G`` the goal arm, ``x`` the agent) in
        ``render_mode="ansi"``; None otherwise."""
        if self.render_mode != "ansi":
            return None
        up = "x" if self._y == 1 else ("G" if self._goal == 1 else " ")
        down = "x" if self._y == -1 else ("G" if self._goal == -1 else " ")
        row = "".join("|x" if (i == self._x and self._y == 0) else "| "
                      for i in range(self.length + 1))
        pad = " " * 2 * self.length
        return f"{pad}|{up}|\n{row}|\n{pad}|{down}|\n"

    def __repr__(self) -> str:
        return f"TMaze(length={self.length}, stochasticity={self.stochasticity})"


GYM_ID = "stablernn/TMaze-v0"  # gymnasium.make(GYM_ID, length=10) once this module is imported
if _gym is not None and GYM_ID not in _gym.registry:
    _gym.register(id=GYM_ID, entry_point="stablernn.rl.tmaze:TMaze")
