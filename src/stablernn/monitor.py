"""``Monitor``: stability measured during the user's own training loop (docs/monitor.md).

Every ``every`` steps the monitor measures, on one fixed probe batch, the radii of the local
Jacobians per layer (docs/algorithms.md section 1.2), the growth rates of the gradient flow over
the depth x time grid (1.3), the leading Lyapunov exponents (1.4) and, on request, the VAA
multistability measure (1.5); it records them as flat scalars, hands them to writers (JSONL,
CSV, TensorBoard, any callable) and warns once when a radius leaves a chosen band. Measuring
leaves training untouched: train/eval modes, ``.grad``, ``requires_grad``, the parameters and
torch's random state are the same after a call as before it.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._checks import check_bool, check_float, check_int, check_sequence, is_real
from ._io import check_folder, json_safe
from .adapters import as_deep_rnn, is_time_major
from .errors import NonFiniteError, NonFiniteWeightsError
from .plotting import facet_axes, line_style, new_figure
from .stability.estimators import Estimator, check_estimator_options
from .stability.flow import gradient_flow
from .stability.local_maps import MAX_READOUT, Kind, _check_x, _parse_kinds, parse_enum
from .stability.lyapunov import lyapunov_exponents
from .stability.radii import radii
from .stability.vaa import vaa
from .stack import DeepRNN

__all__ = ["CSVWriter", "JSONLWriter", "MEASURES", "Monitor", "MonitorWarning",
           "TensorBoardWriter"]

MEASURES = ("radii", "flow", "lyapunov", "vaa")
DEFAULT_MEASURES = ("radii", "flow", "lyapunov")  # VAA is off by default: it is costly
DEFAULT_KINDS = ("time", "depth", "input")

Writer = Callable[[int, dict[str, float]], Any]


class MonitorWarning(UserWarning):
    """A radius left the monitor's band, or a measurement was not finite (diverged model)."""


# --------------------------------------------------------------------------------- writers


def _file_path(path: Any, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} path must be a str or a path, got {type(path).__name__} "
                        f"({path!r})")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} path {path} is a folder; give a file name")
    check_folder(path.parent, f"folder of the {what} file")
    return path


class JSONLWriter:
    """Append each record as one JSON line (NaN/Inf written as ``null``).

    Args:
        path: the ``.jsonl`` file; its folder is created on the first write.
        append: keep an existing file's lines (resuming a run); by default the first write
            replaces the file.

    Example:
        >>> w = JSONLWriter("stability.jsonl")
        >>> w(0, {"step": 0, "radius/time/layer0": 0.9})
        >>> Path("stability.jsonl").read_text()
        '{"step": 0, "radius/time/layer0": 0.9}\\n'
    """

    def __init__(self, path: str | os.PathLike, *, append: bool = False) -> None:
        self.path = _file_path(path, "JSONL")
        self._mode = "a" if check_bool("append", append) else "w"

    def __call__(self, step: int, record: dict[str, float]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, self._mode, encoding="utf-8") as f:
            f.write(json.dumps(json_safe(record), allow_nan=False) + "\n")
        self._mode = "a"

    def close(self) -> None:
        """Nothing to release (each record opens and closes the file)."""


class CSVWriter:
    """Append each record as one CSV row; the columns are the first record's keys.

    Args:
        path: the ``.csv`` file; its folder is created on the first write.
        append: keep an existing file's rows (its header must list the same columns); by
            default the first write replaces the file.

    Raises:
        ValueError: a later record with other keys, or an appended file with another header.

    Example:
        >>> w = CSVWriter("stability.csv")
        >>> w(0, {"step": 0, "lyapunov/0": -0.5})
        >>> Path("stability.csv").read_text().splitlines()
        ['step,lyapunov/0', '0,-0.5']
    """

    def __init__(self, path: str | os.PathLike, *, append: bool = False) -> None:
        self.path = _file_path(path, "CSV")
        self._append = check_bool("append", append)
        self.columns: list[str] | None = None

    def __call__(self, step: int, record: dict[str, float]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(record)
        if self.columns is None:
            header = self._existing_header() if self._append else None
            if header is not None and header != keys:
                raise ValueError(f"{self.path} has the columns {header}, these records have "
                                 f"{keys}; write to a new file or pass append=False")
            mode = "a" if header is not None else "w"
            self.columns = keys
            with open(self.path, mode, newline="", encoding="utf-8") as f:
                if header is None:
                    csv.writer(f).writerow(keys)
        elif keys != self.columns:
            extra = sorted(set(keys) ^ set(self.columns))
            raise ValueError(f"record of step {step} has other columns than the first one "
                             f"({', '.join(extra)}); a CSV file keeps one set of columns")
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow([record[k] for k in keys])

    def _existing_header(self) -> list[str] | None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with open(self.path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), None)

    def close(self) -> None:
        """Nothing to release (each record opens and closes the file)."""


