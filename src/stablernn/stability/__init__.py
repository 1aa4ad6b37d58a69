"""Stability diagnostics: local Jacobians, radii, gradient flow, Lyapunov exponents, VAA.

SPEC section 1; the method follows Herranz-Celotti & Rouat (arXiv 2308.12075, section 2) and,
for VAA, Lambrechts et al. (arXiv 2106.01001). :mod:`.jacobians` is the shared core: every
method sees a model only through :class:`LocalMap` objects.
"""
from .diagnose import diagnose, diagnose_file, load_model
from .flow import GradientFlow, gradient_flow
from .jacobians import (Estimator, Kind, LocalMap, as_deep_rnn, dominant_eig, exact_radius,
                        krylov_radius, local_maps, maps_at, mean_squared_singular_value, radius,
                        radius_all, spectral_norm, trajectory)
from .lyapunov import LyapunovSpectrum, lyapunov_exponents, stacked_step
from .radii import RadiiReport, radii
from .vaa import VAAReport, count_clusters, vaa
from .warmup import (WarmupReport, curriculum_length, soft_counts, vaa_star, vaa_star_layers,
                     warmup, warmup_loss)

__all__ = [
    "warmup", "WarmupReport", "vaa_star", "vaa_star_layers", "soft_counts", "warmup_loss",
    "curriculum_length",
                        "Estimator",
                        "GradientFlow",
                        "Kind",
                        "LocalMap",
                        "LyapunovSpectrum",
                        "RadiiReport",
                        "VAAReport",
                        "as_deep_rnn",
                        "count_clusters",
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
                        "radii",
                        "radius",
                        "radius_all",
                        "spectral_norm",
                        "stacked_step",
                        "trajectory",
                        "vaa",
]
