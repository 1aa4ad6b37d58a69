"""Local maps of a deep RNN: the depth x time grid's local Jacobians as functions.

Every stability method of the library (radii, LSC pre-training, Lyapunov exponents, gradient
flow) sees a model through one object, :class:`LocalMap`: a map between two flattened states
of the depth x time grid at one step, built from the cells' own ``step`` / ``output`` maps, so
the cells never know they are analysed. The four kinds (Herranz-Celotti & Rouat,
arXiv 2308.12075, section 2):

- time:    ``s[l, t-1] -> s[l, t]``  (input and lower layer held fixed),
- depth:   ``s[l-1, t] -> s[l, t]``  through ``h[l-1, t]`` (own past held fixed), ``l >= 1``,
- input:   ``x[t] -> s[0, t]``,
- readout: ``h[L-1, t] -> y[t]`` (from the top output, Note [readout from the output]).

Layers are 0-based like ``model.cells``; a map's ``layer`` is the layer it writes into (the
readout map has ``layer = L``, one above the top cell). The estimators of a map's size live in
:mod:`.estimators` (docs/diagnostics.md, "How the code is organised").

Note [batched maps]: a map's ``fn`` takes the whole batch ``(B, n_in) -> (B, n_out)``. Cells
treat samples independently, so one batched JVP is B per-sample JVPs, and the per-sample dense
Jacobian is ``jacfwd``/``jacrev`` of ``fn(s).sum(0)`` (shape ``(n_out, B, n_in)``): the batch is
vectorised without an explicit ``vmap`` over samples. Only a module that mixes samples (e.g.
BatchNorm in training mode inside the readout) breaks this; call ``model.eval()`` first.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.func import jvp, vjp, vmap

from .._checks import all_finite, check_finite_weights, check_int
from ..adapters import as_deep_rnn, is_time_major
from ..cells.base import Cell, State, check_input, flatten_state, unflatten_state
from ..stack import DeepRNN
from .eigen import NonFiniteError, generator

__all__ = [
    "Kind",
    "LocalMap",
    "check_finite_state",
    "check_step",
    "local_maps",
    "maps_at",
    "parse_enum",
    "prepare",
    "trajectory",
]

MAX_READOUT = 100  # readouts wider than this (e.g. a vocabulary) are skipped


class Kind(str, Enum):  # noqa: UP042 - a StrEnum would change str(Kind.TIME) to "time"
    """The four kinds of local Jacobian (docs/algorithms.md section 1.1)."""

    TIME = "time"
    DEPTH = "depth"
    INPUT = "input"
    READOUT = "readout"



E = TypeVar("E", bound=Enum)


def parse_enum(cls: type[E], value: str | Enum, what: str) -> E:
    """``cls(value)`` with an error listing the allowed values."""
    try:
        return cls(value)
    except (ValueError, TypeError):  # TypeError: an unhashable value
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"unknown {what} {value!r}; valid: {allowed}") from None


_JVP_READY = False


def _ensure_jvp() -> None:
    # The first forward-mode call makes torch script its JVP decompositions, which emits a
    # DeprecationWarning from inside torch; absorb it once so "warnings as errors" stays usable.
    global _JVP_READY
    if not _JVP_READY:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            jvp(torch.sin, (torch.zeros(1),), (torch.ones(1),))
        _JVP_READY = True



@dataclass(frozen=True, eq=False)  # eq would compare tensors
class LocalMap:
    """One local map of the grid at one step, as a function of one flattened state.

    Attributes:
        kind: "time", "depth", "input" or "readout".
        layer: the layer written into (0-based; the readout map has ``layer = L``).
        fn: batched map ``(B, n_in) -> (B, n_out)``, samples independent (Note [batched maps]).
        state_in: the point of linearisation ``(B, n_in)``.
        n_out: output width.

    Example:
        >>> model = DeepRNN.build("gru", 3, 8, num_layers=2)
        >>> m = maps_at(model, torch.randn(4, 5, 3), t=2, kinds=["time"])[0]
        >>> m.jacobian().shape
        torch.Size([4, 8, 8])
    """

    kind: str
    layer: int
    fn: Callable[[Tensor], Tensor]
    state_in: Tensor
    n_out: int

    @property
    def n_in(self) -> int:
        return self.state_in.shape[-1]

    @property
    def batch(self) -> int:
        return self.state_in.shape[0]

    def __call__(self, s: Tensor | None = None) -> Tensor:
        return self.fn(self.state_in if s is None else s)

    def jvp(self, v: Tensor) -> Tensor:
        """``J v`` per sample: ``(B, n_in) -> (B, n_out)``."""
        _ensure_jvp()
        return jvp(self.fn, (self.state_in,), (v,))[1]

    def vjp(self, u: Tensor) -> Tensor:
        """``J^T u`` per sample: ``(B, n_out) -> (B, n_in)``."""
        return vjp(self.fn, self.state_in)[1](u)[0]

    def jvps(self, vs: Tensor) -> Tensor:
        """Several JVPs at once: ``(P, B, n_in) -> (P, B, n_out)``."""
        _ensure_jvp()
        return vmap(self.jvp)(vs)

    def jacobian(self, *, create_graph: bool = False) -> Tensor:
        """Per-sample dense Jacobian ``(B, n_out, n_in)``.

        One forward and one batched backward (``is_grads_batched``; Note [batched maps]):
        several times faster than ``jacfwd`` on small cells, where functorch's per-call overhead
        dominates. With ``create_graph`` the Jacobian stays differentiable w.r.t. the model's
        Parameters (used by the differentiable exact radius).
        """
        with torch.enable_grad():
            s = self.state_in if create_graph and self.state_in.requires_grad \
                else self.state_in.detach().requires_grad_()
            y = self.fn(s)  # (B, n_out)
            eye = torch.eye(self.n_out, dtype=y.dtype, device=y.device)
            basis = eye.unsqueeze(1).expand(self.n_out, *y.shape)  # (n_out, B, n_out)
            rows = torch.autograd.grad(y, s, basis, is_grads_batched=True,
                                       create_graph=create_graph)[0]
        return rows.transpose(0, 1)  # (n_out, B, n_in) -> (B, n_out, n_in)

    def square(self, seed: int = 0) -> LocalMap:
        """A square restriction: a seeded random subset of the longer axis
        (docs/algorithms.md section 1.2)."""
        n_in, n_out = self.n_in, self.n_out
        if n_in == n_out:
            return self
        keep = torch.randperm(max(n_in, n_out), generator=generator(seed))[:min(n_in, n_out)]
        keep = keep.sort().values.to(self.state_in.device)
        if n_out > n_in:
            return LocalMap(self.kind, self.layer, lambda s: self.fn(s)[:, keep], self.state_in,
                            n_in)
        pick = torch.zeros(n_out, n_in, dtype=self.state_in.dtype, device=keep.device)
        pick[torch.arange(n_out), keep] = 1  # (n_small, n_in): selection as a matmul
        rest = self.state_in - self.state_in[:, keep] @ pick
        return LocalMap(self.kind, self.layer, lambda s: self.fn(rest + s @ pick),
                        self.state_in[:, keep], n_out)


def _check_x(net: DeepRNN, x: Tensor, name: str, time_major: bool) -> None:
    """``x`` in the layout the user's model takes: a finite float rank-3 tensor of the model's
    width, dtype and device, with at least one sequence and one step."""
    layout = "(time, batch, features)" if time_major else "(batch, time, features)"
    if isinstance(x, Tensor) and x.dim() != 3:
        raise ValueError(f"{name} must have shape {layout} (rank 3); got shape "
                         f"{tuple(x.shape)}" + ("; add a batch axis" if x.dim() == 2 else ""))
    check_input(x, net.input_size, name=name)
    shape = tuple(x.shape)
    batch, steps = (shape[1], shape[0]) if time_major else shape[:2]
    if batch == 0:
        raise ValueError(f"{name} is empty: batch size 0 (shape {shape}, {layout}); pass at "
                         f"least one sequence")
    if steps == 0:
        raise ValueError(f"{name} is empty: no time steps (shape {shape}, {layout}); pass "
                         f"sequences of at least one step")
    ref = next(net.parameters(), None)
    if ref is not None and (x.dtype != ref.dtype or x.device != ref.device):
        raise TypeError(f"{name} is {x.dtype} on {x.device} but the model's weights are "
                        f"{ref.dtype} on {ref.device}; convert one with .to(...)")


def prepare(model: nn.Module, x: Tensor, *, name: str = "x") -> tuple[DeepRNN, Tensor]:
    """The DeepRNN to analyse and ``x`` batch-first, both checked: the first line of every
    analysis that takes a model and input sequences.

    A ``torch.nn.RNN/LSTM/GRU`` built with ``batch_first=False`` takes ``(T, B, D)``, as in
    torch; it is transposed (into a contiguous copy) here, since the analyses work batch-first.

    Raises:
        TypeError: ``model`` has no recurrent layers; ``x`` is not a float tensor of the
            weights' dtype and device.
        ValueError: NaN/Inf weights (``NonFiniteWeightsError``, Note [finite before eig]);
            ``x`` of the wrong rank or width, with NaN/Inf, or empty (batch size 0 or no steps).

    Example:
        >>> net, xb = prepare(nn.GRU(3, 8), torch.randn(10, 4, 3))  # (T, B, D)
        >>> tuple(xb.shape)
        (4, 10, 3)
    """
    net = as_deep_rnn(model)
    check_finite_weights(model)  # the user's module: the message names its own parameter
    time_major = is_time_major(model)
    _check_x(net, x, name, time_major)
    return net, (x.transpose(0, 1).contiguous() if time_major else x)


def _parse_kinds(kinds: Sequence[str] | None) -> list[Kind]:
    if kinds is None:
        return list(Kind)
    if isinstance(kinds, (str, Kind)):
        kinds = [kinds]
    if not isinstance(kinds, (list, tuple, set, frozenset)) or not kinds:
        raise TypeError(f"kinds must be None, a kind or a non-empty list of kinds ('time', "
                        f"'depth', 'input', 'readout'), got {kinds!r}")
    return [parse_enum(Kind, k, "Jacobian kind") for k in kinds]


def _inputs_and_states(model: DeepRNN, x_t: Tensor, states: Sequence[State]):
    """Inputs of every layer and the new states at this step."""
    h_in, new = [], []
    h = x_t
    for cell, s in zip(model.layers, states, strict=True):
        h_in.append(h)
        s = cell.step(h, s)
        new.append(s)
        h = cell.output(h, s)
    return h_in, new


def _time_map(cell: Cell, layer: int, h: Tensor, s_prev: State) -> LocalMap:
    def fn(s: Tensor) -> Tensor:
        return flatten_state(cell.step(h, unflatten_state(s, cell)))

    return LocalMap(Kind.TIME.value, layer, fn, flatten_state(s_prev), cell.state_size)


def _depth_map(lower: Cell, cell: Cell, layer: int, h_lower_in: Tensor, s_lower: State,
               s_prev: State) -> LocalMap:
    def fn(s: Tensor) -> Tensor:
        h = lower.output(h_lower_in, unflatten_state(s, lower))
        return flatten_state(cell.step(h, s_prev))

    return LocalMap(Kind.DEPTH.value, layer, fn, flatten_state(s_lower), cell.state_size)


def _input_map(cell: Cell, x_t: Tensor, s_prev: State) -> LocalMap:
    def fn(x: Tensor) -> Tensor:
        return flatten_state(cell.step(x, s_prev))

    return LocalMap(Kind.INPUT.value, 0, fn, x_t, cell.state_size)


def _readout_map(model: DeepRNN, h_top_in: Tensor, s_top: State,
                 max_readout: int) -> LocalMap | None:
    # Note [readout from the output]: the readout map starts at the top layer's output h, not
    # its full state. dy/ds has zero columns wherever y does not see the state (an LSTM's c,
    # an ALIF's v and a), so the random square subset of a narrow readout would often keep
    # only those and report radius 0; dy/dh is the part of dy/ds that is not structurally 0.
    readout = model.readout
    assert readout is not None  # _local_maps asks only a model with a readout
    h = model.layers[-1].output(h_top_in, s_top)
    with torch.no_grad():
        n_out = readout(h).shape[-1]
    if n_out > max_readout:
        return None
    return LocalMap(Kind.READOUT.value, model.num_layers, readout, h, n_out)


def _check_states(model: DeepRNN, x_t: Tensor, states: Sequence[State]) -> None:
    check_input(x_t, model.input_size, rank=2, name="x_t")
    if x_t.shape[0] == 0:
        raise ValueError("x_t is empty: batch size 0; pass at least one sample")
    if not isinstance(states, (list, tuple)) or len(states) != model.num_layers:
        got = len(states) if isinstance(states, (list, tuple)) else type(states).__name__
        raise ValueError(f"got {got} layer states for a {model.num_layers}-layer model; start "
                         f"from model.initial_state(batch)")
    for layer, (cell, st) in enumerate(zip(model.layers, states, strict=True)):
        flat = flatten_state(st)
        if flat.shape != (x_t.shape[0], cell.state_size):
            raise ValueError(f"states[{layer}] has shape {tuple(flat.shape)} flattened; layer "
                             f"{layer} needs ({x_t.shape[0]}, {cell.state_size})")
        if not bool(torch.isfinite(flat).all()):
            raise ValueError(f"states[{layer}] contains NaN or Inf values")


def local_maps(model: nn.Module, x_t: Tensor, states: Sequence[State], *,
               kinds: Sequence[str] | None = None,
               max_readout: int = MAX_READOUT) -> list[LocalMap]:
    """Every local map of one step, from the states before it.

    Args:
        model: a DeepRNN or a torch.nn.RNN/LSTM/GRU.
        x_t: inputs of this step ``(B, D)``.
        states: per-layer states before the step (``model.initial_state(B)`` at ``t = 0``).
            Gradients flow through them when they require grad.
        kinds: subset of "time", "depth", "input", "readout" (default all).
        max_readout: skip the readout map when it has more outputs than this.

    Returns:
        The maps, input first, then time and depth per layer bottom-up, readout last.

    Raises:
        TypeError / ValueError: unsupported model, NaN/Inf weights, bad ``x_t`` or states,
            unknown kind, ``max_readout < 0``.

    Example:
        >>> model = DeepRNN.build("lstm", 3, 8, num_layers=2, readout=2)
        >>> ms = local_maps(model, torch.randn(4, 3), model.initial_state(4))
        >>> [(m.kind, m.layer, m.n_in, m.n_out) for m in ms][:3]
        [('input', 0, 3, 16), ('time', 0, 16, 16), ('time', 1, 16, 16)]
    """
    net = as_deep_rnn(model)
    check_finite_weights(model)
    _check_states(net, x_t, states)
    check_int("max_readout", max_readout, low=0)
    return _local_maps(net, x_t, states, _parse_kinds(kinds), max_readout)


def _local_maps(model: DeepRNN, x_t: Tensor, states: Sequence[State], kinds: Sequence[Kind],
                max_readout: int) -> list[LocalMap]:
    """:func:`local_maps` without the checks (callers checked once for a whole sequence)."""
    want = set(kinds)
    h_in, new = _inputs_and_states(model, x_t, states)
    cells = model.layers
    maps = [_input_map(cells[0], x_t, states[0])] if Kind.INPUT in want else []
    for layer, cell in enumerate(cells):
        if Kind.TIME in want:
            maps.append(_time_map(cell, layer, h_in[layer], states[layer]))
        if Kind.DEPTH in want and layer > 0:
            maps.append(_depth_map(cells[layer - 1], cell, layer, h_in[layer - 1],
                                   new[layer - 1], states[layer]))
    if Kind.READOUT in want and model.readout is not None:
        m = _readout_map(model, h_in[-1], new[-1], max_readout)
        maps += [m] if m is not None else []
    return maps


def check_step(t: int, length: int, name: str = "step") -> int:
    """Validate a 0-based step (negative counts from the end) and return it."""
    t = check_int(name, t, low=None)
    if not -length <= t < length:
        raise ValueError(f"{name} t={t} is outside the sequence: valid steps are "
                         f"0..{length - 1} (or -{length}..-1) for T={length}")
    return t % length


def check_finite_state(states: Sequence[State], t: int) -> None:
    """Raise :class:`NonFiniteError` when a layer's state is NaN/Inf after step ``t``."""
    for layer, st in enumerate(states):
        if not all_finite(st):
            raise NonFiniteError(f"the state of layer {layer} became NaN/Inf at step {t} although "
                                 f"the weights and inputs are finite: the dynamics overflow "
                                 f"(weights too large for this input scale?)")


