"""Overhead of ``stablernn.monitor.Monitor`` on a plain PyTorch training loop (docs/monitor.md).

A 3 x 256 LSTM (``DeepRNN`` of ``lstm`` cells, the fused kernel) trains on the copy task
(T = 100 blanks, so 120 steps per sequence, batch 32, Adam) twice, side by side in one run: one
copy without a monitor, one with the monitor in its default configuration measuring every 100
steps on a probe of 32 validation sequences (the defaults use 8 of them and 32 steps). The two
loops run in alternating blocks of ``--every`` steps (the order flips every block), so a busy
machine slows both alike. Printed: seconds of each loop, the overhead
``(with - without) / without``, and the monitor's own share of its loop
(``monitor.overhead(seconds)``, the less noisy figure). The target is <= 5 %.

    python benchmarks/bench_monitor.py                     # ~2 x 300 steps: minutes on 2 cores
    python benchmarks/bench_monitor.py --blocks 5 --threads 2
    python benchmarks/bench_monitor.py --smoke             # seconds: a tiny model, for the tests
"""
from __future__ import annotations

import argparse
import time

import torch

from stablernn import DeepRNN, make_task
from stablernn.monitor import Monitor


def build(args, task) -> tuple[DeepRNN, torch.optim.Optimizer]:
    torch.manual_seed(args.seed)
    model = DeepRNN.build(args.cell, task.input_size, args.hidden, args.layers,
                          readout=task.output_size)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--T", type=int, default=100, help="copy-task blanks (sequence T + 20)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--every", type=int, default=100, help="monitor period (steps)")
    ap.add_argument("--blocks", type=int, default=3, help="blocks of --every steps per loop")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="a tiny model, runs in seconds")
    args = ap.parse_args()
    if args.smoke:
        args.hidden, args.layers, args.T, args.batch, args.every, args.blocks = 16, 2, 10, 4, 5, 2
    if args.threads:
        torch.set_num_threads(args.threads)

    n_train = args.batch * args.every * args.blocks
    task = make_task("copy", T=args.T, n_train=n_train, n_valid=32, n_test=1, seed=args.seed)
    probe = task.rows("valid", torch.arange(32))[0]
    plain, monitored = build(args, task), build(args, task)

    def train(model, opt, step: int) -> None:
        idx = torch.arange(step * args.batch, (step + 1) * args.batch) % n_train
        x, y = task.rows("train", idx)
        opt.zero_grad(set_to_none=True)
        task.loss(model(x), y).backward()
        opt.step()

    # warm-up outside the timings: first calls (allocations, torch.func's first jvp)
    for model, opt in (plain, monitored):
        for step in range(2):
            train(model, opt, step)
    Monitor(monitored[0], probe).measure(0)
    monitor = Monitor(monitored[0], probe, every=args.every)

    seconds = {"plain": 0.0, "monitored": 0.0}
    for block in range(args.blocks):
        order = ("plain", "monitored") if block % 2 == 0 else ("monitored", "plain")
        for name in order:
            model, opt = plain if name == "plain" else monitored
            start = time.perf_counter()
            for i in range(args.every):
                step = block * args.every + i
                train(model, opt, step)
                if name == "monitored":
                    monitor.step(step)
            seconds[name] += time.perf_counter() - start

    steps, n = args.blocks * args.every, len(monitor.history)
    plain_s, with_s = seconds["plain"], seconds["monitored"]
    print(f"{args.layers} x {args.hidden} {args.cell} (DeepRNN), copy task T={args.T} "
          f"(sequence {task.seq_len}), batch {args.batch}, Adam; monitor every {args.every} "
          f"steps, defaults (estimator {monitor.estimator!r}, k={monitor.k}, "
          f"{len(monitor.time_steps)} radius steps, probe {tuple(monitor.probe.shape)}, "
          f"lyapunov_k={monitor.lyapunov_k}, measures {', '.join(monitor.measures)}); "
          f"{torch.get_num_threads()} thread(s)\n")
    print("| loop | steps | seconds | s / step | monitor s | measurements |\n"
          "|---|---|---|---|---|---|")
    print(f"| without monitor | {steps} | {plain_s:.2f} | {plain_s / steps:.4f} | - | - |")
    print(f"| with monitor | {steps} | {with_s:.2f} | {with_s / steps:.4f} | "
          f"{monitor.seconds:.2f} | {n} |")
    print(f"\noverhead (with - without) / without: {100 * (with_s - plain_s) / plain_s:+.1f} %"
          f"\nmonitor's own share of its loop: {100 * monitor.overhead(with_s):.1f} % "
          f"({monitor.seconds / max(n, 1):.3f} s per measurement; target <= 5 %)")


if __name__ == "__main__":
    main()
