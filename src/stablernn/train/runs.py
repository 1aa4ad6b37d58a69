"""Run directories: moved to :mod:`stablernn.experiments.rundir`; this module re-exports its
names so ``stablernn.train.runs`` keeps working."""
# ruff: noqa: F401 - a module of re-exports (its __all__ is every name imported here)
from ..experiments.rundir import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    PRETRAINED,
    PREVIOUS,
    SUMMARY,
    SUMMARY_KEYS,
    DamagedFileWarning,
    RunDir,
    RunDirError,
    RunLockedError,
    damaged,
    read_summary,
    short_reason,
)

__all__ = [name for name in dir() if not name.startswith("_")]  # the names above
