"""LSC pre-training of a user's own 3-layer torch.nn.GRU to rho = 0.5, then ordinary training.

Writes the radii trajectory ``lsc_radii.png`` into a new temporary folder, or into ``--out DIR``.

    python examples/lsc_gru.py          # STABLERNN_SMOKE=1 for a few-second run
    python examples/lsc_gru.py --out .  # keep the plot here
"""
import os

import torch
from _out import out_dir

import stablernn

SMOKE = os.environ.get("STABLERNN_SMOKE") == "1"


def main() -> None:
    path = out_dir(__doc__, __file__) / "lsc_radii.png"
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 16, num_layers=3, batch_first=True)
    x = torch.randn(32, 20, 3)  # real task inputs in practice; labels are not used
    report = stablernn.lsc_pretrain(gru, x, rho=0.5, steps=40 if SMOKE else 600, batch_size=8)
    print(report.table())
    # the module is still a plain torch.nn.GRU, changed in place: train it as usual
    opt = torch.optim.AdamW(gru.parameters(), lr=1e-3)
    loss = gru(x)[0][:, -1].square().mean()
    loss.backward()
    opt.step()
    print(f"one training step after LSC: loss {loss.item():.4f}")
    try:
        ax = report.plot()
        ax.figure.savefig(path, dpi=120)
        print(f"wrote {path}")
    except ImportError as err:  # matplotlib is an optional extra
        print(err)


if __name__ == "__main__":
    main()
