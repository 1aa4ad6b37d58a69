"""Plot VAA* against the warm-up step for a 2-layer GRU, full and partial (double layers);
writes warmup_vaa.png (needs matplotlib) into a new temporary folder, or into --out DIR.

    python examples/plot_warmup.py      # ~30 s on a laptop CPU
    python examples/plot_warmup.py --out docs/img    # regenerate the docs image
"""
import os

import torch
from _out import out_dir

from stablernn import double_stack
from stablernn.plotting import new_figure
from stablernn.stability.warmup import warmup
from stablernn.stack import DeepRNN

SMOKE = os.environ.get("STABLERNN_SMOKE") == "1"


def main() -> None:
    path = out_dir(__doc__, __file__) / "warmup_vaa.png"
    hidden, steps, measure = (8, 5, 100) if SMOKE else (64, 100, 10000)
    x = torch.randn(256, 20 if SMOKE else 100, 1, generator=torch.Generator().manual_seed(0))
    fig = new_figure(figsize=(9.0, 3.2))
    for i, (title, build) in enumerate([("full", DeepRNN.build), ("partial", double_stack)]):
        torch.manual_seed(0)
        report = warmup(build("gru", 1, hidden, 2), x, steps=steps, measure_steps=measure)
        ax = report.plot(fig.add_subplot(1, 2, i + 1))
        ax.set_title(f"{title}: VAA {report.vaa_before:.3f} -> {report.vaa_after:.3f}, "
                     f"attractors {report.attractors_before} -> {report.attractors_after}",
                     fontsize="small")
        print(title, report.to_dict())
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