@torch.no_grad()
def trajectory(model: nn.Module, x: Tensor, state: Sequence[State] | None = None) -> list:
    """Per-layer states before every step: entry ``t`` is the state list fed to step ``t``.

    Returns ``T + 1`` entries (the last is the final state). Detached (computed without grad).
    ``x`` follows the model's layout (:func:`prepare`); the entries are batch-first.

    Raises:
        NonFiniteError: a state overflows to NaN/Inf (Note [finite before eig]); and the errors
            of :func:`prepare`.
    """
    model, x = prepare(model, x)
    if state is not None:
        _check_states(model, x[:, 0], state)
    return _trajectory(model, x, state)


@torch.no_grad()
def _trajectory(model: DeepRNN, x: Tensor, state: Sequence[State] | None = None) -> list:
    states = model.initial_state(x.shape[0], device=x.device, dtype=x.dtype) \
        if state is None else list(state)
    out = [states]
    for t in range(x.shape[1]):
        states = model.step(x[:, t], states)[1]
        check_finite_state(states, t)
        out.append(states)
    return out


def maps_at(model: nn.Module, x: Tensor, t: int, **kw) -> list[LocalMap]:
    """:func:`local_maps` at step ``t`` (0-based) of the sequence ``x`` (``(B, T, D)``, or the
    torch module's own layout: :func:`prepare`).

    Raises:
        ValueError: ``t`` outside ``0..T-1``; the errors of :func:`prepare`, :func:`trajectory`
            and :func:`local_maps`.
    """
    net, x = prepare(model, x)
    t = check_step(t, x.shape[1])
    states = _trajectory(net, x[:, :t])[-1] if t > 0 else \
        net.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
    return local_maps(net, x[:, t], states, **kw)

