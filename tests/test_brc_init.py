"""BRC / nBRC initialisation (Note [per-block Glorot] in stablernn.cells.brc): each (H, D) input
block of ``weight_ih`` is Glorot-uniform on its own fans, as in the authors' reference code."""
from __future__ import annotations

import math

import pytest
import torch

from stablernn.cells.brc import BRCCell, NBRCCell

CELLS = [BRCCell, NBRCCell]


def _ks_uniform(w: torch.Tensor, bound: float) -> float:
    """Independent reference: Kolmogorov-Smirnov distance of ``w`` to U(-bound, bound)."""
    x = w.flatten().double().sort().values
    n = len(x)
    cdf = ((x + bound) / (2 * bound)).clamp(0, 1)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(i / n - cdf, cdf - (i - 1) / n).max())


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("D, H", [(1, 64), (8, 16)])
def test_each_input_block_is_glorot_on_its_own_fans(cls, D, H):
    torch.manual_seed(0)
    cells = [cls(D, H) for _ in range(max(1, 4096 // (D * H)))]  # >= 4096 draws per block
    blocks = [torch.cat([c.weight_ih.detach()[k * H:(k + 1) * H].flatten() for c in cells])
              for k in range(3)]
    per_block = math.sqrt(2 / (D + H))    # the reference: three (H, D) Glorot matrices
    stacked = math.sqrt(2 / (D + 3 * H))  # Glorot on the stacked (3H, D) matrix (the old init)
    bound = math.sqrt(3) * per_block
    for gate, w in zip("ach", blocks, strict=True):
        # relative standard error of a uniform sample's std is sqrt(0.8 / 4n) < 0.7 % here
        assert float(w.std()) == pytest.approx(per_block, rel=0.04), gate
        assert abs(float(w.std()) - stacked) > 0.2 * per_block, gate
        assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.98 * bound, gate
        assert abs(float(w.mean())) < 4 * per_block / math.sqrt(len(w)), gate
        # KS test at 0.1 % per block (24 blocks tested: ~2.4 % family-wise)
        assert _ks_uniform(w, bound) < 1.95 / math.sqrt(len(w)), gate


def test_brc_std_at_d1_h64_matches_the_reference_value():
    torch.manual_seed(1)
    w = torch.cat([BRCCell(1, 64).weight_ih.detach()[:64] for _ in range(64)])
    assert float(w.std()) == pytest.approx(0.177, abs=0.006)   # not the stacked 0.103


def test_nbrc_recurrent_blocks_stay_per_block_glorot():
    torch.manual_seed(2)
    H = 32
    w = torch.cat([NBRCCell(1, H).weight_hh.detach() for _ in range(8)])
    assert float(w.std()) == pytest.approx(math.sqrt(2 / (2 * H)), rel=0.04)
