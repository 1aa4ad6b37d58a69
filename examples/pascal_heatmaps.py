"""Gradient-flow heat-maps of the PascalRNN (docs/algorithms.md section 1.3) for r = 1 and r = 0.5.

The linear scalar grid ``h[l,t] = r h[l-1,t] + r h[l,t-1]`` sends the gradient of the corner
``(L, T)`` to node ``(l, t)`` as ``C(dl + dt, dt) r^(dl + dt)``: combinatorial explosion for
``r = 1``, bounded by 1 for ``r = 0.5``. Writes ``pascal_r1.png`` and ``pascal_r0.5.png`` into
a new temporary folder, or into ``--out DIR``; runs in about a second::

    python examples/pascal_heatmaps.py
    python examples/pascal_heatmaps.py --out docs/img    # regenerate the docs images
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from _out import out_dir
from torch import Tensor, nn

import stablernn
from stablernn.stability import gradient_flow


class ScalarState(NamedTuple):
    h: Tensor


class PascalCell(stablernn.Cell):
    """``h' = r h + r x`` on one unit: one node of the PascalRNN grid."""

    State = ScalarState

    def __init__(self, r: float) -> None:
        super().__init__(1, 1)
        self.r = nn.Parameter(torch.tensor(r, dtype=torch.float64))

    def step(self, x_t: Tensor, state: ScalarState) -> ScalarState:
        return ScalarState(self.r * state.h + self.r * x_t)


def main() -> None:
    from matplotlib.figure import Figure

    out = out_dir(__doc__, __file__)
    layers, steps = 8, 30
    x = torch.zeros(1, steps, 1, dtype=torch.float64)
    for r in (1.0, 0.5):
        flow = gradient_flow(stablernn.DeepRNN([PascalCell(r) for _ in range(layers)]), x)
        fig = Figure(figsize=(7, 3), layout="constrained")
        flow.plot(fig.add_subplot(), title=f"PascalRNN, r = {r}: C(dl+dt, dt) r^(dl+dt)")
        path = out / f"pascal_r{r:g}.png"
        fig.savefig(path, dpi=110)
        print(f"r = {r}: max |grad| = {float(flow.norms.max()):.3g}, "
              f"time growth {flow.time_growth:+.3f}/step, depth growth "
              f"{flow.depth_growth:+.3f}/layer -> {path}")


if __name__ == "__main__":
    main()
