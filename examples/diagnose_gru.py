"""Diagnose a 3-layer ``torch.nn.GRU`` as it comes out of PyTorch (runs in seconds).

Prints the radii of every local Jacobian (time, depth, input) per layer, the gradient growth
rates, the leading Lyapunov exponents and the VAA multistability measure, and writes the
gradient-flow heat-map, radii and spectrum plots plus ``diagnostics.json`` into a new
temporary folder, or into ``--out DIR``::

    python examples/diagnose_gru.py
    python examples/diagnose_gru.py --out diagnose_gru_out
"""
from __future__ import annotations

import torch
from _out import out_dir

from stablernn.stability import diagnose


def main() -> None:
    out = out_dir(__doc__, __file__)
    torch.manual_seed(0)
    gru = torch.nn.GRU(8, 32, num_layers=3, batch_first=True)
    x = torch.randn(16, 40, 8)  # (B, T, D)
    res = diagnose(gru, x, out, vaa_time_steps=1000)
    print(res["radii_table"])
    flow = res["gradient_flow"]
    print(f"gradient growth: {flow['time_growth']:+.3f} per step back, "
          f"{flow['depth_growth']:+.3f} per layer down (natural log)")
    print("Lyapunov exponents:", " ".join(f"{v:+.3f}" for v in res["lyapunov"]["exponents"]))
    print(f"VAA = {res['vaa']['vaa']:.3f} ({res['vaa']['attractors']} attractor(s) among "
          f"{res['vaa']['n']} reachable states)")
    print("wrote", ", ".join(res["files"].values()))


if __name__ == "__main__":
    main()
