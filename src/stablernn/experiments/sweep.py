"""Running a sweep: every unfinished trial of a :class:`~stablernn.experiments.spec.Sweep` on a
backend (finished ones are skipped, crashed ones retried a bounded number of times; Note
[crash records] in :mod:`stablernn.experiments.trial`), and what ``stablernn sweep`` prints.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from . import backends
from .backends import BACKENDS
from .rundir import CRASH
from .spec import Sweep, load_sweep
from .trial import MAX_ATTEMPTS, TrialResult, previous_result, trial_outcome, trial_state


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
    results: list[TrialResult | None] = [previous_result(path, max_attempts) for path in paths]
    todo = [i for i, r in enumerate(results) if r is None]
    configs = [sweep.configs[i].to_dict() for i in todo]
    finished = backends.run_configs(backend, configs, workers, address, sweep)
    for k, summary in _with_bar(finished, len(todo), sweep.name, progress):
        results[todo[k]] = trial_outcome(paths[todo[k]], summary, max_attempts, ran=True)
    trials = [r for r in results if r is not None]
    assert len(trials) == len(results)  # a backend yields one summary per config it is given
    return SweepResult(sweep.name, sweep.root, trials)


def check_run_args(sweep: Sweep, backend: str, workers: int | None = None,
                   address: str | None = None, max_attempts: int = MAX_ATTEMPTS) -> None:
    """Check how a sweep is to be run, before anything runs (``--dry-run`` included).

    Raises:
        ValueError: see :func:`run_sweep`.
        TypeError: ``workers`` or ``max_attempts`` is not an int.

    Example:
        >>> from stablernn.experiments.spec import parse_sweep
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
        from .backends.slurm import submitit_cluster

        submitit_cluster(backend, sweep.slurm)


def _with_bar(results: Iterator[tuple[int, dict]], total: int, name: str,
              progress: bool) -> Iterator[tuple[int, dict]]:
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=f"sweep {name}", unit="trial",
              disable=None if progress else True) as bar:
        for k, summary in results:
            bar.update(1)
            bar.set_postfix(last=summary.get("status"))
            yield k, summary


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
        for cfg, run_dir in zip(sweep.configs, sweep.run_dirs(), strict=True):
            out(f"{trial_state(run_dir, max_attempts):6s} {run_dir}  seed={cfg.run.seed}")
        return 0
    result = run_sweep(sweep, backend=backend, workers=workers, address=address,
                       max_attempts=max_attempts)
    out(result.describe())
    return 1 if result.crashed else 0
