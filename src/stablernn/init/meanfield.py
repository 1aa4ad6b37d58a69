"""Mean-field calculator for random LSTM and GRU layers (Gilboa et al., arXiv 1901.08987).

Setting (docs/algorithms.md section 3). Per gate ``k`` the pre-activation is
``u_k = W_k h + U_k x + b_k`` with ``W_k ~ N(0, sigma_k^2 / N)``, ``U_k ~ N(0, nu_k^2 / n_in)``,
``b_k ~ N(mu_k, bias_std_k^2)``; the inputs are i.i.d. over time and units with mean square ``q_x``.
For the two-sequence experiment the two input sequences have correlation ``c_x`` (default 0:
independent sequences).

Approximation (Gilboa et al. section 3, after Chen et al. arXiv 1806.05394): in the wide limit
and with *untied* weights (fresh ``W, U, b`` at every step) each ``u_k`` is Gaussian,
``u_k ~ N(mu_k, s_k)`` with ``s_k = sigma_k^2 q_h + nu_k^2 q_x + bias_std_k^2``, where ``q_h`` is
the mean square of the hidden output; pre-activations of different gates are independent, and the
gates at step ``t`` are independent of the state at ``t - 1``. The LSTM cell state is not
Gaussian; where a function of it is needed (``tanh c``) we use a Gaussian with its exact first
two moments (accurate when the forget gate averages many steps, i.e. near criticality). Real
layers have tied weights; `stablernn.init.simulate` measures them and the tests hold the two
together (see docs/init.md for the regime of validity). All integrals are Gauss-Hermite tensor
quadratures (``numpy.polynomial.hermite_e``) over one to four standard normals.

Moments used (``E`` over the Gaussians above; ``sg`` = sigmoid; ``'`` = derivative).

LSTM (state ``c``; ``c' = f c + i g``, ``h = o tanh c``):
    mu_c = E[i] E[g] / (1 - E[f])
    q_c  = (E[i^2] E[g^2] + 2 E[f] mu_c E[i] E[g]) / (1 - E[f^2])
    q_h  = E[o^2] E[tanh(c)^2],    c ~ N(mu_c, q_c - mu_c^2)
  iterated in ``q_h`` to the fixed point ``q*``. The Jacobian is the total ``d c_t / d c_{t-1}``
  with ``h_{t-1} = o_{t-1} tanh(c_{t-1})`` substituted:
    J = diag(f) + [diag(c sg'(u_f)) W_f + diag(g sg'(u_i)) W_i + diag(i tanh'(u_g)) W_g] D,
    D = diag(o_{t-1} tanh'(c_{t-1})),
  and ``tr(J J^T)/N`` averages (cross terms vanish as ``W_k`` are independent with zero mean):
    m = E[f^2] + E[o^2] E[tanh'(c)^2] (sigma_f^2 q_c E[sg'(u_f)^2]
                                       + sigma_i^2 E[g^2] E[sg'(u_i)^2]
                                       + sigma_g^2 E[i^2] E[tanh'(u_g)^2]).

GRU (PyTorch's equations; state ``h``; the n-gate bias is all in ``bias_ih``, ``b_hn = 0``):
    u_n = a + r w,  a ~ N(mu_n, nu_n^2 q_x + bias_std_n^2),  w = W_n h ~ N(0, sigma_n^2 q_h)
    h' = (1 - z) n + z h:   mu_h = E[n],
    q_h = (E[(1-z)^2] E[n^2] + 2 E[z(1-z)] E[n] mu_h) / (1 - E[z^2])
    m = E[z^2] + sigma_z^2 E[(h - n)^2] E[sg'(u_z)^2] + sigma_n^2 E[(1-z)^2] E[r^2 tanh'(u_n)^2]
        + sigma_r^2 E[(1-z)^2] E[w^2 sg'(u_r)^2 tanh'(u_n)^2],
  with ``E[(h - n)^2] = q_h - 2 mu_h E[n] + E[n^2]``; ``n`` is a Gaussian scale mixture over
  ``r`` (a three-dimensional quadrature over ``u_r, a, w``).

Correlation map. Two copies of the layer (same weights) start from the same state and are
driven by two input sequences of correlation ``c_x``. Their state covariance ``q_ab`` (the
mean over units of ``c^a c^b``, resp. ``h^a h^b``) obeys, with pre-activation covariances
``sigma_k^2 q_h^ab + nu_k^2 c_x q_x + bias_std_k^2`` (bivariate Gaussians):
    LSTM: q_ab' = E[f^a f^b] q_ab + 2 E[f] mu_c E[i] E[g] + E[i^a i^b] E[g^a g^b],
          q_h^ab = E[o^a o^b] E[tanh(c^a) tanh(c^b)]
    GRU:  q_ab' = E[(1-z^a)(1-z^b)] E[n^a n^b] + 2 (E[z] - E[z^a z^b]) E[n] mu_h
                  + E[z^a z^b] q_ab
It starts at ``q*`` (correlation 1) and converges to a fixed point ``q_ab*`` at the rate
``chi = d q_ab' / d q_ab`` (at ``q_ab*``), so ``|corr_t - corr*| ~ chi^t`` and the time scale is
``xi = -1 / ln chi``. ``corr* = q_ab* / q*`` is reported as ``c_star``.

Critical solver (:func:`solve_critical`): the forget / update bias mean sets ``xi = T``; the LSTM
fills ``m`` to 1 with ``sigma_i``; the GRU cannot (a fold of its variance map lies before
``m = 1``) and has ``m = 1 - O(1/T)``. Why the candidate gets no recurrent weights, and why the
input rows are gate-orthogonal: Note [critical knobs] below and Note [gate-orthogonal rows] in
``critical.py``; the simulations behind them are tabulated in docs/init.md.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from functools import cache

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from .._checks import check_float, check_int
from .._deprecation import rename_kwargs

GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
_ORDER = {1: 64, 2: 32, 3: 20, 4: 12}  # Gauss-Hermite nodes per axis, by dimension


@dataclass(frozen=True, init=False)
class GateHyper:
    """Initialisation statistics of one gate (widths ``N`` hidden, ``n_in`` input).

    Attributes:
        sigma: recurrent weights ``W ~ N(0, sigma^2 / N)``.
        nu: input weights ``U ~ N(0, nu^2 / n_in)``.
        bias_std: bias spread, ``b ~ N(mu, bias_std^2)`` (the papers' ``rho``; ``rho`` is the
            deprecated name here: in stablernn ``rho`` is only the LSC target).
        mu: bias mean.
    """

    sigma: float = 1.0
    nu: float = 1.0
    bias_std: float = 0.0
    mu: float = 0.0

    def __init__(self, sigma: float = 1.0, nu: float = 1.0, bias_std: float = 0.0,
                 mu: float = 0.0, **old: float) -> None:
        if "rho" in old:  # the deprecated spelling, with a DeprecationWarning
            bias_std = rename_kwargs("GateHyper", {"rho": old.pop("rho")},
                                     {"rho": "bias_std"})["bias_std"]
        if old:
            raise TypeError(f"GateHyper has no field {', '.join(sorted(old))}; fields: sigma, "
                            f"nu, bias_std, mu")
        for name, value in (("sigma", sigma), ("nu", nu), ("bias_std", bias_std)):
            object.__setattr__(self, name, check_float(name, value, low=0.0))
        object.__setattr__(self, "mu", check_float("mu", mu))

    @property
    def rho(self) -> float:
        """Deprecated name of :attr:`bias_std`."""
        warnings.warn("GateHyper.rho is deprecated; use GateHyper.bias_std", DeprecationWarning,
                      stacklevel=2)
        return self.bias_std


@dataclass(frozen=True)
class MeanFieldHyper:
    """All hyperparameters the calculator needs for one layer.

    Attributes:
        cell: "lstm" or "gru".
        gates: gate name -> :class:`GateHyper` (LSTM i, f, g, o; GRU r, z, n).
        q_x: mean square of one input component (inputs i.i.d. with zero mean).
        c_x: correlation of the two input sequences of the correlation experiment.
    """

    cell: str
    gates: dict = field(default_factory=dict)
    q_x: float = 1.0
    c_x: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.cell, str) or self.cell not in GATES:
            raise ValueError(f"mean-field theory covers cells {sorted(GATES)}, got {self.cell!r}")
        if not isinstance(self.gates, dict):
            raise TypeError(f"gates must be a dict gate name -> GateHyper, got {self.gates!r}")
        missing = set(GATES[self.cell]) - set(self.gates)
        if missing:
            raise ValueError(f"{self.cell} needs gates {GATES[self.cell]}; missing "
                             f"{sorted(missing)}")
        for name in GATES[self.cell]:
            if not isinstance(self.gates[name], GateHyper):
                raise TypeError(f"gate {name!r} must be a GateHyper, got {self.gates[name]!r}")
        check_float("q_x", self.q_x, low=0.0)
        check_float("c_x", self.c_x, low=-1.0, high=1.0)

    def with_gate(self, name: str, **changes) -> MeanFieldHyper:
        """A copy with gate ``name``'s fields changed, e.g. ``with_gate("f", mu=4.0)``."""
        return replace(self, gates={**self.gates, name: replace(self.gates[name], **changes)})

    def to_dict(self) -> dict:
        return {"cell": self.cell, "q_x": self.q_x, "c_x": self.c_x,
                "gates": {k: asdict(v) for k, v in self.gates.items()}}


