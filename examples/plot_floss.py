"""Plot the Lyapunov exponents against the flossing update for a chaotic tanh RNN (its 4 leading
exponents flossed) and a 2-layer GRU (16 flossed); writes floss.png (needs matplotlib) into a
new temporary folder, or into --out DIR.

    python examples/plot_floss.py      # ~1 min on a laptop CPU
    python examples/plot_floss.py --out docs/img    # regenerate the docs image
"""
import os

import torch
from _out import out_dir

from stablernn.plotting import new_figure
from stablernn.stability.floss import floss

SMOKE = os.environ.get("STABLERNN_SMOKE") == "1"


def chaotic_rnn(hidden: int) -> torch.nn.RNN:
    """A tanh RNN with recurrent gain 2 (weights ~ N(0, 4 / H)): chaotic, lambda_1 > 0."""
    rnn = torch.nn.RNN(1, hidden, batch_first=True)
    torch.nn.init.normal_(rnn.weight_hh_l0, std=2 / hidden ** 0.5)
    return rnn


def main() -> None:
    path = out_dir(__doc__, __file__) / "floss.png"
    hidden, steps = (8, 3) if SMOKE else (64, 100)
    x = torch.randn(256, 100, 1, generator=torch.Generator().manual_seed(0))
    fig = new_figure(figsize=(9.0, 3.4))
    models = [("tanh RNN, gain 2", lambda: chaotic_rnn(hidden), 4),
              ("2-layer GRU", lambda: torch.nn.GRU(1, hidden, 2, batch_first=True), 16)]
    for i, (title, build, k) in enumerate(models):
        torch.manual_seed(0)
        report = floss(build(), x, k=min(k, hidden), steps=steps)
        ax = report.plot(fig.add_subplot(1, 2, i + 1))
        ax.set_title(f"{title} (H = {hidden}, k = {report.k}): loss {report.loss('before'):.3f}"
                     f" -> {report.loss('after'):.3f}", fontsize="small")
        print(title, {key: report.to_dict()[key] for key in
                      ("loss_before", "loss_after", "seconds", "skipped")})
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
