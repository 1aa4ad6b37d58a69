"""Hardening of the training path and the CLI: bad input gets one clean line and leaves nothing
on disk; damaged run directories resume from the last good state; interruptions resume exactly.
"""
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import stablernn.stability.lsc as lsc_module
from stablernn._io import atomic_save, atomic_write_text
from stablernn.stability.diagnose import load_model
from stablernn.train import (
    Config,
    ConfigError,
    DamagedFileWarning,
    RunDir,
    apply_overrides,
    check_device,
    config_hash,
    train,
)
from stablernn.train.loop import Trainer, run_dir_for

TINY = ["task.name=adding", "task.size=smoke", "task.params.T=12", "model.cell=gru",
        "model.hidden_size=8", "model.num_layers=2", "run.batch_size=16", "run.progress=false",
        "run.steps=8", "run.eval_every=2"]
SMOKE = ["--task", "adding", "--size", "smoke", "--layers", "2", "--hidden", "8", "--steps", "6",
         "--set", "run.eval_every=3", "--set", "task.params.T=12"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def tiny(root, *extra):
    return apply_overrides(Config(), TINY + [f"run.root={root}", *extra])


def same_result(got: dict, want: dict) -> bool:
    """Summaries equal except wall times (``seconds``, ``update_seconds``, at any depth)."""
    def timeless(d):
        return {k: timeless(v) if isinstance(v, dict) else v for k, v in d.items()
                if not k.endswith("seconds")}

    return timeless(got) == timeless(want)


class Evil:
    """A pickle that creates ``marker`` when it is loaded (stands in for a malicious payload)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


# ------------------------------------------------------------------ the CLI table (subprocess)
# Every case: exit 2, no traceback, one "stablernn CMD: error:" line matching the pattern (the
# value and the fix), and nothing written (no run directory, no output folder).
DRIVER = """
import contextlib, io, json, sys, traceback
from stablernn.cli import main
out = []
for argv in json.load(open(sys.argv[1])):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        code = "raised"
        err.write(traceback.format_exc())
    out.append({"code": code, "err": err.getvalue()})
json.dump(out, open(sys.argv[2], "w"))
"""

T = ["train", *SMOKE]
CASES = {
    # train: devices, config files, roots
    "device cuda without a GPU": (T + ["--device", "cuda"], r"run\.device 'cuda'.*--device cpu"),
    "device foo": (T + ["--device", "foo"], r"run\.device 'foo'.*use cpu, cuda"),
    "config is a directory": (T + ["--config", "{w}"],
                              r"config file .*: cannot read it \(Is a directory\)"),
    "config is a JSON list": (T + ["--config", "{w}/list.json"],
                              r"list\.json: a config must be an object of sections, got list"),
    "config is bad JSON": (T + ["--config", "{w}/bad.json"], r"bad\.json is not valid JSON"),
    "config section not an object": (T + ["--config", "{w}/flat.json"],
                                     r"flat\.json: config section 'model' must be an object"),
    "root under a file": (T + ["--root", "{w}/afile/runs"],
                          r"cannot create the run directory .*afile.*\(--root\)"),
    "root read-only": (T + ["--root", "/sys/stablernn-test-runs"],
                       r"cannot create the run directory /sys/.*\(--root\)"),
    # train: task, model, init, pretrain options (all validated before the run directory)
    "T=0": (T + ["--set", "task.params.T=0"], r"task\.params: .*T must be .*, got 0"),
    "T=abc": (T + ["--set", "task.params.T=abc"], r"task\.params: .*T must be an int.*'abc'"),
    "task.params not an object": (T + ["--set", "task.params=5"],
                                  r"task\.params expects an object.*task\.params\.NAME=VALUE"),
    "unknown model option": (T + ["--set", "model.options.foo=1"], r"no option foo; valid"),
    "unknown init option": (T + ["--init", "orthogonal", "--set", "init.options.foo=1"],
                            r"'orthogonal' has no option foo"),
    "identity init on a GRU": (T + ["--init", "identity", "--model", "gru"],
                               r"'identity' applies to RNNCell, SpectralRNNCell, IndRNNCell layers, got GRUCell"),
    "unknown pretrain option": (T + ["--pretrain", "lsc", "--set", "pretrain.options.foo=1"],
                                r"option\(s\) foo; valid: .*steps"),
    "pretrain lr=Infinity": (T + ["--pretrain", "lsc", "--set", "pretrain.options.lr=Infinity"],
                             r"pretrain\.options\.lr must be finite, got inf"),
    "pretrain steps=0": (T + ["--pretrain", "lsc", "--set", "pretrain.options.steps=0"],
                         r"steps must be an int >= 1, got 0"),
    "warmup lr=nan": (T + ["--pretrain", "warmup", "--set", "pretrain.options.lr=nan"],
                      r"pretrain\.options\.lr must be finite, got nan"),
    "rho in pretrain.options": (T + ["--pretrain", "lsc", "--set", "pretrain.options.rho=1"],
                                r"set rho with pretrain\.rho"),
    # train: config values (NaN / Infinity passed some checks before)
    "lr nan": (T + ["--lr", "nan"], r"optim\.lr must be > 0 and finite, got nan"),
    "weight_decay Infinity": (T + ["--set", "optim.weight_decay=Infinity"],
                              r"optim\.weight_decay must be >= 0 and finite, got inf"),
    "clip inf": (T + ["--set", "optim.clip=inf"], r"optim\.clip .*finite.*got inf"),
    "rho inf": (T + ["--pretrain", "lsc", "--rho", "inf"], r"pretrain\.rho .*got inf"),
    "threads -1": (T + ["--threads", "-1"], r"run\.threads must be >= 0"),
    # diagnose
    "diagnose --batch 0": (["diagnose", "--run", "{w}/run", "--batch", "0"],
                           r"batch_size must be an int >= 1, got 0"),
    "diagnose garbage model file": (["diagnose", "--model", "{w}/garbage.pt"],
                                    r"garbage\.pt is not a file torch\.load can read"),
    "diagnose pickle without --trust-pickle": (["diagnose", "--model", "{w}/evil.pt"],
                                               r"evil\.pt is a pickled model.*--trust-pickle"),
    "diagnose a state dict": (["diagnose", "--model", "{w}/sd.pt"],
                              r"sd\.pt holds a .*not a model"),
    "diagnose --seq-len 0": (["diagnose", "--model", "{w}/gru.pt", "--trust-pickle",
                              "--seq-len", "0"], r"seq_len must be an int >= 1, got 0"),
    "diagnose garbage config.json": (["diagnose", "--run", "{w}/badconfig"],
                                     r"badconfig/config\.json is not valid JSON.*train the run"),
    "diagnose garbage model.pt": (["diagnose", "--run", "{w}/badmodel"],
                                  r"badmodel/model\.pt is damaged.*re-run stablernn train"),
    "diagnose --out is a file": (["diagnose", "--run", "{w}/run", "--out", "{w}/afile/d"],
                                 r"afile is a file, not a folder"),
    # demo
    "demo --seeds 0": (["demo", "--seeds", "0", "--root", "{w}/demo"],
                       r"seeds must be an int >= 1, got 0"),
    "demo --root under a file": (["demo", "--smoke", "--root", "{w}/afile/demo"],
                                 r"afile is a file, not a folder"),
}


def _listing(folder: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """Fixtures, then every case of :data:`CASES` in one subprocess (one interpreter start)."""
    w = tmp_path_factory.mktemp("cli")
    (w / "afile").write_text("a file\n")
    (w / "list.json").write_text("[1, 2]")
    (w / "bad.json").write_text("{not json")
    (w / "flat.json").write_text('{"model": 3}')
    (w / "garbage.pt").write_bytes(b"\x80\x04garbage" * 10)
    torch.save(Evil(str(w / "PWNED")), w / "evil.pt")
    gru = torch.nn.GRU(3, 8, num_layers=2, batch_first=True)
    torch.save(gru, w / "gru.pt")
    torch.save(gru.state_dict(), w / "sd.pt")
    cfg = tiny(w / "runs", "run.steps=2", "run.eval_every=1")
    train(cfg)
    for name in ("run", "badconfig", "badmodel"):
        shutil.copytree(run_dir_for(cfg), w / name)
    (w / "badconfig" / "config.json").write_text("{{{ not json")
    (w / "badmodel" / "model.pt").write_bytes(b"PK\x03\x04 cut short")
    cwd = w / "cwd"
    cwd.mkdir()
    names = list(CASES)
    if torch.cuda.is_available():
        names.remove("device cuda without a GPU")
    argvs = []
    for i, name in enumerate(names):
        argv = [a.format(w=w) for a in CASES[name][0]]
        if argv[0] == "train" and "--root" not in argv:
            argv += ["--root", str(w / "roots" / str(i))]
        argvs.append(argv)
    (w / "cases.json").write_text(json.dumps(argvs))
    before = _listing(w)
    subprocess.run([sys.executable, "-c", DRIVER, str(w / "cases.json"), str(w / "out.json")],
                   cwd=cwd, env=ENV, check=True, timeout=600)
    results = json.loads((w / "out.json").read_text())
    after = {k: v for k, v in _listing(w).items() if not k.endswith("out.json")}
    return w, dict(zip(names, results)), before, after


@pytest.mark.parametrize("name", list(CASES))
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(table, name):
    w, results, before, after = table
    if name not in results:
        pytest.skip("this machine has a CUDA GPU")
    got, pattern = results[name], CASES[name][1]
    lines = got["err"].strip().splitlines()
    assert got["code"] == 2, got
    assert "Traceback" not in got["err"]
    command = CASES[name][0][0]
    assert len(lines) == 1 and lines[0].startswith(f"stablernn {command}: error: "), lines
    assert re.search(pattern, lines[0]), (pattern, lines[0])
    assert after == before, sorted(set(after) ^ set(before))  # nothing new, nothing touched
    assert not (w / "PWNED").exists()  # the payload never ran


# ------------------------------------------------------------------ damaged run directories
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted tiny run: its summary, metrics and directory name."""
    root = tmp_path_factory.mktemp("ref")
    cfg = tiny(root)
    summary = train(cfg)
    return run_dir_for(cfg), summary


def _unfinished_copy(reference, tmp_path) -> tuple[Config, Path]:
    """A copy of the reference run that looks killed after its last checkpoint."""
    ref_dir, _ = reference
    cfg = tiny(tmp_path)
    run = run_dir_for(cfg)
    shutil.copytree(ref_dir, run)
    (run / "summary.json").unlink()
    (run / "model.pt").unlink()
    return cfg, run


def _count_steps(monkeypatch) -> list:
    steps = []
    original = Trainer.train_step

    def counting(self):
        steps.append(self.step)
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", counting)
    return steps


def _assert_same_as_reference(reference, run: Path, summary: dict) -> None:
    ref_dir, ref_summary = reference
    assert same_result(summary, ref_summary)
    assert (run / "metrics.jsonl").read_text() == (ref_dir / "metrics.jsonl").read_text()


def test_truncated_checkpoint_falls_back_to_the_previous_one(reference, tmp_path, monkeypatch):
    cfg, run = _unfinished_copy(reference, tmp_path)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[:len(data) // 2])
    steps = _count_steps(monkeypatch)
    with pytest.warns(DamagedFileWarning, match=r"checkpoint\.pt is damaged"):
        summary = train(cfg)
    assert steps == [6, 7]  # resumed from checkpoint.prev.pt (step 6 of 8)
    _assert_same_as_reference(reference, run, summary)


def test_both_checkpoints_damaged_restarts_from_scratch(reference, tmp_path, monkeypatch):
    cfg, run = _unfinished_copy(reference, tmp_path)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    data = (run / "checkpoint.prev.pt").read_bytes()
    (run / "checkpoint.prev.pt").write_bytes(data[:100])
    steps = _count_steps(monkeypatch)
    with pytest.warns(DamagedFileWarning) as record:
        summary = train(cfg)
    messages = " | ".join(str(r.message) for r in record)
    assert "checkpoint.prev.pt is damaged" in messages and "restarts from step 0" in messages
    assert steps == list(range(8))
    _assert_same_as_reference(reference, run, summary)  # metrics.jsonl truncated consistently


def test_checkpoint_missing_between_renames_resumes_from_previous(reference, tmp_path,
                                                                  monkeypatch):
    cfg, run = _unfinished_copy(reference, tmp_path)
    (run / "checkpoint.pt").unlink()  # killed between the two renames of save_checkpoint
    steps = _count_steps(monkeypatch)
    summary = train(cfg)
    assert steps == [6, 7]
    _assert_same_as_reference(reference, run, summary)


def test_damaged_metrics_lines_do_not_break_resume(reference, tmp_path):
    cfg, run = _unfinished_copy(reference, tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"train_loss": 0.5}\n[1, 2]\n{"step": 99, "valid_los')
    with pytest.warns(DamagedFileWarning, match=r"metrics\.jsonl is damaged \(3 unreadable"):
        summary = train(cfg)
    _assert_same_as_reference(reference, run, summary)


@pytest.mark.parametrize("content", ["{}", "\x00garbage{", "[1, 2]"])
def test_damaged_summary_is_finished_again(reference, tmp_path, monkeypatch, content):
    ref_dir, _ = reference
    cfg = tiny(tmp_path)
    run = run_dir_for(cfg)
    shutil.copytree(ref_dir, run)
    (run / "summary.json").write_text(content)
    steps = _count_steps(monkeypatch)
    with pytest.warns(DamagedFileWarning, match=r"summary\.json is damaged"):
        summary = train(cfg)
    assert steps == []  # the last checkpoint is at the last step: only the evaluation reruns
    _assert_same_as_reference(reference, run, summary)
    assert json.loads((run / "summary.json").read_text()) == summary


def test_garbage_config_json_in_a_run_directory_is_rewritten(reference, tmp_path):
    cfg, run = _unfinished_copy(reference, tmp_path)
    (run / "config.json").write_text("garbage")
    summary = train(cfg)
    _assert_same_as_reference(reference, run, summary)
    assert json.loads((run / "config.json").read_text())["hash"] == config_hash(cfg)


def test_early_stopped_checkpoint_stays_stopped(tmp_path):
    cfg = tiny(tmp_path, "run.patience=1", "run.steps=40", "optim.lr=1e-9",
               "optim.weight_decay=0")
    first = train(cfg)
    assert first["status"] == "early_stopped" and first["step"] < 40
    (run_dir_for(cfg) / "summary.json").write_text("{}")
    with pytest.warns(DamagedFileWarning):
        again = train(cfg)
    assert same_result(again, first)


# ------------------------------------------------------------------ pre-training is stored
def test_resume_after_pretraining_does_not_pretrain_again(tmp_path, monkeypatch):
    calls = []
    original = lsc_module.lsc_pretrain

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(lsc_module, "lsc_pretrain", counting)
    extra = ["pretrain.method=lsc", "pretrain.options.steps=3", "pretrain.options.eval_steps=2"]
    want = train(tiny(tmp_path / "ref", *extra))
    assert len(calls) == 1 and "pretrain" in want

    cfg = tiny(tmp_path / "killed", *extra)
    fit = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        train(cfg)  # killed right after pre-training
    run = run_dir_for(cfg)
    assert (run / "pretrained.pt").exists() and not (run / "checkpoint.pt").exists()
    assert len(calls) == 2
    monkeypatch.setattr(Trainer, "fit", fit)
    got = train(cfg)
    assert len(calls) == 2  # the stored weights were used
    assert same_result(got, want)
    ref = run_dir_for(tiny(tmp_path / "ref", *extra))
    assert (run / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()


def test_pretraining_gets_progress_and_progress_is_not_hashed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(lsc_module, "lsc_pretrain",
                        lambda model, x, **kw: calls.append(kw) or {"ok": True})
    base = ["pretrain.method=lsc", "pretrain.options.steps=3"]
    quiet = tiny(tmp_path, *base)
    loud = tiny(tmp_path, *base, "pretrain.options.progress=true", "run.threads=0",
                "run.progress=true", "run.tensorboard=true", "run.device=cpu")
    assert config_hash(quiet) == config_hash(loud)
    assert config_hash(quiet) != config_hash(tiny(tmp_path, *base[:1], "pretrain.options.steps=4"))
    train(tiny(tmp_path, *base, "pretrain.options.progress=true", "run.steps=2"))
    assert calls[-1]["progress"] is True and calls[-1]["steps"] == 3


# ------------------------------------------------------------------ interruptions
def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupted_run(root: Path, sig: int, steps: list[str]) -> tuple[int, str, Path]:
    """Start ``stablernn train`` in a subprocess, send ``sig`` once it has a checkpoint."""
    sets = [a for o in TINY + steps for a in ("--set", o)]
    argv = [sys.executable, "-m", "stablernn", "train", "--root", str(root), *sets]
    # a runner started in the background without job control ignores SIGINT, and a child would
    # inherit that: give the child the default disposition, as a terminal would
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(root.glob("*/*.pt")):
        time.sleep(0.005)
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    run = next(root.iterdir())
    assert not (run / "summary.json").exists(), "finished before the signal; lengthen the run"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] % 10 == 0  # intact
    assert not list(run.glob(".*.tmp"))  # no half-written file left behind
    return proc.returncode, err, run


LONG = ["run.steps=600", "run.eval_every=10"]
INTERRUPTED = "stablernn train: interrupted; re-run the same command to resume"


@pytest.mark.slow
def test_ctrl_c_exits_130_and_the_rerun_resumes_exactly(tmp_path):
    code, err, run = _interrupted_run(tmp_path / "r", signal.SIGINT, LONG)
    assert code == 130 and err.strip() == INTERRUPTED
    cfg = tiny(tmp_path / "r", *LONG)
    assert run_dir_for(cfg) == run
    got, want = train(cfg), train(tiny(tmp_path / "ref", *LONG))
    assert same_result(got, want)
    assert (run / "metrics.jsonl").read_text() == \
        (run_dir_for(tiny(tmp_path / "ref", *LONG)) / "metrics.jsonl").read_text()


@pytest.mark.slow
def test_sigterm_exits_143_with_the_same_line_and_an_intact_checkpoint(tmp_path):
    code, err, _ = _interrupted_run(tmp_path / "r", signal.SIGTERM, LONG)
    assert code == 143 and err.strip() == INTERRUPTED


# ------------------------------------------------------------------ files, threads, loading
def test_run_directory_files_share_one_mode_that_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        cfg = tiny(tmp_path, "pretrain.method=lsc", "pretrain.options.steps=2",
                   "pretrain.options.eval_steps=2")
        train(cfg)
        (tmp_path / "plain").write_text("x")
    finally:
        os.umask(old)
    files = [p for p in run_dir_for(cfg).iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"checkpoint.pt", "checkpoint.prev.pt", "pretrained.pt",
                                       "summary.json", "metrics.jsonl", "model.pt"}
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert set(modes.values()) == {stat.S_IMODE((tmp_path / "plain").stat().st_mode)} == \
        {0o640}, modes


def test_interrupted_atomic_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    atomic_save({"a": 1}, path)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"a": 2}, path)
    assert torch.load(path, weights_only=True) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
    (tmp_path / ".state.pt.dead.tmp").write_text("left by SIGKILL")
    with RunDir(tmp_path):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "state.pt"]
    atomic_write_text(path, "text")
    assert path.read_text() == "text"


