"""Command line: ``stablernn <command>``; each handler only parses and delegates."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

# CLI flags that are shorthands for config keys
SHORTHANDS = {"task": "task.name", "model": "model.cell", "layers": "model.num_layers",
              "hidden": "model.hidden_size", "init": "init.scheme", "pretrain": "pretrain.method",
              "rho": "pretrain.rho", "steps": "run.steps", "seed": "run.seed",
              "lr": "optim.lr", "root": "run.root", "device": "run.device", "size": "task.size",
              "threads": "run.threads"}
# commands whose work survives an interruption (run directories resume)
RESUMABLE = ("train", "sweep", "demo", "rl")


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import registries

    for kind, registry in registries().items():
        if args.kind and kind != args.kind:
            continue
        print(f"{kind}:")
        for name, factory in sorted(registry.items()):
            print(f"  {name:14s} {describe(factory)}")
    return 0


def describe(factory) -> str:
    """One line: the first docstring line and, for tasks, the parameters with defaults."""
    if factory is None:
        return "(no-op)"
    doc = (factory.__doc__ or "").strip().splitlines()
    line = doc[0] if doc else ""
    params = getattr(factory, "params", None)
    if callable(params):
        line += "  (" + ", ".join(f"{k}={v!r}" for k, v in params().items()) + ")"
    return line


def cmd_train(args: argparse.Namespace) -> int:
    from .train import Config, apply_overrides, train

    cfg = Config.from_file(args.config) if args.config else Config()
    shorthand = [f"{SHORTHANDS[k]}={v}" for k, v in vars(args).items()
                 if k in SHORTHANDS and v is not None]
    apply_overrides(cfg, shorthand + (args.set or []))
    summary = train(cfg)
    print(json.dumps({k: summary.get(k) for k in ("status", "step", "metric", "valid", "test",
                                                   "chance")}, indent=None))
    return 0 if summary["status"] != "diverged" else 1


def cmd_rl(args: argparse.Namespace) -> int:
    from .rl import rl_config
    from .train import train

    sets = [f"{key}={value}" for key, value in (("run.threads", args.threads),
                                                ("run.device", args.device)) if value is not None]
    cfg = rl_config(args.env, length=args.length, stochasticity=args.stochasticity,
                    cell=args.model, hidden_size=args.hidden, num_layers=args.layers,
                    pretrain=args.pretrain, partial=args.partial, episodes=args.episodes,
                    eval_every=args.eval_every, seed=args.seed, root=args.root,
                    overrides=sets + (args.set or []))
    summary = train(cfg)
    print(json.dumps({k: summary.get(k) for k in ("status", "step", "metric",
                                                   "episodes_to_solve", "solved", "vaa",
                                                   "vaa_horizon")}))
    return 0 if summary["status"] != "diverged" else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(root=args.root, seeds=args.seeds, smoke=args.smoke, workers=args.workers)
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .adapters import as_deep_rnn
    from .stability.diagnose import diagnose, load_model, random_inputs
    from .train.loop import load_trained

    if args.run:
        model, x = load_trained(args.run, batch_size=args.batch_size)
    else:  # as a batch-first stack: random_inputs are (batch, time, features) for any module
        model = as_deep_rnn(load_model(args.model, trust_pickle=args.trust_pickle))
        x = random_inputs(model, args.batch_size, args.seq_len, args.seed)
    result = diagnose(model, x, args.out or Path(args.run or ".") / "diagnose", seed=args.seed)
    print(result["radii_table"])
    print("\n".join(f"wrote {path}" for path in result["files"].values()))
    if args.init:
        from .init import explain

        print(explain(model, seq_len=x.shape[1]))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .experiments.sweep import sweep_command

    return sweep_command(args.file, backend=args.backend, workers=args.workers,
                         address=args.address, dry_run=args.dry_run,
                         max_attempts=args.max_attempts)


def cmd_report(args: argparse.Namespace) -> int:
    if (args.runs_dir is None) == (args.results is None):
        raise ValueError("give a RUNS_DIR to report, or --results [PAGE] to regenerate a "
                         "results page (not both)")
    if args.results is not None:
        from .experiments.report.results import write_results

        sections = write_results(args.results)
        print(f"results: {len(sections)} section(s) of {args.results} regenerated")
        return 0
    from .experiments.report import write_report

    path = write_report(args.runs_dir, args.out, split=args.split, flow=not args.no_flow,
                        compare=[tuple(c) for c in args.compare or ()])
    print(f"report: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .experiments.trial import MAX_ATTEMPTS

    parser = argparse.ArgumentParser(prog="stablernn", description=__doc__)
    parser.add_argument("--version", action="version", version=f"stablernn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="print the registered cells, tasks, inits and methods")
    p.add_argument("kind", nargs="?", choices=["cells", "tasks", "inits", "pretrain", "envs"])
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("train", help="train one configuration (resumes; skips finished runs)")
    for flag, key in SHORTHANDS.items():
        p.add_argument(f"--{flag}", help=f"sets {key}")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any config key, e.g. --set model.dropout=0.1 (repeatable)")
    p.add_argument("--config", help="a config.json to start from")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("rl", help="train a DRQN agent on an environment (shorthand for train "
                                  "with task.name=ENV; docs/rl.md)")
    p.add_argument("--env", default="tmaze", help="a registered environment (stablernn list envs)")
    p.add_argument("--length", type=int, default=10, help="corridor length L (task.params.length)")
    p.add_argument("--stochasticity", type=float, default=0.0,
                   help="probability that an action is replaced by a random one")
    p.add_argument("--model", default="gru", help="cell of the Q-network (model.cell)")
    p.add_argument("--partial", action="store_true",
                   help="double layers of --model halves (partial warm-up)")
    p.add_argument("--hidden", type=int, default=32, help="model.hidden_size")
    p.add_argument("--layers", type=int, default=2, help="model.num_layers")
    p.add_argument("--pretrain", default="none", help="pretrain.method, e.g. warmup")
    p.add_argument("--episodes", type=int, default=2000, help="training episodes (run.steps)")
    p.add_argument("--eval-every", type=int, default=20,
                   help="episodes between greedy evaluations (run.eval_every)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="runs")
    p.add_argument("--threads", help="sets run.threads")
    p.add_argument("--device", help="sets run.device")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any config key, e.g. --set task.params.epsilon=0.1 (repeatable)")
    p.set_defaults(handler=cmd_rl)

    p = sub.add_parser("diagnose", help="radii, gradient flow, Lyapunov exponents, VAA + plots")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a run directory (model rebuilt from config.json + model.pt)")
    src.add_argument("--model", help="a whole model saved with torch.save(model, path); "
                                     "needs --trust-pickle")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow --model to unpickle code: loading a whole model runs code stored "
                        "in the file, so use it only for files you trust")
    p.add_argument("--out", help="output folder (default: <run>/diagnose or ./diagnose)")
    p.add_argument("--batch-size", "--batch", type=int, default=16, dest="batch_size",
                   help="sequences to analyse (--batch: its former name)")
    p.add_argument("--seq-len", type=int, default=32, help="length of random inputs (--model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", action="store_true",
                   help="also print the mean-field predictions (q*, m, chi, xi) per layer")
    p.set_defaults(handler=cmd_diagnose)

    p = sub.add_parser("sweep", help="run a TOML grid of configs x seeds (skips finished trials)")
    p.add_argument("file", help="sweep file, e.g. benchmarks/reproduce/lsc_depth.toml")
    p.add_argument("--backend", choices=["local", "ray", "slurm", "slurm-local"], default="local",
                   help="slurm needs sbatch on PATH; slurm-local runs submitit's local executor")
    p.add_argument("--workers", type=int, help="parallel trials (default: the CPU count)")
    p.add_argument("--address", help="join the Ray cluster at ADDR (--backend ray)")
    p.add_argument("--dry-run", action="store_true", help="list the trials; run nothing")
    p.add_argument("--max-attempts", type=int, default=MAX_ATTEMPTS,
                   help=f"runs of a crashing trial before it is reported failed "
                        f"(default {MAX_ATTEMPTS})")
    p.set_defaults(handler=cmd_sweep)

    p = sub.add_parser("report", help="tables, paired win rates and plots of run directories")
    p.add_argument("runs_dir", metavar="RUNS_DIR", nargs="?",
                   help="a directory of run directories")
    p.add_argument("--results", nargs="?", const="docs/RESULTS.md", metavar="PAGE",
                   help="instead: regenerate the marked sections of PAGE (default "
                        "docs/RESULTS.md) from their run directories")
    p.add_argument("--out", help="output folder (default: RUNS_DIR/report)")
    p.add_argument("--split", choices=["test", "valid"], default="test")
    p.add_argument("--no-flow", action="store_true", help="skip the gradient-flow heat-maps")
    p.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"),
                   help="also pair runs matching selector A (key=value[,key=value]) with runs "
                        "matching B on every other key, e.g. --compare "
                        "pretrain.method=lsc,pretrain.rho=1 pretrain.method=none")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("demo", help="default vs stabilised deep RNN on a long-memory task")
    p.add_argument("--root", default="runs/demo")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--smoke", action="store_true", help="tiny sizes (seconds), for CI")
    p.add_argument("--workers", type=int, default=2, help="parallel runs (one thread each)")
    p.set_defaults(handler=cmd_demo)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same clean-up runs (locks, temporary files)."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def _warning_line(command: str):
    """Warnings as one line each: ``stablernn train: warning: ...``."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"stablernn {command}: warning: {message}", file=file or sys.stderr)

    return show


