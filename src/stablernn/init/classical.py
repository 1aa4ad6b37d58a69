"""Classical initialisations of recurrent layers, one function per scheme.

Every scheme acts on one layer (a cell with PyTorch's ``weight_ih (G*H, D)``,
``weight_hh (G*H, H)`` layout, ``G`` gate blocks) and is applied per gate block, so a
``4H x H`` LSTM matrix gets four ``H x H`` orthogonal blocks, not one tall one.

- glorot_uniform / glorot_normal (Glorot & Bengio 2010): per block ``Var = 2 / (fan_in +
  fan_out)``; biases 0.
- he (He et al. 2015, arXiv 1502.01852): per block ``N(0, 2 / fan_in)``; biases 0.
- orthogonal (Saxe et al., arXiv 1312.6120): every recurrent block orthogonal (all singular
  values 1), input blocks Glorot uniform, biases 0.
- identity (IRNN, Le et al., arXiv 1504.00941): RNN only; ``W_hh = I``, ``W_ih ~ N(0, 0.001^2)``.
- henaff (Henaff et al., arXiv 1602.06662): RNN only; ``W_hh`` block-diagonal ``2 x 2``
  rotations by angles ``U(-pi, pi)``, ``W_ih`` He normal, biases 0 (the copy-task init).
- forget_bias (Jozefowicz et al. 2015): LSTM only; forget-gate bias sum 1 (others unchanged).
- chrono (Tallec & Ollivier, arXiv 1804.11188): LSTM ``b_f = log U[1, t_max - 1]``,
  ``b_i = -b_f``; GRU (PyTorch's ``z`` keeps the state) ``b_z = log U[1, t_max - 1]``.
- torch_default: every parameter ``U(-1/sqrt(H), 1/sqrt(H))`` (PyTorch's RNN default).
Split biases: ``bias_hh`` is set to 0 and ``bias_ih`` carries the whole value.

Each scheme is a :class:`Scheme`: the function that changes one layer, the layers it applies to
and its options, so :func:`stablernn.init.init_` checks every layer and option before it
changes anything (docs/robustness.md).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from .._checks import check_float
from ..cells.base import Cell, cell_classes
from ..cells.rnn import henaff_init_, init_uniform_


def _hidden_size(cell: nn.Module) -> int:
    hidden_size = cell.hidden_size
    assert isinstance(hidden_size, int)  # every recurrent layer (ours and torch's) has one
    return hidden_size


def _tensor(cell: nn.Module, name: str) -> torch.Tensor:
    """``cell.<name>``, a weight or bias the scheme has checked the layer to have."""
    t = getattr(cell, name)
    assert isinstance(t, torch.Tensor)
    return t


def _blocks(cell: nn.Module, name: str) -> list[torch.Tensor]:
    """The gate blocks (views) of ``weight_ih`` or ``weight_hh``."""
    w = getattr(cell, name, None)
    if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[0] % _hidden_size(cell):
        raise ValueError(f"{type(cell).__name__} has no gated {name} (G*H, .) matrix; this "
                         f"scheme applies to layers whose weights stack gate blocks of "
                         f"hidden_size rows (RNN, LSTM, GRU, MGU, nBRC, ...)")
    return list(w.data.split(_hidden_size(cell), dim=0))


def _zero_biases(cell: nn.Module) -> None:
    for name in ("bias_ih", "bias_hh", "bias"):
        b = getattr(cell, name, None)
        if isinstance(b, torch.Tensor):
            b.data.zero_()


def _require(cell: nn.Module, needs: str, scheme: str) -> None:
    """Raise unless ``cell`` declares the capability ``needs`` (a Cell class attribute)."""
    if not getattr(cell, needs, None):
        names = ", ".join(k.__name__ for k in cell_classes() if getattr(k, needs))
        raise ValueError(  # noqa: TRY004 - the brief: a scheme that does not apply is a ValueError
            f"init {scheme!r} applies to {names} layers, got {type(cell).__name__}")


def _gate_bias(cell: Cell, gate: str) -> torch.Tensor:
    """``bias_ih``'s block of ``gate`` (``bias_hh``'s block zeroed, so the sum is this)."""
    if cell.bias_ih is None:
        raise ValueError(f"{type(cell).__name__} was built with bias=False; this scheme sets "
                         f"biases")
    rows = cell.gate_rows(gate)
    _tensor(cell, "bias_hh").data[rows] = 0.0
    return _tensor(cell, "bias_ih").data[rows]


@torch.no_grad()
def glorot_uniform(cell: nn.Module) -> None:
    """Glorot uniform on every gate block, biases 0."""
    for w in _blocks(cell, "weight_ih") + _blocks(cell, "weight_hh"):
        nn.init.xavier_uniform_(w)
    _zero_biases(cell)


@torch.no_grad()
def glorot_normal(cell: nn.Module) -> None:
    """Glorot normal on every gate block, biases 0."""
    for w in _blocks(cell, "weight_ih") + _blocks(cell, "weight_hh"):
        nn.init.xavier_normal_(w)
    _zero_biases(cell)


@torch.no_grad()
def he(cell: nn.Module) -> None:
    """He (Kaiming) normal, fan-in, on every gate block, biases 0."""
    for w in _blocks(cell, "weight_ih") + _blocks(cell, "weight_hh"):
        nn.init.kaiming_normal_(w, nonlinearity="relu")
    _zero_biases(cell)


@torch.no_grad()
def orthogonal(cell: nn.Module) -> None:
    """Orthogonal recurrent blocks (singular values all 1), Glorot-uniform input, biases 0."""
    for w in _blocks(cell, "weight_ih"):
        nn.init.xavier_uniform_(w)
    for w in _blocks(cell, "weight_hh"):
        nn.init.orthogonal_(w)
    _zero_biases(cell)


@torch.no_grad()
def identity(cell: nn.Module) -> None:
    """IRNN: identity recurrent matrix (ones for a diagonal one), ``N(0, 1e-6)`` input weights,
    biases 0."""
    _require(cell, "identity_init", "identity")
    w = _tensor(cell, "weight_hh")
    eye = torch.eye(_hidden_size(cell)) if w.dim() == 2 else torch.ones_like(w)
    if parametrize.is_parametrized(cell, "weight_hh"):
        cell.weight_hh = eye.to(w)  # projected onto the parametrisation's set (spectral band)
    else:
        w.data.copy_(eye)
    _tensor(cell, "weight_ih").data.normal_(0.0, 1e-3)
    _zero_biases(cell)


@torch.no_grad()
def forget_bias(cell: Cell, *, value: float = 1.0) -> None:
    """LSTM forget-gate bias (the sum ``bias_ih + bias_hh``) set to ``value``."""
    _require(cell, "forget_gate", "forget_bias")
    assert cell.forget_gate is not None  # _require: the cell declares it
    _gate_bias(cell, cell.forget_gate).fill_(value)


@torch.no_grad()
def chrono(cell: Cell, *, t_max: int) -> None:
    """Chrono biases for dependencies up to ``t_max`` steps (the cell's ``chrono_gates``:
    LSTM ``b_f = b``, ``b_i = -b``; GRU ``b_z = b``)."""
    _require(cell, "chrono_gates", "chrono")
    horizon = check_t_max(t_max)
    b = torch.log(torch.empty(cell.hidden_size).uniform_(1.0, float(horizon) - 1.0))
    for gate, sign in cell.chrono_gates.items():
        _gate_bias(cell, gate).copy_(sign * b)


@torch.no_grad()
def torch_default(cell: nn.Module) -> None:
    """PyTorch's default: every parameter ``U(-1/sqrt(H), 1/sqrt(H))``."""
    init_uniform_(cell)


