"""Stability diagnostics: local Jacobians, radii, gradient flow, Lyapunov exponents, VAA.

docs/algorithms.md section 1, after Herranz-Celotti & Rouat (arXiv 2308.12075, section 2) and,
for VAA, Lambrechts et al. (arXiv 2106.01001). :mod:`.jacobians` is the shared core: every
method sees a model only through :class:`LocalMap` objects.
"""
from .diagnose import diagnose, diagnose_file, load_model
from .flow import GradientFlow, gradient_flow
from .jacobians import (
    Estimator,
    Kind,
    LocalMap,
    NonFiniteError,
    as_deep_rnn,
    dominant_eig,
    exact_radius,
    krylov_radius,
    local_maps,
    maps_at,
    mean_squared_singular_value,
    prepare,
    radius,
    radius_all,
    spectral_norm,
    trajectory,
)
from .lyapunov import LyapunovSpectrum, lyapunov_exponents, stacked_step
from .radii import RadiiReport, radii
from .vaa import VAAReport, count_clusters, vaa
from .warmup import (
    WarmupReport,
    check_warmup_args,
    curriculum_length,
    soft_counts,
    vaa_star,
    vaa_star_layers,
    warmup,
    warmup_loss,
)

__all__ = [
    "Estimator",
    "GradientFlow",
    "Kind",
    "LocalMap",
    "LyapunovSpectrum",
    "NonFiniteError",
    "RadiiReport",
    "VAAReport",
    "WarmupReport",
    "as_deep_rnn",
    "check_warmup_args",
    "count_clusters",
    "curriculum_length",
    "diagnose",
    "diagnose_file",
    "dominant_eig",
    "exact_radius",
    "gradient_flow",
    "krylov_radius",
    "load_model",
    "local_maps",
    "lyapunov_exponents",
    "maps_at",
    "mean_squared_singular_value",
    "prepare",
    "radii",
    "radius",
    "radius_all",
    "soft_counts",
    "spectral_norm",
    "stacked_step",
    "trajectory",
    "vaa",
    "vaa_star",
    "vaa_star_layers",
    "warmup",
    "warmup_loss",
]
