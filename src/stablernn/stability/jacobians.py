"""Former home of the local maps and radius estimators, kept so old imports keep working.

The code lives in :mod:`.local_maps` (maps and trajectories), :mod:`.estimators` (one strategy
per radius estimator) and :mod:`.eigen` (solvers on plain matrices and matvec functions);
``as_deep_rnn`` in :mod:`stablernn.adapters`. See docs/diagnostics.md, "How the code is
organised".
"""
from __future__ import annotations

from ..adapters import as_deep_rnn
from .eigen import NonFiniteError
from .estimators import (
    Estimator,
    mean_squared_singular_value,
    radius,
    radius_all,
    spectral_norm,
)
from .local_maps import (
    Kind,
    LocalMap,
    local_maps,
    maps_at,
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
