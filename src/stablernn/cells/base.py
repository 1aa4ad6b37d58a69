"""The cell protocol, the cell registry and the state helpers.

A cell is one step of a recurrent layer: ``forward(x_t, state) -> (h_t, new_state)``.
It is split into two pure maps so the Jacobian code can compose them freely:

- ``step(x_t, state) -> new_state``  (the time / input / depth transition),
- ``output(x_t, state) -> h_t``       (what the next layer or the readout sees).

A state is a NamedTuple of ``(B, n_i)`` tensors. :func:`flatten_state` concatenates them into
one ``(B, n)`` vector (what the Jacobian code differentiates) and :func:`unflatten_state` splits
it back, using the cell's ``state_sizes``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeAlias, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .._checks import check_size

State = tuple  # a NamedTuple of (B, n_i) tensors
# Cell's own annotations: inside the class ``State`` names the cell's NamedTuple class, and each
# subclass takes its own State in recur / output / ..., so the base accepts any state.
_State: TypeAlias = Any

CELLS: dict[str, Callable[..., Cell]] = {}
_C = TypeVar("_C", bound="Cell")


def register_cell(name: str, **defaults: Any) -> Callable[[type[_C]], type[_C]]:
    """Register a cell class (or a preset of it, e.g. an activation) under ``name``."""

    def deco(cls: type[_C]) -> type[_C]:
        if name in CELLS:
            raise ValueError(f"cell name {name!r} is registered twice")
        if defaults:
            def preset(*args: Any, **kw: Any) -> _C:
                return cls(*args, **{**defaults, **kw})
            preset.__doc__ = f"{cls.__name__} with " + ", ".join(
                f"{k}={v!r}" for k, v in defaults.items())
            preset.cell_class, preset.defaults = cls, dict(defaults)  # type: ignore[attr-defined]
            CELLS[name] = preset
        else:
            CELLS[name] = cls
        return cls

    return deco


def _cell_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"cell name must be a str, got {type(name).__name__} ({name!r})")
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; valid cells: {', '.join(sorted(CELLS))}")
    return name


def cell_options(name: str) -> dict[str, Any] | None:
    """The options of cell ``name`` and their defaults; None when it forwards arbitrary
    options (``double`` passes them to its half cells, which check them).

    Example:
        >>> cell_options("rnn_relu")
        {'nonlinearity': 'relu', 'bias': True}
    """
    factory = CELLS[_cell_name(name)]
    cls = getattr(factory, "cell_class", factory)
    params = list(inspect.signature(cls.__init__).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    options = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return {**options, **getattr(factory, "defaults", {})}


def make_cell(name: str, input_size: int, hidden_size: int, **options) -> Cell:
    """Build a registered cell by name, e.g. ``make_cell("gru", 8, 32)``.

    Raises:
        ValueError: unknown name or option (the message lists the valid ones), or an option
            value out of range (checked by the cell).
        TypeError: a name or option of the wrong type.

    Example:
        >>> make_cell("gru", 3, 8, foo=1)
        Traceback (most recent call last):
        ...
        ValueError: cell 'gru' has no option foo; valid options: bias
    """
    valid = cell_options(name)
    unknown = [] if valid is None else sorted(set(options) - set(valid))
    if unknown and valid is not None:
        raise ValueError(f"cell {name!r} has no option {', '.join(unknown)}; valid options: "
                         f"{', '.join(valid) or 'none'}")
    return CELLS[name](input_size, hidden_size, **options)


class Cell(nn.Module):
    """Base class of every step cell.

    Subclasses define ``State`` (a NamedTuple class), ``state_sizes`` (one width per field),
    ``step`` and, when the output is not the first state field, ``output``.
    ``forward_sequence`` may be overridden with a faster whole-sequence loop (e.g. one GEMM for
    all input projections); it must give the same numbers as stepping ``forward``.

    A cell also declares what the methods need to know about it (docs/architecture.md, "Cells
    declare their capabilities"), so no module outside ``cells/`` asks for its class:

    - ``gates``: the names of the row blocks of ``weight_ih`` / ``weight_hh`` in PyTorch's
      stacked layout (``("i", "f", "g", "o")`` for the LSTM); ``()`` when the weights are not
      gate-stacked. Classical inits act per block, :meth:`gate_rows` finds one.
    - ``recurrent_weights`` / ``input_weights``: the Parameters that carry the time map and the
      input (or depth) map: what LSC's rescaling heuristic scales.
    - ``meanfield``: ``"lstm"`` / ``"gru"`` when the mean-field theory of critical init covers
      the cell (docs/init.md), else None.
    - ``identity_init``: ``h' = act(W_ih x + W_hh h + b)``, so IRNN's identity ``W_hh`` applies.
    - ``forget_gate`` / ``chrono_gates``: the gate whose bias sets how long the state is kept
      (``forget_bias`` init) and the gates chrono init sets, with the sign of the timescale.
    - ``torch_module``: the ``torch.nn`` class whose layers this cell runs as they are
      (:func:`stablernn.from_torch`); :meth:`fused_kernel`: the fused ``torch._VF`` kernel of
      that class, or None.
    - :meth:`set_time_radius` (LRU): set the time-Jacobian radius directly.
    - :meth:`warm_part` / :meth:`cold_parameters`: the sub-cell warm-up trains and the
      Parameters it must leave alone (the double layer of partial warm-up).
    """

    State: ClassVar[type[Any]] = None  # type: ignore[assignment]  # each cell sets its own
    gates: ClassVar[tuple[str, ...]] = ()
    recurrent_weights: ClassVar[tuple[str, ...]] = ("weight_hh",)
    input_weights: ClassVar[tuple[str, ...]] = ("weight_ih",)
    meanfield: ClassVar[str | None] = None
    identity_init: ClassVar[bool] = False
    forget_gate: ClassVar[str | None] = None
    chrono_gates: ClassVar[dict[str, float]] = {}
    torch_module: ClassVar[type[nn.RNNBase] | None] = None

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,) * len(self.State._fields)

    @property
    def state_size(self) -> int:
        """Width of the flattened state."""
        return sum(self.state_sizes)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def _ref(self) -> Tensor:
        return next(self.parameters())

    def initial_state(self, batch: int, *, device=None, dtype=None) -> _State:
        """Zero state for a batch of ``batch`` sequences."""
        ref = self._ref()
        device = ref.device if device is None else device
        dtype = ref.dtype if dtype is None else dtype
        return self.State(*(torch.zeros(batch, n, device=device, dtype=dtype)
                            for n in self.state_sizes))

    def project(self, x: Tensor) -> Tensor:
        """Input projection, applied to ``(B, D)`` or a whole ``(B, T, D)`` sequence at once."""
        return x

    def recur(self, p_t: Tensor, state: _State) -> _State:  # pragma: no cover - abstract
        """State update from the projected input ``p_t = project(x_t)``."""
        raise NotImplementedError

    def step(self, x_t: Tensor, state: _State) -> _State:
        """One time step: the new state (pure given the parameters)."""
        return self.recur(self.project(x_t), state)

    def output(self, x_t: Tensor, state: _State) -> Tensor:
        """The layer output ``h_t`` as a function of the (new) state."""
        return state[0]

    def forward(self, x_t: Tensor, state: _State | None = None) -> tuple[Tensor, _State]:
        if state is None:
            state = self.initial_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        new = self.step(x_t, state)
        return self.output(x_t, new), new

    def forward_sequence(self, x: Tensor, state: _State) -> tuple[Tensor, _State]:
        """Run ``(B, T, D)`` inputs from ``state``; returns ``(B, T, H)`` outputs, last state."""
        # one GEMM for every step: (B, T, D) -> (B, T, G). unbind, not p[:, t]: the backward of
        # T slices would allocate and scatter into T full-size zero tensors (O(T^2) memory
        # traffic); unbind's backward is one stack.
        ps, xs = self.project(x).unbind(1), x.unbind(1)
        outs = []
        for p_t, x_t in zip(ps, xs, strict=True):
            state = self.recur(p_t, state)
            outs.append(self.output(x_t, state))
        return torch.stack(outs, 1), state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"

    # ------------------------------------------------------------------ capabilities

    def gate_rows(self, gate: str) -> slice:
        """The rows of ``gate`` in ``weight_ih`` / ``weight_hh`` / the biases.

        Example:
            >>> make_cell("lstm", 2, 3).gate_rows("f")
            slice(3, 6, None)
        """
        if gate not in self.gates:
            raise ValueError(f"{type(self).__name__} has no gate {gate!r}; its gates: "
                             f"{', '.join(self.gates) or 'none (not gate-stacked)'}")
        k, n = self.gates.index(gate), self.hidden_size
        return slice(k * n, (k + 1) * n)

    def fused_kernel(self) -> Callable | None:
        """The fused multi-layer ``torch._VF`` kernel that computes this cell, or None.

        A cell that has one must hold ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` in
        PyTorch's layout and a state of ``h`` (and ``c``), like the ``torch_module`` it mirrors.
        """
        return None

    def fused_bias(self) -> bool:
        """Whether :meth:`fused_weights` has the two bias vectors (a cell with a kernel)."""
        return getattr(self, "bias_ih", None) is not None

    def fused_weights(self) -> list[Tensor]:
        """The layer's weights as the kernel takes them: ``weight_ih``, ``weight_hh`` (and
        ``bias_ih``, ``bias_hh``) in PyTorch's layout; a cell with a kernel only."""
        names = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.fused_bias() else ())
        return [getattr(self, name) for name in names]

    def fused_state(self, state: tuple) -> tuple[Tensor, ...]:
        """``state`` as the kernel's fields (``(h,)`` or ``(h, c)``)."""
        return tuple(state)

    def from_fused_state(self, fields: Sequence[Tensor]) -> tuple:
        """Inverse of :meth:`fused_state`."""
        return self.State(*fields)

    def _keeps_recur(self, cls: type[Cell]) -> bool:
        """True when this cell computes ``cls``'s step: a subclass that changes ``recur``
        (or ``step``) loses ``cls``'s fused kernel and declared theory."""
        kind = parametrize.type_before_parametrizations(self)
        assert issubclass(kind, Cell)  # self's own class, before parametrize subclassed it
        return kind.recur is cls.recur and kind.step is cls.step

    def meanfield_kind(self) -> str | None:
        """``meanfield`` as declared, or None when a subclass changed the declaring class's step
        (the theory then no longer describes the cell)."""
        owner = next(k for k in type(self).__mro__ if "meanfield" in vars(k))
        return self.meanfield if self._keeps_recur(owner) else None

    set_time_radius: Callable[[float], None] | None = None
    """``set_time_radius(radius)`` when the time radius can be set without gradients (LRU)."""

    def warm_part(self) -> Cell:
        """The part of the cell that warm-up makes multistable (the whole cell by default)."""
        return self

    def warm_state(self, state: _State) -> _State:
        """The state of :meth:`warm_part` within this cell's ``state``."""
        return state

    def cold_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters warm-up must leave unchanged inside a warmed layer (none by default)."""
        return iter(())

    @classmethod
    def from_torch_layer(cls, module: nn.RNNBase, layer: int) -> Cell:
        """A cell sharing layer ``layer``'s Parameters of ``module`` (of ``cls.torch_module``).

        A parametrised tensor of ``module`` (``stablernn.spectral``, torch's ``orthogonal``)
        is shared with its parametrisation: the cell computes the same weight from the same
        underlying Parameters (:func:`share_parametrization`).
        """
        d_in = module.input_size if layer == 0 else module.hidden_size
        make: Callable[..., Cell] = cls  # the torch_module cells take ``bias``; Cell does not
        cell = make(d_in, module.hidden_size, bias=module.bias, **cls._torch_options(module))
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if getattr(cell, name) is None:
                continue
            if parametrize.is_parametrized(module, f"{name}_l{layer}"):
                share_parametrization(cell, name, module, f"{name}_l{layer}")
            else:
                setattr(cell, name, getattr(module, f"{name}_l{layer}"))  # the same Parameter
        return cell

    @classmethod
    def _torch_options(cls, module: nn.RNNBase) -> dict[str, Any]:
        return {}


class _Placeholder(nn.Module):
    """The identity, registered only to be replaced by a shared ParametrizationList."""

    def forward(self, X: Tensor) -> Tensor:
        return X


def share_parametrization(cell: nn.Module, name: str, source: nn.Module, source_name: str
                          ) -> None:
    """Make ``cell.<name>`` the parametrised tensor ``source.<source_name>``: the cell holds the
    very ParametrizationList (its original Parameters, buffers and maps) of ``source``, so both
    compute the same weight, an optimiser step on either is seen by both, and assigning either
    projects through the same ``right_inverse``.

    Example:
        >>> from stablernn.spectral import spectral
        >>> lin, other = spectral(nn.Linear(3, 3), "weight"), nn.Linear(3, 3)
        >>> share_parametrization(other, "weight", lin, "weight")
        >>> torch.equal(other.weight, lin.weight)
        True
    """
    plists = source.parametrizations
    assert isinstance(plists, nn.ModuleDict)
    parametrize.register_parametrization(cell, name, _Placeholder(), unsafe=True)
    mine = cell.parametrizations
    assert isinstance(mine, nn.ModuleDict)
    mine[name] = plists[source_name]  # the property reads cell.parametrizations[name]


def cell_classes() -> list[type[Cell]]:
    """The registered cell classes (presets resolved), in registration order, each once."""
    out: list[type[Cell]] = []
    for factory in CELLS.values():
        cls = getattr(factory, "cell_class", factory)
        assert isinstance(cls, type) and issubclass(cls, Cell)  # register_cell takes classes
        if cls not in out:
            out.append(cls)
    return out


def cell_for_torch(module: nn.Module) -> type[Cell] | None:
    """The registered cell class that runs ``module``'s layers (by ``torch_module``; a
    subclass of ``torch.nn.LSTM`` is run as an LSTM), or None."""
    declared = {cls.__dict__["torch_module"]: cls for cls in cell_classes()
                if cls.__dict__.get("torch_module") is not None}
    return next((declared[k] for k in type(module).__mro__ if k in declared), None)


def flatten_state(state: State) -> Tensor:
    """Concatenate the fields of a state into one ``(B, n)`` tensor."""
    return torch.cat(tuple(state), dim=-1)


def unflatten_state(flat: Tensor, cell: Cell) -> State:
    """Inverse of :func:`flatten_state` for ``cell``'s state layout."""
    sizes = cell.state_sizes
    if flat.shape[-1] != sum(sizes):
        raise ValueError(f"flat state has width {flat.shape[-1]}, {type(cell).__name__} "
                         f"expects {sum(sizes)} = {' + '.join(map(str, sizes))}")
    return cell.State(*torch.split(flat, list(sizes), dim=-1))


def check_state(cell: Cell, state: Any, batch: int, ref: Tensor, name: str = "state") -> None:
    """Raise a clear error unless ``state`` fits ``cell``: one ``(batch, n_i)`` tensor per field
    of ``cell.state_sizes``, with ``ref``'s dtype and device, finite."""
    sizes = cell.state_sizes
    if not isinstance(state, (tuple, list)) or len(state) != len(sizes):
        raise ValueError(f"{name} must be a tuple of {len(sizes)} tensor(s) for "
                         f"{type(cell).__name__} (see cell.initial_state(batch)); got "
                         f"{type(state).__name__}")
    for i, (t, n) in enumerate(zip(state, sizes, strict=True)):
        if not isinstance(t, Tensor) or tuple(t.shape) != (batch, n):
            raise ValueError(f"{name}[{i}] must be a tensor of shape ({batch}, {n}); got "
                             f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}")
        if t.dtype != ref.dtype or t.device != ref.device:
            raise TypeError(f"{name}[{i}] is {t.dtype} on {t.device}; the inputs are "
                            f"{ref.dtype} on {ref.device}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}[{i}] contains NaN or Inf values")


def check_input(x: Tensor, input_size: int, *, rank: int = 3, name: str = "x") -> None:
    """Raise a clear error unless ``x`` is a finite float tensor of ``rank`` with ``input_size``
    features in the last axis."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    layout = {3: "(batch, time, features)", 2: "(batch, features)"}[rank]
    if x.dim() != rank:
        raise ValueError(f"{name} must have shape {layout} (rank {rank}); got shape "
                         f"{tuple(x.shape)}" + ("; add a batch axis with x.unsqueeze(0)"
                                                if x.dim() == rank - 1 else ""))
    if x.shape[-1] != input_size:
        raise ValueError(f"{name} has {x.shape[-1]} features in its last axis, the model expects "
                         f"input_size={input_size}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; "
                        f"convert with x.float()")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf values; clean the inputs first")
