"""``diagnose``: every stability figure of a model in one call (what ``stablernn diagnose`` runs).

Radii per kind and layer (docs/algorithms.md section 1.2), gradient flow (1.3), Lyapunov spectrum
(1.4) and the VAA multistability measure (1.5), written as PNG plots and one JSON file.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_int, check_seed
from .._deprecation import renamed_kwargs
from .._io import atomic_write_text, check_folder
from ..adapters import as_deep_rnn
from ..plotting import new_figure
from .eigen import eigvals
from .flow import gradient_flow
from .local_maps import maps_at, prepare
from .lyapunov import lyapunov_exponents
from .radii import radii
from .vaa import vaa

__all__ = ["diagnose", "load_model", "random_inputs"]

JSON_NAME = "diagnostics.json"


def _even_steps(length: int, count: int) -> list[int]:
    return torch.linspace(0, length - 1, min(length, count)).round().long().unique().tolist()


def _time_eigenvalues(model, x: Tensor, max_width: int = 256) -> dict[int, list[list[float]]]:
    """Eigenvalues (re, im) of each layer's time Jacobian at the last step, first sample."""
    out = {}
    for m in maps_at(model, x[:1], x.shape[1] - 1, kinds=["time"]):
        if m.n_in <= max_width:
            with torch.no_grad():
                ev = eigvals(m.jacobian()[0], f"time Jacobian of layer {m.layer}")
            out[m.layer] = [[float(e.real), float(e.imag)] for e in ev]
    return out


