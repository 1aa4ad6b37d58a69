"""Learning effect of warm-up (Lambrechts et al., arXiv 2106.01001): final test MSE of cold,
warmed-up and partially warmed-up (double layer) networks vs chance, mean +- std over seeds.

Grid (the Warm-up issue): copy-first-input at T in {100, 300, 600} and denoising at T = 200;
GRU, LSTM, BRC, nBRC; variants ``cold`` (default init), ``warm`` (warm-up of every layer) and
``partial`` (double layers, first halves warmed). Chance MSE is 1 for both tasks. Every run
trains with a fresh Adam after warm-up (paper protocol, shortened to CPU scale).

    python benchmarks/bench_warmup.py                       # the whole grid (see docs/RESULTS)
    python benchmarks/bench_warmup.py --quick               # minutes: one task, GRU and BRC
    python benchmarks/bench_warmup.py --tasks copy_first:300 --cells gru,brc --seeds 0,1,2 \\
        --out runs/bench_warmup.jsonl                       # resumable: done runs are skipped
    python benchmarks/bench_warmup.py --cells lstm --repulsion 0.1   # with the collapse penalty
    python benchmarks/bench_warmup.py --speed               # warm-up time, fused vs stepped

``--speed`` times warm-up (100 steps, no measure) and the VAA measure (10000 steps) of a
2 x 64 LSTM on T = 100 inputs through the fused kernel and through the Python step path
(``DeepRNN(fused=False)``), interleaved, and prints the medians and their ratio
(Note [fused VAA runs] in stablernn.stability.vaa).

Cost on a 2-core CPU: the BRC / nBRC cells and every double layer of BRC halves run the Python
step loop, so a training step at T = 600 costs ~0.3-1 s: the default grid (144 runs) takes
about 2.5-3 h on one thread, ``--quick`` a few minutes. docs/results_warmup.md lists the runs
actually measured (84 runs, ~67 min).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from stablernn import double_stack
from stablernn.stability.vaa import vaa
from stablernn.stability.warmup import warmup
from stablernn.stack import DeepRNN
from stablernn.tasks import make_task

VARIANTS = ("cold", "warm", "partial")
GRID = "copy_first:100,copy_first:300,copy_first:600,denoising:200"
QUICK = {"tasks": "copy_first:100", "cells": "gru,brc", "seeds": "0", "steps": 150,
         "warmup_steps": 50}


def parse_tasks(spec: str) -> list[tuple[str, int]]:
    """``"copy_first:100,denoising:200"`` -> ``[("copy_first", 100), ("denoising", 200)]``."""
    out = []
    for item in spec.split(","):
        name, _, T = item.partition(":")
        out.append((name.strip(), int(T)))
    return out


def build(cell: str, variant: str, task, args) -> DeepRNN:
    kw = {"readout": task.output_size, "readout_mode": task.readout_mode}
    if variant == "partial":
        return double_stack(cell, task.input_size, args.hidden, args.layers, **kw)
    return DeepRNN.build(cell, task.input_size, args.hidden, args.layers, **kw)


def evaluate(model: DeepRNN, task, split: str = "test") -> float:
    x, y = task.split(split)
    with torch.no_grad():
        pred = torch.cat([model(xb)[0] for xb in x.split(256)])
    return float(task.metric(pred, y))


def train(model: DeepRNN, task, args, seed: int) -> None:
    """Fresh Adam, random batches, gradient clipping at 1 (the same for every variant)."""
    x, y = task.split("train")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(args.steps):
        idx = torch.randint(len(x), (args.batch,), generator=gen)
        loss = task.loss(model(x[idx])[0], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


def run_one(name: str, T: int, cell: str, variant: str, seed: int, args) -> dict:
    t0 = time.perf_counter()
    task = make_task(name, T=T, seed=seed, n_train=args.n_train, n_valid=32,
                     n_test=args.n_test)
    torch.manual_seed(seed)
    model = build(cell, variant, task, args)
    row = {"task": name, "T": T, "cell": cell, "variant": variant, "seed": seed,
           "chance": task.chance}
    if variant != "cold":
        x = task.split("train")[0][:256]
        rep = warmup(model, x, steps=args.warmup_steps, measure_steps=args.measure_steps,
                     seed=seed, repulsion=args.repulsion)
        row.update(repulsion=args.repulsion, vaa_before=rep.vaa_before, vaa_after=rep.vaa_after,
                   final_vaa_star=rep.to_dict()["final_vaa_star"])
    train(model, task, args, seed)
    row.update(test_mse=evaluate(model, task), seconds=round(time.perf_counter() - t0, 1))
    return row


def table(rows: list[dict], variants: list[str]) -> str:
    """Markdown: one line per (task, T, cell), mean +- std test MSE per variant, chance."""
    keys = sorted({(r["task"], r["T"], r["cell"]) for r in rows}, key=str)
    head = "| task | T | cell | " + " | ".join(variants) + " | chance | seeds |"
    lines = [head, "|" + "---|" * (len(variants) + 5)]
    for task, T, cell in keys:
        cells, n = [], 0
        for v in variants:
            mse = [r["test_mse"] for r in rows if (r["task"], r["T"], r["cell"], r["variant"])
                   == (task, T, cell, v)]
            n = max(n, len(mse))
            sd = statistics.stdev(mse) if len(mse) > 1 else 0.0
            cells.append(f"{statistics.mean(mse):.3f} +- {sd:.3f}" if mse else "-")
        chance = next(r["chance"] for r in rows if (r["task"], r["T"]) == (task, T))
        lines.append(f"| {task} | {T} | {cell} | " + " | ".join(cells) + f" | {chance:g} | {n} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=GRID, help=f"name:T list (default {GRID})")
    ap.add_argument("--cells", default="gru,lstm,brc,nbrc")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=300, help="training steps per run")
    ap.add_argument("--warmup-steps", type=int, default=100)
    ap.add_argument("--measure-steps", type=int, default=0,
                    help="VAA measure steps before/after warm-up (0 skips; the paper: 10000)")
    ap.add_argument("--repulsion", type=float, default=0.0,
                    help="weight of warm-up's collapse penalty (0: the paper's loss)")
    ap.add_argument("--speed", action="store_true",
                    help="time warm-up fused vs stepped (2 x 64 LSTM, T = 100) and exit")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--n-train", type=int, default=2048)
    ap.add_argument("--n-test", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="JSON-lines results file (resumes from it)")
    ap.add_argument("--quick", action="store_true", help=f"small grid: {QUICK}")
    ap.add_argument("--report-only", action="store_true",
                    help="print the table of the runs in --out without running anything")
    args = ap.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def speed(reps: int = 3) -> None:
    """Warm-up and VAA-measure time of a 2 x 64 LSTM, fused kernel vs Python steps."""
    x = torch.randn(256, 100, 1, generator=torch.Generator().manual_seed(0))
    times: dict[str, dict[bool, list[float]]] = {"warm-up": {True: [], False: []},
                                                 "measure": {True: [], False: []}}
    for _ in range(reps):
        for fused in (True, False):  # interleaved: a shared machine's load hits both alike
            torch.manual_seed(0)
            model = DeepRNN.build("lstm", 1, 64, 2, fused=fused)
            t0 = time.perf_counter()
            warmup(model, x, steps=100, measure_steps=0, seed=0)
            t1 = time.perf_counter()
            vaa(model, x[:32], time_steps=10000)
            times["warm-up"][fused].append(t1 - t0)
            times["measure"][fused].append(time.perf_counter() - t1)
    for what, by in times.items():
        fused, stepped = statistics.median(by[True]), statistics.median(by[False])
        print(f"{what}: fused {fused:.2f} s, stepped {stepped:.2f} s (medians of {reps}), "
              f"stepped / fused = {stepped / fused:.2f}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.speed:
        speed()
        return
    variants = args.variants.split(",")
    done = []
    if args.out and args.out.exists():
        done = [json.loads(line) for line in args.out.read_text().splitlines() if line]
    if args.report_only:
        print(table(done, variants))
        return
    t0 = time.perf_counter()
    rows = []
    for name, T in parse_tasks(args.tasks):
        for cell in args.cells.split(","):
            for seed in map(int, args.seeds.split(",")):
                for variant in variants:
                    key = (name, T, cell, variant, seed)
                    old = [r for r in done if (r["task"], r["T"], r["cell"], r["variant"],
                                               r["seed"]) == key]
                    row = old[0] if old else run_one(name, T, cell, variant, seed, args)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if args.out and not old:
                        args.out.parent.mkdir(parents=True, exist_ok=True)
                        with args.out.open("a") as f:
                            f.write(json.dumps(row) + "\n")
    print(f"\nhidden={args.hidden} layers={args.layers} train steps={args.steps} "
          f"warm-up steps={args.warmup_steps} lr={args.lr} batch={args.batch} "
          f"n_train={args.n_train} n_test={args.n_test}; "
          f"wall {time.perf_counter() - t0:.0f} s\n")
    print(table(rows, variants))


if __name__ == "__main__":
    main()
