"""Spectral RNN cell: an Elman RNN whose recurrent matrix is ``U diag(sigma) V^T``.

Zhang, Lei, Dhillon (arXiv 1803.09327); docs/algorithms.md sections 5 and 6. The maths lives in
:mod:`stablernn.spectral`; this cell only applies it to ``weight_hh`` at construction.
"""
from __future__ import annotations

from .._checks import check_choice
from ..spectral import spectral
from .base import register_cell
from .rnn import RNNCell, henaff_init_

INITS = ("haar", "henaff")


@register_cell("spectral")  # `stablernn train --model spectral`
@register_cell("spectral_rnn")
class SpectralRNNCell(RNNCell):
    """Elman RNN step with ``weight_hh = U diag(sigma) V^T``, sigma in ``[sigma_star +- r]``.

    Args:
        input_size: features of ``x_t``.
        hidden_size: width ``H`` of the state.
        k: Householder reflectors per side (``1 <= k <= H``); None uses ``H`` (every orthogonal
            factor; the paper's default is ``H / 4``).
        r: half-width of the singular value band (default 0.01).
        sigma_star: centre of the band (default 1.0).
        nonlinearity, bias: as for :class:`RNNCell` (``"modrelu"`` with the ``"henaff"`` init
            is the set-up that learns copy at ``T = 1000``, docs/spectral.md).
        init: ``"haar"`` (default, the paper's: ``sigma = sigma_star``, Haar-random ``U`` and
            ``V``) or ``"henaff"`` (``W`` block rotations with uniform angles, He input weights,
            zero biases: :func:`~stablernn.cells.rnn.henaff_init_`; needs ``1`` in the band).

    Example:
        >>> import torch
        >>> cell = SpectralRNNCell(3, 6, r=0.1)
        >>> sv = torch.linalg.svdvals(cell.weight_hh.detach())
        >>> bool(((sv > 0.9 - 1e-5) & (sv < 1.1 + 1e-5)).all())
        True
    """

    identity_init = True  # inits assign weight_hh, which projects it onto the band
    torch_module = None

    def __init__(self, input_size: int, hidden_size: int, *, k: int | None = None,
                 r: float = 0.01, sigma_star: float = 1.0, nonlinearity: str = "tanh",
                 bias: bool = True, init: str = "haar") -> None:
        super().__init__(input_size, hidden_size, nonlinearity=nonlinearity, bias=bias)
        check_choice("init", init, INITS)
        self.k, self.r, self.sigma_star, self.init = k, r, sigma_star, init
        spectral(self, "weight_hh", k=k, r=r, sigma_star=sigma_star)
        if init == "henaff":
            if not abs(self.sigma_star - 1.0) <= self.r:
                raise ValueError(f"init='henaff' needs singular value 1 inside the band "
                                 f"[{self.sigma_star - self.r}, {self.sigma_star + self.r}]; "
                                 f"use init='haar' or move sigma_star / r")
            henaff_init_(self)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, k={self.k}, r={self.r}, sigma_star={self.sigma_star}, "
                f"init={self.init!r}")
