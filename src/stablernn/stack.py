"""DeepRNN: a stack of step cells over the depth x time grid, with dropout and a readout.

Training runs layer by layer over whole sequences (one input GEMM per layer, then the
recurrent loop). When every layer is a plain LSTM / GRU / tanh- or relu-RNN cell, the stack
runs through PyTorch's fused multi-layer kernel (the one ``torch.nn.LSTM`` calls), fed with the
cells' own Parameters, so nothing is copied and the weights the diagnostics analyse are the
weights that train. :meth:`DeepRNN.step` runs one time step through all layers: the path the
Jacobian code, LSC and warm-up use.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch  # noqa: F401 - the docstring examples run in this namespace
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ._checks import check_bool, check_choice, check_float, check_size
from .cells.base import Cell, State, check_input, check_state, make_cell
from .cells.fused import fused_sequence, stack_kernel

READOUT_MODES = ("all", "last")


def _check_cells(cells: Sequence[Cell]) -> None:
    """Raise unless ``cells`` is a non-empty sequence of cells whose sizes chain."""
    if not isinstance(cells, (list, tuple, nn.ModuleList)) or len(cells) == 0:
        raise ValueError(f"DeepRNN needs a non-empty list of cells, got {cells!r}")
    for i, cell in enumerate(cells):
        if not isinstance(cell, Cell):
            raise TypeError(f"layer {i} must be a stablernn cell (make_cell(...)), got "
                            f"{type(cell).__name__}; torch.nn.RNN/LSTM/GRU go through "
                            f"stablernn.from_torch")
    for i, (lo, hi) in enumerate(zip(cells[:-1], cells[1:], strict=True)):
        if hi.input_size != lo.output_size:
            raise ValueError(f"layer {i + 1} expects input_size={hi.input_size} but layer {i} "
                             f"outputs {lo.output_size} features")


class DeepRNN(nn.Module):
    """A stack of recurrent cells over batch-first ``(B, T, D)`` input.

    Args:
        cells: the layers, bottom first; layer ``l + 1``'s ``input_size`` must equal layer
            ``l``'s ``output_size``.
        dropout: dropout probability on the outputs of every layer but the last.
        readout: None (return the top layer's outputs), an int (a ``nn.Linear`` to that many
            units) or any module applied to the top outputs.
        readout_mode: "all" (readout on every step, ``(B, T, O)``) or "last" (``(B, O)``).
        fused: use the fused torch kernel when the cells allow it (default True).

    Example:
        >>> model = DeepRNN.build("gru", input_size=3, hidden_size=8, num_layers=2, readout=4)
        >>> y, states = model(torch.randn(5, 7, 3))
        >>> y.shape, len(states)
        (torch.Size([5, 7, 4]), 2)
    """

    def __init__(self, cells: Sequence[Cell], *, dropout: float = 0.0,
                 readout: int | nn.Module | None = None, readout_mode: str = "all",
                 fused: bool = True) -> None:
        super().__init__()
        _check_cells(cells)
        self.dropout = check_float("dropout", dropout, low=0.0, high=1.0, high_open=True)
        check_choice("readout_mode", readout_mode, READOUT_MODES)
        self.fused = check_bool("fused", fused)
        if isinstance(readout, int):
            readout = nn.Linear(cells[-1].output_size, check_size("readout", readout))
        elif readout is not None and not isinstance(readout, nn.Module):
            raise TypeError(f"readout must be None, an int (output units) or a torch module, "
                            f"got {type(readout).__name__} ({readout!r})")
        self.cells = nn.ModuleList(cells)
        self.readout = readout
        self.readout_mode = readout_mode

    @classmethod
    def build(cls, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, *,
              dropout: float = 0.0, readout: int | nn.Module | None = None,
              readout_mode: str = "all", fused: bool = True, **cell_options) -> DeepRNN:
        """Stack ``num_layers`` registered cells of one kind (see ``stablernn list``).

        Raises:
            ValueError: unknown cell or cell option (the message lists the valid ones), or a
                value out of range. TypeError: a value of the wrong type.

        Example:
            >>> DeepRNN.build("gru", 3, 8, 2, foo=1)
            Traceback (most recent call last):
            ...
            ValueError: cell 'gru' has no option foo; valid options: bias
        """
        check_size("num_layers", num_layers)
        cells = []
        for _ in range(num_layers):
            cells.append(make_cell(cell, input_size, hidden_size, **cell_options))
            input_size = cells[-1].output_size
        return cls(cells, dropout=dropout, readout=readout, readout_mode=readout_mode, fused=fused)

    @property
    def layers(self) -> list[Cell]:
        """The cells, bottom first, typed as cells (``self.cells`` is their ``nn.ModuleList``)."""
        return cast("list[Cell]", list(self.cells))

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def num_layers(self) -> int:
        return len(self.cells)

    def initial_state(self, batch: int, *, device=None, dtype=None) -> list[State]:
        return [c.initial_state(batch, device=device, dtype=dtype) for c in self.layers]

    def forward(self, x: Tensor, state: Sequence[State] | None = None) -> tuple[Tensor, list]:
        """Run the stack; returns ``(y, states)`` with ``states`` the final state per layer.

        Raises:
            ValueError / TypeError: ``x`` not a finite float ``(B, T >= 1, input_size)`` tensor
                of the model's dtype and device, or ``state`` not one fitting state per layer.
        """
        self._check_x(x)
        if state is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        else:
            if not isinstance(state, (list, tuple)) or len(state) != self.num_layers:
                got = len(state) if isinstance(state, (list, tuple)) else type(state).__name__
                raise ValueError(f"got {got} layer states for {self.num_layers} layers")
            cells = self.layers
            for i, (cell, s) in enumerate(zip(cells, state, strict=True)):
                check_state(cell, s, x.shape[0], x, name=f"state[{i}]")
            # plain tuples too
            state = [cell.State(*s) for cell, s in zip(cells, state, strict=True)]
        kernel = stack_kernel(self.layers, self.fused)
        if kernel is not None:
            h, states = fused_sequence(kernel, self.layers, x, state, dropout=self.dropout,
                                       training=self.training)
        else:
            with parametrize.cached():  # parametrised weights built once per forward
                h, states = self._forward_loop(x, state)
        return self.apply_readout(h), states

    def _check_x(self, x: Tensor) -> None:
        check_input(x, self.input_size)
        if x.shape[1] == 0:
            raise ValueError(f"x has no time steps (shape {tuple(x.shape)}); need T >= 1")
        ref = self.layers[0]._ref()
        if x.dtype != ref.dtype or x.device != ref.device:
            raise TypeError(f"x is {x.dtype} on {x.device} but the model's weights are "
                            f"{ref.dtype} on {ref.device}; convert one with .to(...)")

    def apply_readout(self, h: Tensor) -> Tensor:
        """The readout on top-layer outputs ``(B, T, H)`` (identity when there is none)."""
        if self.readout_mode == "last":
            h = h[:, -1]
        return h if self.readout is None else self.readout(h)

    def _forward_loop(self, x: Tensor, state: Sequence[State]) -> tuple[Tensor, list]:
        states = []
        for i, (cell, s) in enumerate(zip(self.layers, state, strict=True)):
            if i > 0 and self.dropout:
                x = nn.functional.dropout(x, self.dropout, self.training)
            x, s = cell.forward_sequence(x, s)
            states.append(s)
        return x, states

    def step(self, x_t: Tensor, state: Sequence[State]) -> tuple[Tensor, list]:
        """One time step through every layer (no dropout, no readout): ``(h_top, states)``."""
        new = []
        for cell, s in zip(self.cells, state, strict=True):
            x_t, s = cell(x_t, s)
            new.append(s)
        return x_t, new


def double_stack(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 **kw) -> DeepRNN:
    """A DeepRNN whose every layer is a double layer of ``cell`` halves (partial warm-up,
    docs/warmup.md).

    Args:
        cell: registered name of the half cells. input_size: features of the input.
        hidden_size: width of every layer (halves of ``hidden_size / 2``).
        num_layers: depth.
        **kw: DeepRNN options (``dropout``, ``readout``, ``readout_mode``, ``fused``) and the
            half cells' options.

    Returns:
        The same as ``DeepRNN.build("double", ..., half=cell)``.

    Raises:
        ValueError: ``hidden_size < 2``, unknown ``cell``, bad sizes.

    Example:
        >>> model = double_stack("gru", 1, 8, num_layers=2, readout=1)
        >>> model(torch.randn(4, 5, 1))[0].shape
        torch.Size([4, 5, 1])
    """
    check_size("num_layers", num_layers)
    return DeepRNN.build("double", input_size, hidden_size, num_layers, half=cell, **kw)
