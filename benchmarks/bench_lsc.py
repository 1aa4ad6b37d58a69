"""LSC pre-training benchmarks.

``speed`` (default; the issue's target): seconds for a 4-layer GRU on copy-task inputs to reach
tolerance 0.08 (rho = 0.5) with our implementation, and for the same number of updates with a
straightforward reference-style one that builds every per-sample Jacobian densely
(``torch.autograd.functional.jacobian`` with ``create_graph``, one backward per output unit) and
differentiates ``torch.linalg.eigvals`` at every step, as the paper's code does. Both run the
same walk, optimiser and seed; only the radius computation differs (the two give the same
gradients to 1e-8 in float64, see tests/test_stability.py), so the achieved radii are
comparable. The same number of updates, not
each one's own stopping point: float32 rounding makes two runs drift apart over ~100 updates,
and which one stops first is then chance.

``cells``: for each cell x depth x rho, updates / seconds / largest radius error after
pre-training for each variant of the options (learning rates: the SPEC's reference lr is 7.2e-3,
our default the benchmark's best; the reference code's rescale / shuffle heuristics).

    python benchmarks/bench_lsc.py speed [--hidden 64,128,256] [--threads 1]
    python benchmarks/bench_lsc.py cells [--cells gru,lstm] [--variants lr=0.0072,lr=0.02]
    python benchmarks/bench_lsc.py cells --variants lr=0.02,lr=0.02+rescale=1,lr=0.02+shuffle=1
    python benchmarks/bench_lsc.py budget [--budgets 60,120]   # max_seconds honoured?

``budget``: wall time of ``lsc_pretrain(max_seconds=B)`` on a 5-layer 512-wide
``torch.nn.LSTM`` (inputs ``(64, 100, 64)``), as a ratio to B (the Hardening target: <= 1.1).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from unittest import mock

import torch
from torch import nn

from stablernn import DeepRNN, make_task
from stablernn.stability import lsc
from stablernn.stability.jacobians import LocalMap
from stablernn.stability.lsc import lsc_pretrain
from stablernn.stability.radii import radii

CELLS = "lstm,gru,rnn,rnn_relu,rnn_sigmoid,alif,lru"
LR = {"rnn_sigmoid": 5e-2, "alif": 5e-2}  # as in tests/test_lsc.py


def reference_radius(m: LocalMap, *, differentiable: bool = False, seed: int = 0) -> torch.Tensor:
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
    return max(abs(report.mean(kind, layer) - targets[kind])
               for kind, per_layer in report.values.items() for layer in per_layer)


def speed(args) -> None:
    task = make_task("copy", T=args.T, n_train=256, n_valid=16, n_test=16)
    x = task.rows("train", torch.arange(256))[0]
    held = task.rows("test", torch.arange(16))[0]
    print(f"4-layer GRU, copy-task inputs (T={task.seq_len}, D={task.input_size}), rho=0.5, "
          f"tol 0.08, patience 20, batch {args.batch}, default lr, budget {args.steps} updates, "
          f"{torch.get_num_threads()} thread(s), seed {args.seed}\n")
    print("| H | ours: updates to tol / s | reference: same updates / s | speed-up "
          "| s per update ours / ref | max err after, ours / ref |\n|---|---|---|---|---|---|")
    for hidden in map(int, args.hidden.split(",")):
        rows, steps = {}, args.steps
        for name in ("ours", "reference"):
            torch.manual_seed(args.seed)
            model = DeepRNN.build("gru", task.input_size, hidden, 4, readout=task.output_size)
            reference = mock.patch.object(lsc, "radius_all", reference_radius_all)
            patch = reference if name == "reference" else contextlib.nullcontext()
            with patch:
                rep = lsc_pretrain(model, x, rho=0.5, steps=steps, batch_size=args.batch,
                                   eval_steps=2, k=args.k)
            rows[name] = (rep.steps, rep.update_seconds, rep.converged,
                          measured_error(model, held, rep.targets))
            steps = rep.steps  # the reference does the same number of updates
        (n, s_o, conv, e_o), (_, s_r, _, e_r) = rows["ours"], rows["reference"]
        print(f"| {hidden} | {n}{'' if conv else '*'} / {s_o:.1f} | {n} / {s_r:.1f} | "
              f"{s_r / s_o:.1f}x | {s_o / n:.3f} / {s_r / n:.3f} | {e_o:.3f} / {e_r:.3f} |",
              flush=True)
    print("\nOurs runs until its stopping rule (* = budget used up first); the reference then "
          "does the same number of updates (same walk, seed and optimiser: only the radius "
          "computation differs). Seconds: the updates alone (LSCReport.update_seconds). Max "
          "err: largest |radius - target| of time and depth maps on 16 held sequences, exact "
          "estimator.")


def parse_variant(text: str) -> dict:
    """``"lr=0.02+rescale=1"`` -> ``{"lr": 0.02, "rescale": True}`` (lsc_pretrain options)."""
    out = {}
    for part in text.split("+"):
        key, _, value = part.partition("=")
        out[key] = bool(int(value)) if key in ("rescale", "shuffle") else float(value)
    return out


def run_cell(cell: str, layers: int, rho: float, variant: dict, args):
    torch.manual_seed(args.seed)
    model = DeepRNN.build(cell, 3, args.hidden, layers, readout=2)
    x = torch.randn(32, args.T, 3)
    rep = lsc_pretrain(model, x, rho=rho, steps=args.steps, batch_size=8,
                       **{"lr": LR.get(cell, 2e-2), **variant})
    return rep.steps, rep.update_seconds, measured_error(model, x[:16], rep.targets), \
        rep.converged


def cells(args) -> None:
    variants = args.variants.split(",")
    head = " | ".join(f"{v}: updates / s / max err" for v in variants)
    print(f"H={args.hidden}, T={args.T}, budget {args.steps} updates, batch 8, lr per cell "
          f"{LR} unless the variant sets it\n")
    print(f"| cell | L | rho | {head} |\n|---|---|---|" + "---|" * len(variants))
    ok = dict.fromkeys(variants, 0)
    total = 0
    for cell in args.cells.split(","):
        for layers in map(int, args.depths.split(",")):
            for rho in map(float, args.rhos.split(",")):
                cols = []
                for v in variants:
                    steps, sec, err, conv = run_cell(cell, layers, rho, parse_variant(v), args)
                    ok[v] += err < 0.08
                    cols.append(f"{steps}{'' if conv else '*'} / {sec:.1f} / {err:.3f}")
                total += 1
                print(f"| {cell} | {layers} | {rho} | " + " | ".join(cols) + " |", flush=True)
    print("\n* = budget exhausted before the stopping rule; within 0.08 of target: " +
          ", ".join(f"{v}: {ok[v]}/{total}" for v in variants))


def budget(args) -> None:
    """Wall time of a time-limited LSC call against its budget (the whole call is bounded)."""
    torch.manual_seed(args.seed)
    model = nn.LSTM(64, 512, num_layers=5, batch_first=True)
    x = torch.randn(64, 100, 64)
    print("| budget s | wall s | wall / budget | updates | out of time |\n|---:|---:|---:|---:|---|")
    for b in (float(v) for v in args.budgets.split(",")):
        t0 = time.perf_counter()
        report = lsc_pretrain(model, x, rho=0.5, max_seconds=b)
        wall = time.perf_counter() - t0
        print(f"| {b:.0f} | {wall:.1f} | {wall / b:.2f} | {report.steps} | {report.out_of_time} |",
              flush=True)


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
    sp.add_argument("--k", type=int, default=16, help="our Krylov dimension")
    cp = sub.add_parser("cells", help="every cell x depth x rho, per learning rate")
    cp.add_argument("--cells", default=CELLS)
    cp.add_argument("--depths", default="2,4")
    cp.add_argument("--rhos", default="0.5,1.0")
    cp.add_argument("--variants", default="lr=0.0072,lr=0.02",
                    help="comma-separated option sets, each key=value[+key=value], e.g. "
                         "lr=0.02,rescale=1,shuffle=1 for the heuristics ablation")
    cp.add_argument("--steps", type=int, default=1000)
    cp.add_argument("--hidden", type=int, default=8)
    cp.add_argument("--T", type=int, default=12)
    bp = sub.add_parser("budget", help="max_seconds on a 5 x 512 torch.nn.LSTM")
    bp.add_argument("--budgets", default="60,120")
    args = ap.parse_args()
    if args.bench is None:
        args = ap.parse_args([*sys.argv[1:], "speed"])
    torch.set_num_threads(args.threads)
    {"cells": cells, "budget": budget}.get(args.bench, speed)(args)


if __name__ == "__main__":
    main()
