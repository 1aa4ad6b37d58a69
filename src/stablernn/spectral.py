"""Spectral (SVD) parametrisation of weights: ``W = U diag(sigma) V^T`` with bounded sigma.

Zhang, Lei, Dhillon, "Stabilizing Gradients for Deep Neural Networks via Efficient SVD
Parameterization" (arXiv 1803.09327); docs/algorithms.md section 5. ``U`` and ``V`` are
products of the ``k`` longest Householder reflectors, the singular values stay in
``[sigma_star - r, sigma_star + r]`` through a scaled sigmoid. ``W`` is built with the compact WY
form (a few GEMMs and one triangular solve per side, autograd through them), once per forward
pass of a sequence module.

Public verbs: :func:`spectral` (register the parametrisation), :func:`spectral_factors` (read
``U, sigma, V`` back), :func:`spectral_param_groups` (AdamW groups without weight decay on the
reflectors and sigma).

# Note [Householder signs]
Reflector ``i`` of a side of size ``n`` is stored in LAPACK's form: column ``i`` of a parameter
``A`` of shape ``(n, k)`` holds ``v_i = e_i + (strictly lower part of column i)``, an implicit 1 at
position ``i`` and zeros above it; ``H_i = I - tau_i v_i v_i^T`` with ``tau_i = 2 / ||v_i||^2``.
So ``U = H_0 H_1 ... H_{k-1}`` equals ``torch.linalg.householder_product(A, tau)``. The implicit
1 keeps ``||v_i|| >= 1``: a reflector can never reach zero norm, ``tau_i <= 2`` and the map is
smooth everywhere (no clamping, no renormalisation). Entries on and above the diagonal of ``A``
are ignored (their gradient is zero). Unlike LAPACK we never use ``tau = 0``: every factor is a
true reflection, so ``det U = (-1)^k``. Since the SVD is only defined up to flipping the signs of
matching columns of ``U`` and ``V``, and the parameter space is connected while ``det W`` can
never cross zero (sigma > 0), a fixed sign per singular value is kept in the buffer ``signs``
(all +1 after a random initialisation; set by ``right_inverse`` to the signs that make the fit
exact). ``svdvals(W) = sigma`` regardless of the signs.

# Note [Compact WY]
``H_0 ... H_{k-1} = I - Y T Y^T`` with ``Y = [v_0 ... v_{k-1}]`` (unit lower trapezoidal) and
``T^{-1} = striu(Y^T Y) + diag(Y^T Y) / 2`` (the "UT transform"; the diagonal is ``1 / tau``).
``T^{-1}`` is upper triangular with diagonal ``>= 1/2`` (Note [Householder signs]), so the
triangular solve is always defined. ``W = U[:, :p] diag(sigma) V[:, :p]^T`` is then assembled
without forming ``U`` or ``V``: ``B = diag(sigma) V[:, :p]^T`` and ``W = [B; 0] - Y_u (X_u B)``
with ``X_u = T_u Y_u^T``; about ``3 m n k`` flops. With ``k < n``, ``U`` and ``V`` are rank-``k``
perturbations of ``I``, so ``W - Sigma`` has rank at most ``2 k``.

# Note [Blocked build]
``W`` is built as ``U [(V[:, :p] diag(sigma))^T; 0]`` by applying the reflectors in blocks of
``_BLOCK`` columns, each block in compact WY form ``I - Y_j T_j Y_j^T`` (Note [Compact WY]
within the block). Two structures are exploited: column ``i`` of ``Y`` is zero above row ``i``,
so block ``j`` only touches rows ``>= j``; and when ``V`` is applied to ``[diag(sigma); 0]``
starting with the last block (as LAPACK's ``orgqr`` forms ``Q``), block ``j`` meets a matrix
that is still ``[diag; 0]`` outside rows and columns ``>= j``. For ``m = n = k`` this costs about
``(4/3 + 2) n^3`` multiply-adds against ``6 n^3`` for the unblocked form (one ``k x k``
triangular factor per side, then full products), and the backward through it shrinks alike:
docs/spectral.md, "Speed of the parametrisation", has the measurements.

# Note [Saturated sigma]
``sigma = 2 r (sigmoid(p) - 1/2) + sigma_star``. ``right_inverse`` clips the singular values of
the weight it projects to the band shrunk by ``_EDGE * 2 r`` on each side, so ``p`` stays finite;
a singular value at the edge has ``sigmoid'(p) ~ _EDGE`` and learns slowly (Adam rescales it).
"""
from __future__ import annotations

