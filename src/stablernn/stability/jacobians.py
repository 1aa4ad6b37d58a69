"""Former home of the local maps and radius estimators, kept so old imports keep working.

The code lives in :mod:`.local_maps` (maps and trajectories), :mod:`.estimators` (one strategy
per radius estimator) and :mod:`.eigen` (solvers on plain matrices and matvec functions);
``as_deep_rnn`` in :mod:`stablernn.adapters`. See docs/diagnostics.md, "How the code is
organised". Besides ``__all__`` it re-exports the helpers that library code imported
from here before the split.
"""
# ruff: noqa: F401
from __future__ import annotations

from ..adapters import as_deep_rnn
from .eigen import NonFiniteError, check_k
from .eigen import eigvals as _eigvals
from .eigen import generator as _generator
from .estimators import Estimator, mean_squared_singular_value, radius, radius_all, spectral_norm
from .estimators import check_estimator_options as _check_estimator_options
from .local_maps import (
    MAX_READOUT,
    Kind,
    LocalMap,
    _ensure_jvp,
    _local_maps,
    _parse_kinds,
    _trajectory,
    check_finite_state,
    check_step,
    local_maps,
    maps_at,
    parse_enum,
    prepare,
    trajectory,
)

__all__ = [
    "Estimator",
    "Kind",
    "LocalMap",
    "NonFiniteError",
    "as_deep_rnn",
    "local_maps",
    "maps_at",
    "mean_squared_singular_value",
    "prepare",
    "radius",
    "radius_all",
    "spectral_norm",
    "trajectory",
]
