"""Reachable multistability: the VAA measure, attractor count (docs/algorithms.md section 1.5).

After Lambrechts, De Geeter, Vecoven, Ernst & Drion (arXiv 2106.01001), "variability amongst
attractors": drive ``n`` reachable states (each sequence cut at a random prefix) with one shared
random constant input for many steps and count how many distinct states they settle in.
``VAA = mean_i 1 / #{j : ||z_j - z_i|| < eps}``: ``1/n`` when every state falls into one
attractor (monostable, no long memory), ``1`` when every sample keeps its own state.

Note [fused VAA runs]: both runs of the measure (and of warm-up's VAA*) go through PyTorch's
fused multi-layer kernel (the one ``torch.nn.LSTM`` calls, :mod:`stablernn.cells.fused`) when
every layer has one and the stack was not built with ``fused=False``: the reachable states in
one call on the *packed* prefixes ``x[i, :c_i]`` (a packed sequence's final state is each
sequence's state at its own length, for every layer), the constant-input run in chunks of
:data:`CHUNK` steps (the caller's clock is checked between chunks). Otherwise both step the
cells in Python. The two paths compute the same function; values and gradients agree to float
rounding (tested). The kernels take the cells' own Parameters, so gradients reach them as they
do through the step path.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_int, check_positive, check_seed
from .._deprecation import renamed_kwargs
from ..cells.base import Cell, flatten_state
from ..cells.fused import fused_prefix_states, fused_sequence, stack_kernel
from ..plotting import new_axes
from .eigen import generator
from .local_maps import prepare

__all__ = ["VAAReport", "count_clusters", "vaa"]


@dataclass
class VAAReport:
    """Multistability of the reachable states.

    Attributes:
        vaa: the measure, in ``[1/n, 1]``.
        attractors: number of eps-clusters of the final states (connected components).
        n: number of sequences. steps: constant-input steps. eps: the distance threshold.
        counts: ``(n,)`` neighbours within eps of each final state (itself included).
    """

    vaa: float
    attractors: int
    n: int
    steps: int
    eps: float
    counts: Tensor

    def to_dict(self) -> dict[str, Any]:
        return {"vaa": self.vaa, "attractors": self.attractors, "n": self.n,
                "steps": self.steps, "eps": self.eps}

    def plot(self, ax: Any = None) -> Any:
        """Histogram of the cluster sizes each sample belongs to; returns the axes."""
        ax = new_axes(ax)
        ax.hist(self.counts.tolist(), bins=range(1, self.n + 2), align="left")
        ax.set(xlabel="samples sharing the final state", ylabel="samples",
               title=f"VAA = {self.vaa:.3f}, {self.attractors} attractor(s)")
        return ax


def count_clusters(close: Tensor) -> int:
    """Connected components of a symmetric boolean adjacency ``(n, n)`` (diagonal True).

    Example:
        >>> count_clusters(torch.tensor([[True, True, False], [True, True, False],
        ...                              [False, False, True]]))
        2
    """
    if not isinstance(close, Tensor) or close.dtype != torch.bool or close.dim() != 2 \
            or close.shape[0] != close.shape[1]:
        raise TypeError(f"close must be a square boolean tensor (n, n), got "
                        f"{getattr(close, 'dtype', type(close).__name__)} of shape "
                        f"{tuple(getattr(close, 'shape', ()))}")
    n = close.shape[0]
    labels = torch.arange(n, device=close.device)
    while True:  # min-label propagation: at most n rounds, usually a handful
        new = torch.where(close, labels[None, :], n).amin(1)
        if torch.equal(new, labels):
            return int(labels.unique().numel())
        labels = new


CHUNK = 64  # constant-input steps per fused-kernel call (Note [fused VAA runs])


def model_kernel(model: Any) -> Callable | None:
    """The fused kernel that runs every layer of ``model`` (a DeepRNN), or None: a layer
    without one, or a stack built with ``fused=False`` (Note [fused VAA runs])."""
    return stack_kernel(model.layers, getattr(model, "fused", True))


def constant_input_run(cells: Sequence[Cell], kernel: Callable | None, u: Tensor,
                       states: Sequence[tuple], steps: int,
                       clock: Callable[[], None] | None = None) -> list[tuple]:
    """The states of the stack ``cells`` after ``steps`` steps of the constant input ``u``
    ``(n, D)`` from ``states`` (one per cell): through ``kernel`` in chunks of :data:`CHUNK`
    steps when given (Note [fused VAA runs]), else stepping every cell. ``clock()`` is called
    before every step (stepped) or chunk (fused); it may raise to stop the run."""
    states = list(states)
    if kernel is None:
        for _ in range(steps):
            if clock is not None:
                clock()
            x_t = u
            for i, cell in enumerate(cells):  # as DeepRNN.step
                x_t, states[i] = cell(x_t, states[i])
        return states
    full = u[:, None].expand(-1, min(CHUNK, steps), -1).contiguous()
    done = 0
    while done < steps:
        if clock is not None:
            clock()
        k = min(CHUNK, steps - done)
        states = fused_sequence(kernel, cells, full[:, :k], states,
                                training=torch.is_grad_enabled())[1]  # as above; dropout 0
        done += k
    return states


def reachable_states(model, x: Tensor, cut: Tensor) -> list[tuple]:
    """Per-layer states after the prefix ``x[i, :cut_i]`` of each sequence (``cut`` in 1..T);
    differentiable (warm-up), or call under ``torch.no_grad()`` (the VAA measure). Through the
    fused kernel when the stack has one (Note [fused VAA runs])."""
    kernel = model_kernel(model)
    if kernel is not None:
        # train=True whenever a backward may follow (cuDNN refuses a backward in eval mode); no
        # dropout either way
        return fused_prefix_states(kernel, model.layers, x, cut,
                                   training=torch.is_grad_enabled())
    n = x.shape[0]
    states = model.initial_state(n, device=x.device, dtype=x.dtype)
    seen = []
    for t in range(int(cut.max())):  # no need to run past the longest prefix
        states = model.step(x[:, t], states)[1]
        seen.append(states)
    rows = torch.arange(n, device=x.device)
    out = []
    for layer, cell in enumerate(model.layers):
        fields = zip(*(s[layer] for s in seen), strict=True)  # per field: c_max x (n, w)
        out.append(cell.State(*(torch.stack(f)[cut - 1, rows] for f in fields)))
    return out


def _reachable(model, x: Tensor, gen: torch.Generator) -> list:
    """Per-layer states after a random prefix ``c_i in 1..T`` of each sequence."""
    cut = torch.randint(1, x.shape[1] + 1, (x.shape[0],), generator=gen).to(x.device)
    with torch.no_grad():
        return reachable_states(model, x, cut)


@renamed_kwargs(steps="time_steps")
def vaa(model: nn.Module, x: Tensor, *, time_steps: int = 10000, eps: float = 1e-4,
        seed: int = 0) -> VAAReport:
    """VAA measure and attractor count of the states reachable from ``x``.

    Args:
        model: a DeepRNN or a torch.nn.RNN/LSTM/GRU.
        x: ``n`` input sequences ``(n, T, D)`` (the paper uses n = 32); ``(T, n, D)`` for a
            torch module with ``batch_first=False``.
        time_steps: constant-input time steps (the paper's 10000; ``steps`` is its deprecated
            name).
        eps: distance under which two final states are the same attractor.
        seed: seeds the prefix lengths and the constant input ``u ~ N(0, I)``.

    Returns:
        A :class:`VAAReport`.

    A state that diverges to NaN/Inf during the constant-input run is its own attractor
    (never close to another), so it counts as kept memory.

    Raises:
        ValueError: NaN/Inf weights, bad or empty ``x``, ``time_steps < 1``, ``eps`` not finite > 0.
        TypeError: not a recurrent model; an option of the wrong kind.

    Example:
        >>> report = vaa(torch.nn.GRU(2, 8, batch_first=True), torch.randn(16, 10, 2),
        ...              time_steps=200)
        >>> 1 / 16 <= report.vaa <= 1
        True
    """
    model, x = prepare(model, x)
    time_steps = check_int("time_steps", time_steps)
    eps = check_positive("eps", eps)
    gen = generator(check_seed(seed))
    with torch.no_grad():
        states = _reachable(model, x, gen)
        u = torch.randn(x.shape[-1], generator=gen).to(x).expand(x.shape[0], -1)  # shared
        states = constant_input_run(model.layers, model_kernel(model), u, states, time_steps)
        z = torch.cat([flatten_state(s) for s in states], -1)  # (n, N), all layers
        # the matmul form of cdist loses ~sqrt(float eps) * |z|: far too coarse for eps = 1e-4
        d = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")
        close = d < eps  # NaN (a diverged state) is never close
        close |= torch.eye(len(z), dtype=torch.bool, device=z.device)
    counts = close.sum(1)
    return VAAReport(float((1.0 / counts.double()).mean()), count_clusters(close), len(z),
                     time_steps, eps, counts.cpu())