class TensorBoardWriter:
    """Write each value of a record as a TensorBoard scalar at its step.

    Args:
        target: a ``torch.utils.tensorboard.SummaryWriter`` (or any object with
            ``add_scalar``; it is flushed, never closed here), or a log folder, for which a
            SummaryWriter is made (the ``[tensorboard]`` extra) and closed by :meth:`close`.

    Raises:
        ImportError: a log folder is given and TensorBoard is not installed.

    Example:
        >>> tb = TensorBoardWriter("tb-logs")  # doctest: +SKIP
        >>> tb(10, {"step": 10, "lyapunov/0": -0.2})  # doctest: +SKIP
    """

    def __init__(self, target: Any) -> None:
        if hasattr(target, "add_scalar"):
            self.writer, self._owned = target, False
        elif isinstance(target, (str, os.PathLike)):
            check_folder(target, "TensorBoard log folder")
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError("TensorBoard logging needs TensorBoard: pip install "
                                  "'stablernn[tensorboard]'") from err
            self.writer, self._owned = SummaryWriter(log_dir=str(target)), True
        else:
            raise TypeError(f"TensorBoardWriter takes a SummaryWriter or a log folder, got "
                            f"{type(target).__name__} ({target!r})")

    def __call__(self, step: int, record: dict[str, float]) -> None:
        for key, value in record.items():
            if key != "step":
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        """Close the SummaryWriter if this writer made it (else only flush it)."""
        (self.writer.close if self._owned else self.writer.flush)()


def _writer(spec: Any, name: str) -> Writer:
    if hasattr(spec, "add_scalar"):  # a SummaryWriter (not callable itself)
        return TensorBoardWriter(spec)
    if isinstance(spec, (str, os.PathLike)):
        suffix = Path(spec).suffix.lower()
        if suffix == ".jsonl":
            return JSONLWriter(spec)
        if suffix == ".csv":
            return CSVWriter(spec)
        if suffix == "":
            return TensorBoardWriter(spec)
        raise ValueError(f"{name}={str(spec)!r}: a file writer needs a .jsonl or .csv name "
                         f"(a path without a suffix is a TensorBoard log folder); for another "
                         f"folder name pass TensorBoardWriter(path)")
    if callable(spec):
        return spec
    raise TypeError(f"{name} must be a .jsonl / .csv path, a TensorBoard log folder or "
                    f"SummaryWriter, or a callable writer(step, record), got "
                    f"{type(spec).__name__} ({spec!r})")


def _writers(writer: Any) -> list[Writer]:
    if writer is None:
        return []
    if isinstance(writer, (list, tuple)):
        return [_writer(w, f"writer[{i}]") for i, w in enumerate(writer)]
    return [_writer(writer, "writer")]


# --------------------------------------------------------------------------------- checks