import inspect
import re
import sys
import types
import weakref
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn.utils import parametrize

from ._checks import check_float, check_int, custom_backward_allowed

__all__ = ["Spectral", "spectral", "spectral_factors", "spectral_param_groups"]

_EDGE = 1e-3  # Note [Saturated sigma]
_RNN_HH = re.compile(r"weight_hh_l\d+(_reverse)?$")


def reflector_matrix(A: Tensor) -> Tensor:
    """Unit lower trapezoidal ``Y`` from a reflector parameter ``A (..., n, k)``.

    Note [Householder signs]: column ``i`` is ``e_i`` plus the strictly lower part of ``A``.
    """
    n, k = A.shape[-2:]
    return A.tril(-1) + torch.eye(n, k, dtype=A.dtype, device=A.device)


def _t_inverse(Y: Tensor) -> Tensor:
    """``T^{-1} = striu(Y^T Y) + diag(Y^T Y) / 2`` of the compact WY form (Note [Compact WY]);
    ``Y (..., n, k)`` may hold several blocks as a batch."""
    T_inv = (Y.mT @ Y).triu_()
    T_inv.diagonal(dim1=-2, dim2=-1).mul_(0.5)
    return T_inv


def wy_factor(A: Tensor) -> tuple[Tensor, Tensor]:
    """Compact WY factors of ``H_0 ... H_{k-1}``: returns ``(Y, X)`` with ``Q = I - Y X``.

    Args:
        A: reflector parameter ``(..., n, k)``, Note [Householder signs].

    Returns:
        ``Y (..., n, k)`` and ``X = T Y^T (..., k, n)``, Note [Compact WY].
    """
    Y = reflector_matrix(A)
    return Y, torch.linalg.solve_triangular(_t_inverse(Y), Y.mT, upper=True)


def wy_orthogonal(A: Tensor) -> Tensor:
    """The orthogonal matrix ``H_0 ... H_{k-1}`` ``(..., n, n)`` from reflectors ``A (..., n, k)``.

    Example:
        >>> A = torch.randn(4, 2, dtype=torch.float64)
        >>> Y = reflector_matrix(A)
        >>> Q = wy_orthogonal(A)
        >>> H = torch.linalg.householder_product(Y, 2 / (Y * Y).sum(0))  # first k columns
        >>> torch.allclose(Q[:, :2], H)
        True
    """
    Y, X = wy_factor(A)
    n = A.shape[-2]
    return torch.eye(n, dtype=A.dtype, device=A.device) - Y @ X


_BLOCK = 64  # reflectors per block of the blocked build, Note [Blocked build]


def _sub_mm_(out: Tensor, a: Tensor, b: Tensor) -> None:
    """``out -= a @ b`` in place, the subtraction fused into the GEMM where torch has one."""
    if out.dim() == 2:
        out.addmm_(a, b, alpha=-1)
    elif out.dim() == 3:
        out.baddbmm_(a, b, alpha=-1)
    else:
        out.sub_(a @ b)


