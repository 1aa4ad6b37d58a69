"""Throw bad and unusual inputs at the CLI and the Python API; count the cases handled cleanly.

A CLI case is clean when the command exits with the expected code (2 for unusable input, 0 for
a damaged file that the tool recovers from), prints no traceback, says what is wrong in one
``error:`` line, and (for errors) leaves nothing on disk. An API case is clean when it raises
ValueError / TypeError with a one-line message (or returns a correct result for an unusual but
valid input) and leaves the model's weights unchanged; every case runs in its own process, so a
crash (segfault) counts as not clean instead of ending the run. See docs/robustness.md.

    python benchmarks/bad_inputs.py [--only cli|api] [--workers 2] [--verbose]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve()
BIN = [sys.executable, "-m", "stablernn"]
SMOKE = ["--task", "adding", "--size", "smoke", "--layers", "2", "--hidden", "8", "--steps", "6",
         "--set", "run.eval_every=3", "--set", "task.params.T=12"]

# ------------------------------------------------------------------------------ CLI cases


def cli_cases(w: Path) -> list[tuple[str, list[str], int]]:
    """``(name, argv, expected exit code)``; paths refer to the fixtures of :func:`fixtures`."""
    t = ["train", *SMOKE, "--root", str(w / "root")]
    bad_train = {
        "device cuda without GPU": ["--device", "cuda"], "device foo": ["--device", "foo"],
        "device cuda:7": ["--set", "run.device=cuda:7"],
        "config is a directory": ["--config", str(w)],
        "config is a JSON list": ["--config", str(w / "list.json")],
        "config is bad JSON": ["--config", str(w / "bad.json")],
        "config missing": ["--config", str(w / "missing.json")],
        "config with unknown section": ["--config", str(w / "unknown.json")],
        "T=0": ["--set", "task.params.T=0"], "T=abc": ["--set", "task.params.T=abc"],
        "T=-3": ["--set", "task.params.T=-3"], "T=nan": ["--set", "task.params.T=nan"],
        "T=2.5": ["--set", "task.params.T=2.5"],
        "unknown task param": ["--set", "task.params.foo=1"],
        "unknown model option": ["--set", "model.options.foo=1"],
        "bad model option value": ["--model", "rnn", "--set", "model.options.nonlinearity=x"],
        "unknown init option": ["--init", "chrono", "--set", "init.options.foo=1"],
        "unknown pretrain option": ["--pretrain", "lsc", "--set", "pretrain.options.foo=1"],
        "identity init on GRU": ["--init", "identity", "--model", "gru"],
        "pretrain lr=Infinity": ["--pretrain", "lsc", "--set", "pretrain.options.lr=Infinity"],
        "pretrain lr=-1": ["--pretrain", "lsc", "--set", "pretrain.options.lr=-1"],
        "pretrain steps=0": ["--pretrain", "lsc", "--set", "pretrain.options.steps=0"],
        "pretrain max_seconds=-1": ["--pretrain", "lsc",
                                    "--set", "pretrain.options.max_seconds=-1"],
        "pretrain eval_steps=0": ["--pretrain", "lsc", "--set", "pretrain.options.eval_steps=0"],
        "warmup steps=0": ["--pretrain", "warmup", "--set", "pretrain.options.steps=0"],
        "warmup lr=nan": ["--pretrain", "warmup", "--set", "pretrain.options.lr=nan"],
        "warmup unknown option": ["--pretrain", "warmup", "--set", "pretrain.options.foo=1"],
        "lr nan": ["--lr", "nan"], "lr inf": ["--lr", "inf"], "lr -1": ["--lr", "-1"],
        "lr abc": ["--lr", "abc"], "lr 0": ["--lr", "0"],
        "steps 0": ["--steps", "0"], "steps -5": ["--steps", "-5"],
        "steps 1.5": ["--steps", "1.5"], "hidden 0": ["--hidden", "0"],
        "hidden abc": ["--hidden", "abc"], "layers 0": ["--layers", "0"],
        "layers -1": ["--layers", "-1"], "seed abc": ["--seed", "abc"],
        "unknown model": ["--model", "nope"], "unknown task": ["--task", "nope"],
        "unknown init": ["--init", "nope"], "unknown pretrain": ["--pretrain", "nope"],
        "rho 0": ["--pretrain", "lsc", "--rho", "0"], "rho -1": ["--pretrain", "lsc", "--rho", "-1"],
        "rho nan": ["--pretrain", "lsc", "--rho", "nan"],
        "rho inf": ["--pretrain", "lsc", "--rho", "inf"],
        "rho word": ["--pretrain", "lsc", "--rho", "balanced"],
        "dropout 1.5": ["--set", "model.dropout=1.5"], "dropout nan": ["--set", "model.dropout=nan"],
        "clip -1": ["--set", "optim.clip=-1"], "clip nan": ["--set", "optim.clip=nan"],
        "weight_decay inf": ["--set", "optim.weight_decay=inf"],
        "schedule nope": ["--set", "optim.schedule=nope"],
        "warmup_steps -1": ["--set", "optim.warmup_steps=-1"],
        "batch_size 0": ["--set", "run.batch_size=0"], "eval_every 0": ["--set", "run.eval_every=0"],
        "patience -1": ["--set", "run.patience=-1"], "unknown section": ["--set", "nope.key=1"],
        "unknown key": ["--set", "model.nope=1"], "section without key": ["--set", "model=1"],
        "override without =": ["--set", "noequals"], "size huge": ["--size", "huge"],
        "progress maybe": ["--set", "run.progress=maybe"],
        "root under a file": ["--root", str(w / "afile" / "runs")],
        "root in an unwritable place": ["--root", "/proc/stablernn-runs"],
    }
    cases = [(f"train: {k}", t + v, 2) for k, v in bad_train.items()]
    run = str(w / "run")
    cases += [
        ("diagnose: run missing", ["diagnose", "--run", str(w / "nope")], 2),
        ("diagnose: run is an empty dir", ["diagnose", "--run", str(w / "emptydir")], 2),
        ("diagnose: batch 0", ["diagnose", "--run", run, "--batch", "0"], 2),
        ("diagnose: batch -1", ["diagnose", "--run", run, "--batch", "-1"], 2),
        ("diagnose: seq-len 0", ["diagnose", "--model", str(w / "model.pt"), "--trust-pickle",
                                 "--seq-len", "0"], 2),
        ("diagnose: garbage model file", ["diagnose", "--model", str(w / "garbage.pt")], 2),
        ("diagnose: missing model file", ["diagnose", "--model", str(w / "missing.pt")], 2),
        ("diagnose: pickle without --trust-pickle", ["diagnose", "--model", str(w / "evil.pt")],
         2),
        ("diagnose: a state_dict, not a model", ["diagnose", "--model", str(w / "sd.pt")], 2),
        ("diagnose: NaN weights", ["diagnose", "--model", str(w / "nan.pt"), "--trust-pickle"],
         2),
        ("diagnose: out is a file", ["diagnose", "--run", run, "--out", str(w / "afile")], 2),
        ("report: missing dir", ["report", str(w / "nope")], 2),
        ("report: a file", ["report", str(w / "afile")], 2),
        ("report: bad --compare selector", ["report", str(w / "reports" / "ok"), "--compare",
                                            "nokey", "pretrain.method=none"], 2),
        ("sweep: missing file", ["sweep", str(w / "nope.toml")], 2),
        ("sweep: a directory", ["sweep", str(w)], 2),
        ("sweep: bad TOML", ["sweep", str(w / "bad.toml"), "--dry-run"], 2),
        ("sweep: bad task param types", ["sweep", str(w / "badT.toml"), "--dry-run"], 2),
        ("sweep: unknown config key", ["sweep", str(w / "badkey.toml"), "--dry-run"], 2),
        ("sweep: slurm without Slurm", ["sweep", str(w / "ok.toml"), "--backend", "slurm"], 2),
        ("sweep: workers 0", ["sweep", str(w / "ok.toml"), "--workers", "0"], 2),
        ("sweep: workers -1", ["sweep", str(w / "ok.toml"), "--workers", "-1"], 2),
        ("list: unknown kind", ["list", "nope"], 2),
        ("unknown command", ["nope"], 2),
    ]
    cases += [(f"report: {name}", ["report", str(w / "reports" / name),
                                   "--out", str(w / "out" / name)], 0)
              for name in REPORT_DAMAGE]
    cases += [(f"train resume: {name}", ["train", *SMOKE, "--root", str(w / "resume" / name)], 0)
              for name in RESUME_DAMAGE]
    return cases


REPORT_DAMAGE = ("truncated metrics line", "metrics row without step", "summary {}",
                 "garbage summary", "garbage config", "empty run dir", "ok")
RESUME_DAMAGE = ("truncated checkpoint", "garbage checkpoint", "metrics row without step",
                 "truncated metrics line", "summary {}")


def _stablernn(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*BIN, *argv], cwd=cwd, capture_output=True, text=True, timeout=600,
                          check=False)


def _damage_run(run: Path, how: str) -> None:
    files = {p.name: p for p in run.iterdir()}
    if how == "truncated checkpoint":
        data = files["checkpoint.pt"].read_bytes()
        files["checkpoint.pt"].write_bytes(data[: len(data) // 2])
        for p in run.glob("checkpoint*.pt"):
            p.write_bytes(p.read_bytes()[: len(data) // 2])
    elif how == "garbage checkpoint":
        for p in run.glob("checkpoint*.pt"):
            p.write_bytes(b"not a checkpoint")
    elif how == "metrics row without step":
        with open(files["metrics.jsonl"], "a") as f:
            f.write('{"train_loss": 0.5}\n')
    elif how == "truncated metrics line":
        with open(files["metrics.jsonl"], "a") as f:
            f.write('{"step": 99, "valid_los')
    elif how in ("summary {}", "garbage summary"):
        (run / "summary.json").write_text("{}" if how == "summary {}" else "\x00garbage{")
    elif how == "garbage config":
        (run / "config.json").write_text("{{{ not json")
    elif how == "empty run dir":
        for p in files.values():
            p.unlink() if p.is_file() else None


def fixtures(w: Path) -> None:
    """Everything the CLI cases refer to, built once (one finished tiny run, damaged copies)."""
    import shutil

    import torch

    (w / "emptydir").mkdir()
    (w / "afile").write_text("a file\n")
    (w / "list.json").write_text("[1, 2]")
    (w / "bad.json").write_text("{not json")
    (w / "unknown.json").write_text('{"nope": {"a": 1}}')
    (w / "garbage.pt").write_bytes(b"\x80\x04garbage" * 10)
    (w / "bad.toml").write_text("name = [unclosed\n")
    ok = ('name = "t"\nroot = "{root}"\nseeds = [0]\n[base]\n"task.name" = "adding"\n'
          '"task.size" = "smoke"\n"run.steps" = 4\n"run.eval_every" = 2\n'
          '"model.hidden_size" = 8\n"task.params.T" = 10\n')
    (w / "ok.toml").write_text(ok.format(root=w / "sweep_ok"))
    (w / "badT.toml").write_text(ok.format(root=w / "sweep_badT").replace(
        '"task.params.T" = 10\n', "") + '[grid]\n"task.params.T" = ["x", 5]\n')
    (w / "badkey.toml").write_text(ok.format(root=w / "sweep_badkey") + '"model.nope" = 3\n')
    gru = torch.nn.GRU(3, 8, num_layers=2, batch_first=True)
    torch.save(gru, w / "model.pt")
    torch.save(gru.state_dict(), w / "sd.pt")
    with torch.no_grad():
        gru.weight_hh_l0[0, 0] = float("nan")
    torch.save(gru, w / "nan.pt")
    torch.save(_Evil(str(w / "PWNED")), w / "evil.pt")
    res = _stablernn("train", *SMOKE, "--root", str(w / "base"), cwd=w)
    assert res.returncode == 0, res.stderr
    run = next(p for p in (w / "base").iterdir() if p.is_dir())
    shutil.copytree(run, w / "run")
    for name in REPORT_DAMAGE:
        shutil.copytree(run, w / "reports" / name / run.name)
        _damage_run(w / "reports" / name / run.name, name)
    # resumable runs: stopped part-way (no summary), then damaged
    for name in RESUME_DAMAGE:
        dst = w / "resume" / name / run.name
        shutil.copytree(run, dst)
        (dst / "summary.json").unlink()
        (dst / "model.pt").unlink(missing_ok=True)
        _damage_run(dst, name)


class _Evil:
    """A pickle payload that writes a marker file when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _listing(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")} if root.exists() else set()


def judge_cli(name: str, argv: list[str], expect: int, w: Path) -> tuple[bool, str]:
    before = _listing(w)
    res = _stablernn(*argv, cwd=w)
    err = res.stderr
    new = _listing(w) - before
    if name.startswith(("report:", "train resume:")) and expect == 0:
        new = set()  # these write their outputs on purpose
    problems = []
    if res.returncode != expect:
        problems.append(f"exit {res.returncode} (expected {expect})")
    if "Traceback" in err:
        problems.append("traceback")
    if expect == 2 and "error" not in err.lower():
        problems.append("no error line")
    if expect == 2 and new:
        problems.append(f"left {len(new)} path(s) on disk, e.g. {min(new)}")
    if (w / "PWNED").exists():
        problems.append("ran the pickle payload")
        (w / "PWNED").unlink()  # charge it to this case only
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return not problems, "; ".join(problems) or last[:150]


# ------------------------------------------------------------------------------ API cases

BAD_NUMBERS = {"nan": "float('nan')", "inf": "float('inf')", "-1": "-1", "0": "0",
               "True": "True", "str": "'x'", "1.5 for int": "1.5"}

# (function call template with {v} for the bad value, argument kind)
NUMERIC_ARGS = [
    ("radii(gru, x, k={v})", "int"), ("radii(gru, x, seed={v})", "int0"),
    ("radii(gru, x, max_readout={v})", "int0"), ("radii(gru, x, time_steps=[{v}])", "index"),
    ("lyapunov_exponents(gru, x, k={v})", "int"),
    ("lyapunov_exponents(gru, x, discard={v})", "int0"),
    ("vaa(gru, x, time_steps={v})", "int"), ("vaa(gru, x, eps={v})", "float"),
    ("lsc_pretrain(gru, x, lr={v}, steps=2)", "float"),
    ("lsc_pretrain(gru, x, rho={v}, steps=2)", "float"),
    ("lsc_pretrain(gru, x, steps={v})", "int"),
    ("lsc_pretrain(gru, x, tol={v}, steps=2)", "float"),
    ("lsc_pretrain(gru, x, batch_size={v}, steps=2)", "int"),
    ("lsc_pretrain(gru, x, eval_steps={v}, steps=2)", "int"),
    ("lsc_pretrain(gru, x, max_seconds={v}, steps=2)", "float"),
    ("lsc_pretrain(gru, x, weight_decay={v}, steps=2)", "float0"),
    ("lsc_pretrain(gru, x, patience={v}, steps=2)", "int"),
    ("lsc_pretrain(gru, x, k={v}, steps=2)", "int"),
    ("warmup(dgru, x, lr={v}, steps=2)", "float"), ("warmup(dgru, x, steps={v})", "int"),
    ("warmup(dgru, x, target={v}, steps=2)", "float"),
    ("warmup(dgru, x, s_max={v}, steps=2)", "int"),
    ("init_(lstm, 'forget_bias', value={v})", "anyfloat"),
    ("init_(lstm, 'chrono', t_max={v})", "int"),
    ("critical_init(lstm, seq_len={v})", "int"), ("critical_init(lstm, 30, q_x={v})", "float"),
    ("spectral(rnn, 'weight_hh', r={v})", "float"),
    ("spectral(rnn, 'weight_hh', sigma_star={v})", "float"),
    ("spectral(rnn, 'weight_hh', k={v})", "int"),
    ("make_task('adding', T={v})", "int"), ("make_task('copy', n_train={v})", "int"),
    ("make_cell('gru', {v}, 8)", "int"), ("make_cell('gru', 3, {v})", "int"),
    ("DeepRNN.build('gru', 3, 8, num_layers={v})", "int"),
    ("DeepRNN.build('gru', 3, 8, dropout={v})", "float0"),
]

SETUP = """
import math, torch
from stablernn import *
from stablernn.stability import *
torch.manual_seed(0)
gru = torch.nn.GRU(3, 8, num_layers=2, batch_first=True)
dgru = DeepRNN.build('gru', 3, 8, num_layers=2)
lstm = torch.nn.LSTM(3, 8, num_layers=2, batch_first=True)
rnn = torch.nn.RNN(3, 8, num_layers=2, batch_first=True)
x = torch.randn(4, 10, 3)
models = [gru, dgru, lstm, rnn]
"""

SPECIAL = {
    "radii: one NaN weight (segfault before)":
        "gru.weight_hh_l0.data[0, 0] = float('nan'); expect_error(lambda: radii(gru, x))",
    "gradient_flow: NaN weight":
        "gru.weight_hh_l0.data[0, 0] = float('nan'); expect_error(lambda: gradient_flow(gru, x))",
    "lyapunov: NaN weight": "gru.weight_hh_l0.data[0, 0] = float('nan'); "
                            "expect_error(lambda: lyapunov_exponents(gru, x))",
    "vaa: NaN weight": "gru.weight_hh_l0.data[0, 0] = float('nan'); "
                       "expect_error(lambda: vaa(gru, x, time_steps=50))",
    "lsc_pretrain: NaN weight": "gru.weight_hh_l0.data[0, 0] = float('nan'); "
                                "expect_error(lambda: lsc_pretrain(gru, x, steps=2))",
    "warmup: NaN weight": "dgru.cells[0].weight_hh.data[0, 0] = float('nan'); "
                          "expect_error(lambda: warmup(dgru, x, steps=2))",
    "diagnose: NaN weight": "gru.weight_hh_l0.data[0, 0] = float('nan'); "
                            "expect_error(lambda: diagnose(gru, x, '/tmp/bad_inputs_diag'))",
    "radii: Inf weight in LSTM":
        "lstm.weight_ih_l1.data[0, 0] = float('inf'); expect_error(lambda: radii(lstm, x))",
    "radii: huge weights (overflowing Jacobian)":
        "gru.weight_hh_l0.data.fill_(1e38); expect_error_or_finite(lambda: radii(gru, x))",
    "radii: empty batch": "expect_error(lambda: radii(gru, x[:0]))",
    "radii: zero-length sequence": "expect_error(lambda: radii(gru, x[:, :0]))",
    "radii: NaN input": "x[0, 0, 0] = float('nan'); expect_error(lambda: radii(gru, x))",
    "radii: wrong rank": "expect_error(lambda: radii(gru, x[0]))",
    "radii: wrong features": "expect_error(lambda: radii(gru, torch.randn(4, 10, 5)))",
    "radii: int inputs": "expect_error(lambda: radii(gru, torch.ones(4, 10, 3, dtype=torch.long)))",
    "radii: unknown estimator": "expect_error(lambda: radii(gru, x, estimator='nope'))",
    "radii: unknown kind": "expect_error(lambda: radii(gru, x, kinds=['nope']))",
    "radii: step out of range": "expect_error(lambda: radii(gru, x, time_steps=[99]))",
    "radii: not an RNN": "expect_error(lambda: radii(torch.nn.Linear(3, 3), x))",
    "radii: batch_first=False follows the module": "check_batch_first('radii')",
    "lyapunov: batch_first=False follows the module": "check_batch_first('lyapunov_exponents')",
    "gradient_flow: empty batch": "expect_error(lambda: gradient_flow(gru, x[:0]))",
    "lyapunov: empty batch": "expect_error(lambda: lyapunov_exponents(gru, x[:0]))",
    "vaa: empty batch": "expect_error(lambda: vaa(gru, x[:0], time_steps=50))",
    "lsc_pretrain: empty inputs": "expect_error(lambda: lsc_pretrain(gru, x[:0], steps=2))",
    "lsc_pretrain: NaN inputs":
        "x[1, 2, 0] = float('nan'); expect_error(lambda: lsc_pretrain(gru, x, steps=2))",
    "lsc_pretrain: unknown method": "expect_error(lambda: lsc_pretrain(gru, x, method='nope'))",
    "lsc_pretrain: unknown estimator":
        "expect_error(lambda: lsc_pretrain(gru, x, estimator='nope', steps=2))",
    "lsc_pretrain: rho word": "expect_error(lambda: lsc_pretrain(gru, x, rho='balanced'))",
    "lsc_pretrain: NaN target":
        "expect_error(lambda: lsc_pretrain(gru, x, targets={'time': float('nan')}, steps=2))",
    "lsc_pretrain: unknown target kind":
        "expect_error(lambda: lsc_pretrain(gru, x, targets={'nope': 1.0}, steps=2))",
    "lsc_pretrain: huge lr diverges part-way":
        "expect_error_or_finite(lambda: lsc_pretrain(gru, x, lr=1e30, steps=3))",
    "warmup: layer out of range": "expect_error(lambda: warmup(dgru, x, layers=[5], steps=2))",
    "warmup: NaN inputs":
        "x[0, 0, 0] = float('nan'); expect_error(lambda: warmup(dgru, x, steps=2))",
    "init_: unknown scheme": "expect_error(lambda: init_(lstm, 'nope'))",
    "init_: chrono on GRU + RNN stack (failed part-way before)":
        "m = DeepRNN([make_cell('gru', 3, 8), make_cell('rnn', 8, 8)]); models.append(m); "
        "expect_error(lambda: init_(m, 'chrono', t_max=10))",
    "init_: identity on a GRU": "expect_error(lambda: init_(gru, 'identity'))",
    "init_: unknown option": "expect_error(lambda: init_(lstm, 'chrono', nope=3))",
    "init_: forget_bias on GRU": "expect_error(lambda: init_(gru, 'forget_bias', value=1.0))",
    "critical_init: on an RNN": "expect_error(lambda: critical_init(rnn, 30))",
    "spectral: a layer already spectral (failed part-way before)":
        "spectral(rnn, 'weight_hh_l1'); expect_error(lambda: spectral(rnn, 'weight_hh'))",
    "spectral: unknown weight": "expect_error(lambda: spectral(rnn, 'nope'))",
    "spectral: NaN weight": "rnn.weight_hh_l0.data[0, 0] = float('nan'); "
                            "expect_error(lambda: spectral(rnn, 'weight_hh'))",
    "explain: critical_init layers are critical":
        "critical_init(lstm, 30); s = explain(lstm, seq_len=30); "
        "assert ' NO' not in s.upper().replace('NOTE', ''), s",
    "make_task: unknown task": "expect_error(lambda: make_task('nope'))",
    "make_task: unknown param": "expect_error(lambda: make_task('adding', foo=1))",
    "make_task: T='abc'": "expect_error(lambda: make_task('adding', T='abc'))",
    "make_task: size huge": "expect_error(lambda: make_task('adding', size='huge'))",
    "make_task: mnist truncated IDX file": "expect_error(lambda: make_task('mnist', "
                                           "root=write_bad_mnist()))",
    "task.loss with a DeepRNN's output tuple":
        "t = make_task('adding', size='smoke', T=10); m = DeepRNN.build('gru', t.input_size, "
        "8, readout=t.output_size, readout_mode=t.readout_mode); "
        "xb, yb = t.rows('train', torch.arange(4)); float(t.loss(m(xb), yb))",
    "make_cell: unknown option": "expect_error(lambda: make_cell('gru', 3, 8, foo=1))",
    "make_cell: bad nonlinearity": "expect_error(lambda: make_cell('rnn', 3, 8, "
                                   "nonlinearity='x'))",
    "make_cell: unknown cell": "expect_error(lambda: make_cell('nope', 3, 8))",
    "make_cell: ALIF tau nan": "expect_error(lambda: make_cell('alif', 3, 8, tau=float('nan')))",
    "DeepRNN: NaN input": "x[0, 0, 0] = float('nan'); expect_error(lambda: dgru(x))",
    "DeepRNN: wrong features": "expect_error(lambda: dgru(torch.randn(2, 5, 4)))",
    "from_torch: bidirectional": "expect_error(lambda: from_torch(torch.nn.GRU(3, 4, "
                                 "bidirectional=True)))",
    "import stablernn.spectral as a module":
        "import stablernn.spectral as sp; assert callable(sp.spectral_factors)",
}

HELPERS = '''
def _weights():
    return [[p.detach().clone() for p in m.parameters()] for m in models]

def _same(before):
    now = _weights()
    return len(now) == len(before) and all(len(a) == len(b) and all(
        x.shape == y.shape and torch.equal(torch.nan_to_num(x), torch.nan_to_num(y))
        for x, y in zip(a, b)) for a, b in zip(now, before))

def expect_error(fn):
    before = _weights()
    try:
        fn()
    except (ValueError, TypeError) as err:
        msg = str(err)
        assert msg and "\\n" not in msg.strip(), f"multi-line message: {msg!r}"
        assert _same(before), "weights changed"
        print("MESSAGE:", msg[:160])
        return
    raise AssertionError("no error raised")

def expect_error_or_finite(fn):
    before = _weights()
    try:
        out = fn()
    except (ValueError, TypeError, RuntimeError) as err:
        assert "\\n" not in str(err).strip(), "multi-line message"
        assert _same(before), "weights changed on failure"
        print("MESSAGE:", str(err)[:160])
        return
    assert all(torch.isfinite(p).all() for m in models for p in m.parameters()), "NaN weights"

def check_batch_first(name):
    import stablernn.stability as S
    fn = getattr(S, name)
    tf = torch.nn.GRU(3, 8, num_layers=2, batch_first=False)
    tf.load_state_dict(gru.state_dict())
    a, b = fn(gru, x), fn(tf, x.transpose(0, 1).contiguous())
    da, db = a.to_dict(), b.to_dict()
    assert json.dumps(da, sort_keys=True, default=str) == json.dumps(db, sort_keys=True,
        default=str), "different results for batch_first=False"

def write_bad_mnist():
    import tempfile, pathlib
    root = pathlib.Path(tempfile.mkdtemp())
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (root / name).write_bytes(b"\\x00\\x00\\x08\\x03" + b"\\x00" * 7)
    return str(root)
'''


def api_cases() -> dict[str, str]:
    cases = dict(SPECIAL)
    for template, kind in NUMERIC_ARGS:
        for label, value in BAD_NUMBERS.items():
            if kind in ("int0", "float0", "index") and label == "0":
                continue  # 0 is valid there
            if kind == "index" and label == "-1":
                continue  # a step counted from the end, as in Python
            if kind == "anyfloat" and label in ("-1", "0", "1.5 for int"):
                continue  # any finite float is valid
            if kind.startswith("float") and label == "1.5 for int":
                continue
            call = template.format(v=value)
            cases[f"{call.split('(')[0]}: {call[call.index('(') + 1:-1]}"] = \
                f"expect_error(lambda: {call})"
    return cases


def run_api_case(code: str) -> tuple[bool, str]:
    src = "import json\n" + SETUP + HELPERS + code + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                             cwd=tmp, timeout=600, check=False,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    if res.returncode < 0:
        return False, f"crashed with signal {-res.returncode}"
    if res.returncode != 0:
        lines = res.stderr.strip().splitlines()
        return False, lines[-1][:160] if lines else f"exit {res.returncode}"
    return True, res.stdout.strip().replace("MESSAGE: ", "")[:160]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["cli", "api"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--verbose", "-v", action="store_true", help="print every case")
    args = ap.parse_args()
    totals = {}
    if args.only != "api":
        with tempfile.TemporaryDirectory() as tmp:
            w = Path(tmp)
            fixtures(w)
            cases = cli_cases(w)  # run one by one: each checks what appeared on disk
            results = [_show(n, judge_cli(n, a, e, w), args.verbose) for n, a, e in cases]
            totals["CLI"] = (sum(results), len(results))
    if args.only != "cli":
        cases = api_cases()
        with ThreadPoolExecutor(args.workers) as pool:
            futures = {name: pool.submit(run_api_case, code) for name, code in cases.items()}
            results = [_show(name, f.result(), args.verbose) for name, f in futures.items()]
        totals["API"] = (sum(results), len(results))
    print("\n| surface | cases | handled cleanly |\n|---|---:|---:|")
    for name, (ok, n) in totals.items():
        print(f"| {name} | {n} | {ok} ({ok / n:.0%}) |")


def _show(name: str, result: tuple[bool, str], verbose: bool) -> bool:
    ok, detail = result
    if verbose or not ok:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return ok


if __name__ == "__main__":
    sys.exit(main())
