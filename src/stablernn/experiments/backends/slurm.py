"""The ``slurm`` backend: a submitit job array on a Slurm cluster, or submitit's local executor
(``slurm-local``); ``pip install 'stablernn[slurm]'``, submitit imported only when it runs."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..rundir import first_line
from ..trial import trial_one_thread
from .base import lost, optional

if TYPE_CHECKING:
    from ..spec import Sweep

def submitit_cluster(backend: str, params: dict) -> str:
    """submitit's executor for ``backend``: never its silent fallback to local processes."""
    if backend == "slurm-local":
        return "local"
    cluster = params.get("cluster") or "slurm"
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ValueError("--backend slurm: no `sbatch` on PATH, so this machine cannot submit "
                         "Slurm jobs (submitit would quietly run them here); run it on a Slurm "
                         "login node, or ask for local runs: --backend local, or --backend "
                         "slurm-local for submitit's local executor")
    return cluster


def run(configs: list[dict], workers: int | None, sweep: Sweep,
               cluster: str) -> Iterator[tuple[int, dict]]:
    """Submit one job array and yield ``(index, summary)`` as jobs end."""
    submitit = optional("submitit", "slurm", "the slurm backend")
    executor, poll = _slurm_executor(submitit, sweep, workers, cluster)
    jobs = executor.map_array(trial_one_thread, configs)
    index = {id(job): k for k, job in enumerate(jobs)}
    for job in submitit.helpers.as_completed(jobs, poll_frequency=poll):
        yield index[id(job)], _job_result(job)


def _slurm_executor(submitit: Any, sweep: Sweep, workers: int | None,
                    cluster: str) -> tuple[Any, float]:
    """The configured executor and the poll interval; a parameter submitit refuses is one
    ValueError line (submitit raises NameError/AssertionError with a long listing)."""
    params = dict(sweep.slurm)
    poll = params.pop("poll", 10)  # seconds between job-state queries
    params.pop("cluster", None)
    limit = {"slurm_array_parallelism": workers} if workers else {}
    executor = submitit.AutoExecutor(folder=Path(sweep.root) / "submitit", cluster=cluster)
    try:
        executor.update_parameters(**{"cpus_per_task": 1, **limit, **params})
    except (NameError, AssertionError, TypeError, ValueError) as err:
        raise ValueError(f"[slurm] table of sweep {sweep.name}: {first_line(err)}") from None
    return executor, poll


def _job_result(job: Any) -> dict:
    try:
        return job.result()
    except Exception as err:  # noqa: BLE001 - a cancelled or killed job is one lost trial
        return lost(err)
