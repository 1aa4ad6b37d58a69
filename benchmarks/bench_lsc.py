"""LSC pre-training benchmarks.

``speed`` (default; the issue's target): seconds for a 4-layer GRU on copy-task inputs to reach
tolerance 0.08 (rho = 0.5), our implementation vs a straightforward reference-style one that
builds every per-sample Jacobian densely (``torch.autograd.functional.jacobian`` with
``create_graph``, one backward per output unit) and differentiates ``torch.linalg.eigvals`` at
every step, as the paper's code does. Both run the same walk, optimiser, stopping rule and
seed; only the radius computation differs, so the achieved radii (measured afterwards with the
exact estimator on held sequences) are comparable.

``cells``: for each cell x depth x rho, updates / seconds / largest radius error after
pre-training for each learning rate given (the SPEC's reference lr is 7.2e-3; our default is the
benchmark's best).

    python benchmarks/bench_lsc.py speed [--hidden 64,128,256] [--threads 1]
    python benchmarks/bench_lsc.py cells [--cells gru,lstm] [--lrs 0.0072,0.02] [--steps 1000]
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from unittest import mock

import torch

from stablernn import DeepRNN, make_task
from stablernn.stability import lsc
from stablernn.stability.jacobians import LocalMap
from stablernn.stability.lsc import lsc_pretrain
from stablernn.stability.radii import radii

CELLS = "lstm,gru,rnn,rnn_relu,rnn_sigmoid,alif,lru"


def reference_radius(m: LocalMap, estimator: str = "auto", *, differentiable: bool = False,
                     seed: int = 0, **_) -> torch.Tensor:
    """Reference-style radius: dense Jacobian row by row, eigvals, autograd through both."""
    m = m.square(seed)
    # with create_graph, functional.jacobian keeps state_in's own graph (a depth map's point of
    # linearisation depends on the layers below), as our differentiable estimator does
    J = torch.autograd.functional.jacobian(lambda z: m.fn(z).sum(0), m.state_in,
                                           create_graph=differentiable)  # (n_out, B, n_in)
    return torch.linalg.eigvals(J.transpose(0, 1)).abs().amax(-1)


def reference_radius_all(maps, estimator="auto", *, differentiable=False, seed=0, **_):
    """Drop-in for ``lsc.radius_all``: one reference radius per map."""
    return [reference_radius(m, differentiable=differentiable, seed=seed) for m in maps]


def measured_error(model: DeepRNN, x: torch.Tensor, targets: dict[str, float]) -> float:
    """Largest |radius - target| over time and depth maps, exact estimator, held sequences."""
    report = radii(model, x, estimator="exact", kinds=["time", "depth"],
                   steps=list(range(0, x.shape[1], max(1, x.shape[1] // 8))))
    return max(abs(report.mean(k, l) - targets[k]) for k, d in report.values.items() for l in d)


def speed(args) -> None:
    task = make_task("copy", T=args.T, n_train=256, n_valid=16, n_test=16)
    x = task.rows("train", torch.arange(256))[0]
    held = task.rows("test", torch.arange(16))[0]
    print(f"4-layer GRU, copy-task inputs (T={task.seq_len}, D={task.input_size}), rho=0.5, "
          f"tol 0.08, patience 20, batch {args.batch}, budget {args.steps} updates, "
          f"{torch.get_num_threads()} thread(s)\n")
    print("| H | ours: updates / s / s per update | reference: updates / s / s per update "
          "| speed-up (s per update) | speed-up (to tol) | max err ours / ref |\n"
          "|---|---|---|---|---|---|")
    for hidden in map(int, args.hidden.split(",")):
        rows = {}
        for name in ("ours", "reference"):
            torch.manual_seed(args.seed)
            model = DeepRNN.build("gru", task.input_size, hidden, 4, readout=task.output_size)
            patch = mock.patch.object(lsc, "radius_all", reference_radius_all) if name == "reference" \
                else contextlib.nullcontext()
            with patch:
                rep = lsc_pretrain(model, x, rho=0.5, steps=args.steps, batch_size=args.batch,
                                   max_seconds=args.max_seconds, eval_steps=2, k=args.k)
            sec = rep.update_seconds
            rows[name] = (rep.steps, sec, sec / rep.steps, rep.converged,
                          measured_error(model, held, rep.targets))
        (so, s_o, u_o, c_o, e_o), (sr, s_r, u_r, c_r, e_r) = rows["ours"], rows["reference"]
        to_tol = f"{s_r / s_o:.1f}x" if c_o and c_r else "n/a (budget)"
        print(f"| {hidden} | {so}{'' if c_o else '*'} / {s_o:.1f} / {u_o:.3f} | "
              f"{sr}{'' if c_r else '*'} / {s_r:.1f} / {u_r:.3f} | {u_r / u_o:.1f}x | {to_tol} | "
              f"{e_o:.3f} / {e_r:.3f} |", flush=True)
    print("\n* = stopped by the budget (steps or --max-seconds) before the stopping rule; "
          "seconds: the updates alone (LSCReport.update_seconds), not the before / after "
          "measurements")


def run_cell(cell: str, layers: int, rho: float, lr: float, args) -> tuple[int, float, float, bool]:
    torch.manual_seed(args.seed)
    model = DeepRNN.build(cell, 3, args.hidden, layers, readout=2)
    x = torch.randn(32, args.T, 3)
    t0 = time.perf_counter()
    rep = lsc_pretrain(model, x, rho=rho, lr=lr, steps=args.steps, batch_size=8)
    return rep.steps, time.perf_counter() - t0, measured_error(model, x[:16], rep.targets), rep.converged


def cells(args) -> None:
    lrs = [float(v) for v in args.lrs.split(",")]
    head = " | ".join(f"lr={lr:g}: updates / s / max err" for lr in lrs)
    print(f"H={args.hidden}, T={args.T}, budget {args.steps} updates, batch 8\n")
    print(f"| cell | L | rho | {head} |\n|---|---|---|" + "---|" * len(lrs))
    ok = {lr: 0 for lr in lrs}
    total = 0
    for cell in args.cells.split(","):
        for layers in map(int, args.depths.split(",")):
            for rho in map(float, args.rhos.split(",")):
                cols = []
                for lr in lrs:
                    steps, sec, err, conv = run_cell(cell, layers, rho, lr, args)
                    ok[lr] += err < 0.08
                    cols.append(f"{steps}{'' if conv else '*'} / {sec:.1f} / {err:.3f}")
                total += 1
                print(f"| {cell} | {layers} | {rho} | " + " | ".join(cols) + " |", flush=True)
    print("\n* = budget exhausted before the stopping rule; within 0.08 of target: " +
          ", ".join(f"lr={lr:g}: {ok[lr]}/{total}" for lr in lrs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    sub = ap.add_subparsers(dest="bench")
    sp = sub.add_parser("speed", help="ours vs reference-style, 4-layer GRU (default)")
    sp.add_argument("--hidden", default="64,128,256")
    sp.add_argument("--T", type=int, default=100, help="copy-task blanks")
    sp.add_argument("--batch", type=int, default=16)
    sp.add_argument("--steps", type=int, default=400)
    sp.add_argument("--max-seconds", type=float, default=None)
    sp.add_argument("--k", type=int, default=16, help="our Krylov dimension")
    cp = sub.add_parser("cells", help="every cell x depth x rho, per learning rate")
    cp.add_argument("--cells", default=CELLS)
    cp.add_argument("--depths", default="2,4")
    cp.add_argument("--rhos", default="0.5,1.0")
    cp.add_argument("--lrs", default="0.0072,0.02")
    cp.add_argument("--steps", type=int, default=1000)
    cp.add_argument("--hidden", type=int, default=8)
    cp.add_argument("--T", type=int, default=12)
    args = ap.parse_args()
    if args.bench is None:
        args = ap.parse_args([*sys.argv[1:], "speed"])
    torch.set_num_threads(args.threads)
    (cells if args.bench == "cells" else speed)(args)


if __name__ == "__main__":
    main()
