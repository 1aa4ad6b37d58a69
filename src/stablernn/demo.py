"""The demo: a deep recurrent net on a long-memory task, default initialisation vs the best
stabilisation stablernn has, over several seeds; prints a table and writes a report.

    stablernn demo [--seeds 3] [--smoke]
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from ._checks import check_int
from ._io import atomic_write_text, check_folder, json_safe
from .experiments.report import load_run, markdown_table, plot_curves, plot_flow, summary_table
from .experiments.rundir import REPORT, TABLE_JSON, run_dir_for
from .experiments.spec import Sweep
from .experiments.sweep import run_sweep
from .train.config import Config, apply_overrides, config_hash

# (label, config overrides): the stabilised setting the demo compares to the default
METHODS: dict[str, list[str]] = {
    "default init": [],
    "LSC rho=0.5": ["pretrain.method=lsc", "pretrain.rho=0.5", "pretrain.options.steps=200"],
}
# permuted 8x8 digits (pixel by pixel, T = 64) with a 3-layer LSTM: about a minute on 2 cores
BASE = ["task.name=pdigits", "model.cell=lstm", "model.num_layers=3", "model.hidden_size=32",
        "run.steps=300", "run.eval_every=50", "run.batch_size=32", "optim.lr=0.005"]
SMOKE = ["task.size=smoke", "run.steps=4", "run.eval_every=2", "model.hidden_size=8",
         "pretrain.options.steps=3"]


def demo_configs(root: str, seeds: int, smoke: bool) -> dict[str, list[Config]]:
    """The configs of every (method, seed) pair."""
    base = apply_overrides(Config(), BASE + [f"run.root={root}/runs", "run.progress=false"])
    groups = {}
    for label, overrides in METHODS.items():
        extra = overrides + (SMOKE if smoke else [])
        groups[label] = [apply_overrides(copy.deepcopy(base), extra + [f"run.seed={s}"])
                         for s in range(seeds)]
    return groups


def run_demo(root: str = "runs/demo", seeds: int = 3, smoke: bool = False,
             workers: int = 2) -> Path:
    """Train every (method, seed) on ``workers`` processes (finished runs are reused), then
    write ``report.md``, ``table.json`` and plots; returns the report directory.

    Raises:
        ValueError, TypeError: ``seeds`` or ``workers`` < 1 (before anything is written).
        RuntimeError: a run crashed (its record names the run directory).
    """
    seeds, workers = check_int("seeds", seeds), check_int("workers", workers)
    check_folder(root, "demo --root")
    groups = demo_configs(root, seeds, smoke)
    configs = [cfg for cfgs in groups.values() for cfg in cfgs]
    print(f"stablernn demo: {len(configs)} runs ({', '.join(groups)}; {seeds} seeds) on "
          f"{workers} worker(s)", flush=True)
    result = run_sweep(Sweep("demo", f"{root}/runs", configs), backend="local",
                       workers=workers, progress=True)
    if result.crashed:
        raise RuntimeError(result.describe())
    runs = {label: [load_run(run_dir_for(cfg)) for cfg in cfgs] for label, cfgs in groups.items()}
    out = Path(root) / f"report-{config_hash(configs[0])}"
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_table(runs)
    table = markdown_table(rows)
    first = configs[0]
    summary = runs[next(iter(runs))][0]["summary"]
    plot_curves(runs, out / "loss_curves.png", chance=summary["chance_loss"])
    plot_curves(runs, out / "valid_metric.png", key="valid_metric", chance=summary["chance"])
    flows = {label: plot_flow(group[0], out / f"flow_{i}.png", title=f"{label}, seed 0").name
             for i, (label, group) in enumerate(runs.items())}
    atomic_write_text(out / REPORT, _report_text(table, first, flows))
    atomic_write_text(out / TABLE_JSON, json.dumps(json_safe(rows), indent=2))
    print(table)
    print(f"\nreport: {out / REPORT}")
    return out


def _report_text(table: str, cfg: Config, flows: dict[str, str]) -> str:
    setting = (f"task `{cfg.task.name}` {cfg.task.params}, {cfg.model.num_layers}-layer "
               f"{cfg.model.cell} (H={cfg.model.hidden_size}), {cfg.run.steps} training steps")
    return (f"# stablernn demo\n\n{setting}.\n\n{table}\n\n"
            f"![training loss](loss_curves.png)\n\n![validation metric](valid_metric.png)\n\n"
            f"Gradient flow ||dLoss/ds[l,t]|| of the trained models (log scale):\n\n" +
            "\n".join(f"![{label}]({name})" for label, name in flows.items()) + "\n")
