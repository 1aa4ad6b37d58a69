"""Local Jacobians of a deep RNN and their size estimators (docs/algorithms.md sections 1.1-1.2).

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
readout map has ``layer = L``, one above the top cell).

Note [batched maps]: a map's ``fn`` takes the whole batch ``(B, n_in) -> (B, n_out)``. Cells
treat samples independently, so one batched JVP is B per-sample JVPs, and the per-sample dense
Jacobian is ``jacfwd``/``jacrev`` of ``fn(s).sum(0)`` (shape ``(n_out, B, n_in)``): the batch is
vectorised without an explicit ``vmap`` over samples. Only a module that mixes samples (e.g.
BatchNorm in training mode inside the readout) breaks this; call ``model.eval()`` first.

Note [differentiable radius]: for the dominant eigenvalue ``lambda`` with right / left
eigenvectors ``u`` / ``w``, ``d|lambda| = Re(conj(lambda)/|lambda| * w^H dJ u / (w^H u))``.
With ``u``, ``w``, ``lambda`` detached, ``|lambda| + Re(c * (w^H J u - stopgrad(w^H J u)))`` has
the value ``|lambda|`` and exactly that gradient; ``J^T w`` is one batched VJP kept in the graph
(``create_graph``), so no eigendecomposition and no dense Jacobian is ever in the graph, and
gradients reach the model's Parameters (and the state, when it requires grad).

Note [warm starts]: LSC pre-training asks for the radii of the same maps at consecutive steps
of the same sequences, with weights that moved by one optimiser step; the dominant eigenvectors
barely change. Given a ``warm`` dict, Arnoldi starts from the previous call's eigenvectors
(stored per ``(kind, layer)``) instead of noise, which is worth a restart: a smaller ``k``
reaches the same accuracy.

Note [finite before eig]: LAPACK's balancing routine (``?gebal``, called by
``torch.linalg.eig``/``eigvals`` on the CPU) crashes the interpreter on NaN input instead of
raising. So every public entry point checks the model's weights (``check_finite_weights``) and
inputs first, trajectories stop at the first non-finite state, and :func:`_eig` / :func:`_eigvals`
refuse a non-finite matrix (a dense Jacobian or an Arnoldi Hessenberg matrix): finite weights
can still overflow. Either raises :class:`NonFiniteError`, a ``ValueError``. See
docs/robustness.md.

Note [autograd matvecs]: Arnoldi needs ``J v`` (and ``J^T w`` for left eigenvectors) k times
per restart. ``torch.func.jvp`` pays functorch's per-call overhead (~1.2 ms on a 256-unit GRU
map), and a dense Jacobian costs one batched backward of n vectors (~27 ms) before the first
product. Instead one forward ``y = f(s)`` and one ``g = J^T u = grad(y, s, u, create_graph)``
with a dummy ``u`` are kept: ``J^T w`` is a backward through ``y`` (~0.19 ms) and ``J v`` a
backward through ``g`` w.r.t. ``u`` (~0.23 ms; ``g`` is linear in ``u``), both on the retained
graph, so Krylov costs k small backward passes and no ``O(n^2)`` memory.
"""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import jvp, vjp, vmap

from .._checks import all_finite, check_finite_weights, check_int, check_seed
from ..adapters import from_torch
from ..cells.base import Cell, State, check_input, flatten_state, unflatten_state
from ..stack import DeepRNN

__all__ = [
    "Estimator",
    "Kind",
    "LocalMap",
    "NonFiniteError",
    "as_deep_rnn",
    "dominant_eig",
    "exact_radius",
    "krylov_radius",
    "local_maps",
    "maps_at",
    "mean_squared_singular_value",
    "prepare",
    "radius",
    "radius_all",
    "spectral_norm",
    "trajectory",
]

EXACT_MAX = 256  # "auto": the dense eigensolver up to this width (docs/algorithms.md section 1.2)
EXACT_MAX_GRAD = 64  # ... and up to this one for differentiable radii (two eigs with vectors)
MAX_READOUT = 100  # readouts wider than this (e.g. a vocabulary) are skipped


class Kind(str, Enum):
    """The four kinds of local Jacobian (docs/algorithms.md section 1.1)."""

    TIME = "time"
    DEPTH = "depth"
    INPUT = "input"
    READOUT = "readout"