# errors that mean "this input cannot be used": exit 2 and one line (OSError subclasses are
# the path problems: a read-only --root, a file where a folder should be, ...)
USAGE_ERRORS = (ValueError, TypeError, ImportError, FileNotFoundError, FileExistsError,
                PermissionError, NotADirectoryError, IsADirectoryError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code: 2 and one clear line for unusable input, 130 (143
    for SIGTERM) when interrupted, 1 for a diverged run."""
    previous = _catch_sigterm()
    try:
        args = build_parser().parse_args(argv)
        try:
            with warnings.catch_warnings():
                if not args.debug:
                    warnings.showwarning = _warning_line(args.command)
                return _run(args)
        except KeyboardInterrupt as err:
            if args.debug:
                raise
            again = "; re-run the same command to resume" if args.command in RESUMABLE else ""
            print(f"stablernn {args.command}: interrupted{again}", file=sys.stderr)
            return 143 if isinstance(err, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _catch_sigterm():
    """Turn SIGTERM into :class:`Terminated`; returns the previous handler (None when not on
    the main thread, where handlers cannot be set)."""
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        return None


def _run(args: argparse.Namespace) -> int:
    from .train import RunDirError, RunLockedError

    try:
        return args.handler(args)
    except (*USAGE_ERRORS, RunLockedError, RunDirError) as err:
        if args.debug:
            raise
        print(f"stablernn {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (OS errors: their reason and path)."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.strerror}: {os.fsdecode(err.filename)}"
    text = " ".join(str(err).split()) or type(err).__name__
    return text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
