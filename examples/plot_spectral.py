"""Plot the singular values of a GRU's recurrent gate blocks during training, with and without
the spectral parametrisation; writes spectral_band.png (needs matplotlib) into a new temporary
folder, or into --out DIR.

Run: python examples/plot_spectral.py   (about ten seconds on a laptop CPU)
     python examples/plot_spectral.py --out docs/img    # regenerate the docs image
"""
import os

import torch
from _out import out_dir
from torch import nn

from stablernn.spectral import spectral

SMOKE = os.environ.get("STABLERNN_SMOKE") == "1"  # CI: a tiny run
R, HIDDEN, T, STEPS, LR = 0.05, 16, 20, 10 if SMOKE else 150, 3e-2


def batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Adding problem: sum of the two marked values in a noise sequence."""
    x = torch.rand(n, T, 2)
    x[..., 1] = 0.0
    idx = torch.stack([torch.randperm(T)[:2] for _ in range(n)])  # (n, 2) marked steps
    x[torch.arange(n)[:, None], idx, 1] = 1.0
    return x, (x[..., 0] * x[..., 1]).sum(1, keepdim=True)


def trace(use_spectral: bool) -> torch.Tensor:
    """(STEPS, 2) min and max singular value over the 3 gate blocks, per step."""
    torch.manual_seed(0)
    gru = nn.GRU(2, HIDDEN, batch_first=True)
    if use_spectral:
        spectral(gru, "weight_hh_l0", r=R)
    head = nn.Linear(HIDDEN, 1)
    opt = torch.optim.Adam([*gru.parameters(), *head.parameters()], lr=LR)
    out = []
    for _ in range(STEPS):
        x, y = batch()
        loss = nn.functional.mse_loss(head(gru(x)[0][:, -1]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sv = torch.linalg.svdvals(gru.weight_hh_l0.detach().reshape(3, HIDDEN, HIDDEN))
        out.append(torch.stack([sv.min(), sv.max()]))
    return torch.stack(out)


def main() -> None:
    path = out_dir(__doc__, __file__) / "spectral_band.png"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise SystemExit("this example needs matplotlib: pip install 'stablernn[plot]'") from err
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, use, color in (("nn.GRU", False, "tab:gray"), ("spectral, r=0.05", True, "C0")):
        tr = trace(use)
        ax.fill_between(range(STEPS), tr[:, 0], tr[:, 1], alpha=0.4, color=color, label=label)
    ax.axhspan(1 - R, 1 + R, color="C0", alpha=0.15, lw=0)
    ax.set(xlabel="Adam step", ylabel="singular values of W_hh blocks", yscale="log",
           title="GRU(16) on the adding task: range of singular values")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
