"""The model zoo: one file per cell family; importing a file registers its cells."""
# the import order is the registration order (CELLS, `stablernn list`): keep it
# isort: off
from .base import CELLS, Cell, flatten_state, make_cell, register_cell, unflatten_state
from .rnn import RNNCell, RNNState
from .spectral_rnn import SpectralRNNCell
from .lstm import LSTMCell, LSTMState
from .gru import GRUCell, GRUState
from .mgu import MGUCell, MGUState
from .brc import BRCCell, BRCState, NBRCCell
from .alif import ALIFCell, ALIFState, spike_fn
from .lru import LRUCell, LRUState
from .indrnn import IndRNNCell, IndRNNState
from .double import DoubleCell, DoubleState, make_double
# isort: on

__all__ = [
    "CELLS", "Cell", "flatten_state", "make_cell", "register_cell", "unflatten_state",
    "RNNCell", "RNNState", "SpectralRNNCell", "LSTMCell", "LSTMState", "GRUCell", "GRUState",
    "MGUCell", "MGUState",
    "BRCCell", "BRCState", "NBRCCell", "ALIFCell", "ALIFState", "spike_fn", "LRUCell", "LRUState",
    "IndRNNCell", "IndRNNState",
    "DoubleCell", "DoubleState", "make_double",
]


def __getattr__(name: str):  # the deprecated stablernn.cells.double_stack (see cells/double.py)
    from . import double

    return getattr(double, name)
