"""The RL training loop: what ``stablernn train`` runs when ``task.name`` is an environment.

One run: fill the replay buffer with random-policy episodes, measure the network's VAA on their
input histories, pre-train (``pretrain.method``, e.g. warm-up) on those histories, then train a
DRQN agent for ``run.steps`` episodes, evaluating the greedy policy on both cues every
``run.eval_every`` episodes. The metric is the number of episodes after which the greedy policy
first solved the maze (both cues, optimal return in the fewest steps): lower is better,
``run.steps + 1`` when it never did.

The run directory is the one of :mod:`stablernn.train.loop` (same hash, files, lock and
damaged-file handling). Resuming is exact: every episode's reset seed, exploration draws and
replay batches are pure functions of ``(run.seed, episode)``, and a checkpoint (at every
evaluation) holds the networks, the optimiser, the buffer and the RNG state, so a run killed at
any moment and started again ends with the same metrics as an uninterrupted one.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_save, json_safe
from .._transaction import transaction
from ..experiments.rundir import (
    CHECKPOINT,
    MODEL,
    PRETRAINED,
    PREVIOUS,
    SUMMARY,
    TENSORBOARD,
    DamagedFileWarning,
    RunDir,
    damaged,
)
from ..registry import registries
from ..stack import DeepRNN
from ..tasks.base import seeded_generator
from ..train.config import Config, apply_overrides, config_hash
from ..train.loop import (
    build_model,
    check_pretrain,
    lr_lambda,
    make_optimizer,
    prepare_model,
    show_progress,
    tensorboard_writer,
    write_metrics,
)
from .buffer import EpisodeBuffer
from .drqn import DRQN, episode_seed, input_size
from .envs import ENVS, env_entry

__all__ = ["EnvSpec", "RLTrainer", "env_model_and_inputs", "prepare_env", "rl_config"]

FILL, PLAY, SAMPLE = 1, 2, 3  # seed streams: random-policy fill, training episodes, batches
VAA_SEQUENCES = 32  # histories the VAA measures run on (the paper's n)
VAA_KEYS = ("vaa", "vaa_horizon")  # reports of the two VAA measures (see RLTrainer._vaa)


class EnvSpec:
    """What :func:`~stablernn.train.loop.prepare_model` needs of a task, for an environment:
    the network's input and output sizes, ``readout_mode="all"`` and ``seq_len`` (the
    horizon, for initialisations that depend on the sequence length)."""

    readout_mode = "all"

    def __init__(self, env: Any) -> None:
        self.input_size, self.output_size = input_size(env), env.num_actions
        self.seq_len = env.horizon


def rl_config(env: str = "tmaze", *, length: int = 10, stochasticity: float = 0.0,
              cell: str = "gru", hidden_size: int = 32, num_layers: int = 2,
              pretrain: str = "none", partial: bool = False, episodes: int = 2000,
              eval_every: int = 20, seed: int = 0, root: str = "runs",
              overrides: list[str] | None = None, **params: Any) -> Config:
    """A :class:`~stablernn.train.config.Config` for a DRQN run with the paper's settings.

    Sets ``task.name=env`` with ``task.params`` ``length``, ``stochasticity`` and any other
    environment / agent parameter in ``params`` (docs/rl.md), the Q-network (``cell``,
    ``hidden_size`` x ``num_layers``; ``partial=True``: double layers of ``cell`` halves, for
    partial warm-up), ``pretrain.method`` (warm-up's own VAA measure off: the agent measures VAA
    itself), Adam with lr 1e-3, no weight decay and no clipping, ``run.steps=episodes``,
    ``run.batch_size=32`` episodes, greedy evaluation every ``eval_every`` episodes.

    Args:
        overrides: ``key=value`` strings applied last (``["run.patience=1"]``).

    Raises:
        ConfigError: an unknown key or a value of the wrong type (the rest is checked by
            ``train``).

    Example:
        >>> cfg = rl_config(length=5, pretrain="warmup", partial=True)
        >>> cfg.task.params["length"], cfg.model.cell, cfg.model.options
        (5, 'double', {'half': 'gru'})
    """
    cfg = Config()
    cfg.task.name, cfg.task.params = env, {"length": length, "stochasticity": stochasticity,
                                           **params}
    cfg.model.cell, cfg.model.hidden_size, cfg.model.num_layers = cell, hidden_size, num_layers
    if partial:
        cfg.model.cell, cfg.model.options = "double", {"half": cell}
    cfg.pretrain.method = pretrain
    if pretrain == "warmup":
        cfg.pretrain.options["measure_steps"] = 0
    cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.clip = "adam", 1e-3, 0.0, 0.0
    cfg.run.steps, cfg.run.batch_size, cfg.run.eval_every = episodes, 32, eval_every
    cfg.run.seed, cfg.run.root = seed, root
    return apply_overrides(cfg, list(overrides or []))


def env_model_and_inputs(cfg: Config, n: int = 16) -> tuple[DeepRNN, torch.Tensor]:
    """The (untrained) Q-network of ``cfg`` and ``n`` input histories of random-policy
    episodes, zero-padded to the horizon: what :func:`~stablernn.train.loop.load_trained` gives
    for an environment run (``stablernn diagnose --run``, the report's gradient-flow plots).

    Example:
        >>> model, x = env_model_and_inputs(rl_config(length=3, hidden_size=8), n=4)
        >>> x.shape, model(x)[0].shape
        (torch.Size([4, 8, 9]), torch.Size([4, 8, 4]))
    """
    entry = env_entry(cfg.task.name)
    env = entry.make(**entry.resolve(cfg.task.params)[0])
    model = build_model(cfg, EnvSpec(env))
    agent = DRQN(model, env.num_actions, gamma=env.gamma)
    buffer = EpisodeBuffer(n * env.horizon)
    for i in range(n):
        buffer.add(agent.play(env, epsilon=1.0, generator=seeded_generator(cfg.run.seed, FILL, i),
                              seed=episode_seed(cfg.run.seed, FILL, i)))
    return model, buffer.histories(n, env.horizon)


def prepare_env(cfg: Config, device: torch.device) -> Callable[[RunDir], RLTrainer]:
    """Build and check the agent's network of ``cfg`` (validated): its initialisation and
    pre-training options are refused here, before :func:`stablernn.train.train` creates the
    run directory; returns what makes the run's :class:`RLTrainer` in it."""
    entry = env_entry(cfg.task.name)
    env_params, agent_params = entry.resolve(cfg.task.params)
    env = entry.make(**env_params)
    model, reports = prepare_model(cfg, EnvSpec(env), device)
    check_pretrain(cfg, model)
    return lambda run: RLTrainer(cfg, run, env, model, reports, device, env_params,
                                 agent_params)


class RLTrainer:
    """Owns one RL run: the agent, its replay buffer and the loop state checkpoints hold.

    On start it resumes from the newest checkpoint that loads and fits; else it fills the buffer
    with random-policy episodes (always: they are a pure function of the seed), measures VAA,
    pre-trains (or loads ``pretrained.pt``) and starts at episode 0.
    """

    def __init__(self, cfg: Config, run: RunDir, env: Any, model: DeepRNN, reports: dict,
                 device: torch.device, env_params: dict[str, Any],
                 agent: dict[str, Any]) -> None:
        self.cfg, self.run, self.env, self.model, self.device = cfg, run, env, model, device
        self.env_params, self.params = env_params, agent
        # the optimality test runs on a noiseless copy of the maze
        self.eval_env = ENVS[cfg.task.name].make(**{**env_params, "stochasticity": 0.0})
        self.reports = dict(reports)
        self.step, self.elapsed, self.streak = 0, 0.0, 0
        self.first_solved: int | None = None  # the episode of the first solving evaluation
        self.last_eval: dict | None = None
        self.pending: list[dict] = []
        self.agent = DRQN(model, env.num_actions, gamma=env.gamma,
                          optimizer=self._optimizer(), clip=cfg.optim.clip)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.agent.opt, lr_lambda(cfg))
        self.buffer = EpisodeBuffer(agent["buffer_capacity"], seed=cfg.run.seed)
        self.random_return = self._fill()
        self.histories = self.buffer.histories(agent["warmup_histories"],
                                               env.horizon).to(device)
        self._start()
        self.writer = tensorboard_writer(run.file(TENSORBOARD)) if cfg.run.tensorboard else None

    def _optimizer(self) -> torch.optim.Optimizer:
        return make_optimizer(self.cfg, self.model)

    def _fill(self) -> float:
        """Random-policy episodes into the buffer until the next one would evict one; their
        mean return."""
        seed, returns = self.cfg.run.seed, list[float]()
        while True:
            i = len(returns)
            episode = self.agent.play(self.env, epsilon=1.0,
                                      generator=seeded_generator(seed, FILL, i),
                                      seed=episode_seed(seed, FILL, i))
            if len(episode) > self.buffer.free:
                break
            self.buffer.add(episode)
            returns.append(episode.ret)
        return sum(returns) / len(returns)

    def _vaa(self) -> dict[str, float] | None:
        """VAA of the network on the first random-policy histories, keyed by
        :data:`VAA_KEYS`: after ``vaa_steps`` constant-input steps (the paper's attractor
        measure) and after ``horizon`` steps (the memory an episode can use, Note [two VAA
        horizons] in docs/rl.md); None: ``vaa_steps=0``."""
        from ..stability.vaa import vaa

        steps = self.params["vaa_steps"]
        if not steps:
            return None
        probe, seed = self.histories[:VAA_SEQUENCES], self.cfg.run.seed
        return {key: vaa(self.model, probe, time_steps=n, seed=seed).vaa
                for key, n in zip(VAA_KEYS, (steps, self.env.horizon), strict=True)}

    def _record(self, when: str) -> None:
        """Store the two VAA measures of the network as it is now under ``when``
        (``init``, ``pretrained``, ``final``): ``reports["vaa"]`` and ``["vaa_horizon"]``."""
        measured = self._vaa()
        for key in VAA_KEYS:
            self.reports.setdefault(key, {})[when] = None if measured is None else measured[key]

    # start and checkpoints --------------------------------------------------------------
    def _start(self) -> None:
        restored = any(self._restore(path, ckpt) for path, ckpt in self.run.checkpoints())
        if not restored:
            if self.run.file(CHECKPOINT).exists() or self.run.file(PREVIOUS).exists():
                warnings.warn(f"{self.run.path}: no usable checkpoint; the run restarts from "
                              f"episode 0", DamagedFileWarning, stacklevel=2)
            self._pretrained()
            self.agent.sync_target()
        self.run.truncate_metrics(self.step if restored else -1)

    def _pretrained(self) -> None:
        """VAA, pre-training and VAA again, or what a previous start stored of them."""
        method = self.cfg.pretrain.method
        path = self.run.file(PRETRAINED)
        if method != "none" and path.exists():
            stored = self.run.load_file(path, "pre-training again")
            if stored is not None:
                try:
                    with transaction(self.model):
                        self.model.load_state_dict(stored["model"])
                        report = stored["report"]
                        measures = {key: dict(stored[key]) for key in VAA_KEYS}
                        torch.set_rng_state(stored["rng"])
                    self.reports.update(pretrain=report, **measures)
                    return
                except Exception as err:  # noqa: BLE001 - a file of another model: redo it
                    damaged(path, err, "pre-training again")
        self._record("init")
        if method != "none":
            report = registries()["pretrain"][method](self.model, self.histories, self.cfg.pretrain,
                         progress=show_progress(self.cfg))
            self.reports["pretrain"] = report.to_dict() if hasattr(report, "to_dict") else report
            self._record("pretrained")
            self.run.save_pretrained({"model": self.model.state_dict(),
                                      "report": self.reports["pretrain"],
                                      **{key: self.reports[key] for key in VAA_KEYS},
                                      "rng": torch.get_rng_state()})

    def _checkpoint(self) -> None:
        self._flush()
        self.run.save_checkpoint({
            "agent": self.agent.state_dict(), "scheduler": self.sched.state_dict(),
            "buffer": self.buffer.state_dict(), "step": self.step, "elapsed": self.elapsed,
            "first_solved": self.first_solved, "streak": self.streak,
            "last_eval": self.last_eval, "rng": torch.get_rng_state(),
            "reports": self.reports})

    def _restore(self, path: Path, ckpt: dict) -> bool:
        """Load ``ckpt``; False (a warning, nothing changed) when it does not fit this run."""
        fresh = self.buffer.state_dict()  # episodes are never changed in place: no copy
        try:
            with transaction(self.model):
                self.agent.load_state_dict(ckpt["agent"])
                self.sched.load_state_dict(ckpt["scheduler"])
                self.buffer.load_state_dict(ckpt["buffer"])
                first = ckpt["first_solved"]
                loop = (int(ckpt["step"]), float(ckpt["elapsed"]),
                        None if first is None else int(first), int(ckpt["streak"]))
                last_eval, reports = ckpt["last_eval"], dict(ckpt["reports"])
                torch.set_rng_state(ckpt["rng"])
        except Exception as err:  # noqa: BLE001 - any mismatch means this file is unusable
            damaged(path, err, "the run resumes from the last good state")
            self.agent.opt = self._optimizer()
            self.sched = torch.optim.lr_scheduler.LambdaLR(self.agent.opt, lr_lambda(self.cfg))
            self.buffer.load_state_dict(fresh)
            return False
        self.step, self.elapsed, self.first_solved, self.streak = loop
        self.last_eval, self.reports = last_eval, reports
        return True

    def _flush(self) -> None:
        write_metrics(self.run, self.writer, self.pending)
        self.pending = []

    # the loop ---------------------------------------------------------------------------
    def episode(self) -> tuple[float, float]:
        """Play training episode ``self.step`` (epsilon-greedy), store it, then the gradient
        steps; ``(mean loss, return)``, the loss NaN when a step diverged."""
        seed, e, p = self.cfg.run.seed, self.step, self.params
        if e % p["target_every"] == 0:
            self.agent.sync_target()
        played = self.agent.play(self.env, epsilon=p["epsilon"],
                                 generator=seeded_generator(seed, PLAY, e),
                                 seed=episode_seed(seed, PLAY, e))
        self.buffer.add(played)
        gen, losses = seeded_generator(seed, SAMPLE, e), []
        for _ in range(p["updates_per_episode"]):
            loss = self.agent.update(self.buffer.sample(self.cfg.run.batch_size, generator=gen))
            if not math.isfinite(loss):
                return float("nan"), played.ret
            losses.append(loss)
        self.sched.step()
        return sum(losses) / len(losses), played.ret

    def evaluate_and_checkpoint(self) -> bool:
        """Greedy evaluation on both cues, a metrics row, a checkpoint; True when early
        stopping triggers (solved at ``run.patience`` evaluations in a row)."""
        result = self.agent.evaluate(self.eval_env)
        if result["solved"]:
            self.streak += 1
            if self.first_solved is None:
                self.first_solved = self.step
        else:
            self.streak = 0
        self.last_eval = result
        self.pending.append({"step": self.step, "valid_return": result["mean_return"],
                             "valid_loss": self.env.optimal_return - result["mean_return"],
                             "valid_metric": self.metric(), "solved": int(result["solved"])})
        self._checkpoint()
        return self._patience_over()

    def metric(self) -> int:
        """Episodes to solve: the first evaluation that solved the maze, else budget + 1."""
        return self.first_solved if self.first_solved is not None else self.cfg.run.steps + 1

    def _patience_over(self) -> bool:
        patience = self.cfg.run.patience
        return bool(patience) and self.streak >= patience

    def fit(self) -> dict:
        from tqdm.auto import tqdm

        r = self.cfg.run
        status = "early_stopped" if self._patience_over() else "completed"
        if self.last_eval is None and status == "completed" \
                and self.evaluate_and_checkpoint():  # the untrained policy, at episode 0
            status = "early_stopped"
        with tqdm(total=r.steps, initial=self.step, disable=not show_progress(self.cfg),
                  desc=self.run.path.name, unit="episode") as bar:
            while status == "completed" and self.step < r.steps:
                t0 = time.perf_counter()
                loss, ret = self.episode()
                self.step += 1
                self.elapsed += time.perf_counter() - t0
                bar.update(1)
                if not math.isfinite(loss):
                    status = "diverged"
                    break
                self.pending.append({"step": self.step, "train_loss": loss, "train_return": ret})
                if (self.step % r.eval_every == 0 or self.step == r.steps) \
                        and self.evaluate_and_checkpoint():
                    status = "early_stopped"
                bar.set_postfix(solved=self.first_solved, loss=f"{loss:.4f}")
        return self.finish(status)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def finish(self, status: str) -> dict:
        self._flush()
        self.close()
        self._record("final")
        last = self.last_eval or self.agent.evaluate(self.eval_env)
        regret = self.env.optimal_return - last["mean_return"]
        split = {"metric": self.metric(), "loss": regret, "return": last["mean_return"]}
        summary = {
            "status": status, "step": self.step, "steps": self.cfg.run.steps,
            "best_step": self.first_solved if self.first_solved is not None else self.step,
            "seconds": round(self.elapsed, 3), "config_hash": config_hash(self.cfg),
            "task": self.cfg.task.name, "metric": "episodes_to_solve",
            "higher_is_better": False, "chance": self.cfg.run.steps + 1,
            "chance_loss": self.env.optimal_return - self.random_return,
            "episodes_to_solve": self.metric(), "solved": self.first_solved is not None,
            "valid": split, "test": dict(split),
            "env": {**self.env_params, "horizon": self.env.horizon, "gamma": self.env.gamma,
                    "optimal_return": self.env.optimal_return,
                    "random_return": self.random_return,
                    # what warm-up and the VAA measures ran on: fewer than warmup_histories
                    # when the filled buffer holds fewer episodes (docs/rl.md#warm-up)
                    "histories": self.histories.shape[0]},
            "agent": self.params, **self.reports,
        }
        summary = json_safe(summary)
        atomic_save(self.model.state_dict(), self.run.file(MODEL))
        self.run.write_json(SUMMARY, summary)
        return summary
