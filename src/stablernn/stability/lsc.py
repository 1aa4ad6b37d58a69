"""LSC pre-training: push every local Jacobian radius to the Local Stability Condition target.

Herranz-Celotti & Rouat, arXiv 2308.12075 (section 2). In a deep RNN the gradient from the
corner ``(L, T)`` to node ``(l, t)`` sums over ``C(dt + dl, dt)`` grid paths; with every time and
depth Jacobian at radius 1 that sum explodes combinatorially, with radius 0.5 it stays bounded
(``sum_k C(n, k) 0.5^n = 1``). Pre-training walks real input sequences step by step with the
state carried forward and takes one optimiser step per time step on
``mean_maps mean_batch (radius - target)^2``; radii come from :mod:`.jacobians` with the
eigenvalue-derivative gradient (Note [differentiable radius] there), so no model is rebuilt and
no eigendecomposition is differentiated.

Targets: ``rho`` for time, depth and input maps (``"unbalanced"``: time ``T/(L+T)``, depth and
input ``L/(L+T)``), 1 for the readout. Feed-forward ``nn.Sequential`` MLPs use per-layer maps
``diag(act'(a)) W`` with target 1. LRU stacks also have the reference code's gradient-free
variant (``method="rescale"``): ``|lambda|`` is set so the time radius is on target and the input
matrix ``B`` is rescaled toward the depth / input target, iterated.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..cells.base import check_input
from ..cells.lru import LRUCell
from ..plotting import new_axes
from .jacobians import Estimator, LocalMap, as_deep_rnn, local_maps, parse_enum, radius_all
from .radii import radii

__all__ = ["LSCReport", "default_lr", "lsc_pretrain", "lsc_targets"]

RECURRENT_NAMES = ("weight_hh", "weight_a", "weight_c")
INPUT_NAMES = ("weight_ih", "B_re", "B_im")
METHODS = ("auto", "gradient", "rescale")
EMA = 0.1  # weight of the newest step in the running radii (Note [running radii])


@dataclass
class LSCReport:
    """What LSC pre-training did.

    Attributes:
        targets: target radius per kind. before / after: batch- and step-mean radius per
            ``"kind layer"`` key, measured with ``eval_estimator`` on held sequences.
        converged: every radius stayed within ``tol`` for ``patience`` consecutive updates.
        seconds: the whole call; update_seconds: the updates alone (without measuring before /
            after).
        history: per update, the batch-mean radius of every map (``"kind layer"`` keys).
    """

    targets: dict[str, float]
    method: str
    before: dict[str, float]
    after: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    update_seconds: float = 0.0
    converged: bool = False
    best_step: int = 0
    tol: float = 0.08
    message: str = ""
    history: list[dict[str, float]] = field(default_factory=list)

    def max_error(self, which: str = "after") -> float:
        """Largest ``|radius - target|`` over every map."""
        radii = getattr(self, which)
        return max((abs(v - self.targets[k.split()[0]]) for k, v in radii.items()), default=0.0)

    def table(self) -> str:
        lines = [f"{'map':12s} {'target':>7s} {'before':>8s} {'after':>8s}"]
        for key, after in self.after.items():
            lines.append(f"{key:12s} {self.targets[key.split()[0]]:7.3f} "
                         f"{self.before.get(key, math.nan):8.4f} {after:8.4f}")
        return "\n".join(lines + [self.message])

    def to_dict(self) -> dict[str, Any]:
        return {"targets": self.targets, "method": self.method, "before": self.before,
                "after": self.after, "steps": self.steps, "seconds": round(self.seconds, 3),
                "update_seconds": round(self.update_seconds, 3),
                "converged": self.converged, "best_step": self.best_step, "tol": self.tol,
                "message": self.message, "max_error_after": self.max_error()}

    def plot(self, ax: Any = None) -> Any:
        """Radius of every map against the update step, targets dashed."""
        ax = new_axes(ax)
        for key in (self.history[0] if self.history else {}):
            ax.plot([h[key] for h in self.history], label=key, lw=1)
        for target in set(self.targets.values()):
            ax.axhline(target, color="k", ls="--", lw=0.8)
        ax.set(xlabel="update", ylabel="radius (batch mean)", title="LSC pre-training")
        ax.legend(fontsize="small", ncol=2)
        return ax


def lsc_targets(rho: float | str, num_layers: int, seq_len: int,
                targets: dict[str, float] | None = None) -> dict[str, float]:
    """Target radius per kind: ``rho`` (or the unbalanced split) and 1 for the readout."""
    if rho == "unbalanced":
        t_time = seq_len / (num_layers + seq_len)
        out = {"time": t_time, "depth": 1 - t_time, "input": 1 - t_time}
    elif isinstance(rho, (int, float)) and not isinstance(rho, bool) and rho > 0 \
            and math.isfinite(rho):
        out = {"time": float(rho), "depth": float(rho), "input": float(rho)}
    else:
        raise ValueError(f"rho must be a positive number or 'unbalanced', got {rho!r}")
    out["readout"] = 1.0
    for kind, value in (targets or {}).items():
        if kind not in out:
            raise ValueError(f"unknown target kind {kind!r}; valid: {', '.join(out)}")
        if not value > 0:
            raise ValueError(f"target for {kind} must be > 0, got {value}")
        out[kind] = float(value)
    return out


# --------------------------------------------------------------------------- model access


def _is_mlp(model: nn.Module) -> bool:
    return isinstance(model, nn.Sequential) and any(isinstance(m, nn.Linear) for m in model)


def _mlp_blocks(model: nn.Sequential) -> list[nn.Sequential]:
    """Split an MLP into blocks, each one Linear and the modules after it up to the next."""
    blocks: list[list[nn.Module]] = []
    for module in model:
        if isinstance(module, nn.Linear) or not blocks:
            blocks.append([])
        blocks[-1].append(module)
    return [nn.Sequential(*b) for b in blocks]


def _mlp_maps(blocks: Sequence[nn.Module], x: Tensor) -> list[LocalMap]:
    """Per-layer maps ``h[l-1] -> h[l]`` of an MLP (kind "depth", target 1)."""
    maps, h = [], x
    for l, block in enumerate(blocks):
        with torch.no_grad():
            out = block(h)
        maps.append(LocalMap("depth", l, block, h, out.shape[-1]))
        h = out
    return maps


def _key(m: LocalMap) -> str:
    return f"{m.kind} {m.layer}"


def _check_inputs(inputs: Tensor, width: int, rank: int) -> None:
    check_input(inputs, width, rank=rank, name="inputs")
    if inputs.shape[0] == 0 or (rank == 3 and inputs.shape[1] == 0):
        raise ValueError(f"inputs is empty (shape {tuple(inputs.shape)}); pass at least one "
                         f"sequence with at least one step")


# --------------------------------------------------------------------------- measurement


def _measure(model: nn.Module, x: Tensor, estimator: str, steps: int, seed: int) -> dict:
    """Step- and batch-mean radius of every map on held inputs (no gradient)."""
    if _is_mlp(model):
        maps = _mlp_maps(_mlp_blocks(model), x)
        return {_key(m): float(r.mean()) for m, r in zip(maps, radius_all(maps, estimator,
                                                                           seed=seed))}
    T = x.shape[1]
    chosen = sorted({round(i * (T - 1) / max(1, steps - 1)) for i in range(min(steps, T))})
    report = radii(model, x, estimator=estimator, steps=chosen, seed=seed)
    return {f"{kind} {layer}": report.mean(kind, layer)
            for kind, per_layer in report.values.items() for layer in per_layer}


# --------------------------------------------------------------------------- heuristics


@torch.no_grad()
def _rescale(model: nn.Module, current: dict[str, float], targets: dict[str, float]) -> None:
    """Reference heuristic: scale each recurrent / input weight by clip(target/r, 0.85, 1.15)."""
    for l, cell in enumerate(getattr(model, "cells", [])):
        for names, key in ((RECURRENT_NAMES, f"time {l}"),
                           (INPUT_NAMES, f"input {l}" if l == 0 else f"depth {l}")):
            r = current.get(key)
            if not r:
                continue
            factor = min(max(targets[key.split()[0]] / r, 0.85), 1.15)
            for name in names:
                w = getattr(cell, name, None)
                if isinstance(w, nn.Parameter):
                    w.mul_(factor)


@torch.no_grad()
def _shuffle(model: nn.Module, gen: torch.Generator, p: float = 1 / 3) -> None:
    """Reference heuristic: permute the entries of each weight matrix with probability p."""
    for w in model.parameters():
        if w.dim() == 2 and torch.rand((), generator=gen) < p:
            flat = w.reshape(-1)
            flat.copy_(flat[torch.randperm(flat.numel(), generator=gen).to(w.device)])


# --------------------------------------------------------------------------- the loops


class _Walker:
    """Cycles through batches of sequences, step by step, carrying the state (detached)."""

    def __init__(self, model, inputs: Tensor, batch_size: int, seed: int) -> None:
        self.model, self.inputs, self.batch_size = model, inputs, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order, self.t, self.x, self.states = [], 0, None, None

    def next(self) -> tuple[Tensor, list]:
        if self.x is None or self.t == self.x.shape[1]:
            if len(self.order) < self.batch_size:
                self.order = torch.randperm(len(self.inputs), generator=self.gen).tolist()
            idx, self.order = self.order[:self.batch_size], self.order[self.batch_size:]
            self.x, self.t = self.inputs[idx], 0
            self.states = self.model.initial_state(len(idx), device=self.x.device,
                                                   dtype=self.x.dtype)
        return self.x[:, self.t], self.states

    @torch.no_grad()
    def advance(self) -> None:
        self.states = self.model.step(self.x[:, self.t], self.states)[1]
        self.t += 1


def _loss(maps: list[LocalMap], targets: dict, estimator: str, k: int | None, seed: int,
          warm: dict):
    losses, means = [], {}
    radii_ = radius_all(maps, estimator, differentiable=True, seed=seed, k=k, restarts=0,
                        warm=warm)
    for m, r in zip(maps, radii_):
        losses.append((r - targets[m.kind]).square().mean())
        means[_key(m)] = float(r.detach().mean())
    return torch.stack(losses).mean(), means


def _gradient_loop(model, params, walker, blocks, inputs, targets, opts, report, bar):
    opt = torch.optim.AdamW(params, lr=opts["lr"], weight_decay=opts["weight_decay"])
    gen = torch.Generator().manual_seed(opts["seed"])
    best, best_state, streak, t0 = math.inf, None, 0, time.perf_counter()
    ema: dict[str, float] = {}
    warm: dict = {}  # Arnoldi warm starts between consecutive steps (Note [warm starts])
    for step in range(opts["steps"]):
        if blocks is not None:
            idx = torch.randint(len(inputs), (opts["batch_size"],), generator=gen)
            maps = _mlp_maps(blocks, inputs[idx])
        else:
            x_t, states = walker.next()
            if walker.t == 0:
                warm.clear()  # new sequences: last step's eigenvectors are no head start
            maps = local_maps(model, x_t, states)
        # one seeded square subset for the whole call (SPEC 1.2), the one _measure reports
        loss, means = _loss(maps, targets, opts["estimator"], opts["k"], opts["seed"], warm)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if opts["rescale"]:
            _rescale(model, means, targets)
        if opts["shuffle"]:
            _shuffle(model, gen)
        if walker is not None:
            walker.advance()
        report.history.append(means)
        # Note [running radii]: one step's batch-mean radius is noisy (it depends on where the
        # walk is in the sequence); stopping and best-weight decisions use a running mean.
        ema = {k: v if k not in ema else (1 - EMA) * ema[k] + EMA * v for k, v in means.items()}
        errs = [abs(v - targets[k.split()[0]]) for k, v in ema.items()]
        err, mean_err = max(errs), sum(errs) / len(errs)
        streak = streak + 1 if err < opts["tol"] else 0
        if mean_err < best:
            best, report.best_step = mean_err, step
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        bar.update(1)
        bar.set_postfix(max_err=f"{err:.3f}")
        report.steps = step + 1
        if streak >= opts["patience"]:
            report.converged = True
            break
        if opts["max_seconds"] and time.perf_counter() - t0 > opts["max_seconds"]:
            break
    if best_state is not None and not report.converged:
        model.load_state_dict(best_state)


@torch.no_grad()
def _lru_rescale_loop(model, held, targets, opts, report, bar) -> None:
    """Gradient-free LRU variant: set |lambda| and rescale B until radii are on target."""
    for step in range(opts["steps"]):
        current = _measure(model, held, "exact", 4, opts["seed"])
        report.history.append(current)
        err = max(abs(v - targets[k.split()[0]]) for k, v in current.items())
        report.steps = step + 1
        bar.update(1)
        if err < opts["tol"]:
            report.converged = True
            return
        for l, cell in enumerate(model.cells):
            mag = cell.magnitude()
            new_mag = (mag * targets["time"] / mag.max()).clamp(1e-4, 1 - 1e-6)
            cell.nu_log.copy_(torch.log(-torch.log(new_mag)))
            r = current.get(f"input {l}" if l == 0 else f"depth {l}")
            if r:
                scale = targets["input" if l == 0 else "depth"] / r
                cell.B_re.mul_(scale)
                cell.B_im.mul_(scale)
        if model.readout is not None and isinstance(model.readout, nn.Linear) and \
                f"readout {model.num_layers}" in current:
            model.readout.weight.mul_(targets["readout"] / current[f"readout {model.num_layers}"])


def default_lr(model: nn.Module, base: float = 2e-2, width0: int = 64) -> float:
    """LSC's default AdamW learning rate: ``base`` up to ``width0`` units in the widest layer,
    ``base * (width0 / width)^2`` above (Note [width-scaled lr]): 5e-3 at 128, 1.25e-3 at 256.

    Example:
        >>> default_lr(torch.nn.GRU(3, 256, num_layers=4))
        0.00125
    """
    if _is_mlp(model):
        width = max(m.out_features for m in model if isinstance(m, nn.Linear))
    else:
        width = max(c.hidden_size for c in as_deep_rnn(model).cells)
    return base * min(1.0, width0 / width) ** 2


# Note [width-scaled lr]: Adam moves every weight by about lr per update whatever its gradient's
# size, and a unit's pre-activation sums fan_in such moves, so one lr changes a wide layer's
# gates much faster than a narrow one's. On 4-layer GRUs fed copy-task inputs
# (benchmarks/bench_lsc.py) a fixed 2e-2 saturates the update gates of 128- and 256-unit layers
# (z -> 1, where the time radius sticks at 1 with no gradient) and never reaches rho = 0.5;
# so do 1e-2 at 128 units and 7.2e-3 and 5e-3 at 256. 5e-3 at 128 and 2.5e-3 or 1.25e-3 at 256
# reach it (65, 99 and 159 updates). Up to 64 units the lr stays 2e-2: fastest on narrow stacks,
# and on spike-latency digits a 2-layer 64-unit GRU pre-trained to rho = 1 with 2e-2 learned
# (0.52 / 0.60 test accuracy, seeds 0 / 1) where the same radii reached with 1e-2 did not
# (0.07 / 0.07): the radii do not pin the weights down, and the path matters.


def lsc_pretrain(model: nn.Module, inputs: Tensor, *, rho: float | str = 0.5,
                 targets: dict[str, float] | None = None, estimator: str = "auto",
                 k: int | None = 16, method: str = "auto", steps: int = 1000,
                 lr: float | None = None,
                 weight_decay: float = 1e-4, batch_size: int = 16, tol: float = 0.08,
                 patience: int = 20, max_seconds: float | None = None, rescale: bool = False,
                 shuffle: bool = False, eval_steps: int = 8, eval_estimator: str = "auto",
                 seed: int = 0, progress: bool = False) -> LSCReport:
    """Pre-train ``model`` in place so every local Jacobian radius sits at its LSC target.

    Args:
        model: a DeepRNN, a ``torch.nn.RNN/LSTM/GRU`` (changed in place, stays a torch module)
            or an ``nn.Sequential`` MLP.
        inputs: real task inputs, ``(N, T, D)`` batch-first (``(N, D)`` for an MLP).
        rho: target for time / depth / input maps, or "unbalanced"; readout target is 1.
        targets: per-kind overrides, e.g. ``{"time": 0.9}``.
        estimator: radius estimator for the loss ("auto": exact eigendecomposition up to 64
            units, Arnoldi above; see :func:`~stablernn.stability.radius_all`).
        k: Krylov dimension when Arnoldi is used; it starts from the previous step's
            eigenvectors, so 16 is enough (see docs/lsc.md for the accuracy measured).
        method: "gradient", "rescale" (LRU only, gradient-free) or "auto" (rescale for LRU
            stacks, gradient otherwise).
        steps: budget of updates (one per time step walked). lr, weight_decay: AdamW; lr
            defaults to :func:`default_lr` of the widest layer (Note [width-scaled lr]).
        batch_size: sequences walked in parallel. tol, patience: stop once every batch-mean
            radius is within ``tol`` of its target for ``patience`` consecutive updates.
        max_seconds: optional time budget. rescale, shuffle: the reference code's heuristics.
        eval_steps, eval_estimator: how the before / after radii are measured (held batch).

    Returns:
        An :class:`LSCReport`; when the budget ends first, ``converged`` is False and
        ``message`` says so (the best weights seen are kept).

    Raises:
        ValueError: rho <= 0, empty or non-finite inputs, bad options. TypeError: no recurrent
            layers (and not an MLP).

    Example:
        >>> gru = torch.nn.GRU(3, 16, num_layers=2, batch_first=True)
        >>> report = lsc_pretrain(gru, torch.randn(16, 20, 3), rho=0.5, steps=400)
        >>> report.max_error() < 0.1
        True
    """
    lr = default_lr(model) if lr is None else lr
    method = _check_options(method, steps, lr, batch_size, tol, patience)
    parse_enum(Estimator, estimator, "estimator")
    t_start = time.perf_counter()
    if _is_mlp(model):
        first = next(m for m in model if isinstance(m, nn.Linear))
        _check_inputs(inputs, first.in_features, rank=2)
        tgt = {k: 1.0 for k in ("time", "depth", "input", "readout")}
        tgt.update(targets or {})
        net, blocks, held, walker = model, _mlp_blocks(model), inputs[:64], None
    else:
        net = as_deep_rnn(model)
        _check_inputs(inputs, net.input_size, rank=3)
        tgt = lsc_targets(rho, net.num_layers, inputs.shape[1], targets)
        blocks, held = None, inputs[:batch_size]
        walker = _Walker(net, inputs, min(batch_size, len(inputs)), seed)
        if method == "auto":
            lru = all(isinstance(c, LRUCell) for c in net.cells)
            method = "rescale" if lru else "gradient"
        if method == "rescale" and not all(isinstance(c, LRUCell) for c in net.cells):
            raise ValueError("method='rescale' is the gradient-free LRU variant; this stack "
                             "has non-LRU cells, use method='gradient'")
    method = "gradient" if method == "auto" else method
    report = LSCReport(tgt, method, _measure(net, held, eval_estimator, eval_steps, seed), tol=tol)
    opts = {"steps": steps, "lr": lr, "weight_decay": weight_decay, "estimator": estimator, "k": k,
            "batch_size": batch_size, "tol": tol, "patience": patience, "seed": seed,
            "max_seconds": max_seconds, "rescale": rescale, "shuffle": shuffle}
    t_updates = time.perf_counter()
    with tqdm(total=steps, disable=not progress, desc="LSC") as bar:
        if method == "rescale":
            _lru_rescale_loop(net, held, tgt, opts, report, bar)
        else:
            params = [p for p in net.parameters() if p.requires_grad]
            _gradient_loop(net, params, walker, blocks, inputs, tgt, opts, report, bar)
    report.update_seconds = time.perf_counter() - t_updates
    report.after = _measure(net, held, eval_estimator, eval_steps, seed)
    report.seconds = time.perf_counter() - t_start
    report.message = _message(report)
    return report


def _check_options(method: str, steps: int, lr: float, batch_size: int, tol: float,
                   patience: int) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("patience", patience)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    return method


def _message(report: LSCReport) -> str:
    err = report.max_error()
    if report.converged and err <= report.tol:
        return (f"reached the LSC targets in {report.steps} updates ({report.seconds:.1f} s); "
                f"largest |radius - target| = {err:.3f}")
    why = "converged on the walked batches" if report.converged else \
        f"did not converge within its budget of {report.steps} updates"
    return (f"LSC {why}; largest |radius - target| on held sequences = {err:.3f} > tol "
            f"{report.tol}: raise steps, lr or batch_size") if err > report.tol else \
        (f"LSC {why}; held-sequence radii are within tol ({err:.3f}); kept the best weights "
         f"(update {report.best_step})")
