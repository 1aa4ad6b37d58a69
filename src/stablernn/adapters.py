"""Adapters between ``torch.nn.RNN/LSTM/GRU`` and DeepRNN stacks sharing the same Parameters.

``from_torch(module)`` gives a DeepRNN whose cells hold the very Parameter objects of the user's
module (no copies): every method of this library analyses or changes the user's module in place,
and an optimiser step on the module is seen by the stack, and vice versa.
"""
from __future__ import annotations

from torch import nn

from .cells.base import cell_for_torch
from .stack import DeepRNN


def from_torch(module: nn.Module, *, readout: nn.Module | None = None) -> DeepRNN:
    """A DeepRNN of step cells sharing ``module``'s Parameters.

    Args:
        module: a ``torch.nn.RNN``, ``LSTM`` or ``GRU`` (any ``num_layers``, ``batch_first``
            either way; the returned stack, like all of stablernn, is batch-first). The
            analyses given ``module`` itself (``radii``, ``lsc_pretrain``, ...) take inputs in
            its own layout, ``(T, B, D)`` when ``batch_first=False``, as torch does.
        readout: optional module applied to the top layer's outputs.

    Raises:
        TypeError: ``module`` is not one of those classes.
        ValueError: bidirectional or ``proj_size > 0`` (unsupported).

    Parametrised weights (``stablernn.spectral(module)``, torch's ``orthogonal``) are shared
    with their parametrisation: the stack computes the same weights from the same underlying
    Parameters, so LSC and warm-up train the reflectors and sigma of a spectral module.

    Example:
        >>> gru = nn.GRU(3, 8, num_layers=2)
        >>> model = from_torch(gru)
        >>> model.cells[1].weight_hh is gru.weight_hh_l1
        True
    """
    if not isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
        raise TypeError(f"from_torch expects torch.nn.RNN, LSTM or GRU, got "
                        f"{type(module).__name__}; build other models with DeepRNN")
    if module.bidirectional:
        raise ValueError("bidirectional modules are not supported: the stability methods "
                         "assume a causal time direction")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"LSTM with proj_size={module.proj_size} is not supported")
    cls = cell_for_torch(module)  # the cell that declares torch_module = type(module)
    assert cls is not None  # RNN, LSTM and GRU all have one
    cells = [cls.from_torch_layer(module, i) for i in range(module.num_layers)]
    return DeepRNN(cells, dropout=module.dropout, readout=readout)


def as_deep_rnn(model: nn.Module) -> DeepRNN:
    """The DeepRNN to analyse: ``model`` itself, or ``from_torch(model)`` for torch RNNs.

    The one place where a user's module becomes a stack of step cells. A conversion only: it
    neither checks the weights nor knows the inputs; the analyses call
    :func:`stablernn.stability.local_maps.prepare`, which does both and follows
    ``batch_first``.

    Raises:
        TypeError: ``model`` has no recurrent layers the library can step.

    Example:
        >>> as_deep_rnn(nn.GRU(3, 8, num_layers=2)).num_layers
        2
    """
    if isinstance(model, DeepRNN):
        return model
    if isinstance(model, (nn.RNN, nn.LSTM, nn.GRU)):
        return from_torch(model)
    raise TypeError(f"expected a stablernn.DeepRNN or a torch.nn.RNN/LSTM/GRU, got "
                    f"{type(model).__name__}, which has no recurrent layers to analyse; wrap "
                    f"your cells with stablernn.DeepRNN(cells)")


def is_time_major(model: nn.Module) -> bool:
    """Whether ``model`` takes ``(T, B, D)`` inputs: a torch RNN built with
    ``batch_first=False`` (stablernn's own stacks are batch-first)."""
    return isinstance(model, nn.RNNBase) and not model.batch_first
