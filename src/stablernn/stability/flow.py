"""Gradient flow over the depth x time grid (docs/algorithms.md section 1.3).

The gradient of a loss at the corner ``(L, T)`` reaches node ``(l, t)`` as the sum, over every
monotone path of the grid, of the product of the local Jacobians along it (Herranz-Celotti &
Rouat, arXiv 2308.12075, section 2). ``gradient_flow`` measures ``||dLoss/ds[l, t]||`` at every
node by one backward pass through the step path, so a user sees where gradients explode or
vanish. The linear scalar grid ("PascalRNN") ``h[l,t] = r h[l-1,t] + r h[l,t-1]`` has the
closed form ``C(dl + dt, dt) r^(dl + dt)``; the tests reproduce it exactly.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._deprecation import deprecated_aliases
from ..cells.base import flatten_state, unflatten_state
from ..plotting import new_axes
from .eigen import NonFiniteError
from .local_maps import check_finite_state, prepare

__all__ = ["GradientFlowReport", "default_loss", "gradient_flow"]


def default_loss(y: Tensor) -> Tensor:
    """Sum of the last step's outputs, averaged over the batch.

    Linear in the outputs, so the gradient field is the Jacobian sum of docs/algorithms.md section
    1.3, independent of any target.
    """
    last = y[:, -1] if y.dim() == 3 else y  # (B, T, O) -> (B, O); readout_mode="last" is (B, O)
    return last.sum() / y.shape[0]


def _log(norms: Tensor) -> Tensor:
    return norms.clamp_min(1e-300).log()  # an exactly zero gradient is a (very) vanished one


def _slope(y: Tensor, x: Tensor) -> Tensor:
    """Least-squares slope of ``y`` against ``x`` along the last axis (nan for one point)."""
    if x.numel() < 2:
        return torch.full(y.shape[:-1], float("nan"), dtype=y.dtype)
    xc = x - x.mean()
    return ((y - y.mean(-1, keepdim=True)) * xc).sum(-1) / xc.pow(2).sum()


@dataclass
class GradientFlowReport:
    """``||dLoss/ds[l, t]||`` on the grid and its growth rates.

    Attributes:
        norms: ``(L, T)`` gradient norms (layer 0 = bottom, float64, on the CPU).
        time_rate: ``(L,)`` least-squares slope of ``ln norm`` per step backwards in time
            (> 0: gradients grow into the past, i.e. explode).
        depth_rate: ``(T,)`` slope of ``ln norm`` per layer downwards (nan for one layer).
    """

    norms: Tensor
    time_rate: Tensor
    depth_rate: Tensor

    def __array__(self, dtype=None, copy=None):
        arr = self.norms.numpy()
        return arr if dtype is None else arr.astype(dtype)

    @property
    def time_growth(self) -> float:
        """Log growth per step backwards of the gradient reaching a step (all layers' norm).

        ``< 0``: gradients vanish into the past; ``> 0``: they explode.
        """
        back = torch.arange(self.norms.shape[1] - 1, -1, -1, dtype=torch.float64)
        return float(_slope(_log(self.norms.norm(dim=0)), back))

    @property
    def depth_growth(self) -> float:
        """Log growth per layer downwards of the gradient reaching a layer (all steps' norm);
        nan for one layer."""
        down = torch.arange(self.norms.shape[0] - 1, -1, -1, dtype=torch.float64)
        return float(_slope(_log(self.norms.norm(dim=1)), down))

    def to_dict(self) -> dict[str, Any]:
        return {"norms": self.norms.tolist(), "time_rate": self.time_rate.tolist(),
                "depth_rate": self.depth_rate.tolist(), "time_growth": self.time_growth,
                "depth_growth": self.depth_growth}

    def plot(self, ax: Any = None, *, title: str | None = None) -> Any:
        """Log-scale heat-map of the gradient norms (time on x, layer on y); returns the axes."""
        ax = new_axes(ax)
        logs = self.norms.clamp_min(1e-300).log10().numpy()
        im = ax.imshow(logs, origin="lower", aspect="auto", cmap="viridis", interpolation="none")
        ax.figure.colorbar(im, ax=ax, label=r"$\log_{10}\,\|\partial L/\partial s_{l,t}\|$")
        ax.set(xlabel="time step t", ylabel="layer l", title=title or "gradient flow")
        ax.set_yticks(range(self.norms.shape[0]))
        return ax


def _grid_states(model, x: Tensor) -> tuple[list[list[Tensor]], Tensor]:
    """Run the step path keeping every flat state ``s[l][t]`` as a graph node; top outputs."""
    B, T, _ = x.shape
    prev = [flatten_state(s).detach().requires_grad_() for s in
            model.initial_state(B, device=x.device, dtype=x.dtype)]
    grid: list[list[Tensor]] = [[] for _ in model.cells]
    tops = []
    for t in range(T):
        h = x[:, t]
        for layer, cell in enumerate(model.layers):
            s = cell.step(h, unflatten_state(prev[layer], cell))
            prev[layer] = flatten_state(s)  # the very tensor later steps read: its grad is total
            grid[layer].append(prev[layer])
            h = cell.output(h, unflatten_state(prev[layer], cell))
        check_finite_state([(p,) for p in prev], t)
        tops.append(h)
    return grid, torch.stack(tops, 1)  # T x (B, H) -> (B, T, H)


def gradient_flow(model: nn.Module, x: Tensor,
                  loss: Callable[[Tensor], Tensor] | None = None) -> GradientFlowReport:
    """Norm of the loss gradient at every node of the depth x time grid.

    Args:
        model: a DeepRNN or a torch.nn.RNN/LSTM/GRU. Dropout is not applied (step path).
        x: inputs ``(B, T, D)``; ``(T, B, D)`` for a torch module with ``batch_first=False``.
        loss: maps the model output (after the readout, ``(B, T, O)`` or ``(B, O)``, always
            batch-first) to a scalar; default :func:`default_loss` (last step, batch mean).

    Returns:
        A :class:`GradientFlowReport` with ``norms`` of shape ``(L, T)``; ``.plot()`` draws the
        heat-map.

    Raises:
        TypeError: ``model`` has no recurrent layers; ``loss`` is not callable or does not
            return a scalar tensor.
        ValueError: NaN/Inf weights, bad or empty ``x``; a state or the loss becoming NaN/Inf
            (``NonFiniteError``). Gradients that overflow float32 are reported as ``inf``.

    Example:
        >>> flow = gradient_flow(torch.nn.GRU(3, 8, 3, batch_first=True), torch.randn(2, 20, 3))
        >>> flow.norms.shape
        torch.Size([3, 20])
    """
    model, x = prepare(model, x)
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be None or a function of the outputs, got "
                        f"{type(loss).__name__}")
    x = x.detach().requires_grad_()  # keeps the graph alive for state-free cells
    with torch.enable_grad():
        grid, tops = _grid_states(model, x)
        value = (loss or default_loss)(model.apply_readout(tops))
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise TypeError(f"loss must return a scalar tensor, got "
                            f"{tuple(value.shape) if isinstance(value, Tensor) else value!r}")
        if not bool(torch.isfinite(value).all()):
            raise NonFiniteError(f"loss returned {float(value.detach())} on finite outputs; the "
                                 f"gradient field of a NaN/Inf loss is meaningless")
        nodes = [s for row in grid for s in row]
        grads = torch.autograd.grad(value, nodes, allow_unused=True)
    L, T = len(grid), x.shape[1]
    norms = torch.stack([torch.zeros((), dtype=torch.float64) if g is None else
                         g.detach().double().norm().cpu() for g in grads]).view(L, T)
    return _with_rates(norms)


def _with_rates(norms: Tensor) -> GradientFlowReport:
    L, T = norms.shape
    logs = _log(norms)
    back = torch.arange(T - 1, -1, -1, dtype=torch.float64)  # steps back from the last one
    down = torch.arange(L - 1, -1, -1, dtype=torch.float64)  # layers down from the top
    return GradientFlowReport(norms, _slope(logs, back), _slope(logs.T, down))


__getattr__ = deprecated_aliases(globals(), {"GradientFlow": "GradientFlowReport"})