def _check_band(band: Any, kinds: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``band`` as ``{kind: (low, high)}``: a pair applies to every measured kind, a dict to
    the kinds it names."""
    if band is None:
        return {}

    def pair(name: str, value: Any) -> tuple[float, float]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) \
                or len(value) != 2:
            raise TypeError(f"{name} must be a pair (low, high) of radii, e.g. (0.5, 1.5), "
                            f"got {value!r}")
        lo = check_float(f"{name}[0]", value[0], low=0.0)
        hi = check_float(f"{name}[1]", value[1], low=0.0)
        if not lo < hi:
            raise ValueError(f"{name} must have low < high, got ({lo}, {hi})")
        return lo, hi

    if isinstance(band, Mapping):
        unknown = sorted(set(band) - set(kinds), key=str)
        if unknown:
            raise ValueError(f"band names kind(s) {', '.join(map(repr, unknown))} that are not "
                             f"measured; measured kinds: {', '.join(map(repr, kinds))}")
        return {k: pair(f"band[{k!r}]", v) for k, v in band.items()}
    lo_hi = pair("band", band)
    return dict.fromkeys(kinds, lo_hi)


def _check_measures(measures: Any) -> list[str]:
    if isinstance(measures, str):
        measures = (measures,)
    names = check_sequence("measures", measures, lambda n, v: v)
    for i, m in enumerate(names):
        if m not in MEASURES:
            raise ValueError(f"unknown measure measures[{i}]={m!r}; valid: "
                             f"{', '.join(map(repr, MEASURES))}")
    return list(dict.fromkeys(names))


def _optional_int(name: str, value: Any) -> int | None:
    return None if value is None else check_int(name, value)


def _radius_steps(length: int, count: int) -> list[int]:
    """``count`` evenly spaced steps of ``0..length-1`` ending at the last one, skipping step 0
    (the initial state) when there is room: e.g. ``[16, 31]`` for 32 steps and count 2."""
    count = min(count, length)
    picks = torch.linspace(0, length - 1, count + 1)[1:] if count < length \
        else torch.arange(length, dtype=torch.float32)
    return sorted(set(picks.round().long().tolist()))


def _cuda_devices(model: nn.Module) -> list[int]:
    """The CUDA devices of ``model``'s parameters, whose random states a fork saves."""
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


# --------------------------------------------------------------------------------- monitor


class Monitor:
    """Stability of a model measured every ``every`` steps of the user's own training loop.

    Call :meth:`step` once per training step (after the optimiser step); it measures when
    ``step % every == 0`` and is a no-op otherwise. Each measurement runs on the fixed probe
    batch, in eval mode, without gradients on the parameters and with torch's random state
    forked: the training run is the same with or without the monitor.

    Args:
        model: a DeepRNN or a torch.nn.RNN/LSTM/GRU (its Parameters are the ones measured).
        probe_inputs: a fixed batch ``(B, T, D)`` (``(T, B, D)`` for a torch module with
            ``batch_first=False``), copied; at most ``probe_batch`` sequences and
            ``probe_steps`` steps of it are used (``None``: all).
        every: measure every this many steps.
        kinds: radius kinds measured per layer ("time", "depth", "input", "readout").
        measures: what is measured: "radii", "flow", "lyapunov" (default) and "vaa".
        writer: where records go: a ``.jsonl`` / ``.csv`` path, a TensorBoard log folder (a
            path without a suffix) or ``SummaryWriter``, a callable ``writer(step, record)``,
            or a list of them.
        band: ``(low, high)``: warn (once per layer and kind) when a radius leaves it; a dict
            ``{kind: (low, high)}`` sets one band per kind; ``None`` (default): no warnings,
            since healthy radii depend on the cell and the input scale (docs/monitor.md).
        estimator: radius estimator (see :func:`stablernn.stability.radius`).
        k: Krylov dimension of the "krylov" estimator (capped at each map's width).
        radius_steps: radii are averaged over this many evenly spaced probe steps.
        lyapunov_k: number of Lyapunov exponents (capped at the state width).
        vaa_time_steps: constant-input steps of the VAA measure.
        loss: the gradient-flow loss (default: last step's outputs, batch mean).
        seed: seeds every estimator, so successive records differ only by the weights.

    Attributes:
        history: one dict per measurement: ``step``, ``radius/<kind>/layer<l>``,
            ``flow/time_growth``, ``flow/depth_growth`` (two layers or more),
            ``flow/time_rate/layer<l>``, ``lyapunov/<i>``, ``vaa/vaa``, ``vaa/attractors``
            and ``monitor/seconds`` (that measurement's cost).
        seconds: total wall time spent in :meth:`step` and :meth:`measure`.
        probe: the probe actually used, batch-first.
        time_steps: the probe steps the radii are averaged over.

    Raises:
        TypeError / ValueError: a model without recurrent layers, a probe of the wrong shape,
            dtype or device (or with NaN/Inf), ``every < 1``, an unknown kind or measure, a
            bad band or writer.

    Example:
        >>> model = DeepRNN.build("gru", 3, 8, num_layers=2)
        >>> monitor = Monitor(model, torch.randn(4, 12, 3), every=10)
        >>> for step in range(25):
        ...     record = monitor.step(step)  # after optimizer.step() in a real loop
        >>> [r["step"] for r in monitor.history], "radius/time/layer1" in monitor.history[0]
        ([0, 10, 20], True)
    """

    def __init__(self, model: nn.Module, probe_inputs: Tensor, *, every: int = 100,
                 kinds: Sequence[str] = DEFAULT_KINDS,
                 measures: Sequence[str] = DEFAULT_MEASURES, writer: Any = None,
                 band: Any = None, estimator: str = "krylov", k: int = 16,
                 radius_steps: int = 2, probe_batch: int | None = 8,
                 probe_steps: int | None = 32, lyapunov_k: int = 4,
                 vaa_time_steps: int = 1000, loss: Callable[[Tensor], Tensor] | None = None,
                 seed: int = 0) -> None:
        net = as_deep_rnn(model)
        time_major = is_time_major(model)
        _check_x(net, probe_inputs, "probe_inputs", time_major)
        self.model = model
        self.every = check_int("every", every)
        self.kinds = [k_.value for k_ in dict.fromkeys(_parse_kinds(kinds))]
        self.measures = _check_measures(measures)
        self.estimator = parse_enum(Estimator, estimator, "estimator").value
        check_estimator_options(k=k, seed=seed)
        self.k, self.seed = k, seed
        self.radius_steps = check_int("radius_steps", radius_steps)
        self.lyapunov_k = check_int("lyapunov_k", lyapunov_k)
        self.vaa_time_steps = check_int("vaa_time_steps", vaa_time_steps)
        if loss is not None and not callable(loss):
            raise TypeError(f"loss must be None or a function of the outputs, got "
                            f"{type(loss).__name__}")
        self.loss = loss
        batch = _optional_int("probe_batch", probe_batch)
        steps = _optional_int("probe_steps", probe_steps)
        x = probe_inputs.detach()
        x = x.transpose(0, 1) if time_major else x
        # batch-first and contiguous; a None slice keeps everything
        self.probe = x[:batch, :steps].clone(memory_format=torch.contiguous_format)
        if "flow" in self.measures and self.probe.shape[1] < 2:
            raise ValueError(f"the gradient-flow growth rates need a probe of at least 2 steps, "
                             f"got {self.probe.shape[1]}; pass longer probe_inputs or "
                             f"probe_steps >= 2")
        self.time_steps = _radius_steps(self.probe.shape[1], self.radius_steps)
        self.band = _check_band(band, self.kinds)
        self.writers = _writers(writer)
        self.keys = self._keys(net)
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0
        self._warned: set[tuple[str, int]] = set()
        self._warned_nonfinite = False

    # ----- what is recorded ------------------------------------------------------------------
    def _keys(self, net: DeepRNN) -> dict[str, list[str]]:
        """The keys of each measure, from the model's structure (a NaN record has them all)."""
        L = net.num_layers
        layers = {"time": range(L), "depth": range(1, L), "input": range(1), "readout": []}
        if Kind.READOUT.value in self.kinds and net.readout is not None:
            with torch.no_grad(), torch.random.fork_rng(devices=_cuda_devices(self.model)):
                top = self.probe[:1, 0]
                for cell in net.layers:
                    top = cell(top, cell.initial_state(1, device=top.device, dtype=top.dtype))[0]
                if net.readout(top).shape[-1] <= MAX_READOUT:
                    layers["readout"] = [L]
        n = sum(c.state_size for c in net.layers)
        keys = {
            "radii": [f"radius/{kind}/layer{layer}" for kind in self.kinds
                      for layer in layers[kind]],
            "flow": ["flow/time_growth"] + (["flow/depth_growth"] if L > 1 else []) +
                    [f"flow/time_rate/layer{layer}" for layer in range(L)],
            "lyapunov": [f"lyapunov/{i}" for i in range(min(self.lyapunov_k, n))],
            "vaa": ["vaa/vaa", "vaa/attractors"]}
        return {m: keys[m] for m in self.measures}

    def _measure_one(self, what: str, net: DeepRNN, x: Tensor) -> dict[str, float]:
        if what == "radii":
            rep = radii(net, x, estimator=self.estimator, kinds=self.kinds,
                        time_steps=self.time_steps, seed=self.seed, k=self.k)
            return {f"radius/{kind}/layer{layer}": rep.mean(kind, layer)
                    for kind, per_layer in rep.values.items() for layer in per_layer}
        if what == "flow":
            flow = gradient_flow(net, x, self.loss)
            out = {"flow/time_growth": flow.time_growth}
            if net.num_layers > 1:
                out["flow/depth_growth"] = flow.depth_growth
            out.update({f"flow/time_rate/layer{layer}": float(r)
                        for layer, r in enumerate(flow.time_rate)})
            return out
        if what == "lyapunov":
            n = len(self.keys["lyapunov"])
            spec = lyapunov_exponents(net, x, k=n, seed=self.seed)
            return {f"lyapunov/{i}": float(e) for i, e in enumerate(spec.exponents)}
        multi = vaa(net, x, time_steps=self.vaa_time_steps, seed=self.seed)
        return {"vaa/vaa": multi.vaa, "vaa/attractors": float(multi.attractors)}

    # ----- the loop's calls ------------------------------------------------------------------
    def step(self, step: int) -> dict[str, float] | None:
        """Measure if ``step % every == 0`` (call it once per training step).

        Returns:
            The new record when a measurement ran, else None.

        Raises:
            TypeError / ValueError: ``step`` is not an int >= 0.
        """
        start = time.perf_counter()
        if check_int("step", step, low=0) % self.every != 0:
            self.seconds += time.perf_counter() - start
            return None
        return self._record(step, start, stacklevel=4)

    def measure(self, step: int) -> dict[str, float]:
        """Measure now, whatever ``every`` says (e.g. after the last step); the new record."""
        start = time.perf_counter()
        return self._record(check_int("step", step, low=0), start, stacklevel=4)

    def _record(self, step: int, start: float, stacklevel: int) -> dict[str, float]:
        record: dict[str, float] = {"step": step}
        failures = self._measure_all(record)
        record["monitor/seconds"] = time.perf_counter() - start
        self._warn(step, record, failures, stacklevel)
        self.history.append(record)
        for write in self.writers:
            write(step, dict(record))
        self.seconds += time.perf_counter() - start
        return record

    def _measure_all(self, record: dict[str, float]) -> list[str]:
        """Fill ``record``; returns why measures failed (their keys are NaN)."""
        model = self.model
        modes = [(m, m.training) for m in model.modules()]
        frozen = [p for p in model.parameters() if p.requires_grad]
        grads = [p.grad for p in model.parameters()]
        devices = _cuda_devices(model)
        failures: list[str] = []
        try:
            model.eval()
            for p in frozen:  # no graph to the parameters: .grad cannot change, and it is faster
                p.requires_grad_(False)
            with torch.random.fork_rng(devices=devices):
                net = as_deep_rnn(model)
                ref = next(net.parameters(), None)
                if ref is not None and self.probe.device != ref.device:
                    self.probe = self.probe.to(ref.device)
                for what in self.measures:
                    try:
                        values = self._measure_one(what, net, self.probe)
                        # the columns in the order of self.keys (a NaN record has the same)
                        record.update({k: values.get(k, math.nan) for k in self.keys[what]})
                        record.update(values)
                    except (NonFiniteWeightsError, NonFiniteError) as err:
                        record.update(dict.fromkeys(self.keys[what], math.nan))
                        failures.append(f"{what}: {err}")
                        if isinstance(err, NonFiniteWeightsError):  # the others fail alike
                            for rest in self.measures[self.measures.index(what) + 1:]:
                                record.update(dict.fromkeys(self.keys[rest], math.nan))
                            break
        finally:
            for p in frozen:
                p.requires_grad_(True)
            for p, g in zip(model.parameters(), grads, strict=True):
                if p.grad is not g:
                    p.grad = g
            for m, training in modes:  # pre-order: each module ends with its own mode
                m.train(training)
        return failures

    def _warn(self, step: int, record: dict[str, float], failures: list[str],
              stacklevel: int) -> None:
        bad = [k for k, v in record.items() if is_real(v) and not math.isfinite(v)]
        if bad and not self._warned_nonfinite:
            self._warned_nonfinite = True
            why = "; ".join(failures) if failures else f"{', '.join(bad)} not finite"
            warnings.warn(f"step {step}: the stability measurement is not finite ({why}); "
                          f"recorded as NaN. The model has probably diverged (warned once)",
                          MonitorWarning, stacklevel=stacklevel)
        for kind, (lo, hi) in self.band.items():
            for key in self.keys.get("radii", []):
                _, k_, layer_name = key.split("/")
                layer = int(layer_name.removeprefix("layer"))
                value = record.get(key, math.nan)
                if k_ != kind or (kind, layer) in self._warned or not math.isfinite(value) \
                        or lo <= value <= hi:
                    continue
                self._warned.add((kind, layer))
                warnings.warn(f"step {step}: the {kind} radius of layer {layer} is {value:.4g}, "
                              f"outside the band [{lo:g}, {hi:g}] (warned once per layer and "
                              f"kind)", MonitorWarning, stacklevel=stacklevel)

    # ----- cost, output ----------------------------------------------------------------------
    def overhead(self, total_seconds: float) -> float:
        """The monitor's share of a loop that took ``total_seconds`` (monitor included).

        Example:
            >>> Monitor(torch.nn.GRU(2, 4, batch_first=True), torch.randn(2, 5, 2)).overhead(10.0)
            0.0
        """
        total = check_float("total_seconds", total_seconds, low=0.0, low_open=True)
        return self.seconds / total

    def close(self) -> None:
        """Close the writers that hold resources (a TensorBoard writer the monitor made)."""
        for w in self.writers:
            close = getattr(w, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def plot(self, fig: Any = None) -> Any:
        """Curves over training: one panel per radius kind (a line per layer, the band shaded),
        the Lyapunov exponents and the gradient-flow growth rates against the step.

        Returns:
            The matplotlib Figure.

        Raises:
            ValueError: nothing measured yet. ImportError: matplotlib is missing.
        """
        if not self.history:
            raise ValueError("nothing to plot: no measurement yet; call monitor.step(step) at "
                             "a step divisible by every (step 0 measures) or monitor.measure()")
        panels = [("radius", kind) for kind in self.kinds if any(
            k.startswith(f"radius/{kind}/") for k in self.keys.get("radii", []))]
        panels += [(m, m) for m in ("lyapunov", "flow", "vaa") if m in self.measures]
        fig = fig if fig is not None else new_figure((10.0, 3.0 * math.ceil(len(panels) / 2)))
        steps = [r["step"] for r in self.history]
        for ax, (group, name) in zip(facet_axes(fig, len(panels), max_cols=2), panels,
                                     strict=True):
            prefix = f"radius/{name}/" if group == "radius" else f"{name}/"
            keys = [k for k in self.keys[group if group != "radius" else "radii"]
                    if k.startswith(prefix)]
            for i, key in enumerate(keys):
                label = key.removeprefix(prefix).replace("layer", "layer ")
                ax.plot(steps, [r.get(key, math.nan) for r in self.history], label=label,
                        **line_style(i))
            if group == "radius":
                if name in self.band:
                    ax.axhspan(*self.band[name], color="tab:green", alpha=0.12, label="band")
                ax.axhline(1.0, color="k", lw=0.8, ls="--")
                ax.set(ylabel=f"{name} radius ({self.estimator})")
            elif group in ("lyapunov", "flow"):
                ax.axhline(0.0, color="k", lw=0.8, ls="--")
                ax.set(ylabel="exponent (per step)" if group == "lyapunov" else
                       "log growth (per step / layer)")
            ax.set(xlabel="training step", title=name)
            ax.legend(fontsize="small", ncol=2)
        return fig
