"""Backends run trial configs and yield ``(index, summary)`` as trials finish; they only
schedule :func:`stablernn.experiments.trial.run_trial` and never own result files.

``local`` (a process pool, :mod:`.local`), ``ray`` (Ray core tasks, :mod:`.ray`; the ``[ray]``
extra), ``slurm`` (submitit on a Slurm cluster, :mod:`.slurm`; the ``[slurm]`` extra) and
``slurm-local`` (submitit's local executor, for testing the slurm path).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..spec import Sweep

BACKENDS = ("local", "ray", "slurm", "slurm-local")


def run_configs(backend: str, configs: list[dict], workers: int | None, address: str | None,
                sweep: Sweep) -> Iterator[tuple[int, dict]]:
    """Run ``configs`` (plain dicts) on ``backend``; yields ``(index, summary)`` as each ends.

    ``workers`` and ``address`` as in :func:`stablernn.experiments.sweep.run_sweep`; ``sweep``
    gives the slurm backend its ``[slurm]`` table and its root (submitit's logs).
    """
    if not configs:
        return iter(())
    if backend.startswith("slurm"):
        from . import slurm

        cluster = slurm.submitit_cluster(backend, sweep.slurm)
        return slurm.run(configs, workers, sweep, cluster)  # None: the cluster's own limit
    workers = workers or os.cpu_count() or 1
    if backend == "local":
        from . import local

        return local.run(configs, workers)
    from . import ray

    return ray.run(configs, workers, address)
