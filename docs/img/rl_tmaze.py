"""Draw docs/img/rl_tmaze.png from the runs of benchmarks/reproduce/rl_tmaze.toml: episodes to
solve the T-maze per cell and method (one dot per seed, the mean as a bar), one panel per
corridor length, and the agents' VAA before pre-training, after it and at the end. With
``--table`` it prints instead the tables docs/RESULTS.md quotes: an overview of all lengths, then
per length, episodes to solve (mean +- std, per seed, solved count), VAA per stage, and paired
wins against the cold agent.

    python docs/img/rl_tmaze.py [--root runs/reproduce/rl_tmaze] [--out docs/img/rl_tmaze.png]
    python docs/img/rl_tmaze.py --table
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
CELLS = {"gru": "GRU", "brc": "BRC", "nbrc": "nBRC", "lstm": "LSTM"}  # table order and names


def _cell_rank(cell: str) -> int:
    """Position of ``cell`` in the tables and the figure (CELLS order, unknown cells last)."""
    return list(CELLS).index(cell) if cell in CELLS else len(CELLS)


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
            summary = dict(run["summary"], seed=flat["run.seed"])
            out[flat["task.params.length"]][method_of(flat)].append(summary)
    return out


def _vaa(runs: list[dict], stage: str) -> str:
    """Mean VAA over runs at a stage, "10000 steps / horizon" (docs/rl.md)."""
    parts = []
    for key in ("vaa", "vaa_horizon"):
        values = [_stage(s[key], stage) for s in runs if isinstance(s.get(key), dict)]
        values = [v for v in values if v is not None]
        parts.append(f"{statistics.fmean(values):.2f}" if values else "?")
    return " / ".join(parts)


def table(data: dict) -> str:
    """Markdown tables of episodes to solve, VAA and paired wins, one block per length."""
    lines = []
    for length in sorted(data):
        by = data[length]
        lines += [f"L = {length}", "",
                  "| agent | episodes to solve | per seed | solved | VAA at init | after warm-up "
                  "| at the end |", "|---|---|---|---|---|---|---|"]
        pairs = []
        for cell in sorted({c for c, _ in by},
                           key=_cell_rank):
            name = CELLS.get(cell, cell)
            for method in METHODS:
                runs = sorted(by.get((cell, method), []), key=lambda s: s["seed"])
                if not runs:
                    continue
                ys = [s["episodes_to_solve"] for s in runs]
                spread = statistics.stdev(ys) if len(ys) > 1 else 0.0
                seeds = ", ".join(f"{s['seed']}:{s['episodes_to_solve']}" for s in runs)
                warm = "-" if method == "cold" else _vaa(runs, "pretrained")
                lines.append(f"| {name}, {method} | {statistics.fmean(ys):.0f} +- "
                             f"{spread:.0f} | {seeds} | {sum(bool(s['solved']) for s in runs)}"
                             f"/{len(runs)} | {_vaa(runs, 'init')} | {warm} "
                             f"| {_vaa(runs, 'final')} |")
                for base in METHODS[:METHODS.index(method)]:  # against each simpler method
                    pairs.append((f"{name}: {method} vs {base}", runs, by.get((cell, base), [])))
        lines += ["", "| pair | wins-ties-losses |", "|---|---|"]
        for label, runs, base_runs in pairs:
            score = _paired(runs, base_runs)
            if score:
                lines.append(f"| {label} | {score} |")
        lines.append("")
    return "\n".join(lines)


def _paired(runs: list[dict], base_runs: list[dict]) -> str:
    """"wins-ties-losses" of ``runs`` against ``base_runs`` on the seeds both have (fewer
    episodes wins); "" when they share no seed."""
    other = {s["seed"]: s["episodes_to_solve"] for s in base_runs}
    diffs = [s["episodes_to_solve"] - other[s["seed"]] for s in runs if s["seed"] in other]
    if not diffs:
        return ""
    return f"{sum(d < 0 for d in diffs)}-{sum(d == 0 for d in diffs)}-{sum(d > 0 for d in diffs)}"


def overview(data: dict) -> str:
    """One Markdown table over all lengths: mean episodes to solve (solved / seeds) per agent,
    and the paired wins-ties-losses of warm-up and partial warm-up against the cold agent."""
    lengths = sorted(data)
    head = "| agent | " + " | ".join(f"L = {n}" for n in lengths) + " |"
    lines = [head, "|---|" + "---|" * len(lengths)]
    agents = sorted({key for by in data.values() for key in by},
                    key=lambda k: (_cell_rank(k[0]), METHODS.index(k[1])))
    for cell, method in agents:
        row = []
        for n in lengths:
            runs = data[n].get((cell, method), [])
            ys = [s["episodes_to_solve"] for s in runs]
            score = "" if method == "cold" else _paired(runs, data[n].get((cell, "cold"), []))
            paired = f", {score}" if score else ""
            row.append(f"{statistics.fmean(ys):.0f} ({sum(bool(s['solved']) for s in runs)}/"
                       f"{len(runs)}{paired})" if ys else "-")
        lines.append(f"| {CELLS.get(cell, cell)}, {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _stage(measured: dict, stage: str) -> float | None:
    return measured.get(stage, measured.get("init") if stage == "pretrained" else None)


def draw(data: dict, path: Path) -> None:
    lengths = sorted(data)
    cells = sorted({cell for by in data.values() for cell, _ in by},
                   key=_cell_rank)
    cols = min(len(lengths) + 1, 3)  # panels: one per length, then the VAA one
    rows = -(-(len(lengths) + 1) // cols)
    fig = new_figure((4.6 * cols, 4.4 * rows))
    for i, length in enumerate(lengths):
        ax = fig.add_subplot(rows, cols, i + 1)
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
        ax.set_xticks(range(len(cells)), [CELLS.get(c, c) for c in cells])
        ax.set(title=f"T-maze, L = {length}", ylabel="episodes to solve (lower is better)")
        if i == 0:
            ax.legend(frameon=False, fontsize="small", ncol=4, loc="upper center",
                      bbox_to_anchor=(0.5, -0.1))
    ax = fig.add_subplot(rows, cols, len(lengths) + 1)
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
    ax.legend(frameon=False, fontsize="x-small", ncol=2, loc="upper center",
              bbox_to_anchor=(0.5, -0.1))
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/reproduce/rl_tmaze"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".png"))
    parser.add_argument("--table", action="store_true", help="print the tables, draw nothing")
    args = parser.parse_args()
    if args.table:
        data = collect(args.root)
        print(overview(data), "", table(data), sep="\n")
        return
    draw(collect(args.root), args.out)
    print(args.out)


if __name__ == "__main__":
    main()