class Estimator(str, Enum):
    """How :func:`radius` measures a local Jacobian."""

    AUTO = "auto"  # exact up to EXACT_MAX units (EXACT_MAX_GRAD if differentiable), krylov above
    EXACT = "exact"  # dense Jacobian + eigvals
    KRYLOV = "krylov"  # Arnoldi on Jacobian products (Note [autograd matvecs])
    SPECTRAL_NORM = "spectral_norm"  # largest singular value, power iteration
    MSV = "msv"  # mean squared singular value tr(J^T J) / n, Hutchinson probes


class NonFiniteError(ValueError, FloatingPointError):
    """A state, Jacobian or loss became NaN/Inf although the weights and inputs were finite
    (overflow, or a diverging pre-training update); Note [finite before eig]."""


def parse_enum(cls: type[Enum], value: str | Enum, what: str) -> Enum:
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


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(check_seed(seed))


def _randn(shape: Sequence[int], like: Tensor, seed: int) -> Tensor:
    return torch.randn(*shape, generator=_generator(seed)).to(like)


# --------------------------------------------------------------------------- the local map


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
        """Square restriction: seeded subset of the longer axis (docs/algorithms.md section 1.2)."""
        n_in, n_out = self.n_in, self.n_out
        if n_in == n_out:
            return self
        keep = torch.randperm(max(n_in, n_out), generator=_generator(seed))[:min(n_in, n_out)]
        keep = keep.sort().values.to(self.state_in.device)
        if n_out > n_in:
            return LocalMap(self.kind, self.layer, lambda s: self.fn(s)[:, keep], self.state_in,
                            n_in)
        pick = torch.zeros(n_out, n_in, dtype=self.state_in.dtype, device=keep.device)
        pick[torch.arange(n_out), keep] = 1  # (n_small, n_in): selection as a matmul
        rest = self.state_in - self.state_in[:, keep] @ pick
        return LocalMap(self.kind, self.layer, lambda s: self.fn(rest + s @ pick),
                        self.state_in[:, keep], n_out)


def as_deep_rnn(model: nn.Module) -> DeepRNN:
    """The DeepRNN to analyse: ``model`` itself, or ``from_torch(model)`` for torch RNNs.

    A conversion only: it neither checks the weights nor knows the inputs; the analyses call
    :func:`prepare`, which does both and follows ``batch_first``.

    Raises:
        TypeError: ``model`` has no recurrent layers the library can step.
    """
    if isinstance(model, DeepRNN):
        return model
    if isinstance(model, (nn.RNN, nn.LSTM, nn.GRU)):
        return from_torch(model)
    raise TypeError(f"expected a stablernn.DeepRNN or a torch.nn.RNN/LSTM/GRU, got "
                    f"{type(model).__name__}, which has no recurrent layers to analyse; wrap "
                    f"your cells with stablernn.DeepRNN(cells)")


def _time_major(model: nn.Module) -> bool:
    return isinstance(model, nn.RNNBase) and not model.batch_first


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
    time_major = _time_major(model)
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
    for cell, s in zip(model.cells, states):
        h_in.append(h)
        s = cell.step(h, s)
        new.append(s)
        h = cell.output(h, s)
    return h_in, new


def _time_map(cell: Cell, l: int, h: Tensor, s_prev: State) -> LocalMap:
    def fn(s: Tensor) -> Tensor:
        return flatten_state(cell.step(h, unflatten_state(s, cell)))

    return LocalMap(Kind.TIME.value, l, fn, flatten_state(s_prev), cell.state_size)


def _depth_map(lower: Cell, cell: Cell, l: int, h_lower_in: Tensor, s_lower: State,
               s_prev: State) -> LocalMap:
    def fn(s: Tensor) -> Tensor:
        h = lower.output(h_lower_in, unflatten_state(s, lower))
        return flatten_state(cell.step(h, s_prev))

    return LocalMap(Kind.DEPTH.value, l, fn, flatten_state(s_lower), cell.state_size)


def _input_map(cell: Cell, x_t: Tensor, s_prev: State) -> LocalMap:
    def fn(x: Tensor) -> Tensor:
        return flatten_state(cell.step(x, s_prev))

    return LocalMap(Kind.INPUT.value, 0, fn, x_t, cell.state_size)


