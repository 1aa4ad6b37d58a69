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
pre-training for each variant of the options (the default Newton update, the paper's AdamW at
7.2e-3, the reference code's rescale / shuffle heuristics).

    python benchmarks/bench_lsc.py speed [--hidden 64,128,256] [--threads 1]
    python benchmarks/bench_lsc.py cells [--cells gru,lstm] [--variants optimizer=newton,...]
    python benchmarks/bench_lsc.py cells --variants optimizer=adamw+lr=0.02+rescale=1
    python benchmarks/bench_lsc.py budget [--budgets 60,120]   # max_seconds honoured?

``matrix`` (the convergence matrix of docs/lsc.md): every cell x depth x width x rho x seed with
the defaults, success = every time and depth radius within 0.08 of its target by the exact
estimator, on 16 of the walked sequences ("walked") and on 16 sequences LSC never saw
("unseen"); rows are appended to a JSONL file (``--out``), so an interrupted run resumes.
``scale``: 5 x 512 ``torch.nn.LSTM`` and 3 x 1024 ``torch.nn.GRU`` on ``randn(64, 100, 64)``.

    python benchmarks/bench_lsc.py matrix [--cells lstm,gru] [--depths 1,2,4,8]
        [--widths 16,64,256] [--rhos 0.5,1,unbalanced] [--seeds 0,1,2] [--workers 2]
    python benchmarks/bench_lsc.py scale [--threads 2]

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
                   time_steps=list(range(0, x.shape[1], max(1, x.shape[1] // 8))))
    return max(abs(report.mean(kind, layer) - targets[kind])
               for kind, per_layer in report.values.items() for layer in per_layer)


def speed(args) -> None:
    task = make_task("copy", T=args.T, n_train=256, n_valid=16, n_test=16)
    x = task.rows("train", torch.arange(256))[0]
    held = task.rows("test", torch.arange(16))[0]
    print(f"4-layer GRU, copy-task inputs (T={task.seq_len}, D={task.input_size}), rho=0.5, "
          f"default update and stopping rule, batch {args.batch}, budget {args.steps} updates, "
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
    """``"optimizer=adamw+lr=0.02+rescale=1"`` -> lsc_pretrain options."""
    out = {}
    for part in text.split("+"):
        key, _, value = part.partition("=")
        out[key] = bool(int(value)) if key in ("rescale", "shuffle") else \
            value if key == "optimizer" else float(value)
    return out


def run_cell(cell: str, layers: int, rho: float, variant: dict, args):
    torch.manual_seed(args.seed)
    model = DeepRNN.build(cell, 3, args.hidden, layers, readout=2)
    x = torch.randn(32, args.T, 3)
    rep = lsc_pretrain(model, x, rho=rho, steps=args.steps, batch_size=8, **variant)
    return rep.steps, rep.update_seconds, measured_error(model, x[:16], rep.targets), \
        rep.converged


def cells(args) -> None:
    variants = args.variants.split(",")
    head = " | ".join(f"{v}: updates / s / max err" for v in variants)
    print(f"H={args.hidden}, T={args.T}, budget {args.steps} updates, batch 8\n")
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


MATRIX_CELLS = "lstm,gru,rnn,rnn_relu,rnn_sigmoid,alif,lru,mgu,brc,nbrc,spectral_rnn,double"


def _rho(text: str):
    return text if text == "unbalanced" else float(text)


def matrix_case(case: tuple) -> dict:
    """One LSC run with the defaults; held errors by the exact estimator (1 torch thread)."""
    cell, layers, width, rho, seed, T = case
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = DeepRNN.build(cell, 3, width, layers, readout=2)
    x = torch.randn(48, T, 3)
    t0 = time.perf_counter()
    rep = lsc_pretrain(model, x[:32], rho=_rho(rho), seed=seed)
    seconds = time.perf_counter() - t0
    errs = {name: exact_errors(model, held, rep.targets)
            for name, held in (("walked", x[:16]), ("unseen", x[32:]))}
    return {"cell": cell, "L": layers, "H": width, "rho": rho, "seed": seed,
            "updates": rep.steps, "seconds": round(seconds, 2), "converged": rep.converged,
            **{f"err_{k}": round(max(v[m] for m in v if m.split()[0] in ("time", "depth")), 4)
               for k, v in errs.items()},
            "err_input": round(errs["walked"].get("input 0", 0.0), 4)}


def exact_errors(model, x: torch.Tensor, targets: dict) -> dict[str, float]:
    """|radius - target| per map, exact estimator, 8 evenly spaced steps."""
    report = radii(model, x, estimator="exact",
                   time_steps=list(range(0, x.shape[1], max(1, x.shape[1] // 8))))
    return {f"{kind} {layer}": abs(report.mean(kind, layer) - targets[kind])
            for kind, per_layer in report.values.items() for layer in per_layer}


def matrix(args) -> None:
    import itertools
    import json
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path
    out = Path(args.out)
    done = {}
    if out.exists():
        for line in out.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                row = json.loads(line)
                done[(row["cell"], row["L"], row["H"], str(row["rho"]), row["seed"])] = row
    cases = [(c, int(L), int(H), r, int(sd), args.T) for c, L, H, r, sd in itertools.product(
        args.cells.split(","), args.depths.split(","), args.widths.split(","),
        args.rhos.split(","), args.seeds.split(","))]
    todo = [c for c in cases if (c[0], c[1], c[2], c[3], c[4]) not in done]
    print(f"{len(cases)} cases, {len(cases) - len(todo)} already in {out}", flush=True)
    with ProcessPoolExecutor(args.workers) as pool, out.open("a") as f:
        for row in pool.map(matrix_case, todo):
            f.write(json.dumps(row) + "\n")
            f.flush()
            done[(row["cell"], row["L"], row["H"], str(row["rho"]), row["seed"])] = row
            print(json.dumps(row), flush=True)
    rows = [done[(c[0], c[1], c[2], c[3], c[4])] for c in cases]
    print(matrix_table(rows))


def matrix_table(rows: list[dict]) -> str:
    """Success rates per cell and per width, and overall."""
    def rate(sel, key="err_walked"):
        return f"{sum(r[key] < 0.08 for r in sel)}/{len(sel)}"
    lines = [("| cell | success (walked) | success (unseen) | input map within 0.08 | "
              "median updates | median s |"), "|---|---|---|---|---|---|"]
    groups = {}
    for r in rows:
        groups.setdefault(r["cell"], []).append(r)
    for name, sel in [*groups.items(), ("all", rows)]:
        ups = sorted(r["updates"] for r in sel)
        secs = sorted(r["seconds"] for r in sel)
        lines.append(f"| {name} | {rate(sel)} | {rate(sel, 'err_unseen')} | "
                     f"{rate(sel, 'err_input')} | {ups[len(ups) // 2]} | "
                     f"{secs[len(secs) // 2]:.1f} |")
    by = {}
    for r in rows:
        by.setdefault((r["H"], str(r["rho"])), []).append(r)
    lines += ["", "| width | rho | success (walked) | success (unseen) | median updates |",
              "|---|---|---|---|---|"]
    for (h, rho), sel in sorted(by.items()):
        ups = sorted(r["updates"] for r in sel)
        lines.append(f"| {h} | {rho} | {rate(sel)} | {rate(sel, 'err_unseen')} | "
                     f"{ups[len(ups) // 2]} |")
    return "\n".join(lines)


def scale(args) -> None:
    """Wide torch stacks: time to reach rho = 0.5 under a budget, held error (report's own)."""
    print(f"{torch.get_num_threads()} thread(s), inputs randn(64, 100, 64), rho 0.5, defaults\n")
    print("| model | budget s | wall s | updates | s / update | converged | max held err |\n"
          "|---|---:|---:|---:|---:|---|---:|")
    for name, make, budget_s in (("5 x 512 LSTM", lambda: nn.LSTM(64, 512, 5, batch_first=True),
                                  args.lstm_budget),
                                 ("3 x 1024 GRU", lambda: nn.GRU(64, 1024, 3, batch_first=True),
                                  args.gru_budget)):
        torch.manual_seed(args.seed)
        model, x = make(), torch.randn(64, 100, 64)
        t0 = time.perf_counter()
        rep = lsc_pretrain(model, x, rho=0.5, max_seconds=budget_s, seed=args.seed)
        wall = time.perf_counter() - t0
        print(f"| {name} | {budget_s:.0f} | {wall:.1f} | {rep.steps} | "
              f"{rep.update_seconds / max(1, rep.steps):.2f} | {rep.converged} | "
              f"{rep.max_error():.3f} |", flush=True)


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
    sp.add_argument("--k", type=int, default=8, help="our Krylov dimension")
    cp = sub.add_parser("cells", help="every cell x depth x rho, per learning rate")
    cp.add_argument("--cells", default=CELLS)
    cp.add_argument("--depths", default="2,4")
    cp.add_argument("--rhos", default="0.5,1.0")
    cp.add_argument("--variants", default="optimizer=newton,optimizer=adamw+lr=0.0072",
                    help="comma-separated option sets, each key=value[+key=value], e.g. "
                         "optimizer=adamw+lr=0.02+rescale=1 for the heuristics ablation")
    cp.add_argument("--steps", type=int, default=1000)
    cp.add_argument("--hidden", type=int, default=8)
    cp.add_argument("--T", type=int, default=12)
    mp = sub.add_parser("matrix", help="convergence matrix with the defaults")
    mp.add_argument("--cells", default=MATRIX_CELLS)
    mp.add_argument("--depths", default="1,2,4,8")
    mp.add_argument("--widths", default="16,64,256")
    mp.add_argument("--rhos", default="0.5,1,unbalanced")
    mp.add_argument("--seeds", default="0,1,2")
    mp.add_argument("--T", type=int, default=20)
    mp.add_argument("--workers", type=int, default=2)
    mp.add_argument("--out", default="lsc_matrix.jsonl")
    sc = sub.add_parser("scale", help="5 x 512 LSTM and 3 x 1024 GRU to rho 0.5")
    sc.add_argument("--lstm-budget", type=float, default=60)
    sc.add_argument("--gru-budget", type=float, default=300)
    bp = sub.add_parser("budget", help="max_seconds on a 5 x 512 torch.nn.LSTM")
    bp.add_argument("--budgets", default="60,120")
    args = ap.parse_args()
    if args.bench is None:
        args = ap.parse_args([*sys.argv[1:], "speed"])
    torch.set_num_threads(args.threads)
    {"cells": cells, "budget": budget, "matrix": matrix, "scale": scale}.get(
        args.bench, speed)(args)


if __name__ == "__main__":
    main()
