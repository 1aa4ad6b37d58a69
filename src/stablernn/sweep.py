"""Sweeps: moved to :mod:`stablernn.experiments` (``spec``: the TOML file -> trial configs;
``trial``: one trial and its crash record; ``backends``: local, ray, slurm; ``sweep``: running
them). This module re-exports the public names so ``stablernn.sweep`` keeps working.
"""
# ruff: noqa: F401 - a module of re-exports (its __all__ is every name imported here)
from .experiments.backends import BACKENDS
from .experiments.rundir import CRASH, error_line, first_line
from .experiments.spec import (
    MAX_TRIALS,
    RESERVED,
    SUBMITIT_CLUSTERS,
    TOP_KEYS,
    Sweep,
    load_sweep,
    parse_sweep,
)
from .experiments.sweep import SweepResult, check_run_args, run_sweep, sweep_command
from .experiments.trial import (
    FINISHED,
    MAX_ATTEMPTS,
    TrialResult,
    limit_threads,
    run_trial,
)

__all__ = [name for name in dir() if not name.startswith("_")]  # the names above
