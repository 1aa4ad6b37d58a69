"""The training loop: config -> task -> model -> init -> pre-training -> training -> summary.

Resuming is exact: the batch of step ``s`` is a pure function of ``(seed, s)`` and the RNG state
is checkpointed, so a run killed at any moment and started again finishes with the same
metrics as an uninterrupted one. A NaN/Inf loss or gradient stops the run with status
``diverged``.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._checks import check_int
from .._deprecation import renamed_kwargs
from .._io import atomic_save, json_safe
from .._transaction import transaction
from ..experiments.rundir import (
    CHECKPOINT,
    CONFIG,
    MODEL,
    PRETRAINED,
    PREVIOUS,
    SUMMARY,
    TENSORBOARD,
    DamagedFileWarning,
    RunDir,
    damaged,
    read_summary,
    run_dir_for,
    short_reason,
)
from ..init import SEQ_LEN_SCHEMES, init_
from ..registry import registries
from ..spectral import spectral_param_groups
from ..stability.eigen import NonFiniteError
from ..stack import DeepRNN
from .config import Config, ConfigError, check_device, config_hash, validate

EVAL_CHUNK = 512
PRETRAIN_EXAMPLES = 256  # input sequences handed to a pre-training method
FLOSS_BATCH = 16  # sequences of the training batch the flossing term runs over
MONITOR_PROBE = 8  # validation sequences the stability monitor measures on


def build_task(cfg: Config):
    from ..tasks import make_task

    return make_task(cfg.task.name, seed=cfg.run.seed, size=cfg.task.size, **cfg.task.params)


def build_model(cfg: Config, task) -> DeepRNN:
    m = cfg.model
    return DeepRNN.build(m.cell, task.input_size, m.hidden_size, m.num_layers,
                         dropout=m.dropout, readout=task.output_size,
                         readout_mode=task.readout_mode, **m.options)


def prepare_model(cfg: Config, task, device: torch.device) -> tuple[DeepRNN, dict]:
    """Build and initialise the model (seeded by ``run.seed``); returns it and the init report.

    Pre-training is the :class:`Trainer`'s (it is stored in the run directory); validation of
    its options is :func:`check_pretrain`'s.
    """
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg, task).to(device)
    reports: dict[str, Any] = {}
    if cfg.init.scheme != "default":
        options = dict(cfg.init.options)
        if cfg.init.scheme in SEQ_LEN_SCHEMES and "t_max" not in options:
            options.setdefault("seq_len", task.seq_len)  # the dependency length of the task
        reports["init"] = _to_dict(init_(model, cfg.init.scheme, **options))
    return model, reports


def check_pretrain(cfg: Config, model: nn.Module) -> None:
    """Validate ``pretrain.*`` for ``model`` with the method's own checker (model unchanged).

    Raises:
        ConfigError: naming the bad option.
    """
    method = registries()["pretrain"][cfg.pretrain.method]
    if method is None:
        return
    try:
        method.check(model, cfg.pretrain)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"pretrain {cfg.pretrain.method!r}: {err}") from None


def write_metrics(run: RunDir, writer: Any, rows: list[dict]) -> None:
    """Append metric ``rows`` to the run's metrics.jsonl, and to TensorBoard when ``writer``."""
    run.append_metrics(rows)
    if writer is not None:
        for row in rows:
            for key, value in row.items():
                if key != "step" and value is not None:  # None: a NaN stability record
                    writer.add_scalar(key, value, row["step"])
        writer.flush()


def make_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """``optim.name`` at ``optim.lr`` over ``model``'s parameter groups (spectral reflectors
    and sigma at ``optim.spectral_lr`` and without weight decay, docs/spectral.md)."""
    o = cfg.optim
    groups = spectral_param_groups(model, o.weight_decay, spectral_lr=o.spectral_lr or None)
    make = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam,
            "rmsprop": torch.optim.RMSprop}[o.name]
    return make(groups, lr=o.lr)


