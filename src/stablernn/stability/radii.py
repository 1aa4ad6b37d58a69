"""``radii``: the size of every local Jacobian over a sequence (docs/algorithms.md section 1.2).

Herranz-Celotti & Rouat (arXiv 2308.12075, section 2) show that a deep RNN trains well when the
radii of its time and depth Jacobians sit near a target (1 or 0.5); this table is where a user
sees which layer and which kind of map is off.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from .._checks import check_int, is_int
from .._deprecation import renamed_kwargs
from ..plotting import new_axes
from ..stack import DeepRNN
from .estimators import Estimator, check_estimator_options, radius_all
from .local_maps import (
    MAX_READOUT,
    Kind,
    _local_maps,
    _parse_kinds,
    _trajectory,
    check_step,
    parse_enum,
    prepare,
)

__all__ = ["RadiiReport", "radii"]


@dataclass
class RadiiReport:
    """Radii per kind and layer at each analysed step, averaged over the batch.

    Attributes:
        estimator: the estimator used.
        steps: the analysed steps (0-based).
        values: ``values[kind][layer]`` is the list of batch-mean radii, one per step.
    """

    estimator: str
    steps: list[int]
    values: dict[str, dict[int, list[float]]] = field(default_factory=dict)

    def mean(self, kind: str, layer: int) -> float:
        """Mean over the analysed steps of one kind and layer."""
        vals = self.values[kind][layer]
        return sum(vals) / len(vals)

    def rows(self) -> list[tuple[str, int, float, float, float]]:
        """``(kind, layer, mean, min, max)`` for every map."""
        return [(kind, layer, self.mean(kind, layer), min(v), max(v))
                for kind, per_layer in self.values.items() for layer, v in per_layer.items()]

    def table(self) -> str:
        """A plain-text table (what ``stablernn diagnose`` prints)."""
        lines = [f"radii ({self.estimator}, {len(self.steps)} steps, batch mean)",
                 f"{'kind':8s} {'layer':>5s} {'mean':>9s} {'min':>9s} {'max':>9s}"]
        lines += [f"{k:8s} {layer:5d} {m:9.4f} {lo:9.4f} {hi:9.4f}"
                  for k, layer, m, lo, hi in self.rows()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "steps": list(self.steps),
                "values": {k: {str(layer): v for layer, v in d.items()}
                           for k, d in self.values.items()}}

    def plot(self, ax: Any = None) -> Any:
        """Radius against step, one line per kind and layer; returns the axes."""
        ax = new_axes(ax)
        for kind, per_layer in self.values.items():
            for layer, vals in per_layer.items():
                ax.plot(self.steps, vals, marker=".", label=f"{kind} {layer}")
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set(xlabel="step t", ylabel=f"radius ({self.estimator})", yscale="log")
        ax.legend(fontsize="small", ncol=2)
        return ax


def _steps(steps: Sequence[int] | int | None, length: int) -> list[int]:
    if steps is None:
        return list(range(length))
    if is_int(steps):
        steps = [steps]
    if not isinstance(steps, (list, tuple, range)) or len(steps) == 0:
        raise TypeError(f"time_steps must be None or a non-empty list of 0-based steps, got "
                        f"{steps!r}")
    return sorted({check_step(t, length, f"time_steps[{i}]") for i, t in enumerate(steps)})


def radii_at(model: DeepRNN, x: Tensor, states: list, t: int, estimator: str,
             kinds: Sequence[Kind], seed: int, k: int | None,
             max_readout: int, *, restarts: int = 1,
             warm: dict | None = None) -> list[tuple[str, int, float]]:
    """``(kind, layer, batch-mean radius)`` of every map at step ``t`` from ``states``, the
    states before it; unchecked (the callers check the model and options once). ``warm``:
    Arnoldi warm starts kept between calls (Note [warm starts] in estimators.py)."""
    maps = _local_maps(model, x[:, t], states, kinds, max_readout)
    return [(m.kind, m.layer, float(r.mean()))
            for m, r in zip(maps, radius_all(maps, estimator, seed=seed, k=k,  # k capped per map
                                             restarts=restarts, warm=warm), strict=True)]


@renamed_kwargs(steps="time_steps")
def radii(model: nn.Module, x: Tensor, *, estimator: str = "auto",
          kinds: Sequence[str] | None = None, time_steps: Sequence[int] | None = None,
          seed: int = 0, k: int | None = None, max_readout: int = MAX_READOUT) -> RadiiReport:
    """Radius of every local Jacobian (time, depth, input, readout) per layer and step.

    Args:
        model: a DeepRNN or a torch.nn.RNN/LSTM/GRU (analysed through ``from_torch``).
        x: inputs ``(B, T, D)``; ``(T, B, D)`` for a torch module with ``batch_first=False``.
        estimator: "auto", "exact", "krylov", "spectral_norm" or "msv" (see :func:`radius`).
        kinds: subset of the four kinds (default all).
        time_steps: 0-based time steps to analyse (default every step; ``steps`` is its
            deprecated name).
        seed: seeds the estimators and square subsets.
        k: Krylov dimension (krylov), capped at each map's width.
        max_readout: skip readouts with more outputs than this.

    Returns:
        A :class:`RadiiReport`; ``report.values["time"][0]`` is layer 0's time radius per step.

    Raises:
        TypeError: ``model`` has no recurrent layers; an option of the wrong kind.
        ValueError: NaN/Inf weights (checked first: LAPACK crashes on them), bad or empty
            ``x``, steps or options; a state or Jacobian overflowing to NaN/Inf
            (``NonFiniteError``).

    Example:
        >>> import torch
        >>> report = radii(torch.nn.GRU(3, 16, 2, batch_first=True), torch.randn(4, 10, 3))
        >>> sorted(report.values)
        ['depth', 'input', 'time']
    """
    net, x = prepare(model, x)
    est = parse_enum(Estimator, estimator, "estimator").value
    chosen = _steps(time_steps, x.shape[1])
    want = _parse_kinds(kinds)
    check_estimator_options(k=k, seed=seed)
    check_int("max_readout", max_readout, low=0)
    traj = _trajectory(net, x[:, :chosen[-1]])  # states before every chosen step
    report = RadiiReport(est, chosen)
    for t in chosen:
        for kind, layer, r in radii_at(net, x, traj[t], t, est, want, seed, k, max_readout):
            report.values.setdefault(kind, {}).setdefault(layer, []).append(r)
    return report