def check_t_max(t_max: Any) -> float:
    """chrono's longest dependency: a finite number > 2."""
    t_max = check_float("t_max", t_max)
    if t_max <= 2:
        raise ValueError(f"chrono needs t_max > 2 (the longest dependency), got {t_max!r}")
    return t_max


@dataclass(frozen=True)
class Scheme:
    """A classical scheme: its per-layer function, the layers it applies to, its options.

    Attributes:
        apply: changes one layer in place, ``apply(cell, **options)``.
        needs: the cell capability it needs (a :class:`~stablernn.cells.base.Cell` attribute
            such as ``"forget_gate"``; None: any layer with the weights it needs).
        gated: needs gate-block ``weight_ih`` / ``weight_hh`` matrices.
        bias: sets biases (refuses layers built with ``bias=False``).
        options: option name -> checker returning the converted value.
        required: the options without a default.
        projects: writes ``weight_hh`` by assignment, so a parametrised ``weight_hh`` (a
            spectral cell) is projected onto its constraint set instead of refused.
    """

    apply: Callable[..., None]
    needs: str | None = None
    gated: bool = False
    bias: bool = False
    options: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    projects: bool = False

    def check_layer(self, name: str, cell: nn.Module) -> None:
        """Raise ValueError unless the scheme applies to ``cell``; changes nothing."""
        plain = self.projects and all(
            not parametrize.is_parametrized(cell, t) for t in ("weight_ih", "bias_ih", "bias_hh"))
        if parametrize.is_parametrized(cell) and not plain:
            raise ValueError(f"init {name!r}: {type(cell).__name__} has parametrised weights "
                             f"(e.g. stablernn.spectral), which an init cannot write; "
                             f"initialise before parametrising")
        if self.needs is not None:
            _require(cell, self.needs, name)
        if self.gated:
            _blocks(cell, "weight_ih")
            _blocks(cell, "weight_hh")
        if self.bias and getattr(cell, "bias_ih", None) is None:
            raise ValueError(f"init {name!r} sets biases, but {type(cell).__name__} was built "
                             f"with bias=False")

    def check_options(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """The options converted by their checkers; ValueError on an unknown or missing one."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise ValueError(f"init {name!r} has no option {', '.join(unknown)}; valid options: "
                             f"{valid}")
        missing = [key for key in self.required if key not in options]
        if missing:
            raise ValueError(f"init {name!r} needs the option {', '.join(missing)}")
        return {key: self.options[key](value) for key, value in options.items()}


CLASSICAL = {
    "glorot_uniform": Scheme(glorot_uniform, gated=True),
    "glorot_normal": Scheme(glorot_normal, gated=True),
    "he": Scheme(he, gated=True),
    "orthogonal": Scheme(orthogonal, gated=True),
    "identity": Scheme(identity, needs="identity_init", projects=True),
    "henaff": Scheme(henaff_init_, needs="identity_init", gated=True, projects=True),
    "forget_bias": Scheme(forget_bias, needs="forget_gate", bias=True,
                          options={"value": lambda v: check_float("value", v)}),
    "chrono": Scheme(chrono, needs="chrono_gates", bias=True,
                     options={"t_max": check_t_max}, required=("t_max",)),
    "torch_default": Scheme(torch_default),
}
