"""Draw docs/img/rl_tmaze.png from the runs of benchmarks/reproduce/rl_tmaze.toml: episodes to
solve the T-maze per cell and method (one dot per seed, the mean as a bar), one panel per
corridor length, and the agents' VAA before pre-training, after it and at the end.

    python docs/img/rl_tmaze.py [--root runs/reproduce/rl_tmaze] [--out docs/img/rl_tmaze.png]
"""
from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from stablernn.experiments.report import load_runs, settings_of
from stablernn.plotting import line_style, new_figure

METHODS = ("cold", "warm-up", "partial")
STAGES = ("init", "pretrained", "final")


def method_of(flat: dict) -> tuple[str, str]:
    """``(cell, method)`` of a run's flattened settings (a double layer is partial warm-up)."""
    if flat["model.cell"] == "double":
        return flat["model.options.half"], "partial"
    return flat["model.cell"], "cold" if flat["pretrain.method"] == "none" else "warm-up"


def collect(root: Path) -> dict:
    """``{length: {(cell, method): [summary, ...]}}`` of the finished runs under ``root``."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for run in load_runs(root):
        if run.get("summary"):
            flat = settings_of(run)
            out[flat["task.params.length"]][method_of(flat)].append(run["summary"])
    return out


def _stage(measured: dict, stage: str) -> float | None:
    return measured.get(stage, measured.get("init") if stage == "pretrained" else None)


def draw(data: dict, path: Path) -> None:
    lengths = sorted(data)
    cells = sorted({cell for by in data.values() for cell, _ in by})
    fig = new_figure((4.2 * len(lengths) + 4.2, 3.6))
    for i, length in enumerate(lengths):
        ax = fig.add_subplot(1, len(lengths) + 1, i + 1)
        for m, method in enumerate(METHODS):
            style = line_style(m)
            for c, cell in enumerate(cells):
                runs = data[length].get((cell, method), [])
                ys = [s["episodes_to_solve"] for s in runs]
                x = c + (m - 1) * 0.25
                if ys:
                    first = method not in ax.get_legend_handles_labels()[1]
                    ax.bar(x, statistics.fmean(ys), 0.22, color=style["color"], alpha=0.35,
                           label=method if first else None)
                    ax.scatter([x] * len(ys), ys, s=10, color=style["color"], zorder=3)
        budget = max((s["chance"] for by in data[length].values() for s in by), default=None)
        if budget is not None:
            ax.axhline(budget, color="black", ls=":", lw=1, label="never solved")
        ax.set_xticks(range(len(cells)), cells)
        ax.set(title=f"T-maze, L = {length}", ylabel="episodes to solve (lower is better)")
        if i == 0:
            ax.legend(frameon=False, fontsize="small")
    ax = fig.add_subplot(1, len(lengths) + 1, len(lengths) + 1)
    for m, method in enumerate(METHODS):  # a cold agent's "after warm-up" is its init
        style = line_style(m)
        for key, ls in (("vaa", "-"), ("vaa_horizon", "--")):
            values = [[_stage(s[key], stage) for by in data.values()
                       for (_, meth), runs in by.items() if meth == method for s in runs
                       if isinstance(s.get(key), dict) and _stage(s[key], stage) is not None]
                      for stage in STAGES]
            if all(values):
                ax.plot(range(len(STAGES)), [statistics.fmean(v) for v in values], ls=ls,
                        marker="o", color=style["color"],
                        label=f"{method}, {'10000 steps' if key == 'vaa' else 'horizon'}")
    ax.set_xticks(range(len(STAGES)), ["init", "after warm-up", "end of training"])
    ax.set(title="VAA of the agents (mean over cells, lengths)", ylabel="VAA", ylim=(0, 1.05))
    ax.legend(frameon=False, fontsize="x-small")
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/reproduce/rl_tmaze"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".png"))
    args = parser.parse_args()
    draw(collect(args.root), args.out)
    print(args.out)


if __name__ == "__main__":
    main()
