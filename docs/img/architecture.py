"""Draw docs/img/architecture.png: the layers of stablernn and what each builds on.

    python docs/img/architecture.py            # writes docs/img/architecture.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

# name -> (x, y, caption); y is the layer, bottom up
BOXES = {
    "cells/": (1.0, 0, "step cells, Cell protocol,\ncapabilities, registry"),
    "spectral.py": (3.8, 0, "Householder / SVD\nparametrisation"),
    "stack.py": (0.2, 1, "DeepRNN: fused path\nand step path"),
    "adapters.py": (2.6, 1, "torch.nn.LSTM/GRU/RNN\n-> DeepRNN, same Parameters"),
    "stability/": (0.2, 2, "local maps, estimators, radii,\nflow, VAA, LSC / warm-up harness"),
    "init/": (2.6, 2, "classical inits,\nmean-field critical init"),
    "tasks/": (5.0, 2, "long-memory tasks,\nchance levels, registry"),
    "train/": (2.6, 3, "config, training loop,\npre-training registry"),
    "experiments/": (2.6, 4, "sweep spec, trials, backends,\nrun directories, reports"),
    "cli.py": (2.6, 5, "stablernn list | train | diagnose\n| sweep | report | demo"),
}
ARROWS = [  # (from, to): "from" builds on "to"
    ("cells/", "spectral.py"), ("stack.py", "cells/"), ("adapters.py", "stack.py"),
    ("stability/", "stack.py"), ("stability/", "adapters.py"), ("init/", "adapters.py"),
    ("train/", "stability/"), ("train/", "init/"), ("train/", "tasks/"),
    ("experiments/", "train/"), ("cli.py", "experiments/"),
]
WIDTH, HEIGHT, ROW = 2.1, 0.62, 1.0


def draw(out: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(9.5, 6.2))
    for name, (x, y, caption) in BOXES.items():
        ax.add_patch(FancyBboxPatch((x, y * ROW), WIDTH, HEIGHT, boxstyle="round,pad=0.03",
                                    facecolor="#e8eef7", edgecolor="#3a5a8c"))
        ax.text(x + WIDTH / 2, y * ROW + HEIGHT - 0.13, name, ha="center", va="center",
                fontsize=10, fontweight="bold", family="monospace")
        ax.text(x + WIDTH / 2, y * ROW + 0.24, caption, ha="center", va="center", fontsize=7.5)
    for src, dst in ARROWS:
        (x0, y0, _), (x1, y1, _) = BOXES[src], BOXES[dst]
        if y1 < y0:  # down: bottom edge to top edge
            start, end = (x0 + WIDTH / 2, y0 * ROW - 0.03), (x1 + WIDTH / 2, y1 * ROW + HEIGHT)
        else:  # same layer: side to side
            left = x1 < x0
            start = (x0 if left else x0 + WIDTH, y0 * ROW + HEIGHT / 2)
            end = (x1 + WIDTH if left else x1, y1 * ROW + HEIGHT / 2)
        ax.annotate("", xy=end, xytext=start,
                    arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 1.1})
    ax.set_xlim(0, 7.3)
    ax.set_ylim(-0.2, 5 * ROW + HEIGHT + 0.2)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".png"))
    draw(parser.parse_args().out)
