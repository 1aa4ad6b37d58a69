"""The errors stablernn raises on purpose, as one small family.

Every one derives from :class:`StableRNNError`, so ``except stablernn.errors.StableRNNError``
catches what the library refuses, and from the builtin a caller would expect
(``ValueError`` for an unusable value, ``OSError`` for a run directory, ...), so existing
``except ValueError`` code keeps working. Argument checks (:mod:`stablernn._checks`) raise
plain ``TypeError`` / ``ValueError`` with a message naming the argument, the value and what
would be accepted (docs/robustness.md).
"""
from __future__ import annotations


class StableRNNError(Exception):
    """Base of the errors below."""


class NonFiniteError(StableRNNError, ValueError, FloatingPointError):
    """A state, Jacobian or radius became NaN/Inf during a computation."""


class NonFiniteWeightsError(StableRNNError, ValueError):
    """A module holds NaN/Inf weights (typically left behind by a diverged run)."""


class ConfigError(StableRNNError, ValueError):
    """An experiment config (file, ``--set`` override or sweep grid) is unusable."""


class RunLockedError(StableRNNError, RuntimeError):
    """Another live process holds the run directory's lock."""


class RunDirError(StableRNNError, OSError):
    """A run directory cannot be created, read or written."""


__all__ = ["ConfigError", "NonFiniteError", "NonFiniteWeightsError", "RunDirError",
           "RunLockedError", "StableRNNError"]
