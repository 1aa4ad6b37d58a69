"""Stability diagnostics and the methods that fix them: radii, gradient flow, Lyapunov
exponents, VAA, LSC pre-training, warm-up and gradient flossing.

docs/algorithms.md section 1; the method follows Herranz-Celotti & Rouat (arXiv 2308.12075,
section 2) and, for VAA, Lambrechts et al. (arXiv 2106.01001). Every method sees a model only
through :class:`LocalMap` objects (:mod:`.local_maps`), measured by the strategies of
:mod:`.estimators` with the solvers of :mod:`.eigen` (docs/diagnostics.md, "How the code is
organised"). This namespace holds what a user calls; helpers stay in their modules.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Any

from .._deprecation import deprecated_aliases
from .diagnose import diagnose, load_model
from .eigen import NonFiniteError
from .estimators import Estimator, radius, radius_all
from .floss import FlossOptions, FlossReport, floss, lyapunov_loss
from .flow import GradientFlowReport, gradient_flow
from .local_maps import Kind, LocalMap, local_maps, maps_at, trajectory
from .lsc import LSCOptions, LSCReport, lsc_pretrain
from .lyapunov import LyapunovReport, lyapunov_exponents
from .radii import RadiiReport, radii
from .vaa import VAAReport, count_clusters, vaa
from .warmup import WarmupOptions, WarmupReport, warmup

__all__ = [
    "Estimator",
    "FlossOptions",
    "FlossReport",
    "GradientFlowReport",
    "Kind",
    "LSCOptions",
    "LSCReport",
    "LocalMap",
    "LyapunovReport",
    "NonFiniteError",
    "RadiiReport",
    "VAAReport",
    "WarmupOptions",
    "WarmupReport",
    "count_clusters",
    "diagnose",
    "floss",
    "gradient_flow",
    "load_model",
    "local_maps",
    "lsc_pretrain",
    "lyapunov_exponents",
    "lyapunov_loss",
    "maps_at",
    "radii",
    "radius",
    "radius_all",
    "trajectory",
    "vaa",
    "warmup",
]

# helpers this namespace used to export, and the module that holds them now
_MOVED = {
    "as_deep_rnn": "stablernn.adapters",
    "prepare": "stablernn.stability.local_maps",
    "spectral_norm": "stablernn.stability.estimators",
    "mean_squared_singular_value": "stablernn.stability.estimators",
    "stacked_step": "stablernn.stability.lyapunov",
    "diagnose_file": "stablernn.stability.diagnose",
    **dict.fromkeys(("check_warmup_args", "curriculum_length", "soft_counts", "vaa_star",
                     "vaa_star_layers", "warmup_loss"), "stablernn.stability.warmup"),
}


# result classes renamed to *Report (docs/architecture.md, "Conventions")
_RENAMED = {"GradientFlow": "GradientFlowReport", "LyapunovSpectrum": "LyapunovReport"}


_renamed = deprecated_aliases(globals(), _RENAMED, stacklevel=3)  # warns at the caller's line


def __getattr__(name: str) -> Any:
    """The helpers in ``_MOVED`` and the old names in ``_RENAMED``, with a DeprecationWarning
    naming where they are now."""
    if name in _RENAMED:
        return _renamed(name)
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = _MOVED[name]
    warnings.warn(f"stablernn.stability.{name} is deprecated here; import it from {home}",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(home), name)