def check_floss(cfg: Config, model: DeepRNN) -> None:
    """Validate ``optim.floss_k`` against the model's state width (model unchanged).

    Raises:
        ConfigError: ``floss_k`` larger than all layers' state width together.
    """
    from ..stability.eigen import check_k

    width = sum(c.state_size for c in model.layers)
    if cfg.optim.floss_every and cfg.optim.floss_k:
        try:
            check_k(cfg.optim.floss_k, width, what="Lyapunov exponents (optim.floss_k)",
                    width="state units, all layers together")
        except ValueError as err:
            raise ConfigError(f"{err}, or optim.floss_k=0 for min(width, 16)") from None


def floss_term(cfg: Config, model: DeepRNN, x: Tensor, step: int) -> Tensor:
    """The gradient-flossing term of training step ``step`` (docs/floss.md): ``optim.floss_weight``
    times the squared leading Lyapunov exponents along the first ``optim.floss_window`` steps of
    the batch's first sequences; seeded by the step, so resuming repeats it exactly."""
    from ..stability.floss import default_discard, lyapunov_loss

    o = cfg.optim
    x = x[:FLOSS_BATCH, :o.floss_window]
    term = lyapunov_loss(model, x, o.floss_k or None, discard=default_discard(x.shape[1]),
                         seed=step)
    return o.floss_weight * term.loss


def pretrain(cfg: Config, task, model: nn.Module, device: torch.device) -> Any:
    """Run ``pretrain.method`` on ``model`` with the first training inputs; its report."""
    method = registries()["pretrain"][cfg.pretrain.method]
    n = min(task.num_examples("train"), PRETRAIN_EXAMPLES)
    x, _ = task.rows("train", torch.arange(n))
    return _to_dict(method(model, x.to(device), cfg.pretrain, progress=show_progress(cfg)))


def show_progress(cfg: Config) -> bool:
    """Progress bars (on stderr) only when asked for and stderr is a terminal."""
    return bool(cfg.run.progress) and sys.stderr.isatty()