def _finite(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats (e.g. a one-layer depth rate) become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _spectrum_figure(result: dict, spectrum) -> Any:
    fig = new_figure((10.0, 4.0))
    left, right = fig.subplots(1, 2)
    spectrum.plot(left)
    circle = torch.linspace(0, 6.2832, 200)
    right.plot(circle.cos().tolist(), circle.sin().tolist(), "k--", lw=0.8)
    for layer, ev in result["time_eigenvalues"].items():
        right.plot([e[0] for e in ev], [e[1] for e in ev], ".", label=f"layer {layer}")
    right.set(xlabel="Re", ylabel="Im", title="time-Jacobian eigenvalues (last step)",
              aspect="equal")
    right.legend(fontsize="small")
    return fig


def _write_plots(out: Path, report, flow, spectrum, result: dict) -> dict[str, str]:
    try:
        flow_ax = flow.plot()
    except ImportError as err:
        return {"plots_skipped": str(err)}
    files = {"gradient_flow": out / "gradient_flow.png", "radii": out / "radii.png",
             "spectrum": out / "spectrum.png"}
    flow_ax.figure.savefig(files["gradient_flow"], dpi=120)
    report.plot().figure.savefig(files["radii"], dpi=120)
    _spectrum_figure(result, spectrum).savefig(files["spectrum"], dpi=120)
    return {k: str(v) for k, v in files.items()}


@renamed_kwargs(max_steps="max_time_steps", vaa_steps="vaa_time_steps")
def diagnose(model: nn.Module, x: Tensor, out_dir: str | os.PathLike, *,
             loss: Callable[[Tensor], Tensor] | None = None, estimator: str = "auto",
             max_time_steps: int = 8, lyapunov_k: int = 8, vaa_time_steps: int = 1000,
             seed: int = 0, plots: bool = True) -> dict[str, Any]:
    """Run every diagnostic on ``model`` and ``x``; write plots and ``diagnostics.json``.

    Args:
        model: a DeepRNN or a torch.nn.RNN/LSTM/GRU.
        x: inputs ``(B, T, D)`` (also the VAA sequences).
        out_dir: created if needed; receives ``gradient_flow.png``, ``radii.png``,
            ``spectrum.png`` and ``diagnostics.json``.
        loss: for the gradient flow (default: last step's outputs, batch mean).
        estimator: radius estimator (see :func:`stablernn.stability.radius`).
        max_time_steps: radii are measured at this many evenly spaced time steps.
        lyapunov_k: number of Lyapunov exponents (capped at the state width).
        vaa_time_steps: constant-input time steps of the VAA measure (the paper's measure uses
            10000). ``max_steps`` and ``vaa_steps`` are the deprecated names of these two.
        seed: seeds every estimator.
        plots: write the PNG files (needs matplotlib; skipped with a note when missing).

    Returns:
        The JSON content: ``radii``, ``radii_table`` (printable), ``gradient_flow``,
        ``lyapunov``, ``vaa``, ``time_eigenvalues`` and ``files``.

    Raises:
        TypeError: ``model`` has no recurrent layers. ValueError: bad ``x`` or options.

    Example:
        >>> res = diagnose(torch.nn.GRU(2, 8, num_layers=2), torch.randn(4, 12, 2), "diag")
        >>> print(res["radii_table"])  # doctest: +SKIP
    """
    model, x = prepare(model, x)  # follows a torch module's batch_first; finite weights
    for name, value in (("max_time_steps", max_time_steps), ("lyapunov_k", lyapunov_k),
                        ("vaa_time_steps", vaa_time_steps)):
        check_int(name, value)
    out = check_folder(out_dir)
    n = sum(c.state_size for c in model.layers)
    report = radii(model, x, estimator=estimator,
                   time_steps=_even_steps(x.shape[1], max_time_steps), seed=seed)
    flow = gradient_flow(model, x, loss)
    spectrum = lyapunov_exponents(model, x, k=min(n, lyapunov_k), seed=seed)
    multi = vaa(model, x, time_steps=vaa_time_steps, seed=seed)
    result: dict[str, Any] = {"input_shape": list(x.shape), "layers": model.num_layers,
              "cells": [type(c).__name__ for c in model.cells], "radii": report.to_dict(),
              "radii_table": report.table(), "gradient_flow": flow.to_dict(),
              "lyapunov": spectrum.to_dict(), "vaa": multi.to_dict(),
              "time_eigenvalues": _time_eigenvalues(model, x)}
    out.mkdir(parents=True, exist_ok=True)  # only now: a failed analysis leaves nothing behind
    result["files"] = _write_plots(out, report, flow, spectrum, result) if plots else {}
    result["files"]["json"] = str(out / JSON_NAME)
    atomic_write_text(out / JSON_NAME, json.dumps(_finite(result), indent=1, allow_nan=False))
    return result


def load_model(path: str | os.PathLike, *, trust_pickle: bool = False) -> nn.Module:
    """Load a model saved whole with ``torch.save(model, path)``.

    A whole module is a pickle: loading it runs code named in the file. So by default the file
    is read with ``weights_only=True``, which refuses any code and says which classes the file
    would import; ``trust_pickle=True`` (``--trust-pickle`` on the CLI) unpickles it for real:
    pass it only for files you trust.

    Raises:
        FileNotFoundError: no such file. ValueError: the file needs ``trust_pickle=True``, or
            is not a torch file. TypeError: the file holds no ``nn.Module`` (e.g. a state dict:
            rebuild the model from its run directory instead).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "gru.pt"
        >>> torch.save(nn.GRU(2, 4), path)
        >>> load_model(path, trust_pickle=True).hidden_size
        4
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with warnings.catch_warnings(record=True) as caught:  # torch's noise about a bad file
            warnings.simplefilter("always")
            obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:
        if trust_pickle or "Weights only load failed" not in str(err):
            raise _unreadable(path, err) from None
        raise _needs_trust(path) from None
    except Exception as err:  # noqa: BLE001 - a damaged file fails anywhere inside torch.load
        raise _unreadable(path, err) from None
    for w in caught:  # the file loaded: its warnings are worth seeing
        warnings.warn(w.message, w.category, stacklevel=2)
    if not isinstance(obj, nn.Module):
        raise TypeError(f"{path} holds a {type(obj).__name__}, not a model; save the whole "
                        f"module with torch.save(model, path), or diagnose its run directory")
    return obj.eval()


def _unreadable(path: Path, err: BaseException) -> ValueError:
    from ..train.runs import short_reason

    return ValueError(f"{path} is not a file torch.load can read ({short_reason(err)}); save "
                      f"the model "
                      f"with torch.save(model, path)")


def _needs_trust(path: Path) -> ValueError:
    """The error for a file that weights-only loading refuses: code, or not a torch file."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as err:  # noqa: BLE001 - not a zip checkpoint at all
        return _unreadable(path, err)
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return ValueError(f"{path} is a pickled model: loading it runs code it names ({shown}); "
                      f"if you trust the file, pass --trust-pickle (trust_pickle=True)")


@renamed_kwargs(batch="batch_size")
def random_inputs(model: nn.Module, batch_size: int = 16, seq_len: int = 32,
                  seed: int = 0) -> Tensor:
    """Seeded standard-normal inputs ``(batch_size, seq_len, D)`` on the model's device and
    dtype (``batch`` is the deprecated name of ``batch_size``).

    Raises:
        ValueError, TypeError: ``batch_size`` or ``seq_len`` < 1, ``seed`` < 0, or not ints.
    """
    batch, seq_len = check_int("batch_size", batch_size), check_int("seq_len", seq_len)
    seed = check_seed(seed)
    model = as_deep_rnn(model)
    p = next(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, seq_len, model.input_size, generator=gen).to(p)


def diagnose_file(path: str | os.PathLike, out_dir: str | os.PathLike, *, batch: int = 16,
                  seq_len: int = 32, seed: int = 0, trust_pickle: bool = False,
                  **options) -> dict[str, Any]:
    """Deprecated: what ``stablernn diagnose --model PATH`` runs, spelled out; use
    ``diagnose(model, random_inputs(model, batch, seq_len, seed), out_dir)`` with
    ``model = as_deep_rnn(load_model(path))``.

    Raises:
        FileNotFoundError, ValueError, TypeError: see :func:`load_model` and :func:`diagnose`.
    """
    warnings.warn("diagnose_file is deprecated; use diagnose(model, random_inputs(model, batch, "
                  "seq_len, seed), out_dir) with model = as_deep_rnn(load_model(path)), or the "
                  "command `stablernn diagnose --model PATH`", DeprecationWarning, stacklevel=2)
    model = as_deep_rnn(load_model(path, trust_pickle=trust_pickle))
    x = random_inputs(model, batch, seq_len, seed)
    return diagnose(model, x, out_dir, seed=seed, **options)