@dataclass(frozen=True)
class Prediction:
    """What the calculator predicts for one layer at its fixed point.

    Attributes:
        q_star: mean square of the state (LSTM cell state ``c``, GRU ``h``).
        q_h: mean square of the layer output ``h``.
        mu_state: mean of the state.
        m: mean squared singular value ``tr(J J^T)/N`` of the state-to-state Jacobian.
        chi: slope of the two-sequence covariance map at its fixed point.
        xi: time scale ``-1 / ln chi`` (inf when ``chi >= 1``).
        c_star: limiting correlation of the two copies' states.
    """

    q_star: float
    q_h: float
    mu_state: float
    m: float
    chi: float
    xi: float
    c_star: float

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- quadrature
@cache
def _grid(dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``(P, dims)`` and weights ``(P,)`` of a standard-normal tensor quadrature."""
    z, w = hermegauss(_ORDER[dims])
    w = w / math.sqrt(2.0 * math.pi)
    nodes = np.stack(np.meshgrid(*[z] * dims, indexing="ij"), -1).reshape(-1, dims)
    weights = np.prod(np.stack(np.meshgrid(*[w] * dims, indexing="ij"), -1), -1).reshape(-1)
    return nodes, weights


def _sig(u):
    return 0.5 * (1.0 + np.tanh(0.5 * u))  # overflow-free logistic


def _dsig(u):
    s = _sig(u)
    return s * (1.0 - s)


def _dtanh(u):
    return 1.0 - np.tanh(u) ** 2


def _mean(fn, mu: float, var: float) -> float:
    """``E[fn(u)]`` for ``u ~ N(mu, var)``."""
    z, w = _grid(1)
    return float(w @ fn(mu + math.sqrt(max(var, 0.0)) * z[:, 0]))


def _pair(z1, z2, var: float, cov: float):
    """Two correlated normals with equal variance ``var`` and covariance ``cov``."""
    sd = math.sqrt(max(var, 0.0))
    rho = 0.0 if sd == 0.0 else float(np.clip(cov / var, -1.0, 1.0))
    return sd * z1, sd * (rho * z1 + math.sqrt(1.0 - rho * rho) * z2)


def _pair_mean(fn, mu: float, var: float, cov: float) -> float:
    """``E[fn(u^a) fn(u^b)]`` for a bivariate normal with equal marginals ``N(mu, var)``."""
    z, w = _grid(2)
    a, b = _pair(z[:, 0], z[:, 1], var, cov)
    return float(w @ (fn(mu + a) * fn(mu + b)))


# ----------------------------------------------------------------------------- gates
def _s(g: GateHyper, q_h: float, q_x: float) -> float:
    """Variance of a gate's pre-activation."""
    return g.sigma ** 2 * q_h + g.nu ** 2 * q_x + g.bias_std ** 2


def _moments(fn, g: GateHyper, q_h: float, q_x: float) -> tuple[float, float]:
    """``E[fn(u)]`` and ``E[fn(u)^2]`` of a gate."""
    s = _s(g, q_h, q_x)
    return _mean(fn, g.mu, s), _mean(lambda u: fn(u) ** 2, g.mu, s)


def _root(fn, lo: float = 0.0, hi: float = 1.0, tol: float = 1e-13) -> float:
    """Root of ``fn`` with ``fn(lo) >= 0 >= fn(hi)`` (Illinois regula falsi).

    Variance maps of bounded outputs (``|h| <= 1``) send ``[0, 1]`` into itself, so their fixed
    point is bracketed by ``[0, 1]``; unlike plain iteration this never oscillates.
    """
    f_lo, f_hi, side = fn(lo), fn(hi), 0
    if f_lo <= 0.0:
        return lo
    for _ in range(200):
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
        fx = fn(x)
        if abs(fx) < tol or hi - lo < tol:
            return x
        if fx > 0.0:
            lo, f_lo = x, fx
            f_hi, side = (f_hi / 2, side) if side == 1 else (f_hi, 1)
        else:
            hi, f_hi = x, fx
            f_lo, side = (f_lo / 2, side) if side == -1 else (f_lo, -1)
    return x


# ----------------------------------------------------------------------------- LSTM
def _lstm_cell_moments(hp: MeanFieldHyper, q_h: float) -> dict:
    """Gate moments and the cell state's mean / mean square for a given ``q_h``."""
    g, q_x = hp.gates, hp.q_x
    ef, ef2 = _moments(_sig, g["f"], q_h, q_x)
    ei, ei2 = _moments(_sig, g["i"], q_h, q_x)
    eg, eg2 = _moments(np.tanh, g["g"], q_h, q_x)
    mu_c = ei * eg / (1.0 - ef)
    q_c = (ei2 * eg2 + 2.0 * ef * mu_c * ei * eg) / (1.0 - ef2)
    return {"ef": ef, "ef2": ef2, "ei": ei, "ei2": ei2, "eg": eg, "eg2": eg2, "mu_c": mu_c,
            "q_c": q_c}


def _lstm_q_h(hp: MeanFieldHyper, q_h: float) -> tuple[float, dict]:
    """One pass of the variance map ``q_h -> (q_c, mu_c) -> q_h'``."""
    mo = _lstm_cell_moments(hp, q_h)
    eo2 = _moments(_sig, hp.gates["o"], q_h, hp.q_x)[1]
    return eo2 * _mean(lambda c: np.tanh(c) ** 2, mo["mu_c"], mo["q_c"] - mo["mu_c"] ** 2), mo


def _lstm_fixed_point(hp: MeanFieldHyper) -> tuple[float, dict]:
    """The fixed point ``q_h*`` of the variance map and the moments there."""
    q_h = _root(lambda q: _lstm_q_h(hp, q)[0] - q)
    return q_h, _lstm_cell_moments(hp, q_h)


def _lstm_m(hp: MeanFieldHyper, q_h: float, mo: dict) -> float:
    g, q_x = hp.gates, hp.q_x
    var_c = mo["q_c"] - mo["mu_c"] ** 2
    eo2 = _moments(_sig, g["o"], q_h, q_x)[1]
    d_h = eo2 * _mean(lambda c: _dtanh(c) ** 2, mo["mu_c"], var_c)
    dsf2 = _moments(_dsig, g["f"], q_h, q_x)[1]
    dsi2 = _moments(_dsig, g["i"], q_h, q_x)[1]
    dtg2 = _moments(_dtanh, g["g"], q_h, q_x)[1]
    through_h = (g["f"].sigma ** 2 * mo["q_c"] * dsf2 + g["i"].sigma ** 2 * mo["eg2"] * dsi2
                 + g["g"].sigma ** 2 * mo["ei2"] * dtg2)
    return mo["ef2"] + d_h * through_h


def _gate_pair(hp: MeanFieldHyper, name: str, fn, q_h: float, qh_ab: float) -> float:
    """``E[fn(u^a) fn(u^b)]`` of gate ``name`` for the two copies."""
    k = hp.gates[name]
    cov = k.sigma ** 2 * qh_ab + k.nu ** 2 * hp.c_x * hp.q_x + k.bias_std ** 2
    return _pair_mean(fn, k.mu, _s(k, q_h, hp.q_x), cov)


def _lstm_pair_map(hp: MeanFieldHyper, pair: np.ndarray, q_h: float, mo: dict) -> np.ndarray:
    """One step of the two-copy map of ``(q_c^ab, q_h^ab)``.

    The gates of step ``t`` (o included) see ``h_{t-1}``, so the map has two variables.
    """
    qc_ab, qh_ab = pair
    mu_c = mo["mu_c"]
    new_c = (_gate_pair(hp, "f", _sig, q_h, qh_ab) * qc_ab + 2.0 * mo["ef"] * mu_c * mo["ei"]
             * mo["eg"] + _gate_pair(hp, "i", _sig, q_h, qh_ab)
             * _gate_pair(hp, "g", np.tanh, q_h, qh_ab))
    z, w = _grid(2)
    ca, cb = _pair(z[:, 0], z[:, 1], mo["q_c"] - mu_c ** 2, new_c - mu_c ** 2)
    tt = float(w @ (np.tanh(mu_c + ca) * np.tanh(mu_c + cb)))
    return np.array([new_c, _gate_pair(hp, "o", _sig, q_h, qh_ab) * tt])


# ----------------------------------------------------------------------------- GRU
def _gru_n_moments(hp: MeanFieldHyper, q_h: float) -> dict:
    """Moments of the candidate ``n`` (a scale mixture over the reset gate ``r``)."""
    gr, gn = hp.gates["r"], hp.gates["n"]
    z, w = _grid(3)
    u_r = gr.mu + math.sqrt(_s(gr, q_h, hp.q_x)) * z[:, 0]
    a = gn.mu + math.sqrt(gn.nu ** 2 * hp.q_x + gn.bias_std ** 2) * z[:, 1]
    wh = gn.sigma * math.sqrt(q_h) * z[:, 2]  # W_n h
    r = _sig(u_r)
    u_n = a + r * wh
    n, dn2 = np.tanh(u_n), _dtanh(u_n) ** 2
    return {"en": float(w @ n), "en2": float(w @ n ** 2), "r2dn2": float(w @ (r * r * dn2)),
                "w2dr2dn2": float(w @ (wh ** 2 * _dsig(u_r) ** 2 * dn2))}


def _gru_moments(hp: MeanFieldHyper, q_h: float) -> dict:
    ez, ez2 = _moments(_sig, hp.gates["z"], q_h, hp.q_x)
    return dict(ez=ez, ez2=ez2, **_gru_n_moments(hp, q_h))


def _gru_q_h(hp: MeanFieldHyper, q_h: float) -> float:
    """One pass of the variance map ``q_h -> q_h'`` (with ``mu_h = E[n]``)."""
    mo = _gru_moments(hp, q_h)
    one_z2 = 1.0 - 2.0 * mo["ez"] + mo["ez2"]
    return (one_z2 * mo["en2"] + 2.0 * (mo["ez"] - mo["ez2"]) * mo["en"] ** 2) / (1.0 - mo["ez2"])


def _gru_fixed_point(hp: MeanFieldHyper) -> tuple[float, dict]:
    q_h = _root(lambda q: _gru_q_h(hp, q) - q)
    mo = _gru_moments(hp, q_h)
    return q_h, {**mo, "mu_h": mo["en"]}


def _gru_m(hp: MeanFieldHyper, q_h: float, mo: dict) -> float:
    g = hp.gates
    one_z2 = 1.0 - 2.0 * mo["ez"] + mo["ez2"]
    dz2 = _moments(_dsig, g["z"], q_h, hp.q_x)[1]
    h_minus_n = q_h - 2.0 * mo["mu_h"] * mo["en"] + mo["en2"]
    return (mo["ez2"] + g["z"].sigma ** 2 * h_minus_n * dz2
            + one_z2 * (g["n"].sigma ** 2 * mo["r2dn2"] + g["r"].sigma ** 2 * mo["w2dr2dn2"]))


def _gru_nn_pair(hp: MeanFieldHyper, q_h: float, q_ab: float) -> float:
    """``E[n^a n^b]``: reset-gate pair outside, conditionally bivariate candidates inside."""
    gr, gn = hp.gates["r"], hp.gates["n"]
    z, w = _grid(4)
    ra, rb = _pair(z[:, 0], z[:, 1], _s(gr, q_h, hp.q_x),
                   gr.sigma ** 2 * q_ab + gr.nu ** 2 * hp.c_x * hp.q_x + gr.bias_std ** 2)
    ra, rb = _sig(gr.mu + ra), _sig(gr.mu + rb)
    s_a = gn.nu ** 2 * hp.q_x + gn.bias_std ** 2
    c_a = gn.nu ** 2 * hp.c_x * hp.q_x + gn.bias_std ** 2
    s_w, c_w = gn.sigma ** 2 * q_h, gn.sigma ** 2 * q_ab
    va, vb, cov = s_a + ra * ra * s_w, s_a + rb * rb * s_w, c_a + ra * rb * c_w
    rho = np.clip(cov / np.sqrt(np.maximum(va * vb, 1e-300)), -1.0, 1.0)
    ua = gn.mu + np.sqrt(va) * z[:, 2]
    ub = gn.mu + np.sqrt(vb) * (rho * z[:, 2] + np.sqrt(1.0 - rho * rho) * z[:, 3])
    return float(w @ (np.tanh(ua) * np.tanh(ub)))


def _gru_pair_map(hp: MeanFieldHyper, pair: np.ndarray, q_h: float, mo: dict) -> np.ndarray:
    q_ab = float(pair[0])
    ez_ab = _gate_pair(hp, "z", _sig, q_h, q_ab)
    return np.array([(1.0 - 2.0 * mo["ez"] + ez_ab) * _gru_nn_pair(hp, q_h, q_ab)
                     + 2.0 * (mo["ez"] - ez_ab) * mo["en"] * mo["mu_h"] + ez_ab * q_ab])


# ----------------------------------------------------------------------------- maps
def _jacobian(fn, x: np.ndarray, eps: float) -> np.ndarray:
    """Central finite-difference Jacobian of a small vector map."""
    cols = []
    for j in range(x.size):
        dx = np.zeros_like(x)
        dx[j] = eps
        cols.append((fn(x + dx) - fn(x - dx)) / (2.0 * eps))
    return np.stack(cols, 1)


def _pair_fixed_point(fn, start: np.ndarray) -> tuple[np.ndarray, float]:
    """Fixed point of the two-copy map (Newton from correlation 1) and its slope ``chi``."""
    x = start.copy()
    eps = 1e-6 * float(np.abs(start).max())
    for _ in range(50):
        step = np.linalg.solve(_jacobian(fn, x, eps) - np.eye(x.size), fn(x) - x)
        x = np.clip(x - step, -np.abs(start), np.abs(start))
        if np.abs(step).max() < 1e-13 * np.abs(start).max():
            break
    chi = float(np.abs(np.linalg.eigvals(_jacobian(fn, x, eps))).max())
    return x, chi


def predict(hp: MeanFieldHyper) -> Prediction:
    """Mean-field predictions ``q*``, ``m``, ``chi``, ``xi`` for one random layer.

    Args:
        hp: the layer's hyperparameters and input statistics.

    Returns:
        A :class:`Prediction`.

    Raises:
        ValueError: from :class:`MeanFieldHyper` when it is built (unknown cell, missing gate).

    Example:
        >>> hp = MeanFieldHyper("gru", {k: GateHyper() for k in "rzn"})
        >>> p = predict(hp.with_gate("z", mu=3.0))
        >>> round(p.m, 3), round(p.xi, 2)
        (0.874, 6.91)
    """
    if hp.cell == "lstm":
        q_h, mo = _lstm_fixed_point(hp)
        m = _lstm_m(hp, q_h, mo)
        start, q_star, mu = np.array([mo["q_c"], q_h]), mo["q_c"], mo["mu_c"]
        pair_map = _lstm_pair_map
    else:
        q_h, mo = _gru_fixed_point(hp)
        m = _gru_m(hp, q_h, mo)
        start, q_star, mu = np.array([q_h]), q_h, mo["mu_h"]
        pair_map = _gru_pair_map

    def fn(x: np.ndarray) -> np.ndarray:
        return pair_map(hp, x, q_h, mo)

    pair, chi = _pair_fixed_point(fn, start)
    xi = math.inf if chi >= 1.0 else -1.0 / math.log(chi)
    return Prediction(q_star=q_star, q_h=q_h, mu_state=mu, m=m, chi=chi, xi=xi,
                      c_star=float(pair[0] / q_star))


def predict_m(hp: MeanFieldHyper) -> float:
    """Only ``m`` (no correlation map): the cheap half of :func:`predict`."""
    if hp.cell == "lstm":
        q_h, mo = _lstm_fixed_point(hp)
        return _lstm_m(hp, q_h, mo)
    q_h, mo = _gru_fixed_point(hp)
    return _gru_m(hp, q_h, mo)


# ----------------------------------------------------------------------------- solver
# Note [critical knobs]
# Two knobs per cell: the forget (LSTM f) / update (GRU z) bias mean sets the time scale xi,
# one recurrent weight scale fills m up to 1 (LSTM sigma_i, GRU sigma_z). The recurrent weights
# into the candidate (LSTM sigma_g, GRU sigma_n) default to 0: with a gate near 1 the layer
# integrates its own candidate over ~1/(1 - f) steps, so any recurrent drive of the candidate is
# amplified by that factor, breaks the symmetry of the state and freezes a pattern shared by
# every input sequence (tied weights; the untied theory cannot see it, simulation does). The
# paths we fill m with instead are multiplied by the candidate (LSTM g, GRU h - n), whose sign
# the input renews at every step, so tied weights behave as untied ones there.
CRITICAL_BASE = {
    "lstm": {"i": GateHyper(sigma=1.0, mu=-2.0), "f": GateHyper(sigma=0.0, mu=3.0),
             "g": GateHyper(sigma=0.0), "o": GateHyper(sigma=1.0)},
    "gru": {"r": GateHyper(sigma=0.0), "z": GateHyper(sigma=1.0, mu=3.0),
            "n": GateHyper(sigma=0.0)},
}
# (gate of the bias mean, gate whose sigma fills m or None). GRU: m = E[z^2] + O((1 - z)^2)
# sigma^2, and raising sigma_z far enough to fill m crosses a jump of the variance map (q* and
# m leap past 1, xi collapses); so the GRU keeps sigma_z and reaches m = 1 - O(1/T) through z.
_KNOBS = {"lstm": ("f", "i"), "gru": ("z", None)}
# The solver aims this relative margin above seq_len, so the float32 weights critical_init
# writes still read back (explain) as xi >= seq_len (Note [exact sample moments], critical.py).
XI_MARGIN = 1e-3


def _first_crossing(fn, grid: np.ndarray, target: float, iters: int = 30) -> float | None:
    """The least ``x`` on ``grid``'s range with ``fn(x) = target``, ``fn`` rising through it.

    Scans ``grid`` for the first bracket ``fn(a) < target <= fn(b)`` and bisects it, so a map
    that turns back down later does not mislead the search; None if there is no bracket.
    """
    prev = grid[0]
    if fn(prev) >= target:
        return float(prev)
    for x in grid[1:]:
        if fn(x) >= target:
            lo, hi = float(prev), float(x)
            for _ in range(iters):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if fn(mid) < target else (lo, mid)
            return hi
        prev = x
    return None


def _fill_m(hp: MeanFieldHyper, sigma_max: float) -> MeanFieldHyper:
    """Set the m-knob's sigma so that ``m = 1`` (or as close as ``[0, sigma_max]`` allows)."""
    gate = _KNOBS[hp.cell][1]
    if gate is None:
        return hp
    grid = np.concatenate([[0.0], np.geomspace(0.25, sigma_max, 20)])
    sigma = _first_crossing(lambda s: predict_m(hp.with_gate(gate, sigma=s)), grid, 1.0, 25)
    return hp if sigma is None else hp.with_gate(gate, sigma=sigma)


def _cap_cell_variance(hp: MeanFieldHyper, q_c_max: float = 2.0) -> MeanFieldHyper:
    """LSTM: shrink the candidate's input scale ``nu_g`` until ``q_c <= q_c_max``.

    ``q_c = E[i^2] E[g^2] / (1 - E[f^2])`` grows like ``T``; a saturated ``tanh c`` starves
    every path through ``h`` (``E[tanh'(c)^2] ~ 1/sqrt(q_c)``) and ``m = 1`` gets out of reach.
    """
    if hp.cell != "lstm" or _lstm_fixed_point(hp)[1]["q_c"] <= q_c_max:
        return hp

    def q_c(nu: float) -> float:
        return _lstm_fixed_point(hp.with_gate("g", nu=nu))[1]["q_c"]

    grid = np.geomspace(1e-3, hp.gates["g"].nu, 12)
    nu = _first_crossing(q_c, grid, q_c_max, 20)
    return hp.with_gate("g", nu=grid[0] if nu is None else nu)


def solve_critical(cell: str, seq_len: int, *, q_x: float = 1.0, base: dict | None = None,
                   sigma_max: float = 32.0, mu_max: float = 16.0) -> MeanFieldHyper:
    """Critical hyperparameters: ``m = 1`` and ``xi >= seq_len`` (the least bias mean that
    reaches ``seq_len (1 + XI_MARGIN)``), see Note [critical knobs].

    Args:
        cell: "lstm" or "gru".
        seq_len: the dependency length ``T >= 1`` the layer must carry signals over.
        q_x: mean square of the inputs the layer will see.
        base: gate -> :class:`GateHyper` for everything the solver does not set
            (default ``CRITICAL_BASE[cell]``).
        sigma_max, mu_max: search ranges of the two knobs.

    Returns:
        The solved :class:`MeanFieldHyper`.

    Raises:
        ValueError: ``seq_len < 1``, an unknown cell, ``q_x``, ``sigma_max`` or ``mu_max`` out
            of range, or ``base`` missing a gate.
        TypeError: a value of the wrong type.

    Example:
        >>> p = predict(solve_critical("lstm", 20))
        >>> round(p.m, 6), p.xi >= 20
        (1.0, True)
    """
    seq_len = check_int("seq_len", seq_len, low=1)
    if not isinstance(cell, str) or cell not in GATES:
        raise ValueError(f"critical initialisation covers {sorted(GATES)}, got {cell!r}")
    sigma_max = check_float("sigma_max", sigma_max, low=0.25)
    mu_max = check_float("mu_max", mu_max, low=0.0, low_open=True)
    hp = MeanFieldHyper(cell, dict(base or CRITICAL_BASE[cell]), q_x=q_x)
    gate = _KNOBS[cell][0]

    def solved(mu: float) -> MeanFieldHyper:
        return _fill_m(_cap_cell_variance(hp.with_gate(gate, mu=mu)), sigma_max)

    grid = np.linspace(0.0, mu_max, 17)
    target = seq_len * (1.0 + XI_MARGIN)
    mu = _first_crossing(lambda mu: predict(solved(mu)).xi, grid, target, 20)
    return solved(mu_max if mu is None else mu)