def _to_dict(report: Any) -> Any:
    return report.to_dict() if hasattr(report, "to_dict") else report


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> Tensor:
    """Indices of the training batch of ``step``: epoch-wise permutations seeded by epoch."""
    per_epoch = max(1, n // batch_size)
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return perm[k * batch_size:(k + 1) * batch_size]


def lr_lambda(cfg: Config) -> Callable[[int], float]:
    o, total = cfg.optim, cfg.run.steps

    def factor(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        frac = (step - o.warmup_steps) / max(1, total - o.warmup_steps)
        if o.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        if o.schedule == "linear":
            return max(0.0, 1 - frac)
        return 1.0

    return factor


def evaluate(model: nn.Module, task, split: str, device: torch.device) -> dict:
    """Loss and metric of ``model`` on a whole split (in chunks, predictions on CPU)."""
    model.eval()
    result = task.evaluate(lambda x: model(x.to(device))[0].cpu(), split, EVAL_CHUNK)
    model.train()
    return result


def tensorboard_writer(path: Path):
    """A TensorBoard ``SummaryWriter`` logging into ``path`` (the ``[tensorboard]`` extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("run.tensorboard needs TensorBoard: pip install "
                          "'stablernn[tensorboard]'") from err
    return SummaryWriter(log_dir=str(path))


class Trainer:
    """Owns one run: model, optimiser, data and the loop state that checkpoints hold.

    On start it resumes from the newest checkpoint that loads and fits the model; else it
    starts from the stored pre-trained weights (``pretrained.pt``); else it pre-trains and
    stores them. Damaged files are skipped with one warning each (docs/training.md).
    """

    def __init__(self, cfg: Config, run: RunDir, task, model: DeepRNN, reports: dict,
                 device: torch.device) -> None:
        self.cfg, self.run, self.task, self.model, self.device = cfg, run, task, model, device
        self.n_train = task.num_examples("train")
        self.reports = dict(reports)
        self.step, self.elapsed, self.best, self.best_step, self.bad_evals = 0, 0.0, None, 0, 0
        self.pending: list[dict] = []
        self._fresh_optimizer()
        self._start()
        self.writer = tensorboard_writer(run.file(TENSORBOARD)) if cfg.run.tensorboard else None
        self.monitor = self._monitor() if cfg.run.monitor_every else None

    def _monitor(self) -> Any:
        """The stability :class:`~stablernn.monitor.Monitor` of ``run.monitor_every``: fixed
        validation sequences as the probe, its records into metrics.jsonl (and TensorBoard)."""
        from ..monitor import Monitor

        n = min(MONITOR_PROBE, self.task.num_examples("valid"))
        probe = self.task.rows("valid", torch.arange(n))[0].to(self.device)
        return Monitor(self.model, probe, every=self.cfg.run.monitor_every,
                       writer=self._stability_row)

    def _stability_row(self, step: int, record: dict) -> None:
        """A monitor record as a metrics row (NaN/Inf, a diverged model's, as null)."""
        self.pending.append(json_safe(record))

    def _fresh_optimizer(self) -> None:
        self.opt = make_optimizer(self.cfg, self.model)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(self.cfg))

    def _start(self) -> None:
        if not any(self._restore(path, ckpt) for path, ckpt in self.run.checkpoints()):
            if self.run.file(CHECKPOINT).exists() or self.run.file(PREVIOUS).exists():
                warnings.warn(f"{self.run.path}: no usable checkpoint; the run restarts from "
                              f"step 0", DamagedFileWarning, stacklevel=2)
            self._pretrained()
            self.best_state = _clone(self.model.state_dict())
        self.run.truncate_metrics(self.step)  # rows after the state we start from

    # checkpoints ------------------------------------------------------------------------
    def _flush(self) -> None:
        """Append pending metric rows to metrics.jsonl (and TensorBoard when enabled)."""
        write_metrics(self.run, self.writer, self.pending)
        self.pending = []

    def _checkpoint(self) -> None:
        self._flush()
        self.run.save_checkpoint({
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "step": self.step, "elapsed": self.elapsed,
            "best": self.best, "best_step": self.best_step, "bad_evals": self.bad_evals,
            "best_model": self.best_state, "rng": torch.get_rng_state(),
            "reports": self.reports})

    def _restore(self, path: Path, ckpt: dict) -> bool:
        """Load ``ckpt``; False (a warning, nothing changed) when it does not fit this run."""
        try:
            with transaction(self.model):
                self.model.load_state_dict(ckpt["best_model"])  # checks it fits, then:
                self.model.load_state_dict(ckpt["model"])
                self.opt.load_state_dict(ckpt["optimizer"])
                self.sched.load_state_dict(ckpt["scheduler"])
                loop = (int(ckpt["step"]), float(ckpt["elapsed"]), ckpt["best"],
                        int(ckpt["best_step"]), int(ckpt["bad_evals"]))
                reports = dict(ckpt["reports"])
                torch.set_rng_state(ckpt["rng"])
        except Exception as err:  # noqa: BLE001 - any mismatch means this file is unusable
            damaged(path, err, "the run resumes from the last good state")
            self._fresh_optimizer()
            return False
        self.step, self.elapsed, self.best, self.best_step, self.bad_evals = loop
        self.best_state, self.reports = ckpt["best_model"], reports
        return True

    def _pretrained(self) -> None:
        """Pre-train, or load the weights a previous start stored right after pre-training."""
        if self.cfg.pretrain.method == "none":
            return
        path = self.run.file(PRETRAINED)
        stored = self.run.load_file(path, "pre-training again") if path.exists() else None
        if stored is not None:
            try:
                with transaction(self.model):
                    self.model.load_state_dict(stored["model"])
                    report = stored["report"]
                    torch.set_rng_state(stored["rng"])
                self.reports["pretrain"] = report
                return
            except Exception as err:  # noqa: BLE001 - a file of another model: redo it
                damaged(path, err, "pre-training again")
        self.reports["pretrain"] = pretrain(self.cfg, self.task, self.model, self.device)
        self.run.save_pretrained({"model": self.model.state_dict(),
                                  "report": self.reports["pretrain"],
                                  "rng": torch.get_rng_state()})

    # the loop ---------------------------------------------------------------------------
    def train_step(self) -> float:
        idx = batch_indices(self.n_train, self.cfg.run.batch_size, self.step, self.cfg.run.seed)
        x, y = (t.to(self.device) for t in self.task.rows("train", idx))
        loss = self.task.loss(self.model(x)[0], y)
        self.opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            return float("nan")
        every = self.cfg.optim.floss_every
        total = loss
        if every and self.step % every == 0:
            try:
                total = loss + floss_term(self.cfg, self.model, x, self.step)
            except NonFiniteError:  # the state overflows along the trajectory: diverged
                return float("nan")
        total.backward()
        clip = self.cfg.optim.clip or float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if not torch.isfinite(norm):
            return float("nan")
        self.opt.step()
        self.sched.step()
        return loss.item()

    def _improved(self, metric: float) -> bool:
        if self.best is None:
            return True
        return metric > self.best if self.task.higher_is_better else metric < self.best

    def _patience_over(self) -> bool:
        patience = self.cfg.run.patience
        return bool(patience) and self.bad_evals >= patience

    def evaluate_and_checkpoint(self) -> bool:
        """Validate, keep the best weights, checkpoint; True when early stopping triggers."""
        valid = evaluate(self.model, self.task, "valid", self.device)
        self.pending.append({"step": self.step, "valid_loss": valid["loss"],
                             "valid_metric": valid["metric"]})
        if self._improved(valid["metric"]):
            self.best, self.best_step, self.bad_evals = valid["metric"], self.step, 0
            self.best_state = _clone(self.model.state_dict())
        else:
            self.bad_evals += 1
        self._checkpoint()
        return self._patience_over()

    def fit(self) -> dict:
        r = self.cfg.run
        log_every = max(1, r.eval_every // 10)
        # a checkpoint written when early stopping triggered: stopped already
        status = "early_stopped" if self._patience_over() else "completed"
        if self.monitor is not None and self.step == 0:
            self.monitor.measure(0)  # the initial model (not counted in the training time)
        with tqdm(total=r.steps, initial=self.step, disable=not show_progress(self.cfg),
                  desc=self.run.path.name) as bar:
            while status == "completed" and self.step < r.steps:
                t0 = time.perf_counter()
                loss = self.train_step()
                self.step += 1
                self.elapsed += time.perf_counter() - t0
                bar.update(1)
                if not math.isfinite(loss):
                    status = "diverged"
                    break
                if self.monitor is not None:
                    self.monitor.step(self.step)
                if self.step % log_every == 0:
                    self.pending.append({"step": self.step, "train_loss": loss})
                    bar.set_postfix(loss=f"{loss:.4f}")
                if (self.step % r.eval_every == 0 or self.step == r.steps) \
                        and self.evaluate_and_checkpoint():
                    status = "early_stopped"
        return self.finish(status)

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def finish(self, status: str) -> dict:
        self._flush()
        self.close()
        self.model.load_state_dict(self.best_state)
        summary = {
            "status": status, "step": self.step, "steps": self.cfg.run.steps,
            "best_step": self.best_step, "seconds": round(self.elapsed, 3),
            "config_hash": config_hash(self.cfg), "task": self.cfg.task.name,
            "metric": self.task.metric_name, "higher_is_better": self.task.higher_is_better,
            "chance": self.task.chance, "chance_loss": self.task.chance_loss,
            "valid": evaluate(self.model, self.task, "valid", self.device),
            "test": evaluate(self.model, self.task, "test", self.device),
            **self.reports,
        }
        atomic_save(self.best_state, self.run.file(MODEL))
        self.run.write_json(SUMMARY, summary)
        return summary


def _clone(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}


@renamed_kwargs(batch="batch_size")
def load_trained(run_dir: str | Path, *, batch_size: int = 16) -> tuple[DeepRNN, Tensor]:
    """The best model of a finished run and ``batch_size`` test inputs of its task (``batch`` is
    the deprecated name of ``batch_size``).

    Raises:
        FileNotFoundError: not a finished run directory.
        ValueError: ``batch_size < 1``, or a damaged config.json / model.pt (named, with the
            fix).
    """
    batch = check_int("batch_size", batch_size)
    run = RunDir(run_dir)
    config, weights = run.file(CONFIG), run.file(MODEL)
    if not config.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{run_dir} is not a finished run directory (needs {CONFIG} and "
                                f"{MODEL}); run stablernn train first")
    try:
        cfg = Config.from_file(config)
    except ConfigError as err:
        raise ValueError(f"{err}; restore it, or train the run again into a new run.root") \
            from None
    if cfg.task.name in registries().get("envs", {}):  # an environment: docs/rl.md
        from ..rl.loop import env_model_and_inputs

        model, inputs = env_model_and_inputs(cfg, batch)
    else:
        task = build_task(cfg)
        model = build_model(cfg, task)
        inputs = task.rows("test", torch.arange(min(batch, task.num_examples("test"))))[0]
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as err:  # noqa: BLE001 - zip, pickle, OS and shape errors alike
        raise ValueError(f"{weights} is damaged or belongs to another model "
                         f"({short_reason(err)}); "
                         f"delete it and {SUMMARY}, then re-run stablernn train with "
                         f"--config {config} to finish the run again") from None
    return model.eval(), inputs


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Use ``threads`` torch CPU threads inside the block (0: unchanged), then restore."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(cfg: Config, *, run_dir: str | Path | None = None) -> dict:
    """Run (or resume, or skip when finished) one experiment; returns its summary.

    Everything is validated before the run directory is created: the config, the device, the
    task (its data files are read), the model with its initialisation, and the pre-training
    options. A damaged ``summary.json`` is treated as missing (the run is finished again).

    Raises:
        ConfigError: an impossible configuration (before any work).
        RunLockedError: another process holds the run directory.
        RunDirError: the run directory cannot be created (e.g. a read-only ``run.root``).

    Example:
        >>> cfg = Config()
        >>> cfg.task.size, cfg.run.steps = "smoke", 5    # doctest: +SKIP
        >>> train(cfg)["status"]                        # doctest: +SKIP
        'completed'
    """
    validate(cfg, registries())
    device = check_device(cfg.run.device)
    path = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    with warnings.catch_warnings():  # read again under the lock, with a warning if damaged
        warnings.simplefilter("ignore", DamagedFileWarning)
        finished = read_summary(path)
    if finished is not None:
        return finished
    with torch_threads(cfg.run.threads):
        if cfg.task.name in registries().get("envs", {}):  # an environment: docs/rl.md
            from ..rl.loop import prepare_env

            trainer: Callable[[RunDir], Any] = prepare_env(cfg, device)
        else:
            task = build_task(cfg)
            model, reports = prepare_model(cfg, task, device)
            check_pretrain(cfg, model)
            check_floss(cfg, model)

            def trainer(run: RunDir) -> Trainer:
                return Trainer(cfg, run, task, model, reports, device)
        return _run(cfg, path, trainer)


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what creating it adds)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    return missing[-1] if missing else None


def _run(cfg: Config, path: Path, make_trainer: Callable[[RunDir], Any]) -> dict:
    """Lock the run directory, record the config and fit the trainer ``make_trainer(run)``
    (a :class:`Trainer`, or the RL loop's: anything with ``fit()`` and ``close()``)."""
    created = _first_missing(path)
    try:
        with RunDir(path) as run:
            finished = read_summary(path)
            if finished is not None:
                return finished
            run.write_json(CONFIG, {**cfg.to_dict(), "hash": config_hash(cfg)})
            trainer = make_trainer(run)
            try:
                return trainer.fit()
            finally:
                trainer.close()
    except (ValueError, TypeError):
        # a bad option only the method itself could see: leave no empty run behind
        if created is not None and not any(
                (path / name).exists() for name in (CHECKPOINT, PREVIOUS, PRETRAINED)):
            shutil.rmtree(created, ignore_errors=True)
        raise
