"""The headline: the copy task at T = 1000 learned on a 2-core CPU within 30 minutes of wall time.

Copy (docs/tasks.md): 10 symbols of 8, ``T - 1`` blanks, the delimiter, 10 blanks; recall the
10 symbols at the end. Loss: cross-entropy over all ``T + 20`` steps, baseline
``10 ln 8 / (T + 20)`` (a memoryless model); metric: accuracy on the recalled symbols (chance
1/8). A run trains on fresh batches until its held-out recall accuracy reaches ``--target``
(default 0.99) or its wall-time budget ends, evaluating every ``--eval-every`` updates.

Models, all one layer with a linear readout, RMSprop (as the orthogonal-RNN references), the
recurrent matrix at ``--lr-rec`` and everything else at ``--lr``:

- ``spectral``: this library's spectral RNN (``W = U diag(sigma) V^T``, sigma in
  ``[1 - r, 1 + r]``), modReLU, Henaff init (docs/spectral.md);
- ``spectral_relu`` / ``spectral_tanh``: the same with the fused ReLU / tanh kernel;
- ``spectral_haar``: the same with the paper's init (Haar-random ``U``, ``V``, ``sigma = 1``);
- ``rnn_orth``: the same cell without the constraint (Henaff init, so orthogonal at start);
- ``torch_orth``: ``torch.nn.utils.parametrizations.orthogonal`` on the same cell;
- ``geotorch``: ``geotorch.almost_orthogonal`` (``U f(sigma) V^T``, the spectral function class)
  on the same cell, behind the ``[geotorch]`` extra;
- ``lstm``: an LSTM of comparable size (``--lstm-hidden``, 64 by default: 20k parameters
  against 18-20k), one learning rate ``--lr``.

``--task adding`` runs the adding problem instead (sum of the two marked values of a length-T
sequence, MSE, chance 1/6; solved at ``--target`` MSE, 0.01 by default), results under
``runs/adding1000``.

Resumable: a run checkpoints every minute and continues where it stopped (its wall clock
too); a finished run is skipped.

    python benchmarks/copy1000.py run --models spectral --seeds 0,1,2 --threads 2
    python benchmarks/copy1000.py run --models lstm,rnn_orth,torch_orth,geotorch --seeds 0
    python benchmarks/copy1000.py report            # table + docs/img/copy1000.png
    python benchmarks/copy1000.py run --task adding --models spectral,lstm --minutes 15
    python benchmarks/copy1000.py run --T 100 --hidden 64 --batch 32 --lr 2e-3 --lr-rec 2e-4 \
        --updates 600 --target 1.1 --models spectral,spectral_relu,spectral_tanh,spectral_haar \
        --seeds 0,1 --out runs/copy100_ablation      # what matters, in minutes
    python benchmarks/copy1000.py run --smoke --out /tmp/c  # seconds: what CI runs

Measured figures: docs/RESULTS.md, "The headline: copy at T = 1000".
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from stablernn import DeepRNN
from stablernn._io import atomic_save, atomic_write_text
from stablernn.cells import LSTMCell, RNNCell
from stablernn.cells.rnn import henaff_init_
from stablernn.cells.spectral_rnn import SpectralRNNCell
from stablernn.tasks import make_task
from stablernn.tasks.base import Task

CHUNK = 50  # updates per generated chunk of training data (one seeded CopyTask each)


def spectral_cell(nonlinearity: str, init: str = "henaff"
                  ) -> Callable[[argparse.Namespace], nn.Module]:
    return lambda a: SpectralRNNCell(a.input_size, a.hidden, r=a.r, nonlinearity=nonlinearity,
                                     init=init)


def modrelu_cell(a: argparse.Namespace) -> RNNCell:
    cell = RNNCell(a.input_size, a.hidden, nonlinearity="modrelu")
    henaff_init_(cell)
    return cell


def torch_orth(a: argparse.Namespace) -> RNNCell:
    cell = modrelu_cell(a)
    W = cell.weight_hh.detach().clone()
    nn.utils.parametrizations.orthogonal(cell, "weight_hh")
    cell.weight_hh = W  # keep the Henaff start (right_inverse of the trivialisation)
    return cell


def geotorch_cell(a: argparse.Namespace) -> RNNCell:
    try:
        import geotorch
    except ImportError as err:
        raise SystemExit("the geotorch model needs geotorch: pip install 'stablernn[geotorch]'"
                         ) from err
    cell = modrelu_cell(a)
    W = cell.weight_hh.detach().clone()
    geotorch.almost_orthogonal(cell, "weight_hh", lam=a.r, f="scaled_sigmoid")
    cell.weight_hh = W
    return cell


MODELS: dict[str, Callable[[argparse.Namespace], nn.Module]] = {
    "spectral": spectral_cell("modrelu"),
    "spectral_relu": spectral_cell("relu"),
    "spectral_tanh": spectral_cell("tanh"),
    "spectral_haar": spectral_cell("modrelu", "haar"),
    "rnn_orth": modrelu_cell,
    "torch_orth": torch_orth,
    "geotorch": geotorch_cell,
    "lstm": lambda a: LSTMCell(a.input_size, a.lstm_hidden),
}


def build(name: str, args: argparse.Namespace, task: Task
          ) -> tuple[DeepRNN, torch.optim.Optimizer]:
    args.input_size = task.input_size
    model = DeepRNN([MODELS[name](args)], readout=task.output_size,
                    readout_mode=task.readout_mode)
    # the recurrent matrix trains at --lr-rec: every parameter named under weight_hh, that is
    # the parametrisation's (spectral reflectors and sigma, torch_orth, geotorch) or the plain
    # matrix of rnn_orth, as the orthogonal-RNN references do; the LSTM gets one lr throughout
    rec = [p for n, p in model.named_parameters() if "weight_hh" in n and name != "lstm"]
    ids = {id(p) for p in rec}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": rest, "lr": args.lr}] + ([{"params": rec, "lr": args.lr_rec}]
                                                  if rec else [])
    optim = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[args.optim]
    return model, optim(groups, lr=args.lr)


def train_chunk(args: argparse.Namespace, seed: int, chunk: int) -> Task:
    """Training data of updates ``[chunk * CHUNK, (chunk + 1) * CHUNK)``: fresh sequences,
    the same on a resumed run."""
    return make_task(args.task, T=args.T, seed=10_000 * (seed + 1) + chunk,
                     n_train=CHUNK * args.batch, n_valid=1, n_test=1)


@torch.no_grad()
def evaluate(model: DeepRNN, task: Task, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    pred = torch.cat([model(xb)[0] for xb in x.split(256)])
    model.train()
    return float(task.loss(pred, y)), float(task.metric(pred, y))


def run_one(name: str, seed: int, args: argparse.Namespace) -> dict:
    out = args.out / f"{name}-s{seed}"
    result_file, ckpt_file = out / "result.json", out / "checkpoint.pt"
    if result_file.exists():
        return json.loads(result_file.read_text())
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    held = make_task(args.task, T=args.T, seed=seed, n_train=1, n_valid=args.n_valid, n_test=1)
    model, opt = build(name, args, held)
    x_val, y_val = held.split("valid")
    base = held.chance_loss
    state = {"update": 0, "elapsed": 0.0, "history": []}
    if ckpt_file.exists():
        saved = torch.load(ckpt_file, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        state = saved["state"]
        print(f"{name} seed {seed}: resuming at update {state['update']}, "
              f"{state['elapsed']:.0f} s", flush=True)
    budget = 60.0 * args.minutes
    start, last_save = time.perf_counter() - state["elapsed"], time.perf_counter()
    solved = False
    while True:
        u = state["update"]
        if u % args.eval_every == 0:
            loss, acc = evaluate(model, held, x_val, y_val)
            state["history"].append({"update": u, "seconds": time.perf_counter() - start,
                                     "loss": loss / base, "acc": acc})
            print(f"{name} s{seed} update {u:5d} {state['history'][-1]['seconds']:7.0f} s "
                  f"loss/baseline {loss / base:.3f} {held.metric_name} {acc:.4g}", flush=True)
            solved = acc >= args.target if held.higher_is_better else acc <= args.target
            if solved or time.perf_counter() - start >= budget or not math.isfinite(loss) or \
                    (args.updates and u >= args.updates):
                break
        data = train_chunk(args, seed, u // CHUNK)
        rows = torch.arange(u % CHUNK * args.batch, (u % CHUNK + 1) * args.batch)
        x, y = data.rows("train", rows)
        loss = data.loss(model(x)[0], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip:
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        state["update"] = u + 1
        state["elapsed"] = time.perf_counter() - start
        if time.perf_counter() - last_save > args.save_every:
            atomic_save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state},
                        ckpt_file)
            last_save = time.perf_counter()
    hist = state["history"]
    result = {"model": name, "seed": seed, "task": args.task, "T": args.T,
              "metric": held.metric_name, "chance": held.chance, "threads": torch.get_num_threads(),
              "minutes": args.minutes, "target": args.target, "solved": solved,
              "seconds": hist[-1]["seconds"], "updates": state["update"],
              "final_acc": hist[-1]["acc"], "final_loss": hist[-1]["loss"],
              "best_acc": max(h["acc"] for h in hist),
              "parameters": sum(p.numel() for p in model.parameters()),
              "history": hist}
    atomic_write_text(result_file, json.dumps(result) + "\n")
    ckpt_file.unlink(missing_ok=True)
    return result


def load_results(root: Path) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted(root.glob("*/result.json"))]


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3g} +- {sd:.2g}"


def table(results: list[dict]) -> list[str]:
    metric = results[0].get("metric", "accuracy")
    rows = [f"| model | params | seeds | solved | minutes to solve | final {metric} | "
            "final loss / baseline | updates | s / update |",
            "|---|---:|---:|---|---|---|---|---:|---:|"]
    for name in dict.fromkeys(r["model"] for r in results):
        rs = [r for r in results if r["model"] == name]
        solved = [r["seconds"] / 60 for r in rs if r["solved"]]
        rows.append(
            f"| {name} | {rs[0]['parameters']} | {len(rs)} | {len(solved)}/{len(rs)} | "
            f"{_mean_sd(solved)} | {_mean_sd([r['final_acc'] for r in rs])} | "
            f"{_mean_sd([r['final_loss'] for r in rs])} | "
            f"{statistics.mean(r['updates'] for r in rs):.0f} | "
            f"{statistics.mean(r['seconds'] / max(r['updates'], 1) for r in rs):.2f} |")
    return rows


def plot(results: list[dict], path: Path) -> None:
    from stablernn.plotting import line_style, new_figure

    fig = new_figure((10.0, 3.6))
    ax_loss, ax_acc = fig.subplots(1, 2)
    names = list(dict.fromkeys(r["model"] for r in results))
    for r in results:
        style = line_style(names.index(r["model"]))
        style.pop("marker", None), style.pop("markevery", None)
        minutes = [h["seconds"] / 60 for h in r["history"]]
        label = r["model"] if r["seed"] == min(q["seed"] for q in results
                                               if q["model"] == r["model"]) else None
        ax_loss.plot(minutes, [h["loss"] for h in r["history"]], label=label, lw=1, **style)
        ax_acc.plot(minutes, [h["acc"] for h in r["history"]], lw=1, **style)
    first = results[0]
    task, metric = first.get("task", "copy"), first.get("metric", "accuracy")
    ax_loss.axhline(1.0, color="k", lw=0.8, ls=":", label="baseline (memoryless model)")
    ax_loss.set(xlabel="wall minutes", ylabel="held-out loss / baseline", yscale="log",
                title=f"{task}, T = {first['T']}")
    ax_acc.axhline(first.get("chance", 1 / 8), color="k", lw=0.8, ls=":")
    ax_acc.axhline(first["target"], color="k", lw=0.8, ls="--")
    ax_acc.set(xlabel="wall minutes", ylabel=f"held-out {metric}",
               title=f"{first['threads']} CPU thread(s) per run, one line per seed")
    if metric == "accuracy":
        ax_acc.set_ylim(0, 1.02)
    else:
        ax_acc.set_yscale("log")
    ax_loss.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--task", choices=["copy", "adding"], default="copy")
    parser.add_argument("--models", default="spectral")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--target", type=float, default=None,
                        help="copy: recall accuracy to reach (0.99); adding: MSE (0.01)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lstm-hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--lr-rec", type=float, default=5e-5)
    parser.add_argument("--r", type=float, default=0.01)
    parser.add_argument("--optim", choices=["rmsprop", "adam"], default="rmsprop")
    parser.add_argument("--clip", type=float, default=0.0, help="gradient-norm clip; 0: none")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--updates", type=int, default=0,
                        help="stop after this many updates too (0: the time budget only)")
    parser.add_argument("--n-valid", type=int, default=256)
    parser.add_argument("--save-every", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="runs/copy1000, runs/adding1000")
    parser.add_argument("--plot", type=Path, default=None,
                        help="docs/img/copy1000.png (adding1000.png)")
    parser.add_argument("--smoke", action="store_true",
                        help="T = 20, width 32, 6 s per model: the CI check of every path")
    args = parser.parse_args()
    if args.target is None:
        args.target = 0.99 if args.task == "copy" else 0.01
    args.out = args.out or Path(f"runs/{args.task}1000")
    args.plot = args.plot or Path(f"docs/img/{args.task}1000.png")
    if args.smoke:
        args.T, args.hidden, args.lstm_hidden, args.minutes = 20, 32, 16, 0.1
        args.n_valid, args.eval_every = 64, 20
    torch.set_num_threads(args.threads)
    if args.command == "run":
        unknown = sorted(set(args.models.split(",")) - set(MODELS))
        if unknown:
            parser.error(f"unknown model {', '.join(unknown)}; valid: {', '.join(MODELS)}")
        for seed in (int(s) for s in args.seeds.split(",")):
            for name in args.models.split(","):
                run_one(name, seed, args)
    results = load_results(args.out)
    if not results:
        raise SystemExit(f"no finished runs under {args.out}")
    print("\n".join(table(results)))
    if args.command == "report":
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
