"""Initialisations: classical schemes and the critical mean-field initialisation.

One verb, ``init_(module, scheme, **options) -> InitReport``, over our cells, ``DeepRNN`` and
``torch.nn.RNN/LSTM/GRU`` (through ``from_torch``, which shares their Parameters). The
critical scheme (Gilboa et al., arXiv 1901.08987) is :func:`critical_init`; the calculator
behind it is :mod:`stablernn.init.meanfield` and :func:`explain` prints its predictions.

Example:
    >>> import torch
    >>> from stablernn.init import init_
    >>> lstm = torch.nn.LSTM(8, 32)
    >>> report = init_(lstm, "chrono", t_max=100)
    >>> report.scheme, report.layers
    ('chrono', ['layer 0 (LSTMCell)'])
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn
from torch.nn.utils import parametrize

from .._checks import check_finite_weights, check_float, check_int
from .._transaction import transaction
from ..spectral import Spectral
from . import classical
from .critical import apply_hyper, cell_kind, check_applies, estimate_hyper
from .meanfield import GateHyper, MeanFieldHyper, Prediction, predict, solve_critical


@dataclass
class InitReport:
    """What an initialisation did.

    Attributes:
        scheme: the scheme's name.
        layers: one label per layer touched, bottom first.
        options: the options the scheme ran with.
        hyper: critical only: per layer the chosen :class:`MeanFieldHyper` as a dict.
        predictions: critical only: per layer the calculator's ``q*, m, chi, xi`` (dicts).
    """

    scheme: str
    layers: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    hyper: list | None = None
    predictions: list | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def recurrent_layers(module: nn.Module) -> list[nn.Module]:
    """The step cells of a cell, a ``DeepRNN`` or a ``torch.nn.RNN/LSTM/GRU`` (bottom first).

    Raises:
        TypeError: any other module.
    """
    from ..adapters import as_deep_rnn
    from ..cells.base import Cell

    if isinstance(module, Cell):
        return [module]
    try:
        return list(as_deep_rnn(module).layers)
    except TypeError:
        raise TypeError(f"initialisations apply to stablernn cells, DeepRNN and torch.nn.RNN/"
                        f"LSTM/GRU, got {type(module).__name__}") from None


def _label(i: int, cell: nn.Module) -> str:
    return f"layer {i} ({type(cell).__name__})"


def _check_seq_len(seq_len: Any) -> int:
    return check_int("seq_len", seq_len, low=1)


def _check_layers(name: str, cells: list[nn.Module], check: Callable[[nn.Module], None]
                  ) -> None:
    """Run ``check`` on every layer before anything changes; errors name the layer."""
    for i, cell in enumerate(cells):
        try:
            check(cell)
        except ValueError as err:
            raise ValueError(f"{_label(i, cell)}: {err}") from None


def _classical(name: str) -> Callable:
    spec = classical.CLASSICAL[name]

    def scheme(module: nn.Module, **options) -> InitReport:
        if name == "chrono" and "seq_len" in options:  # the CLI's uniform length option
            if "t_max" in options:
                raise ValueError("init 'chrono': give t_max or seq_len, not both")
            options["t_max"] = _check_seq_len(options.pop("seq_len"))
        options = spec.check_options(name, options)
        cells = recurrent_layers(module)
        _check_layers(name, cells, lambda cell: spec.check_layer(name, cell))
        with transaction(module):  # all layers or none (docs/robustness.md)
            for cell in cells:
                spec.apply(cell, **options)
        return InitReport(name, [_label(i, c) for i, c in enumerate(cells)], dict(options))

    scheme.__doc__ = spec.apply.__doc__
    scheme.options = (  # type: ignore[attr-defined]  # init_ reads it
        tuple(spec.options) + (("seq_len",) if name == "chrono" else ()))
    return scheme


def _check_critical_layer(cell: nn.Module) -> None:
    if any(isinstance(m, Spectral) for m in cell.modules()):
        raise ValueError("critical init does not apply to spectrally parametrised weights: its "
                         "mean-field theory draws i.i.d. Gaussian weights, while U diag(sigma) "
                         "V^T keeps every singular value in [sigma_star - r, sigma_star + r] "
                         "(docs/spectral.md); use critical_init on the plain module, or keep "
                         "the spectral initialisation")
    if parametrize.is_parametrized(cell):
        raise ValueError("critical init cannot write parametrised weights (e.g. torch's "
                         "orthogonal); initialise before parametrising")
    if cell_kind(cell) is None:
        raise ValueError("critical init applies to LSTM and GRU layers; this one is not")


def _check_base(base: Any) -> dict | None:
    if base is None:
        return None
    if not isinstance(base, dict) or not all(isinstance(g, GateHyper) for g in base.values()):
        raise TypeError(f"base must be a dict gate name -> GateHyper, got {base!r}")
    return base


def critical_init(module: nn.Module, seq_len: int, *, q_x: float = 1.0,
                  base: dict | None = None) -> InitReport:
    """Critical mean-field initialisation of every LSTM / GRU layer of ``module``, in place.

    Per layer the solver (:func:`stablernn.init.meanfield.solve_critical`) picks the forget /
    update bias mean with ``xi >= seq_len`` and fills ``m`` to 1; the weights are then sampled
    with ``bias_hh = 0`` and ``bias_ih`` carrying the bias mean. Layer ``l + 1`` is solved for
    inputs of mean square ``q_h`` of layer ``l`` (the calculator's prediction).

    Args:
        module: LSTM / GRU cell, DeepRNN of them, or ``torch.nn.LSTM/GRU``.
        seq_len: the dependency length ``T >= 1``.
        q_x: mean square of one component of the network's inputs.
        base: gate -> GateHyper for the parameters the solver does not set.

    Returns:
        An :class:`InitReport` with the chosen hyperparameters and the predictions.

    All layers are solved and checked first; the weights are then written in one
    transaction, so an error leaves ``module`` unchanged.

    Raises:
        ValueError: ``seq_len < 1``, ``q_x`` negative or not finite, a layer that is not an
            LSTM or GRU, ``base`` that does not fit a layer.
        TypeError: an unsupported module or a wrong type of option.

    Example:
        >>> import torch
        >>> report = critical_init(torch.nn.LSTM(4, 16), seq_len=50)
        >>> report.predictions[0]["xi"] >= 50
        True
    """
    seq_len = _check_seq_len(seq_len)
    q_x = check_float("q_x", q_x, low=0.0)
    base = _check_base(base)
    cells = recurrent_layers(module)
    _check_layers("critical", cells, _check_critical_layer)
    hypers: list[dict] = []
    predictions: list[dict] = []
    report = InitReport("critical", [_label(i, c) for i, c in enumerate(cells)],
                        {"seq_len": seq_len, "q_x": q_x}, hypers, predictions)
    plans = []
    for i, cell in enumerate(cells):  # solve every layer before touching any
        kind = cell_kind(cell)
        assert kind is not None  # _check_critical_layer
        try:
            hp = solve_critical(kind, seq_len, q_x=q_x, base=base)
            check_applies(cell, hp)
            pred = predict(hp)
        except ValueError as err:
            raise ValueError(f"{_label(i, cell)}: {err}") from None
        plans.append(hp)
        hypers.append(hp.to_dict())
        predictions.append(pred.to_dict())
        q_x = pred.q_h
    with transaction(module):
        for cell, hp in zip(cells, plans, strict=True):
            apply_hyper(cell, hp)
    return report


critical_init.options = ("seq_len", "q_x", "base")  # type: ignore[attr-defined]
INITS: dict[str, Callable[..., InitReport]] = {
    **{name: _classical(name) for name in classical.CLASSICAL},
    "critical": critical_init,
}


SEQ_LEN_SCHEMES = ("chrono", "critical")  # schemes that take the task's sequence length


def init_(module: nn.Module, scheme: str, **options) -> InitReport:
    """Initialise ``module`` in place with the named ``scheme``.

    Args:
        module: a stablernn cell, a DeepRNN or a ``torch.nn.RNN/LSTM/GRU``.
        scheme: one of ``INITS`` (glorot_uniform, glorot_normal, he, orthogonal, identity, henaff,
            forget_bias, chrono, torch_default, critical).
        **options: the scheme's options (chrono: ``t_max`` or ``seq_len``; critical:
            ``seq_len``, ``q_x``; forget_bias: ``value``).

    Returns:
        An :class:`InitReport`.

    Every layer and option is checked before anything changes, and the change runs in a
    transaction: on any error ``module`` keeps its weights (docs/robustness.md).

    Raises:
        ValueError: unknown scheme or option (the message lists the valid ones), a scheme that
            does not apply to a layer, an option out of range (NaN included).
        TypeError: an unsupported module or an option of the wrong type.

    Example:
        >>> import torch
        >>> gru = torch.nn.GRU(3, 8, num_layers=2)
        >>> init_(gru, "orthogonal").layers
        ['layer 0 (GRUCell)', 'layer 1 (GRUCell)']
    """
    if not isinstance(scheme, str) or scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; valid inits: {', '.join(sorted(INITS))}")
    fn = INITS[scheme]
    valid = getattr(fn, "options", None)
    unknown = [] if valid is None else sorted(set(options) - set(valid))
    if unknown and valid is not None:
        raise ValueError(f"init {scheme!r} has no option {', '.join(unknown)}; valid options: "
                         f"{', '.join(valid) or 'none'}")
    if scheme == "critical" and "seq_len" not in options:
        raise ValueError("init 'critical' needs the option seq_len (the dependency length)")
    return fn(module, **options)


def _row(i: int, cell: nn.Module, pred: Prediction | None, seq_len: int | None) -> str:
    if pred is None:
        return f"{i:>5}  {type(cell).__name__:<10}  (no mean-field theory for this cell)"
    ok = "" if seq_len is None else ("  yes" if reaches(pred, seq_len) else "  NO")
    xi = "inf" if math.isinf(pred.xi) else f"{pred.xi:.4g}"
    return (f"{i:>5}  {type(cell).__name__:<10}  {pred.q_star:>10.4g}  {pred.q_h:>8.4g}  "
            f"{pred.m:>8.4f}  {pred.chi:>8.5f}  {xi:>8}{ok}")


def reaches(pred: Prediction, seq_len: int) -> bool:
    """Whether a layer's predicted time scale carries signals over ``seq_len`` steps.

    The criterion :func:`critical_init` solves for (``solve_critical`` aims a relative
    ``XI_MARGIN`` above ``seq_len``, so the float32 weights it writes still pass).
    """
    return pred.xi >= seq_len


def explain(module: nn.Module, seq_len: int | None = None, *, q_x: float = 1.0) -> str:
    """A table of the mean-field predictions (q*, m, chi, xi) for every layer of ``module``.

    The hyperparameters are read from the current weights (:func:`estimate_hyper`); layer
    ``l + 1`` is fed inputs of mean square ``q_h`` of layer ``l``.

    Args:
        module: a cell, DeepRNN or ``torch.nn.RNN/LSTM/GRU``.
        seq_len: optional dependency length: a column says whether ``xi >= seq_len``.
        q_x: mean square of one input component.

    Returns:
        The table as a string.

    Raises:
        ValueError: bad ``seq_len`` / ``q_x``, or NaN / Inf weights (``NonFiniteWeightsError``).
        TypeError: an unsupported module.

    Example:
        >>> import torch
        >>> print(explain(torch.nn.GRU(4, 16), seq_len=100))  # doctest: +ELLIPSIS
        layer  cell ...
    """
    if seq_len is not None:
        seq_len = _check_seq_len(seq_len)
    q_x = check_float("q_x", q_x, low=0.0)
    cells = recurrent_layers(module)
    check_finite_weights(module)
    head = (f"layer  {'cell':<10}  {'q*':>10}  {'q_h':>8}  {'m':>8}  {'chi':>8}  {'xi':>8}"
            + ("" if seq_len is None else f"  xi>={seq_len}"))
    rows = [head]
    for i, cell in enumerate(cells):
        pred = None
        if cell_kind(cell) is not None:
            pred = predict(estimate_hyper(cell, q_x=q_x))
            q_x = pred.q_h
        rows.append(_row(i, cell, pred, seq_len))
    return "\n".join(rows)


__all__ = [
    "INITS",
    "SEQ_LEN_SCHEMES",
    "GateHyper",
    "InitReport",
    "MeanFieldHyper",
    "Prediction",
    "apply_hyper",
    "critical_init",
    "estimate_hyper",
    "explain",
    "init_",
    "predict",
    "reaches",
    "recurrent_layers",
    "solve_critical",
]