def _readout_map(model: DeepRNN, h_top_in: Tensor, s_top: State, max_readout: int):
    # Note [readout from the output]: the readout map starts at the top layer's output h, not
    # its full state. dy/ds has zero columns wherever y does not see the state (an LSTM's c,
    # an ALIF's v and a), so the random square subset of a narrow readout would often keep
    # only those and report radius 0; dy/dh is the part of dy/ds that is not structurally 0.
    h = model.cells[-1].output(h_top_in, s_top)
    with torch.no_grad():
        n_out = model.readout(h).shape[-1]
    if n_out > max_readout:
        return None
    return LocalMap(Kind.READOUT.value, model.num_layers, model.readout, h, n_out)


def _check_states(model: DeepRNN, x_t: Tensor, states: Sequence[State]) -> None:
    check_input(x_t, model.input_size, rank=2, name="x_t")
    if x_t.shape[0] == 0:
        raise ValueError("x_t is empty: batch size 0; pass at least one sample")
    if not isinstance(states, (list, tuple)) or len(states) != model.num_layers:
        got = len(states) if isinstance(states, (list, tuple)) else type(states).__name__
        raise ValueError(f"got {got} layer states for a {model.num_layers}-layer model; start "
                         f"from model.initial_state(batch)")
    for l, (cell, st) in enumerate(zip(model.cells, states)):
        flat = flatten_state(st)
        if flat.shape != (x_t.shape[0], cell.state_size):
            raise ValueError(f"states[{l}] has shape {tuple(flat.shape)} flattened; layer {l} "
                             f"needs ({x_t.shape[0]}, {cell.state_size})")
        if not bool(torch.isfinite(flat).all()):
            raise ValueError(f"states[{l}] contains NaN or Inf values")


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
    maps = [_input_map(model.cells[0], x_t, states[0])] if Kind.INPUT in want else []
    for l, cell in enumerate(model.cells):
        if Kind.TIME in want:
            maps.append(_time_map(cell, l, h_in[l], states[l]))
        if Kind.DEPTH in want and l > 0:
            maps.append(_depth_map(model.cells[l - 1], cell, l, h_in[l - 1], new[l - 1],
                                   states[l]))
    if Kind.READOUT in want and model.readout is not None:
        m = _readout_map(model, h_in[-1], new[-1], max_readout)
        maps += [m] if m is not None else []
    return maps


def check_sequence(model: DeepRNN, x: Tensor, *, name: str = "x") -> None:
    """Validate a batch-first input sequence ``(B, T, D)`` for ``model``: finite floats of its
    width, dtype and device, ``B >= 1``, ``T >= 1``."""
    _check_x(as_deep_rnn(model), x, name, time_major=False)


def check_step(t: int, length: int, name: str = "step") -> int:
    """Validate a 0-based step (negative counts from the end) and return it."""
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(t).__name__} ({t!r})")
    t = int(t)
    if not -length <= t < length:
        raise ValueError(f"{name} t={t} is outside the sequence: valid steps are "
                         f"0..{length - 1} (or -{length}..-1) for T={length}")
    return t % length


