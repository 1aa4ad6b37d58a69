"""Critical initialisation of LSTM / GRU layers (Gilboa et al., arXiv 1901.08987)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..cells.base import Cell
from .meanfield import GATES, GateHyper, MeanFieldHyper


# Note [gate-orthogonal rows]
# The theory takes the pre-activations of different gates of one unit as independent. With
# i.i.d. Gaussian rows, the input rows U_k[j] of unit j's gates overlap by O(1 / sqrt(n_in)), so
# u_i[j] and u_g[j] (LSTM), u_z[j] and u_n[j] (GRU) share a fixed correlation; E[i g] then has a
# per-unit mean that a gate near 1 integrates over ~1/(1 - f) steps: a frozen state pattern every
# input sequence shares, which grows with T and hides the memory the critical point buys (at
# width 1024, T = 20 it held GRU copies at correlation ~0.1). Rows sampled Gaussian and then
# orthogonalised across the gates of each unit (lengths kept: the law of Gaussian rows
# conditioned on orthogonality) make those correlations exactly zero; every other statistic
# the theory uses is unchanged.
#
# Note [exact sample moments]
# explain() reads sigma, nu, mu and bias_std back from the weights (estimate_hyper), and the
# prediction at a critical point is steep in them: a sample's RMS off by its O(1/sqrt(entries))
# noise moved xi by several percent (T = 30 read back as 29.98, T = 100 as 97.9) and explain
# reported layers critical_init had just set as not critical. So every gate block is rescaled
# to the exact RMS and the biases to the exact mean and spread: estimate_hyper(cell) then
# returns hp up to float32 rounding, and the solver's XI_MARGIN covers that.
def _gate_rows(gates: int, n: int, fan: int, stds: list[float], generator) -> torch.Tensor:
    """``(gates * n, fan)`` Gaussian rows, row ``k*n + j`` of std ``stds[k] / sqrt(fan)``,
    orthogonal across ``k`` for each ``j`` when ``fan >= gates`` (Note [gate-orthogonal rows]);
    each gate block has exactly that RMS (Note [exact sample moments])."""
    a = torch.randn(n, fan, gates, generator=generator, dtype=torch.float64)  # (N, fan, G)
    if fan >= gates:
        q, r = torch.linalg.qr(a)  # (N, fan, G): orthonormal columns per unit
        q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(1)
        a = q * a.norm(dim=1, keepdim=True)
    a = a / a.pow(2).mean(dim=(0, 1)).sqrt()  # every gate block: RMS exactly 1
    a = a * torch.tensor(stds, dtype=torch.float64) / math.sqrt(fan)
    return a.permute(2, 0, 1).reshape(gates * n, fan)  # (G, N, fan) -> (G*N, fan)


def _gate_biases(gates: list, n: int, generator) -> torch.Tensor:
    """``(G, N)`` biases with exactly mean ``mu_k`` and spread ``bias_std_k`` per gate (one unit:
    ``mu_k``), Note [exact sample moments]."""
    z = torch.randn(len(gates), n, generator=generator, dtype=torch.float64)
    z = z - z.mean(1, keepdim=True)
    z = z / z.std(1, unbiased=False, keepdim=True) if n > 1 else z
    std = torch.tensor([[g.bias_std] for g in gates], dtype=torch.float64)
    return z * std + torch.tensor([[g.mu] for g in gates], dtype=torch.float64)


def _weight(cell: Cell, name: str) -> Tensor:
    w = getattr(cell, name)
    assert isinstance(w, Tensor)  # LSTM / GRU cells hold PyTorch's layout
    return w


def _biases(cell: Cell) -> tuple[Tensor, Tensor] | None:
    """``(bias_ih, bias_hh)``, or None for a layer built with ``bias=False``."""
    if cell.bias_ih is None:
        return None
    return _weight(cell, "bias_ih"), _weight(cell, "bias_hh")


def check_applies(cell: nn.Module, hp: MeanFieldHyper) -> None:
    """Raise ValueError unless :func:`apply_hyper` can write ``hp`` into ``cell``."""
    if cell_kind(cell) != hp.cell:
        raise ValueError(f"hyperparameters for a {hp.cell} layer, got {type(cell).__name__}")
    gates = [hp.gates[k] for k in GATES[hp.cell]]
    if cell.bias_ih is None and any(g.mu or g.bias_std for g in gates):
        raise ValueError("the hyperparameters set bias means / spreads but the layer has "
                         "bias=False; build it with bias=True")


@torch.no_grad()
def apply_hyper(cell: nn.Module, hp: MeanFieldHyper, *, generator: torch.Generator | None = None
                ) -> None:
    """Sample a layer's weights from ``hp`` in place (PyTorch layout, gate blocks in order).

    ``W_k ~ N(0, sigma_k^2 / N)``, ``U_k ~ N(0, nu_k^2 / n_in)`` (rows orthogonal across the
    gates of a unit, Note [gate-orthogonal rows]), ``bias_ih_k ~ N(mu_k, bias_std_k^2)`` and
    ``bias_hh = 0``: PyTorch adds the two biases, so their sum carries the mean and the spread
    (for the GRU candidate ``b_hn = 0`` keeps ``r`` off the bias, as the theory assumes).

    Args:
        cell: an LSTM or GRU step cell.
        hp: the hyperparameters (``hp.cell`` must match the cell).
        generator: optional torch generator for reproducible draws.

    Raises:
        ValueError: ``hp`` is for another kind of layer, or a bias mean or spread is asked of a
            layer without biases (checked before anything changes).
    """
    check_applies(cell, hp)
    assert isinstance(cell, Cell)  # check_applies: a cell of hp's mean-field kind
    names, n = GATES[hp.cell], cell.hidden_size
    gates = [hp.gates[k] for k in names]
    w_hh = _gate_rows(len(names), n, n, [g.sigma for g in gates], generator)
    w_ih = _gate_rows(len(names), n, cell.input_size, [g.nu for g in gates], generator)
    _weight(cell, "weight_hh").copy_(w_hh)
    _weight(cell, "weight_ih").copy_(w_ih)
    biases = _biases(cell)
    if biases is not None:
        biases[0].copy_(_gate_biases(gates, n, generator).reshape(-1))
        biases[1].zero_()


def cell_kind(cell: nn.Module) -> str | None:
    """"lstm" / "gru" for the layers the mean-field theory covers (the cell's declared
    ``meanfield`` kind; a subclass that changes the step loses it), else None."""
    return cell.meanfield_kind() if isinstance(cell, Cell) else None


@torch.no_grad()
def estimate_hyper(cell: nn.Module, *, q_x: float = 1.0) -> MeanFieldHyper:
    """Read a layer's per-gate statistics back from its weights (for :func:`explain`).

    ``sigma_k = std(W_k) sqrt(N)``, ``nu_k = std(U_k) sqrt(n_in)``, and ``mu_k``, ``bias_std_k`` the
    mean and spread of the summed bias (the GRU's ``b_hn``, which ``r`` multiplies, is folded
    into the sum: exact when it is 0, as after :func:`critical_init`).
    """
    kind = cell_kind(cell)
    assert kind is not None and isinstance(cell, Cell), "estimate_hyper needs an LSTM / GRU layer"
    n, n_in = cell.hidden_size, cell.input_size
    biases = _biases(cell)
    bias = None if biases is None else biases[0] + biases[1]
    gates = {}
    for name in GATES[kind]:
        rows = cell.gate_rows(name)
        b = torch.zeros(n) if bias is None else bias[rows].double()
        w_hh, w_ih = _weight(cell, "weight_hh")[rows], _weight(cell, "weight_ih")[rows]
        gates[name] = GateHyper(sigma=float(w_hh.double().pow(2).mean().sqrt()) * math.sqrt(n),
                                nu=float(w_ih.double().pow(2).mean().sqrt()) * math.sqrt(n_in),
                                bias_std=float(b.std(unbiased=False)), mu=float(b.mean()))
    return MeanFieldHyper(kind, gates, q_x=q_x)
