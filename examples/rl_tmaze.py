"""A DRQN agent (2-layer GRU, 32 units) on the T-maze, cold and warmed up (docs/rl.md): episodes
until the greedy policy solves both cues, the Q-network's VAA before / after warm-up / after
training, and the greedy return curves (rl_tmaze_returns.png, needs matplotlib). The run
directories and the plot go into a new temporary folder, or into --out DIR (run it again with
the same folder: the finished runs are skipped).

    python examples/rl_tmaze.py      # corridor length 10: ~2 min on a laptop CPU (1 thread)
                                     # STABLERNN_SMOKE=1: length 2, a few seconds
"""
import json
import os

import torch
from _out import out_dir

from stablernn.plotting import new_figure
from stablernn.rl import rl_config
from stablernn.train import train

SMOKE = os.environ.get("STABLERNN_SMOKE") == "1"


def main() -> None:
    out = out_dir(__doc__, __file__)
    torch.set_num_threads(1)
    if SMOKE:
        length, episodes, extra = 2, 10, ["pretrain.options.steps=5", "task.params.vaa_steps=100",
                                          "task.params.buffer_capacity=300"]
    else:
        length, episodes, extra = 10, 1000, []
    fig = new_figure(figsize=(6.0, 3.4))
    ax = fig.add_subplot()
    for method in ("none", "warmup"):
        cfg = rl_config(length=length, cell="gru", pretrain=method, episodes=episodes,
                        eval_every=5 if SMOKE else 20, root=str(out / "runs"),
                        overrides=["run.patience=1", "run.progress=false", *extra])
        summary = train(cfg)
        vaa = {k: (None if v is None else round(v, 3)) for k, v in summary["vaa"].items()}
        print(f"{method:7s} solved after {summary['episodes_to_solve']} episodes "
              f"(solved: {summary['solved']}); VAA {vaa}")
        run = next(p for p in (out / "runs").iterdir() if p.name.endswith(summary["config_hash"]))
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        evals = [r for r in rows if "valid_return" in r]
        ax.plot([r["step"] for r in evals], [r["valid_return"] for r in evals],
                label="warm-up" if method == "warmup" else "cold", marker=".")
    ax.axhline(4.0, color="black", ls=":", lw=1, label="optimal")
    ax.set(xlabel="episode", ylabel="greedy return (both cues)",
           title=f"DRQN (GRU 2 x 32) on the T-maze, L = {length}")
    ax.legend(frameon=False)
    path = out / "rl_tmaze_returns.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
