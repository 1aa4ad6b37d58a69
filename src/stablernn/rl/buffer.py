"""A replay buffer of whole episodes for recurrent Q-learning (docs/rl.md).

A recurrent agent learns from histories, so the buffer keeps episodes whole: its capacity
counts transitions, the oldest episodes are evicted whole when a new one does not fit, and a
sample is a batch of whole episodes, padded to the longest with a mask of the real steps.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import check_int, check_seed

__all__ = ["Episode", "EpisodeBatch", "EpisodeBuffer"]


@dataclass
class Episode:
    """One episode as the agent saw it.

    Attributes:
        inputs: ``(n + 1, D)`` network inputs ``x_0 .. x_n`` (``x_t``: the previous action
            one-hot, the previous reward, the observation ``o_t``).
        actions: ``(n,)`` actions ``a_0 .. a_{n-1}`` (long).
        rewards: ``(n,)`` rewards ``r_0 .. r_{n-1}`` (float).
        terminated: whether the last transition ended the episode (no bootstrap after it); False
            for an episode cut at the horizon.
    """

    inputs: Tensor
    actions: Tensor
    rewards: Tensor
    terminated: bool

    def __post_init__(self) -> None:
        n = len(self.actions)
        if n < 1 or self.inputs.dim() != 2 or self.inputs.shape[0] != n + 1 \
                or self.rewards.shape != (n,) or self.actions.dim() != 1:
            raise ValueError(f"an episode of n >= 1 transitions needs inputs (n + 1, D), "
                             f"actions (n,) and rewards (n,); got inputs "
                             f"{tuple(self.inputs.shape)}, actions {tuple(self.actions.shape)}, "
                             f"rewards {tuple(self.rewards.shape)}")

    def __len__(self) -> int:
        """Its number of transitions ``n``."""
        return len(self.actions)

    @property
    def ret(self) -> float:
        """The undiscounted return (sum of the rewards)."""
        return float(self.rewards.sum())

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "actions": self.actions, "rewards": self.rewards,
                "terminated": self.terminated}


@dataclass
class EpisodeBatch:
    """Whole episodes padded to the longest, ``B`` episodes of at most ``T`` transitions.

    Attributes:
        inputs: ``(B, T + 1, D)``, zeros after each episode's end.
        actions: ``(B, T)`` long, 0 where padded. rewards: ``(B, T)``, 0 where padded.
        mask: ``(B, T)`` bool, True on real transitions.
        done: ``(B, T)`` bool, True on the last transition of a terminated episode (its target
            has no bootstrap term).
        lengths: ``(B,)`` transitions per episode.
    """

    inputs: Tensor
    actions: Tensor
    rewards: Tensor
    mask: Tensor
    done: Tensor
    lengths: Tensor


def collate(episodes: list[Episode]) -> EpisodeBatch:
    """Pad ``episodes`` into one :class:`EpisodeBatch`."""
    lengths = torch.tensor([len(e) for e in episodes])
    B, T, D = len(episodes), int(lengths.max()), episodes[0].inputs.shape[1]
    inputs = episodes[0].inputs.new_zeros(B, T + 1, D)
    actions = torch.zeros(B, T, dtype=torch.long)
    rewards = torch.zeros(B, T)
    done = torch.zeros(B, T, dtype=torch.bool)
    for i, e in enumerate(episodes):
        n = len(e)
        inputs[i, :n + 1] = e.inputs
        actions[i, :n] = e.actions
        rewards[i, :n] = e.rewards
        done[i, n - 1] = e.terminated
    mask = torch.arange(T)[None] < lengths[:, None]
    return EpisodeBatch(inputs, actions, rewards, mask, done, lengths)


class EpisodeBuffer:
    """Replay memory of whole episodes, bounded in transitions.

    Args:
        capacity: transitions held at most (default 8192); adding an episode evicts the oldest
            episodes, whole, until it fits.
        seed: seeds the buffer's own sampling generator.

    Raises:
        ValueError / TypeError: ``capacity < 1`` or a bad seed.

    Example:
        >>> buf = EpisodeBuffer(capacity=5, seed=0)
        >>> for n in (2, 2, 3):
        ...     buf.add(Episode(torch.zeros(n + 1, 3), torch.zeros(n, dtype=torch.long),
        ...                     torch.ones(n), terminated=True))
        >>> [len(e) for e in buf], buf.transitions          # the first episode was evicted
        ([2, 3], 5)
        >>> batch = buf.sample(4)
        >>> batch.inputs.shape, batch.mask.sum(1).tolist() == batch.lengths.tolist()
        (torch.Size([4, 4, 3]), True)
    """

    def __init__(self, capacity: int = 8192, *, seed: int = 0) -> None:
        self.capacity = check_int("capacity", capacity)
        self.generator = torch.Generator().manual_seed(check_seed(seed))
        self.episodes: deque[Episode] = deque()
        self.transitions = 0

    def __len__(self) -> int:
        """Number of episodes held."""
        return len(self.episodes)

    def __iter__(self) -> Iterator[Episode]:
        return iter(self.episodes)

    @property
    def free(self) -> int:
        """Transitions that fit before an episode is evicted."""
        return self.capacity - self.transitions

    def add(self, episode: Episode) -> None:
        """Store ``episode``, evicting the oldest episodes (whole) until it fits.

        Raises:
            ValueError: the episode alone is longer than the capacity.
        """
        if not isinstance(episode, Episode):
            raise TypeError(f"add() takes an Episode, got {type(episode).__name__}")
        if len(episode) > self.capacity:
            raise ValueError(f"an episode of {len(episode)} transitions does not fit a buffer of "
                             f"capacity {self.capacity}; raise the capacity")
        while self.transitions + len(episode) > self.capacity:
            self.transitions -= len(self.episodes.popleft())
        self.episodes.append(episode)
        self.transitions += len(episode)

    def sample(self, batch_size: int, *, generator: torch.Generator | None = None
               ) -> EpisodeBatch:
        """``batch_size`` whole episodes drawn uniformly with replacement, padded
        (:class:`EpisodeBatch`).

        Args:
            batch_size: episodes per batch (>= 1).
            generator: draws the episodes (default: the buffer's own, seeded by ``seed``).

        Raises:
            ValueError: the buffer is empty, or ``batch_size < 1``.
        """
        check_int("batch_size", batch_size)
        if not self.episodes:
            raise ValueError("the buffer is empty; add episodes before sampling")
        idx = torch.randint(len(self.episodes), (batch_size,),
                            generator=generator or self.generator)
        return collate([self.episodes[i] for i in idx.tolist()])

    def histories(self, n: int, length: int) -> Tensor:
        """The input sequences of the first ``n`` episodes held (fewer if it holds fewer),
        zero-padded or cut to ``length`` steps: ``(min(n, len), length, D)`` (what warm-up and
        the VAA measure run on).

        Raises:
            ValueError: the buffer is empty, or ``n`` / ``length`` < 1.
        """
        check_int("n", n)
        check_int("length", length)
        if not self.episodes:
            raise ValueError("the buffer is empty; add episodes first")
        chosen = list(self.episodes)[:n]
        out = chosen[0].inputs.new_zeros(len(chosen), length, chosen[0].inputs.shape[1])
        for i, e in enumerate(chosen):
            k = min(length, e.inputs.shape[0])
            out[i, :k] = e.inputs[:k]
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore the buffer exactly, packed into a few tensors (so
        saving is fast and ``torch.load(weights_only=True)`` reads it back)."""
        eps = list(self.episodes)
        width = eps[0].inputs.shape[1] if eps else 0
        return {"capacity": self.capacity, "generator": self.generator.get_state(),
                "lengths": torch.tensor([len(e) for e in eps], dtype=torch.long),
                "terminated": torch.tensor([e.terminated for e in eps], dtype=torch.bool),
                "inputs": torch.cat([e.inputs for e in eps]) if eps else torch.zeros(0, width),
                "actions": torch.cat([e.actions for e in eps]) if eps
                else torch.zeros(0, dtype=torch.long),
                "rewards": torch.cat([e.rewards for e in eps]) if eps else torch.zeros(0)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (the capacity must match).

        Raises:
            ValueError: another capacity, or damaged episodes.
        """
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"buffer state of capacity {state['capacity']}, this buffer holds "
                             f"{self.capacity}")
        lengths = [int(n) for n in state["lengths"]]
        total = sum(lengths)
        if total > self.capacity:
            raise ValueError(f"buffer state holds {total} transitions, over its capacity "
                             f"{self.capacity}")
        inputs = state["inputs"].split([n + 1 for n in lengths])
        actions, rewards = state["actions"].split(lengths), state["rewards"].split(lengths)
        episodes = [Episode(x, a, r, bool(d)) for x, a, r, d in
                    zip(inputs, actions, rewards, state["terminated"].tolist(), strict=True)]
        self.generator.set_state(state["generator"])
        self.episodes = deque(episodes)
        self.transitions = total
