"""A two-trial sweep on the local backend, then its report: the whole sweep -> report path at
smoke size, in seconds on a CPU. The run directories and the report go into a new temporary
folder, or into ``--out DIR`` (run it twice with the same folder: the second run skips both
finished trials).

    python examples/sweep_tiny.py
    python examples/sweep_tiny.py --out runs/sweeps

The same sweep from a file: ``stablernn sweep tiny.toml --workers 2`` then
``stablernn report runs/sweeps/tiny`` (see docs/sweeps.md).
"""

from _out import out_dir

from stablernn.experiments.report import (
    load_runs,
    paired_win_rates,
    win_rate_sentence,
    write_report,
)
from stablernn.experiments.spec import parse_sweep
from stablernn.experiments.sweep import run_sweep

SWEEP = {
    "name": "tiny",
    "seeds": [0],
    "base": {"task.name": "adding", "task.size": "smoke", "task.params.T": 12,
             "model.cell": "gru", "model.hidden_size": 8, "run.steps": 4, "run.eval_every": 2,
             "run.batch_size": 16},
    "grid": {"model.num_layers": [1, 2]},
}


def main() -> None:
    root = out_dir(__doc__, __file__) / "tiny"
    sweep = parse_sweep({**SWEEP, "root": str(root)})  # validated before anything runs
    result = run_sweep(sweep, backend="local", workers=2)
    print(result.describe())  # a second call skips both trials: they are finished
    report = write_report(sweep.root, flow=False)
    for row in paired_win_rates(load_runs(sweep.root)):
        print(win_rate_sentence(row))
    print(f"report: {report}")


if __name__ == "__main__":  # the guard matters: local workers are spawned processes
    main()