def check_finite_state(states: Sequence[State], t: int) -> None:
    """Raise :class:`NonFiniteError` when a layer's state is NaN/Inf after step ``t``."""
    for l, st in enumerate(states):
        if not all_finite(st):
            raise NonFiniteError(f"the state of layer {l} became NaN/Inf at step {t} although "
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


# --------------------------------------------------------------------------- estimators


def _arnoldi(matvec: Callable[[Tensor], Tensor], v0: Tensor, k: int):
    """``k`` batched Arnoldi steps: ``Q (B, n, k)``, Hessenberg ``H (B, k, k)``."""
    B, n = v0.shape
    eps = torch.finfo(v0.dtype).eps
    Q = v0.new_zeros(B, k + 1, n)  # basis as rows, filled in place
    Q[:, 0] = v0 / v0.norm(dim=-1, keepdim=True).clamp_min(eps)
    H = v0.new_zeros(B, k + 1, k)
    for j in range(k):
        w = matvec(Q[:, j])
        scale = w.norm(dim=-1)
        basis = Q[:, :j + 1]  # (B, j+1, n)
        for _ in range(2):  # classical Gram-Schmidt twice keeps Q orthonormal in float32
            h = (basis @ w.unsqueeze(-1)).squeeze(-1)  # (B, j+1)
            w = w - (h.unsqueeze(1) @ basis).squeeze(1)
            H[:, :j + 1, j] += h
        beta = w.norm(dim=-1)
        # a (numerically) invariant subspace: continue with zeros, the Ritz values are exact
        alive = beta > 50 * eps * scale.clamp_min(eps)
        H[:, j + 1, j] = torch.where(alive, beta, 0)
        Q[:, j + 1] = torch.where(alive[:, None], w / beta[:, None].clamp_min(eps), 0)
    return Q[:, :k].transpose(1, 2), H[:, :k]


def _check_matrix(M: Tensor, label: str) -> Tensor:
    """``M`` if finite; else :class:`NonFiniteError` (Note [finite before eig])."""
    if not bool(torch.isfinite(M).all()):
        raise NonFiniteError(f"the {label} has NaN/Inf entries (the map overflows, or an update "
                             f"diverged); it is not passed to the eigensolver, which can crash "
                             f"on them")
    return M


def _eig(M: Tensor, label: str) -> tuple[Tensor, Tensor]:
    """``torch.linalg.eig`` of a finite ``M``."""
    return torch.linalg.eig(_check_matrix(M, label))


def _eigvals(M: Tensor, label: str) -> Tensor:
    """``torch.linalg.eigvals`` of a finite ``M``."""
    return torch.linalg.eigvals(_check_matrix(M, label))


def _label(m: LocalMap, what: str) -> str:
    return f"{what} of the {m.kind} map of layer {m.layer}"


def _ritz(matvec: Callable[[Tensor], Tensor], v0: Tensor, k: int, restarts: int,
          label: str = "Arnoldi Hessenberg matrix"):
    """Dominant Ritz pair ``(theta (B,), y (B, n) complex)`` and all Ritz values (B, k)."""
    for r in range(restarts + 1):
        Q, H = _arnoldi(matvec, v0, k)
        vals, vecs = _eig(H, label)  # (B, k), (B, k, k)
        i = vals.abs().argmax(-1)
        theta = vals.gather(1, i[:, None]).squeeze(1)
        y = Q.to(vecs.dtype) @ vecs.gather(2, i[:, None, None].expand(-1, k, 1))
        y = y.squeeze(-1)
        v0 = y.real + y.imag  # explicit restart from the dominant Ritz vector
    return theta, y, vals


def _left_eig(matvec_t: Callable[[Tensor], Tensor], lam: Tensor, v0: Tensor, k: int,
              restarts: int, label: str = "Arnoldi Hessenberg matrix") -> Tensor:
    """Left eigenvector ``w`` (``w^H J = lam w^H``) from Arnoldi with ``matvec_t = J^T``."""
    y = None
    for _ in range(restarts + 1):
        Q, H = _arnoldi(matvec_t, v0, k)
        vals, vecs = _eig(H, label)
        i = (vals - lam[:, None]).abs().argmin(-1)  # J^T has the same eigenvalues as J
        y = Q.to(vecs.dtype) @ vecs.gather(2, i[:, None, None].expand(-1, k, 1))
        y = y.squeeze(-1)
        v0 = y.real + y.imag
    return y.conj()  # J^T y = lam y  <=>  conj(y)^H J = lam conj(y)^H


def _autograd_matvecs(m: LocalMap) -> tuple[Callable[[Tensor], Tensor],
                                            Callable[[Tensor], Tensor]]:
    """``v -> J v`` and ``w -> J^T w`` per sample on a retained graph (Note [autograd
    matvecs])."""
    with torch.enable_grad():
        s = m.state_in.detach().requires_grad_()
        y = m.fn(s)
        u = torch.zeros_like(y, requires_grad=True)
        g = torch.autograd.grad(y, s, u, create_graph=True, allow_unused=True)[0]  # J^T u
    if g is None or not g.requires_grad:  # J is structurally zero (e.g. no path from s to y)
        return (lambda v: torch.zeros_like(y)), (lambda w: torch.zeros_like(s))

    def jv(v: Tensor) -> Tensor:
        with torch.enable_grad():
            return torch.autograd.grad(g, u, v, retain_graph=True)[0]

    def jtv(w: Tensor) -> Tensor:
        with torch.enable_grad():
            return torch.autograd.grad(y, s, w, retain_graph=True)[0]
    return jv, jtv


def _eig_parts(J: Tensor, label: str = "Jacobian"):
    """Dominant eigenvalue and right / left eigenvectors of dense ``J (B, n, n)``."""
    vals, V = _eig(J, label)  # (B, n), (B, n, n)
    i = vals.abs().argmax(-1)
    lam = vals.gather(1, i[:, None]).squeeze(1)
    u = V.gather(2, i[:, None, None].expand(-1, V.shape[1], 1)).squeeze(-1)
    # left eigenvector from J^T (J^T y = lam y <=> conj(y)^H J = lam conj(y)^H) rather than
    # inv(V): a defective J (e.g. dead relu units) has a singular V
    vals_t, W = torch.linalg.eig(J.transpose(-1, -2))
    j = (vals_t - lam[:, None]).abs().argmin(-1)
    y = W.gather(2, j[:, None, None].expand(-1, W.shape[1], 1)).squeeze(-1)
    return lam, u, y.conj()


def _krylov_parts(matvec, matvec_t, v0: Tensor, w0: Tensor, k: int, restarts: int,
                  vectors: bool, label: str = "Arnoldi Hessenberg matrix"):
    """``(lam, u, w)``; without ``vectors`` the left eigenvector ``w`` is not computed (None)."""
    lam, u, _ = _ritz(matvec, v0, k, restarts, label)
    if not vectors:
        return lam, u, None
    return lam, u, _left_eig(matvec_t, lam, w0, k, restarts, label)


TIE = 1e-3  # eigenvalues within this relative distance of the radius count as tied
MAX_TIED = 32


def _tied_parts(J: Tensor, label: str = "Jacobian"):
    """Dominant eigenvalue and the right / left eigenvectors of every eigenvalue tied with it
    in modulus (Note [tied radius]): ``lam (B,)``, ``U``, ``W`` ``(B, m, n)``, ``weight (B, m)``
    (``1 / m_b`` for the ``m_b`` tied members of sample ``b``, 0 for padding)."""
    vals, V = _eig(J, label)  # (B, n), (B, n, n)
    m = min(MAX_TIED, vals.shape[-1])
    mags, idx = vals.abs().topk(m, dim=-1)  # (B, m), descending
    lam = vals.gather(1, idx[:, :1]).squeeze(1)
    tied = mags >= mags[:, :1] * (1 - TIE)
    weight = tied / tied.sum(-1, keepdim=True)
    U = V.gather(2, idx[:, None, :].expand(-1, V.shape[1], -1)).transpose(1, 2)  # (B, m, n)
    vals_t, Wt = torch.linalg.eig(J.transpose(-1, -2))
    chosen = vals.gather(1, idx)  # (B, m)
    j = (vals_t[:, None, :] - chosen[:, :, None]).abs().argmin(-1)  # (B, m)
    Y = Wt.gather(2, j[:, None, :].expand(-1, Wt.shape[1], -1)).transpose(1, 2)
    return lam, U, Y.conj(), weight.to(vals.real.dtype)


def _starts(like: Tensor, seed: int, warm: tuple[Tensor, Tensor] | None):
    """Arnoldi start vectors for right / left: seeded noise, or last call's eigenvectors."""
    if warm is not None:
        u, w = warm
        return (u.real + u.imag).to(like.dtype), (w.real - w.imag).to(like.dtype)  # y = conj(w)
    return _randn(like.shape, like, seed), _randn(like.shape, like, seed + 1)


def _parts(maps: Sequence[LocalMap], methods: Sequence[Estimator], k: int | None,
           restarts: int, seed: int, vectors: bool,
           warm: dict | None = None, tied: bool = False) -> list[tuple[Tensor, ...]]:
    """Per square map ``(lam,)`` or ``(lam, u, w)``, detached: dense eig ("exact") or Arnoldi
    on autograd matvecs ("krylov"; Note [autograd matvecs]). ``warm``: Note [warm starts].
    A non-finite Jacobian / Hessenberg matrix raises (Note [finite before eig])."""
    out: list = []
    with torch.no_grad():
        for m, method in zip(maps, methods):
            if method is Estimator.EXACT:
                J = m.jacobian()
                if vectors:
                    parts_fn = _tied_parts if tied else _eig_parts
                    out.append(parts_fn(J, _label(m, "Jacobian")))
                    continue
                vals = _eigvals(J, _label(m, "Jacobian"))
                out.append((vals.gather(1, vals.abs().argmax(-1, keepdim=True)).squeeze(1),))
                continue
            got = None if warm is None else warm.get((m.kind, m.layer))
            got = got if got is not None and got[0].shape == m.state_in.shape else None
            kk = check_k(None if k is None else min(k, m.n_in), m.n_in)
            parts = _krylov_parts(*_autograd_matvecs(m), *_starts(m.state_in, seed, got), kk,
                                  restarts, vectors, _label(m, "Arnoldi Hessenberg matrix"))
            if warm is not None:
                warm[(m.kind, m.layer)] = (parts[1], parts[1].conj() if parts[2] is None
                                           else parts[2])
            out.append(parts if vectors else parts[:1])
    return out


def dominant_eig(m: LocalMap, *, method: str = "exact", k: int | None = None,
                 restarts: int = 1, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Dominant eigenvalue ``lam (B,)`` with right / left eigenvectors ``u``, ``w`` ``(B, n)``.

    ``m`` must be square (see :meth:`LocalMap.square`). Detached. ``method`` is "exact" (dense
    eig) or "krylov" (Arnoldi for ``u``, Arnoldi on ``J^T`` for ``w``).

    Raises:
        ValueError: not square, bad options, or a non-finite Jacobian (:class:`NonFiniteError`).
    """
    _check_map(m)
    _check_estimator_options(k=k, restarts=restarts, seed=seed)
    if m.n_in != m.n_out:
        raise ValueError(f"dominant_eig needs a square map, got {m.n_out} x {m.n_in}; "
                         f"use m.square()")
    est = parse_enum(Estimator, method, "method")
    if est not in (Estimator.EXACT, Estimator.KRYLOV):
        raise ValueError(f"method must be 'exact' or 'krylov', got {method!r}")
    return _parts([m], [est], k, restarts, seed, vectors=True)[0]


def check_k(k: int | None, n: int, *, default: int = 64, what: str = "Krylov vectors",
            width: str = "units") -> int:
    """Validate a count ``k <= n`` of vectors (``min(n, default)`` when None)."""
    if k is None:
        return min(n, default)
    k = check_int("k", k)
    if k > n:
        raise ValueError(f"k={k} {what} is larger than the state ({n} {width}); use k <= {n}")
    return k


def _check_map(m: Any) -> None:
    if not isinstance(m, LocalMap):
        raise TypeError(f"expected a LocalMap (from local_maps / maps_at), got "
                        f"{type(m).__name__}")


def _check_estimator_options(*, k: Any = None, restarts: Any = 1, iters: Any = 30,
                             probes: Any = 16, seed: Any = 0) -> None:
    """The numeric options shared by the radius estimators (one home for their checks)."""
    if k is not None:
        check_int("k", k)
    check_int("restarts", restarts, low=0)
    check_int("iters", iters)
    check_int("probes", probes)
    check_seed(seed)


def _surrogate(lam: Tensor, u: Tensor, w: Tensor, wju: Tensor, weight: Tensor) -> Tensor:
    """``|lam|`` whose gradient is the (cluster-averaged) eigenvalue derivative, given
    ``wju = w^H J u`` per member ``(B, m)`` in the graph (Notes [differentiable radius],
    [tied radius])."""
    mag = lam.abs()[:, None]  # (B, 1): members share the modulus of the dominant eigenvalue
    wu = (w.conj() * u).sum(-1)
    tiny = torch.finfo(mag.dtype).tiny ** 0.5
    # conj(lam_j) / |lam_j| per member, from lam_j = w_j^H J u_j / w_j^H u_j
    lam_j = wju.detach() / torch.where(wu.abs() > tiny, wu, tiny)
    c = lam_j.conj() / lam_j.abs().clamp_min(tiny) / torch.where(wu.abs() > tiny, wu, tiny)
    c = torch.where(torch.isfinite(c) & (mag > tiny) & (wu.abs() > tiny), c, 0) * weight
    return lam.abs() + (c * (wju - wju.detach())).real.sum(-1)


def _clean(u: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    # a zero or defective eigenvalue (e.g. a silent ALIF layer) has no usable eigenvectors:
    # zero them so NaNs never reach the graph (the value stays |lam|)
    return torch.nan_to_num(u), torch.nan_to_num(w)


def _eig_surrogate(m: LocalMap, lam: Tensor, u: Tensor, w: Tensor,
                   weight: Tensor | None = None) -> Tensor:
    """Differentiable ``|lam|`` with ``w^H J u`` from one batched VJP kept in the graph.
    ``u``, ``w``: ``(B, n)`` or, for a tied cluster, ``(B, m, n)`` with ``weight (B, m)``."""
    u, w = _clean(u, w)
    if u.dim() == 2:
        u, w = u[:, None], w[:, None]
        weight = torch.ones(u.shape[:2], dtype=lam.real.dtype, device=u.device)
    with torch.enable_grad():
        s = m.state_in if m.state_in.requires_grad else m.state_in.detach().requires_grad_()
        y = m.fn(s)
        wt = w.transpose(0, 1)  # (m, B, n)
        probes = torch.cat([wt.real, wt.imag]).to(y.dtype)  # (2m, B, n_out)
        jtw = torch.autograd.grad(y, s, probes, is_grads_batched=True, create_graph=True)[0]
    k = u.shape[1]
    # w^H J u = (J^T conj(w)) . u with conj(w) = w.real - i w.imag
    wju = (torch.complex(jtw[:k], -jtw[k:]) * u.transpose(0, 1)).sum(-1).T  # (B, m)
    return _surrogate(lam, u, w, wju, weight).to(m.state_in.dtype)


def exact_radius(m: LocalMap, *, differentiable: bool = False, seed: int = 0) -> Tensor:
    """Spectral radius per sample ``(B,)`` from the dense Jacobian (``torch.linalg.eigvals``).

    Raises:
        NonFiniteError: the Jacobian has NaN/Inf entries (Note [finite before eig]).

    Example:
        >>> m = maps_at(DeepRNN.build("rnn", 2, 6), torch.randn(3, 4, 2), t=1)[1]
        >>> exact_radius(m).shape
        torch.Size([3])
    """
    _check_map(m)
    return radius_all([m], "exact", differentiable=differentiable, seed=seed)[0]


def krylov_radius(m: LocalMap, *, k: int | None = None, restarts: int = 1,
                  differentiable: bool = False, seed: int = 0) -> Tensor:
    """Spectral radius per sample ``(B,)`` by Arnoldi (Note [autograd matvecs]).

    Args:
        m: a local map (made square with a seeded subset when needed).
        k: Krylov dimension (default ``min(n, 64)``); ``k = n`` is exact up to rounding.
        restarts: explicit restarts from the dominant Ritz vector (sharpens a clustered edge).
        differentiable: carry the eigenvalue derivative (Note [differentiable radius]); costs a
            second Arnoldi on ``J^T`` for the left eigenvector and one batched VJP.
        seed: seeds the start vector and the square subset.

    Raises:
        ValueError: ``k`` larger than the state, bad options, a non-finite Hessenberg matrix
            (:class:`NonFiniteError`).
    """
    _check_map(m)
    check_k(k, min(m.n_in, m.n_out))
    return radius_all([m], "krylov", differentiable=differentiable, seed=seed, k=k,
                      restarts=restarts)[0]


def spectral_norm(m: LocalMap, *, iters: int = 30, seed: int = 0,
                  differentiable: bool = False) -> Tensor:
    """Largest singular value per sample ``(B,)`` by power iteration on ``J^T J``.

    Differentiable when asked: the last ``||J v||`` is taken with ``v`` detached, whose
    gradient is ``u^T dJ v`` (the singular-value derivative).

    Raises:
        ValueError / TypeError: ``iters < 1``, a bad seed, ``m`` not a LocalMap.
    """
    _check_map(m)
    _check_estimator_options(iters=iters, seed=seed)
    v = _randn((m.batch, m.n_in), m.state_in, seed)
    with torch.no_grad():
        for _ in range(iters):
            v = m.vjp(m.jvp(v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)))
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    if differentiable:
        return m.jvp(v).norm(dim=-1)
    with torch.no_grad():
        return m.jvp(v).norm(dim=-1)


def mean_squared_singular_value(m: LocalMap, *, probes: int = 16, seed: int = 0,
                                differentiable: bool = False) -> Tensor:
    """``tr(J^T J) / min(n_in, n_out)`` per sample ``(B,)``, Hutchinson with Rademacher probes.

    The mean-field gain of docs/algorithms.md section 3; unbiased, relative error ``sqrt(2/probes)``
    at worst (much less for spread spectra).

    Raises:
        ValueError / TypeError: ``probes < 1``, a bad seed, ``m`` not a LocalMap.
    """
    _check_map(m)
    _check_estimator_options(probes=probes, seed=seed)
    g = _generator(seed)
    v = (torch.randint(0, 2, (probes, m.batch, m.n_in), generator=g) * 2 - 1).to(m.state_in)
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        jv = m.jvps(v)  # (P, B, n_out)
        return jv.pow(2).sum(-1).mean(0) / min(m.n_in, m.n_out)


def radius(m: LocalMap, estimator: str | Estimator = "auto", *, differentiable: bool = False,
           seed: int = 0, k: int | None = None, restarts: int = 1, iters: int = 30,
           probes: int = 16) -> Tensor:
    """Size of a local Jacobian per sample ``(B,)``.

    Args:
        m: a :class:`LocalMap`.
        estimator: "auto" (exact up to 256 units, 64 when differentiable, krylov above),
            "exact", "krylov", "spectral_norm" or "msv" (mean squared singular value).
        differentiable: keep the result in the autograd graph of the model's Parameters.
        seed: seeds probes, start vectors and the square subset of a non-square map.
        k, restarts: Krylov dimension and restarts (krylov).
        iters: power iterations (spectral_norm). probes: Hutchinson probes (msv).

    Raises:
        ValueError: unknown estimator, ``k`` too large, ``restarts < 0``, ``iters`` or
            ``probes < 1``, a non-finite Jacobian (:class:`NonFiniteError`).
        TypeError: ``m`` not a LocalMap, an option of the wrong kind.

    Example:
        >>> m = maps_at(DeepRNN.build("lstm", 2, 8), torch.randn(3, 4, 2), t=2,
        ...             kinds=["time"])[0]
        >>> torch.allclose(radius(m, "krylov", k=16), radius(m, "exact"), atol=1e-4)
        True
    """
    _check_map(m)
    _check_estimator_options(k=k, restarts=restarts, iters=iters, probes=probes, seed=seed)
    est = parse_enum(Estimator, estimator, "estimator")
    if est in (Estimator.AUTO, Estimator.EXACT, Estimator.KRYLOV):
        check_k(k, min(m.n_in, m.n_out))  # one map: a k larger than it is a mistake
        return radius_all([m], est, differentiable=differentiable, seed=seed, k=k,
                          restarts=restarts)[0]
    if est is Estimator.SPECTRAL_NORM:
        return spectral_norm(m, iters=iters, seed=seed, differentiable=differentiable)
    return mean_squared_singular_value(m, probes=probes, seed=seed,
                                       differentiable=differentiable)


def _auto(est: Estimator, m: LocalMap, differentiable: bool) -> Estimator:
    if est is not Estimator.AUTO:
        return est
    limit = EXACT_MAX_GRAD if differentiable else EXACT_MAX
    return Estimator.EXACT if m.n_in <= limit else Estimator.KRYLOV


def radius_all(maps: Sequence[LocalMap], estimator: str | Estimator = "auto", *,
               differentiable: bool = False, seed: int = 0, k: int | None = None,
               restarts: int = 1, iters: int = 30, probes: int = 16,
               warm: dict | None = None) -> list[Tensor]:
    """:func:`radius` of every map, ``(B,)`` each.

    ``k`` is capped at each map's width (:func:`radius` refuses a ``k`` wider than its map).
    ``warm``: a dict the caller keeps between calls on slowly changing maps (Note [warm
    starts]); differentiable krylov only: LSC pre-training uses it at every step.

    Raises:
        ValueError / TypeError: as :func:`radius`.

    Example:
        >>> ms = maps_at(DeepRNN.build("gru", 3, 8, num_layers=3), torch.randn(4, 5, 3), t=2)
        >>> rs = radius_all(ms)
        >>> all(torch.allclose(r, radius(m)) for r, m in zip(rs, ms))
        True
    """
    if not isinstance(maps, (list, tuple)):
        raise TypeError(f"maps must be a list of LocalMaps, got {type(maps).__name__}")
    for m in maps:
        _check_map(m)
    _check_estimator_options(k=k, restarts=restarts, iters=iters, probes=probes, seed=seed)
    est = parse_enum(Estimator, estimator, "estimator")
    if est not in (Estimator.AUTO, Estimator.EXACT, Estimator.KRYLOV):
        return [radius(m, est, differentiable=differentiable, seed=seed, iters=iters,
                       probes=probes) for m in maps]
    sq = [m.square(seed) for m in maps]
    parts = _parts(sq, [_auto(est, m, differentiable) for m in sq], k, restarts, seed,
                   vectors=differentiable, warm=warm, tied=differentiable)
    if differentiable:
        return [_eig_surrogate(m, *p) for m, p in zip(sq, parts)]
    return [p[0].abs().to(m.state_in.dtype) for m, p in zip(sq, parts)]