def test_training_uses_run_threads_and_restores_them(tmp_path, monkeypatch):
    threads, seen = {"n": 3}, []  # torch's setting, faked: the test itself runs on one thread
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads["n"])
    monkeypatch.setattr(torch, "set_num_threads", lambda n: threads.update(n=n))
    fit = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self: seen.append(threads["n"]) or fit(self))
    train(tiny(tmp_path, "run.steps=2", "run.threads=1"))
    assert seen == [1] and threads["n"] == 3
    train(tiny(tmp_path, "run.steps=3", "run.threads=0"))  # another run: 3 steps
    assert seen == [1, 3] and threads["n"] == 3


def test_load_model_needs_trust_for_pickled_code(tmp_path):
    marker = tmp_path / "PWNED"
    torch.save(Evil(str(marker)), tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"pickled model: loading it runs code it names "
                                         r"\((posix|os)\.mkdir\).*--trust-pickle"):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(TypeError, match="not a model"):
        load_model(tmp_path / "evil.pt", trust_pickle=True)  # the flag is what gates it
    assert marker.exists()
    torch.save(torch.nn.GRU(2, 4), tmp_path / "gru.pt")
    with pytest.raises(ValueError, match=r"torch\.nn\.modules\.rnn\.GRU"):
        load_model(tmp_path / "gru.pt")
    assert load_model(tmp_path / "gru.pt", trust_pickle=True).hidden_size == 4


def test_config_checks_and_devices():
    with pytest.raises(ConfigError, match="must be an object of sections"):
        Config.from_dict([1])
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="'meta' is not a device"):
        check_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            check_device("cuda:0")
    cfg = apply_overrides(Config(), ["task.params.T=Infinity", "pretrain.options.lr=-inf"])
    assert cfg.task.params["T"] == float("inf") and cfg.pretrain.options["lr"] == float("-inf")


def test_truncate_metrics_drops_damaged_rows(tmp_path):
    with RunDir(tmp_path / "r") as run:
        run.append_metrics([{"step": 1, "a": 1}, {"step": 3, "a": 2}])
        with open(run.file("metrics.jsonl"), "a") as f:
            f.write('{"a": 3}\n{"step": "2"}\n{"step": 2, "a"')
        with pytest.warns(DamagedFileWarning, match="3 unreadable"):
            run.truncate_metrics(2)
        assert run.read_metrics() == [{"step": 1, "a": 1}] and run.damaged_metrics() == 0
