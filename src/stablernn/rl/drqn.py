"""A deep recurrent Q-network (DRQN) agent over any recurrent stack of the zoo (docs/rl.md).

The network reads, at step ``t``, the previous action (one-hot; zeros at ``t = 0``), the
previous reward and the observation ``o_t``, and outputs one Q-value per action. Learning is
Q-learning over whole episodes sampled from an :class:`~stablernn.rl.buffer.EpisodeBuffer`:
targets ``r_t + gamma (1 - done_t) max_a Q_target(h_{t+1}, a)`` on every real step (the mask),
the mean squared error against ``Q(h_t, a_t)``, a target network copied from the online one
every few episodes.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_float, check_int, check_size
from ..stack import DeepRNN
from .buffer import Episode, EpisodeBatch

__all__ = ["DRQN", "agent_input", "build_q_network", "input_size"]


def input_size(env: Any) -> int:
    """Features of the network input for ``env``: actions + 1 (the reward) + observation."""
    return env.num_actions + 1 + env.observation_size


def agent_input(action: int | None, reward: float, observation: Any, num_actions: int) -> Tensor:
    """The network input of one step: ``[one-hot(action), reward, observation]`` (zeros for
    the action and reward at the first step, ``action=None``).

    Example:
        >>> agent_input(2, -0.1, [0, 0, 1, 0], 4).tolist()
        [0.0, 0.0, 1.0, 0.0, -0.10000000149011612, 0.0, 0.0, 1.0, 0.0]
    """
    obs = torch.as_tensor(np.asarray(observation, dtype=np.float32))
    x = torch.zeros(num_actions + 1 + obs.numel())
    if action is not None:
        x[int(action)] = 1.0
        x[num_actions] = float(reward)
    x[num_actions + 1:] = obs.flatten()
    return x


def build_q_network(cell: str, env: Any, hidden_size: int = 32, num_layers: int = 2,
                    **options: Any) -> DeepRNN:
    """A Q-network for ``env``: ``DeepRNN.build(cell, input_size(env), hidden_size, num_layers,
    readout=env.num_actions, readout_mode="all", **options)`` (2 x 32 by default; ``"double"``
    with ``half=...`` for partial warm-up).

    Example:
        >>> from stablernn.rl import TMaze
        >>> q = build_q_network("gru", TMaze(3))
        >>> q(torch.zeros(2, 5, 9))[0].shape
        torch.Size([2, 5, 4])
    """
    return DeepRNN.build(cell, input_size(env), hidden_size, num_layers,
                         readout=env.num_actions, readout_mode="all", **options)


class DRQN:
    """Online and target Q-networks, epsilon-greedy acting and Q-learning on whole episodes.

    Args:
        q: the online network: a DeepRNN (any cells) with ``readout_mode="all"`` and one output
            per action (:func:`build_q_network`).
        num_actions: actions of the environment.
        gamma: discount factor in ``[0, 1]`` (the T-maze's is 0.98).
        optimizer: optimiser of ``q``'s parameters (default ``Adam(lr=lr)``).
        lr: learning rate of the default optimiser (1e-3).
        clip: gradient-norm clipping; 0 disables it (default, as in the paper's code).

    Raises:
        ValueError / TypeError: a network whose readout does not give ``num_actions`` values per
            step, ``gamma`` outside ``[0, 1]``, a bad ``lr`` / ``clip``.

    Example:
        >>> from stablernn.rl import EpisodeBuffer, TMaze
        >>> env = TMaze(length=2)
        >>> agent = DRQN(build_q_network("gru", env, 8, 1), env.num_actions)
        >>> buf = EpisodeBuffer(64, seed=0)
        >>> gen = torch.Generator().manual_seed(0)
        >>> for i in range(4):
        ...     buf.add(agent.play(env, epsilon=1.0, generator=gen, seed=i))
        >>> loss = agent.update(buf.sample(4))
        >>> loss >= 0, agent.evaluate(env)["solved"] in (True, False)
        (True, True)
    """

    def __init__(self, q: DeepRNN, num_actions: int, *, gamma: float = 0.98,
                 optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-3,
                 clip: float = 0.0) -> None:
        if not isinstance(q, DeepRNN):
            raise TypeError(f"q must be a DeepRNN (build_q_network(...)), got "
                            f"{type(q).__name__}")
        self.num_actions = check_size("num_actions", num_actions)
        out = getattr(q.readout, "out_features", None)
        if q.readout_mode != "all" or out != self.num_actions:
            raise ValueError(f"q must output {self.num_actions} Q-values at every step "
                             f"(readout={self.num_actions}, readout_mode='all'); got readout "
                             f"{out} with readout_mode={q.readout_mode!r}")
        self.gamma = check_float("gamma", gamma, low=0.0, high=1.0)
        self.clip = check_float("clip", clip, low=0.0)
        self.q = q
        self.target = copy.deepcopy(q).requires_grad_(False)
        self.opt = optimizer if optimizer is not None else \
            torch.optim.Adam(q.parameters(), lr=check_float("lr", lr, low=0.0, low_open=True))

    # acting ---------------------------------------------------------------------------------
    def play(self, env: Any, *, epsilon: float, generator: torch.Generator,
             seed: int | None = None, options: dict[str, Any] | None = None) -> Episode:
        """One episode with the epsilon-greedy policy; returns it (the buffer's format).

        A random action (probability ``epsilon``) follows ``env.exploration_probs`` when the
        environment has one (the T-maze: right half the time), else the uniform law.

        Args:
            env: a gymnasium-style environment with ``num_actions`` and ``observation_size``.
            epsilon: exploration rate in ``[0, 1]`` (1: the random policy; the network is not
                run).
            generator: draws exploration and random actions.
            seed, options: passed to ``env.reset``.
        """
        epsilon = check_float("epsilon", epsilon, low=0.0, high=1.0)
        A = self.num_actions
        probs = torch.tensor(getattr(env, "exploration_probs", None) or [1 / A] * A)
        obs, _ = env.reset(seed=seed, options=options)
        observations, actions, rewards = [np.asarray(obs, dtype=np.float32)], [], []
        state, values, terminated, truncated = None, None, False, False
        greedy = epsilon < 1.0  # the network runs whenever an action could be greedy
        training = self.q.training
        self.q.eval()
        try:
            with torch.no_grad():
                x = agent_input(None, 0.0, obs, A).to(self._ref())
                while not (terminated or truncated):
                    if greedy:
                        values, state = self.q(x[None, None], state)
                    if float(torch.rand((), generator=generator)) < epsilon:
                        action = int(torch.multinomial(probs, 1, generator=generator))
                    else:
                        assert values is not None  # epsilon < 1 here
                        action = int(values[0, -1].argmax())
                    obs, reward, terminated, truncated, _ = env.step(action)
                    observations.append(np.asarray(obs, dtype=np.float32))
                    actions.append(action)
                    rewards.append(float(reward))
                    if greedy:
                        x = agent_input(action, reward, obs, A).to(x)
        finally:
            self.q.train(training)
        n = len(actions)
        inputs = torch.zeros(n + 1, A + 1 + observations[0].size)
        steps = torch.arange(1, n + 1)
        acts, rews = torch.tensor(actions, dtype=torch.long), torch.tensor(rewards)
        inputs[steps, acts] = 1.0
        inputs[1:, A] = rews
        inputs[:, A + 1:] = torch.from_numpy(np.stack(observations).reshape(n + 1, -1))
        return Episode(inputs, acts, rews, bool(terminated))

    def _ref(self) -> Tensor:
        return next(self.q.parameters())

    def evaluate(self, env: Any, options: Sequence[dict[str, Any] | None] | None = None
                 ) -> dict[str, Any]:
        """Greedy episodes, one per reset option (default ``env.eval_options``: the T-maze's
        two cues). ``solved``: every episode reached ``env.optimal_return`` in
        ``env.optimal_steps`` steps.

        Returns:
            ``{"solved", "mean_return", "returns", "steps"}``.
        """
        options = list(options if options is not None
                       else getattr(env, "eval_options", (None,)))
        gen = torch.Generator().manual_seed(0)  # unused: epsilon = 0
        episodes = [self.play(env, epsilon=0.0, generator=gen, options=o) for o in options]
        returns = [e.ret for e in episodes]
        steps = [len(e) for e in episodes]
        best, best_steps = getattr(env, "optimal_return", None), getattr(env, "optimal_steps",
                                                                         None)
        solved = best is not None and all(
            abs(r - best) < 1e-6 and (best_steps is None or n == best_steps)
            for r, n in zip(returns, steps, strict=True))
        return {"solved": solved, "mean_return": sum(returns) / len(returns),
                "returns": returns, "steps": steps}

    # learning -------------------------------------------------------------------------------
    def loss(self, batch: EpisodeBatch) -> Tensor:
        """Mean squared TD error over the real steps of ``batch`` (targets from the target
        network, no gradient through them)."""
        ref = self._ref()
        x = batch.inputs.to(ref)
        q = self.q(x)[0][:, :-1]  # Q(h_t, .) for t = 0 .. T - 1
        taken = q.gather(-1, batch.actions.to(ref.device)[..., None]).squeeze(-1)
        with torch.no_grad():
            following = self.target(x)[0][:, 1:].max(-1).values  # max_a Q_target(h_{t+1}, a)
            keep = (~batch.done).to(ref)
            target = batch.rewards.to(ref) + self.gamma * keep * following
        mask = batch.mask.to(ref.device)
        return F.mse_loss(taken[mask], target[mask])

    def update(self, batch: EpisodeBatch) -> float:
        """One gradient step on :meth:`loss`; its value (NaN, and no step, when the loss or
        the gradient is not finite)."""
        loss = self.loss(batch)
        self.opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return float("nan")
        loss.backward()
        if self.clip:
            norm = torch.nn.utils.clip_grad_norm_(self.q.parameters(), self.clip)
        else:
            norm = torch.stack([p.grad.norm() for p in self.q.parameters()
                                if p.grad is not None]).norm()
        if not torch.isfinite(norm):
            return float("nan")
        self.opt.step()
        return loss.item()

    def sync_target(self) -> None:
        """Copy the online network's weights into the target network."""
        self.target.load_state_dict(self.q.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """Online and target weights and the optimiser's state."""
        return {"q": self.q.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.opt.load_state_dict(state["optimizer"])


def episode_seed(seed: int, stream: int, index: int) -> int:
    """A reset seed for episode ``index`` of ``stream`` in run ``seed`` (streams never overlap).

    Example:
        >>> episode_seed(0, 1, 2) == episode_seed(0, 1, 2) != episode_seed(0, 1, 3)
        True
    """
    check_int("index", index, low=0)
    words = np.random.SeedSequence([seed, stream, index]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 32) | int(words[1])
