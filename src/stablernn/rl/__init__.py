"""Reinforcement learning with recurrent stacks: the T-maze, a replay buffer of whole episodes
and a DRQN agent, trained by ``stablernn train`` when ``task.name`` is a registered environment
(docs/rl.md).

Names are imported on first use: reading the environment registry (every ``stablernn``
command does) imports neither gymnasium nor the agent.

Example:
    >>> from stablernn.rl import make_env
    >>> env = make_env("tmaze", length=4)
    >>> env.reset(seed=0)[0].shape, env.horizon
    ((4,), 11)
"""
from .._lazy import lazy_exports

_WHERE = {"ENVS": "envs", "AGENT_PARAMS": "envs", "EnvEntry": "envs", "env_entry": "envs",
          "is_env": "envs", "make_env": "envs", "TMaze": "tmaze", "Episode": "buffer",
          "EpisodeBatch": "buffer", "EpisodeBuffer": "buffer", "DRQN": "drqn",
          "agent_input": "drqn", "build_q_network": "drqn", "rl_config": "loop",
          "prepare_env": "loop"}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
