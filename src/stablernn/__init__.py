"""stablernn: make deep recurrent networks trainable on long sequences.

Public API (see docs/): the model zoo (cells, DeepRNN, from_torch), tasks, the stability
diagnostics (radii, gradient_flow, lyapunov_exponents, vaa, diagnose; Monitor during training)
and the methods that fix them (lsc_pretrain, init_ / critical_init, spectral, warmup, floss).
"""
from . import errors, spectral  # spectral: the module, callable as its function (spectral.py)
from .adapters import from_torch
from .cells import (
                    CELLS,
                    ALIFCell,
                    BRCCell,
                    Cell,
                    DoubleCell,
                    GRUCell,
                    IndRNNCell,
                    LRUCell,
                    LSTMCell,
                    MGUCell,
                    NBRCCell,
                    RNNCell,
                    SpectralRNNCell,
                    flatten_state,
                    make_cell,
                    unflatten_state,
)
from .init import INITS, InitReport, critical_init, explain, init_
from .monitor import Monitor
from .spectral import spectral_factors, spectral_param_groups
from .stability import (
    FlossOptions,
    FlossReport,
    LSCOptions,
    LSCReport,
    WarmupOptions,
    WarmupReport,
    diagnose,
    floss,
    gradient_flow,
    lsc_pretrain,
    lyapunov_exponents,
    lyapunov_loss,
    radii,
    vaa,
    warmup,
)
from .stack import DeepRNN, double_stack
from .tasks import TASKS, make_task

__version__ = "0.1.0"

__all__ = [
    "__version__", "CELLS", "Cell", "DeepRNN", "from_torch", "make_cell", "flatten_state",
    "unflatten_state", "RNNCell", "LSTMCell", "GRUCell", "MGUCell", "BRCCell", "NBRCCell",
    "ALIFCell", "LRUCell", "SpectralRNNCell", "TASKS", "make_task", "radii", "gradient_flow",
    "lyapunov_exponents", "vaa", "diagnose", "lsc_pretrain", "LSCReport", "spectral",
    "spectral_factors", "spectral_param_groups", "INITS", "InitReport", "critical_init",
    "explain", "init_", "warmup", "WarmupReport", "DoubleCell", "double_stack", "IndRNNCell",
    "errors", "LSCOptions", "WarmupOptions", "floss", "lyapunov_loss", "FlossReport",
    "FlossOptions", "Monitor",
]