def _block_factors(A: Tensor, block: int) -> list[tuple[int, Tensor, Tensor]]:
    """Per block of ``block`` reflectors, starting at column ``j``: ``(j, Y_j, T_j)`` with
    ``Q_j = I - Y_j T_j Y_j^T`` and ``Y_j`` restricted to rows ``>= j`` (the rows above are
    zero). All ``T_j`` come from one batched product and one batched triangular solve (few
    small operations: they do not speed up with threads), explicitly, so every product of the
    blocked build is a GEMM."""
    k = A.shape[-1]
    Y = reflector_matrix(A)
    count = -(-k // block)
    pad = count * block - k  # zero columns completing the last block
    Yb = torch.nn.functional.pad(Y, (0, pad)).unflatten(-1, (count, block)).movedim(-3, -2)
    T_inv = _t_inverse(Yb)  # (..., count, block, block)
    if pad:  # identity on the padding: T stays invertible
        T_inv.diagonal(dim1=-2, dim2=-1)[..., -1, block - pad:] = 1.0
    eye = torch.eye(block, dtype=A.dtype, device=A.device)
    T = torch.linalg.solve_triangular(T_inv, eye, upper=True)
    return [(j, Y[..., j:, j:j + block], T[..., i, :min(block, k - j), :min(block, k - j)])
            for i, j in enumerate(range(0, k, block))]


def _block_apply(A: Tensor, M: Tensor, block: int, structured: bool, *,
                 in_place: bool = True) -> tuple[Tensor, list]:
    """``Q M`` for the reflectors ``A``, block by block (the last first); returns it and what
    the backward needs per block: ``(j, Y_j, T_j, input N_j, Z_j = Y_j^T N_j, R_j = T_j Z_j)``.

    With ``structured``, ``M`` is ``[diag; 0]`` where the later blocks leave it, so block ``j``
    only touches rows and columns ``>= j`` (Note [Blocked build]). ``in_place`` overwrites ``M``
    with the update fused into the GEMM and records for :func:`_block_backward`; without it the
    update runs out of place through plain autograd ops (inside ``torch.func`` transforms)."""
    records = []
    for j, Yj, T in reversed(_block_factors(A, block)):
        lo = j if structured else 0
        N = M[..., j:, lo:]
        Z = Yj.mT @ N
        R = T @ Z
        if in_place:
            records.append((j, Yj, T, N.clone(), Z, R))
            _sub_mm_(N, Yj, R)
        else:
            M = torch.cat([M[..., :j, :], torch.cat([M[..., j:, :lo], N - Yj @ R], -1)], -2)
    return M, records


def _block_backward(A: Tensor, G: Tensor, records: list, structured: bool) -> Tensor:
    """Walk :func:`_block_apply` back: ``G <- Q^T G`` in place; returns ``dL/dA``.

    Per block ``N' = N - Y T Y^T N`` with ``T^{-1} = striu(Y^T Y) + diag(Y^T Y) / 2``:
    ``dN = G - Y P`` with ``P = T^T Y^T G``; ``dY = -(G R^T + N P^T) + Y (dS + dS^T)`` where
    ``dS`` is ``dL/dT^{-1} = -T^T (-(Y^T G) Z^T) T^T`` masked like ``T^{-1}``; ``dL/dA`` is
    ``dY`` below the diagonal (Note [Householder signs])."""
    gA = torch.zeros_like(A)
    for j, Yj, T, N, Z, R in reversed(records):
        Gp = G[..., j:, j if structured else 0:]
        YG = Yj.mT @ Gp
        P = T.mT @ YG
        dS = (T.mT @ (YG @ Z.mT) @ T.mT).triu_()  # -T^T dL/dT T^T, masked like T^{-1}
        dS.diagonal(dim1=-2, dim2=-1).mul_(0.5)
        g = Yj @ (dS + dS.mT)
        _sub_mm_(g, Gp, R.mT)
        _sub_mm_(g, N, P.mT)
        g[..., :g.shape[-1], :].tril_(-1)
        gA[..., j:, j:j + g.shape[-1]] = g
        _sub_mm_(Gp, Yj, P)
    return gA


def _build(A_u: Tensor, A_v: Tensor, sigma: Tensor, block: int, *,
           in_place: bool) -> tuple[Tensor, list, list]:
    """``W = U [V [diag(sigma); 0]]^T`` padded to ``(..., m, n)``, with the records of both
    sides (:func:`_block_apply`; ``in_place`` as there)."""
    m, n, p = A_u.shape[-2], A_v.shape[-2], sigma.shape[-1]
    VS = torch.nn.functional.pad(torch.diag_embed(sigma), (0, 0, 0, n - p))  # (..., n, p)
    VS, rec_v = _block_apply(A_v, VS, block, structured=True, in_place=in_place)
    W = torch.nn.functional.pad(VS.mT, (0, 0, 0, m - p))  # (..., m, n)
    W, rec_u = _block_apply(A_u, W.contiguous() if in_place else W, block, structured=False,
                            in_place=in_place)
    return W, rec_u, rec_v


class _BlockedWeight(torch.autograd.Function):
    """:func:`blocked_weight` with a hand-written backward that updates in place (autograd
    through the slices of the blocked loop spends a third of its time zero-filling)."""

    @staticmethod
    def forward(ctx: Any, A_u: Tensor, A_v: Tensor, sigma: Tensor, block: int) -> Tensor:
        W, rec_u, rec_v = _build(A_u, A_v, sigma, block, in_place=True)
        ctx.save_for_backward(A_u, A_v)
        ctx.records, ctx.p = (rec_u, rec_v), sigma.shape[-1]
        return W

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        A_u, A_v = ctx.saved_tensors
        rec_u, rec_v = ctx.records
        p = ctx.p
        G = grad.clone()
        gA_u = _block_backward(A_u, G, rec_u, structured=False)
        Gv = G[..., :p, :].mT.contiguous()  # dL/d(V S), (..., n, p)
        gA_v = _block_backward(A_v, Gv, rec_v, structured=True)
        return gA_u, gA_v, Gv[..., :p, :].diagonal(dim1=-2, dim2=-1), None


def blocked_weight(A_u: Tensor, A_v: Tensor, sigma: Tensor, block: int = _BLOCK) -> Tensor:
    """``U[:, :p] diag(sigma) V[:, :p]^T (..., m, n)`` from reflectors ``A_u (..., m, k)``,
    ``A_v (..., n, k)`` and ``sigma (..., p)``, ``p = min(m, n)``: Note [Blocked build].

    Inside ``torch.func`` transforms it runs the same blocks through plain autograd ops.

    Example:
        >>> A_u, A_v, sigma = torch.randn(2, 5, 5, dtype=torch.float64).unbind(0) + (
        ...     torch.rand(5, dtype=torch.float64),)
        >>> W = wy_orthogonal(A_u) @ torch.diag(sigma) @ wy_orthogonal(A_v).T
        >>> torch.allclose(blocked_weight(A_u, A_v, sigma), W)
        True
    """
    if custom_backward_allowed():
        if A_u.dim() > 2:  # one 2-D build per gate block: GEMMs run faster than batched ones
            return torch.stack([blocked_weight(a, b, s, block) for a, b, s in
                                zip(A_u.unbind(0), A_v.unbind(0), sigma.unbind(0), strict=True)])
        return _BlockedWeight.apply(A_u, A_v, sigma, block)
    return _build(A_u, A_v, sigma, block, in_place=False)[0]


def fit_reflectors(Q: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Reflectors whose product matches the orthogonal ``Q (..., n, n)`` up to column signs.

    Exact for ``k = n``; for ``k < n`` the leading ``k`` reflectors of the Householder QR of ``Q``
    (its first ``k`` columns are matched exactly, the rest approximately).

    Returns:
        ``A (..., n, k)`` (Note [Householder signs]) and ``signs (..., n)`` with
        ``wy_orthogonal(A) * signs ~ Q``.
    """
    a, _ = torch.geqrf(Q)
    A = a[..., :k]
    # LAPACK may use tau = 0 (no reflection) where we always reflect: the product then differs
    # by column signs, read off the diagonal of U^T Q (Note [Householder signs]).
    d = (wy_orthogonal(A) * Q).sum(-2)
    return A, torch.where(d < 0, -1.0, 1.0).to(Q.dtype)


class Spectral(nn.Module):
    """``W = U diag(sigma) V^T`` per gate block (the private maths of :func:`spectral`).

    Args:
        shape: the weight's shape ``(blocks * m, n)``.
        blocks: number of stacked gate blocks (e.g. 4 for an LSTM ``weight_hh``).
        k: reflectors per side (``1 <= k <= min(m, n)``).
        r: half-width of the singular value band.
        sigma_star: centre of the band.
    """

    signs: Tensor  # buffer (G, p), Note [Householder signs]

    def __init__(self, shape: tuple[int, int], blocks: int, k: int, r: float,
                 sigma_star: float) -> None:
        super().__init__()
        self.blocks, self.m, self.n = blocks, shape[0] // blocks, shape[1]
        self.k, self.r, self.sigma_star = k, r, sigma_star
        self.register_buffer("signs", torch.ones(blocks, min(self.m, self.n)))

    @property
    def p(self) -> int:
        return min(self.m, self.n)

    def sigma(self, s: Tensor) -> Tensor:
        """Singular values ``2 r (sigmoid(s) - 1/2) + sigma_star`` from ``s`` (the paper's
        ``p``)."""
        return 2 * self.r * (torch.sigmoid(s) - 0.5) + self.sigma_star

    def forward(self, A_u: Tensor, A_v: Tensor, s: Tensor) -> Tensor:
        return blocked_weight(A_u, A_v, self.signs * self.sigma(s)).reshape(
            self.blocks * self.m, self.n)  # G x (m, n) -> (G m, n)

    @torch.no_grad()
    def right_inverse(self, W: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Parameters of the admissible weight nearest to ``W`` (via its SVD).

        Exact (``forward(right_inverse(W)) == W`` for admissible ``W``) when
        ``k = min(m, n)``; a heuristic for ``k < min(m, n)`` (see :func:`fit_reflectors`).
        Sets the ``signs`` buffer, Note [Householder signs].
        """
        P, S, Qh = torch.linalg.svd(W.reshape(self.blocks, self.m, self.n))
        A_u, d_u = fit_reflectors(P, self.k)
        A_v, d_v = fit_reflectors(Qh.mT, self.k)
        self.signs.copy_(d_u[..., :self.p] * d_v[..., :self.p])
        frac = ((S - self.sigma_star) / (2 * self.r) + 0.5).clamp(_EDGE, 1 - _EDGE)
        return A_u, A_v, torch.logit(frac)

    @torch.no_grad()
    def sample(self, *, dtype=None, device=None) -> tuple[Tensor, Tensor, Tensor]:
        """Paper initialisation: ``sigma = sigma_star`` (``p = 0``), ``U``, ``V`` Haar-random
        (restricted to ``k`` reflectors); resets ``signs`` to +1."""
        self.signs.fill_(1.0)
        sides = []
        for size in (self.m, self.n):
            G = torch.randn(self.blocks, size, size, dtype=dtype, device=device)
            Q, R = torch.linalg.qr(G)
            Q = Q * torch.sgn(R.diagonal(dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar, not QR-biased
            sides.append(fit_reflectors(Q, self.k)[0])
        return sides[0], sides[1], torch.zeros(self.blocks, self.p, dtype=dtype, device=device)

    def factors(self, A_u: Tensor, A_v: Tensor, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Explicit ``(U (G, m, m), sigma (G, p), V (G, n, n))``, the signs folded into
        sigma."""
        return wy_orthogonal(A_u), self.signs * self.sigma(s), wy_orthogonal(A_v)

    def in_manifold(self, W: Tensor, atol: float = 1e-5) -> bool:
        """Whether every block of ``W`` has singular values inside the band (up to ``atol``)."""
        sv = torch.linalg.svdvals(W.reshape(self.blocks, self.m, self.n))
        lo, hi = self.sigma_star - self.r - atol, self.sigma_star + self.r + atol
        return bool(((sv >= lo) & (sv <= hi)).all())

    def extra_repr(self) -> str:
        return (f"blocks={self.blocks}, m={self.m}, n={self.n}, k={self.k}, r={self.r}, "
                f"sigma_star={self.sigma_star}")


def _check_band(r: Any, sigma_star: Any) -> tuple[float, float]:
    r = check_float("r", r, low=0.0, low_open=True)  # the half-width of the band
    sigma_star = check_float("sigma_star", sigma_star)
    if not sigma_star >= r:
        raise ValueError(f"sigma_star must be >= r so singular values stay >= 0; got "
                         f"sigma_star={sigma_star!r}, r={r!r}")
    return r, sigma_star


def _blocks_of(module: nn.Module, name: str, weight: Tensor, blocks: int | None) -> int:
    if blocks is None:
        h = getattr(module, "hidden_size", None)
        rows = weight.shape[0]
        blocks = rows // h if isinstance(h, int) and rows > h and rows % h == 0 else 1
    blocks = check_int("blocks", blocks, low=1)
    if weight.shape[0] % blocks:
        raise ValueError(f"{name} has {weight.shape[0]} rows, not divisible into {blocks} blocks")
    return blocks


def _check_weight(module: nn.Module, name: str) -> Tensor:
    weight = getattr(module, name, None)
    if weight is None:
        found = [n for n, p in module.named_parameters(recurse=False) if p.dim() == 2]
        raise ValueError(f"{type(module).__name__} has no tensor {name!r}; 2-D parameters: "
                         f"{', '.join(found) or 'none'}")
    if not isinstance(weight, Tensor):
        raise TypeError(f"{name!r} must be a tensor, got {type(weight).__name__}")
    if weight.dim() != 2:
        raise ValueError(f"spectral needs a 2-D weight; {name!r} has shape {tuple(weight.shape)}")
    if parametrize.is_parametrized(module, name):
        what = ("a spectral parametrisation" if any(
            isinstance(p, Spectral) for p in _parametrizations(module, name))
            else "a parametrisation")
        raise ValueError(f"{name!r} already has {what}; spectral needs a plain weight")
    if weight.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"spectral needs a float32 or float64 {name!r}, got {weight.dtype}")
    if not bool(torch.isfinite(weight).all()):
        raise ValueError(f"{name!r} has NaN/Inf values (a diverged model?); re-initialise it "
                         f"before spectral")
    return weight


def _parametrizations(module: nn.Module, name: str) -> parametrize.ParametrizationList:
    """``module.parametrizations[name]``, the list ``register_parametrization`` made."""
    plists = module.parametrizations
    assert isinstance(plists, nn.ModuleDict)
    plist = plists[name]
    assert isinstance(plist, parametrize.ParametrizationList)
    return plist


class _Plan(NamedTuple):
    """One checked target of :func:`spectral`: name, blocks, reflectors per side."""

    name: str
    blocks: int
    k: int


def _plan(module: nn.Module, name: str, k: Any, blocks: Any) -> _Plan:
    """Check one target completely (nothing changes); raises ValueError / TypeError."""
    weight = _check_weight(module, name)
    g = _blocks_of(module, name, weight, blocks)
    m, n = weight.shape[0] // g, weight.shape[1]
    k = min(m, n) if k is None else check_int("k", k, low=None)
    if not 1 <= k <= min(m, n):
        raise ValueError(f"k must be an int in [1, min(m, n) = {min(m, n)}] for {name!r} "
                         f"(blocks of {m} x {n}); got {k!r}")
    return _Plan(name, g, k)


def _register(module: nn.Module, plan: _Plan, r: float, sigma_star: float) -> None:
    weight = getattr(module, plan.name)
    param = Spectral(tuple(weight.shape), plan.blocks, plan.k, r, sigma_star)
    param = param.to(device=weight.device, dtype=weight.dtype)
    parametrize.register_parametrization(module, plan.name, param)  # projects the weight
    originals = _parametrizations(module, plan.name)
    with torch.no_grad():
        for i, t in enumerate(param.sample(dtype=weight.dtype, device=weight.device)):
            getattr(originals, f"original{i}").copy_(t)


def _unregister(module: nn.Module, name: str, saved: Tensor) -> None:
    """Undo :func:`_register`: drop the parametrisation, put back the very tensor ``saved``
    (register_parametrization leaves it untouched: Spectral's right_inverse returns new
    tensors)."""
    parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    if isinstance(saved, nn.Parameter):
        setattr(module, name, saved)  # nn.RNNBase.__setattr__ also refreshes _flat_weights
    else:
        module._buffers[name] = saved


def _refresh_flat_weights(rnn: nn.RNNBase, *, detach: bool = False) -> None:
    """Point ``rnn._flat_weights`` at the (cached) parametrised tensors of this forward pass;
    ``detach`` afterwards, so the list holds no autograd graph (and deepcopy works)."""
    for i, name in enumerate(rnn._flat_weights_names):
        if parametrize.is_parametrized(rnn, name):
            if detach:
                flat = rnn._flat_weights[i]
                assert flat is not None  # the parametrised weight exists
                w = flat.detach()
            else:
                w = getattr(rnn, name)
            rnn._flat_weights[i] = w
            if hasattr(rnn, "_flat_weight_refs"):
                rnn._flat_weight_refs[i] = weakref.ref(w)


def _cached_rnn_forward(self: nn.RNNBase, *args, **kwargs):
    # Note [Flat RNN weights]: torch.nn.RNNBase feeds its kernel from self._flat_weights, a list
    # filled when weights are assigned. With a parametrisation the attribute is recomputed on
    # every access: torch < 2.0 kept the stale tensor (silent: the output ignores training);
    # torch 2.x notices and rebuilds the list, evaluating the parametrisation twice per forward.
    # Here we build each W once (cached) and hand exactly that tensor to the kernel.
    with parametrize.cached():
        _refresh_flat_weights(self)
        try:
            return type(self).forward(self, *args, **kwargs)
        finally:
            _refresh_flat_weights(self, detach=True)


def _detaching_apply(self: nn.RNNBase, *args, **kwargs):
    out = type(self)._apply(self, *args, **kwargs)  # rebuilds _flat_weights with graphs
    _refresh_flat_weights(self, detach=True)
    return out


def _cached_forward_sequence(self: nn.Module, *args, **kwargs):
    with parametrize.cached():  # our cells read self.weight_hh once per step
        return type(self).forward_sequence(self, *args, **kwargs)  # type: ignore[attr-defined]


def _install_cache(module: nn.Module) -> None:
    """Make a sequence module build its parametrised weights once per call (idempotent)."""
    if isinstance(module, nn.RNNBase) and "forward" not in module.__dict__:
        module.forward = types.MethodType(_cached_rnn_forward, module)
        module._apply = types.MethodType(_detaching_apply, module)  # type: ignore[method-assign]
        _refresh_flat_weights(module, detach=True)
    elif hasattr(module, "forward_sequence") and "forward_sequence" not in module.__dict__:
        module.forward_sequence = types.MethodType(_cached_forward_sequence, module)  # type: ignore[assignment]


def _target_names(module: nn.Module, name: str) -> list[str]:
    if isinstance(module, nn.RNNBase) and name == "weight_hh":
        return [n for n in module._flat_weights_names if _RNN_HH.match(n)]
    return [name]


def spectral(module: nn.Module, name: str = "weight_hh", *, k: int | None = None,
             r: float = 0.01, sigma_star: float = 1.0, blocks: int | None = None) -> nn.Module:
    """Parametrise ``module.<name>`` as ``U diag(sigma) V^T`` with singular values in a band.

    Each gate block gets its own ``U``, ``sigma``, ``V``; ``U``, ``V`` are products of the ``k``
    longest Householder reflectors (Note [Householder signs]), ``sigma`` lies in
    ``[sigma_star - r, sigma_star + r]``. The weight is re-initialised as in the paper
    (``sigma = sigma_star``, Haar-random ``U``, ``V``); assigning ``module.<name> = W`` afterwards
    projects ``W`` onto the nearest admissible weight. On ``torch.nn.RNN/LSTM/GRU`` and on our
    cells the module then builds ``W`` once per forward call (Note [Flat RNN weights]).

    Args:
        module: any module with a 2-D tensor ``name``: ``nn.Linear`` (``"weight"``),
            ``torch.nn.RNN/LSTM/GRU`` (``"weight_hh_l0"`` ..., or ``"weight_hh"`` for every
            layer and direction), our cells (``"weight_hh"``).
        name: the tensor to parametrise (default ``"weight_hh"``).
        k: reflectors per side, ``1 <= k <= min(m, n)`` for ``m x n`` blocks; None (default)
            uses ``min(m, n)``, which reaches every weight with singular values in the band.
            With ``k < n``, ``W - Sigma`` has rank at most ``2 k`` (the paper used ``k = n/4``).
        r: half-width of the band, ``> 0`` (default 0.01).
        sigma_star: centre of the band, ``>= r`` (default 1.0).
        blocks: number of stacked gate blocks; None infers ``rows // module.hidden_size``
            (3 for a GRU, 4 for an LSTM) and otherwise 1.

    Returns:
        ``module``, changed in place.

    Every target is checked before any is changed; if registering fails part-way, the
    parametrisations this call added are removed and the original weights put back.

    Raises:
        ValueError: ``r <= 0``, ``sigma_star < r`` (NaN / Inf included), ``k`` out of range, a
            missing, non-2-D or non-finite tensor, or a tensor that is already parametrised.
        TypeError: an option of the wrong type, or a weight that is not float32 / float64.

    Example:
        >>> gru = spectral(torch.nn.GRU(4, 8, batch_first=True), "weight_hh_l0", r=0.05)
        >>> sv = torch.linalg.svdvals(gru.weight_hh_l0.detach().reshape(3, 8, 8))
        >>> bool(((sv > 0.95 - 1e-5) & (sv < 1.05 + 1e-5)).all())
        True
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"spectral parametrises a torch module, got {type(module).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (e.g. 'weight_hh'), got {type(name).__name__}")
    r, sigma_star = _check_band(r, sigma_star)
    plans = [_plan(module, target, k, blocks) for target in _target_names(module, name)]
    if not plans:
        raise ValueError(f"{type(module).__name__} has no tensor matching {name!r}")
    done: list[tuple[str, Tensor]] = []
    try:
        for plan in plans:
            saved = getattr(module, plan.name)
            _register(module, plan, r, sigma_star)
            done.append((plan.name, saved))
        _install_cache(module)
    except BaseException:
        for target, saved in reversed(done):
            _unregister(module, target, saved)
        raise
    return module


def _spectral_of(module: nn.Module, name: str) -> Spectral:
    if parametrize.is_parametrized(module, name):
        for p in _parametrizations(module, name):
            if isinstance(p, Spectral):
                return p
    raise ValueError(f"{type(module).__name__}.{name} has no spectral parametrisation; "
                     f"call stablernn.spectral(module, {name!r}) first")


def spectral_factors(module: nn.Module, name: str = "weight_hh") -> tuple[Tensor, Tensor, Tensor]:
    """The factors of a spectrally parametrised weight.

    Returns:
        ``U (G, m, m)``, ``sigma (G, p)`` (signed, Note [Householder signs]) and ``V (G, n, n)``
        with ``weight = (U[:, :, :p] * sigma[:, None]) @ V[:, :, :p].mT`` stacked over blocks.

    Raises:
        ValueError: ``name`` is not spectrally parametrised.
    """
    param = _spectral_of(module, name)
    originals = _parametrizations(module, name)
    return param.factors(*(getattr(originals, f"original{i}") for i in range(3)))


def _spectral_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    for mod in model.modules():
        if isinstance(mod, parametrize.ParametrizationList) and any(
                isinstance(p, Spectral) for p in mod):
            yield from mod.parameters(recurse=False)


def spectral_param_groups(model: nn.Module, weight_decay: float, *,
                          spectral_lr: float | None = None) -> list[dict]:
    """Optimiser parameter groups: weight decay on everything but reflectors and sigma.

    Decay would pull the free sigma parameter towards 0 (``sigma -> sigma_star``) and the
    reflectors towards ``e_i``, i.e. towards an arbitrary point of the constraint set.
    ``spectral_lr`` gives the reflectors and sigma their own learning rate (orthogonal RNNs learn
    long memory with it ten times smaller than the rest, docs/spectral.md).

    Example:
        >>> model = spectral(torch.nn.Linear(4, 4), "weight")
        >>> opt = torch.optim.AdamW(spectral_param_groups(model, 1e-2), lr=1e-3)
        >>> [g["weight_decay"] for g in opt.param_groups]
        [0.01, 0.0]
    """
    weight_decay = check_float("weight_decay", weight_decay, low=0.0)
    skip = {id(p) for p in _spectral_parameters(model)}
    decay = [p for p in model.parameters() if id(p) not in skip]
    free = [p for p in model.parameters() if id(p) in skip]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": free, "weight_decay": 0.0}]
    if spectral_lr is not None:
        groups[1]["lr"] = check_float("spectral_lr", spectral_lr, low=0.0, low_open=True)
    return [g for g in groups if g["params"]]


class _SpectralModule(types.ModuleType):
    """This module, callable as :func:`spectral`: ``stablernn.spectral`` names both.

    ``stablernn/__init__.py`` exports the module, so ``stablernn.spectral(gru, "weight_hh")``,
    ``from stablernn import spectral`` and ``import stablernn.spectral as sp;
    sp.spectral_factors(...)`` all work.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> nn.Module:
        return spectral(*args, **kwargs)


__signature__ = inspect.signature(spectral)  # what inspect/help show for the callable module
sys.modules[__name__].__class__ = _SpectralModule
