"""Training loop, run directories and CLI: resume equivalence, divergence, locks, overrides."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from stablernn.cli import main
from stablernn.train import Config, ConfigError, RunDir, RunLockedError, apply_overrides, train
from stablernn.train.config import config_hash
from stablernn.train.loop import load_trained, run_dir_for

TINY = ["task.name=adding", "task.size=smoke", "task.params.T=12", "model.cell=gru",
        "model.hidden_size=8", "model.num_layers=2", "run.batch_size=16", "run.progress=false"]


def tiny(tmp_path, *extra):
    return apply_overrides(Config(), TINY + [f"run.root={tmp_path}", *extra])


def test_overrides_parse_and_reject():
    cfg = apply_overrides(Config(), ["model.hidden_size=256", "optim.lr=1e-2",
                                     "task.params.T=50", "run.progress=false"])
    assert cfg.model.hidden_size == 256 and cfg.optim.lr == 0.01
    assert cfg.task.params == {"T": 50} and cfg.run.progress is False
    with pytest.raises(ConfigError, match="unknown config key 'model.hiden_size'.*hidden_size"):
        apply_overrides(Config(), ["model.hiden_size=3"])
    with pytest.raises(ConfigError, match="unknown config section 'modle'"):
        apply_overrides(Config(), ["modle.cell=gru"])
    with pytest.raises(ConfigError, match="model.hidden_size expects int, got 'big'"):
        apply_overrides(Config(), ["model.hidden_size=big"])
    with pytest.raises(ConfigError, match="expects int, got '2.5'"):
        apply_overrides(Config(), ["model.num_layers=2.5"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(Config(), ["model.hidden_size"])


def test_hash_ignores_bookkeeping_keys(tmp_path):
    a, b = tiny(tmp_path), tiny(tmp_path / "other", "run.progress=true")
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(tiny(tmp_path, "run.seed=1"))
    assert Config.from_dict(a.to_dict()) == a


def test_keys_added_later_are_hashed_only_when_set(tmp_path):
    """optim.name / optim.spectral_lr at their defaults leave every older run's hash as it was;
    set, they name a new run."""
    from stablernn.train.config import canonical
    cfg = tiny(tmp_path)
    assert {"name", "spectral_lr", "floss_every", "floss_weight", "floss_k",
            "floss_window"}.isdisjoint(canonical(cfg)["optim"])
    for key in ("optim.name=rmsprop", "optim.spectral_lr=1e-4", "optim.floss_every=5",
                "optim.floss_weight=0.1", "optim.floss_k=3", "optim.floss_window=30"):
        assert config_hash(cfg) != config_hash(tiny(tmp_path, key))


def test_flossing_during_training_adds_the_lyapunov_term(tmp_path, monkeypatch):
    """optim.floss_every: on those steps the loss gains optim.floss_weight times the flossing
    term of the batch (docs/floss.md), seeded by the step."""
    import importlib

    import torch
    floss_module = importlib.import_module("stablernn.stability.floss")
    calls = []
    real = floss_module.lyapunov_loss

    def recorded(model, x, k=None, **kw):
        calls.append((tuple(x.shape), k, kw["discard"], kw["seed"]))
        return real(model, x, k, **kw)

    monkeypatch.setattr(floss_module, "lyapunov_loss", recorded)
    base = ["run.steps=6", "run.eval_every=3", "task.params.T=40"]
    plain = train(tiny(tmp_path / "plain", *base))
    flossed = tiny(tmp_path / "floss", *base, "optim.floss_every=2", "optim.floss_k=3",
                   "optim.floss_window=20", "optim.floss_weight=5")
    summary = train(flossed)
    assert summary["status"] == "completed"
    assert calls == [((16, 20, 2), 3, 5, s) for s in (0, 2, 4)]
    assert summary["test"]["loss"] != plain["test"]["loss"]  # the term changed the training
    # the term is the documented one: weight x sum of squared exponents of the first 16 rows
    from stablernn.train.loop import build_model, build_task, floss_term
    task = build_task(flossed)
    model = build_model(flossed, task)
    x = task.rows("train", torch.arange(32))[0]
    want = 5 * real(model, x[:16, :20], 3, discard=5, seed=7).loss
    torch.testing.assert_close(floss_term(flossed, model, x, 7), want)
    # a k larger than the state refuses before any work
    with pytest.raises(ConfigError, match=r"k=99 Lyapunov exponents \(optim.floss_k\) is "
                       r"larger than the state \(16 state units, all layers together\); use "
                       r"k <= 16, or optim.floss_k=0"):
        train(tiny(tmp_path / "bad", *base, "optim.floss_every=2", "optim.floss_k=99"))
    assert not (tmp_path / "bad").exists()


def test_rmsprop_and_spectral_lr_reach_the_optimiser(tmp_path, monkeypatch):
    """The spectral settings of docs/spectral.md through `stablernn train`: RMSprop, the
    reflectors and sigma at their own learning rate and without weight decay."""
    import torch
    made = []

    class Recorded(torch.optim.RMSprop):
        def __init__(self, groups, **kw):
            super().__init__(groups, **kw)
            made.append(self)

    monkeypatch.setattr(torch.optim, "RMSprop", Recorded)
    cfg = tiny(tmp_path, "model.cell=spectral_rnn", "model.num_layers=1", "optim.name=rmsprop",
               "optim.spectral_lr=1e-4", "model.options.nonlinearity=modrelu",
               "model.options.init=henaff", "run.steps=4", "run.eval_every=2")
    summary = train(cfg)
    assert summary["status"] == "completed"
    groups = made[0].param_groups
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(1e-3, 1e-4), (1e-4, 0.0)]
    assert len(groups[1]["params"]) == 3  # U and V reflectors, sigma


def test_monitor_every_records_stability_next_to_the_loss(tmp_path):
    """run.monitor_every: Monitor records (docs/monitor.md) at step 0 and every N steps in
    metrics.jsonl, equal to a Monitor on the same model and probe; the training is the same
    as without it (same hash, same weights), and the report plots the curves."""
    import torch

    from stablernn import Monitor
    from stablernn.experiments.report import write_report
    from stablernn.train.loop import MONITOR_PROBE, build_model, build_task
    base = ["run.steps=4", "run.eval_every=2"]
    plain = tiny(tmp_path / "plain", *base)
    watched = tiny(tmp_path / "watched", *base, "run.monitor_every=2")
    assert config_hash(plain) == config_hash(watched)
    a, b = train(plain), train(watched)
    assert a["test"] == b["test"]
    rows = [json.loads(line) for line in
            (run_dir_for(watched) / "metrics.jsonl").read_text().splitlines()]
    stable = [r for r in rows if "radius/time/layer1" in r]
    assert [r["step"] for r in stable] == [0, 2, 4]
    assert {"lyapunov/0", "flow/time_growth", "radius/depth/layer1"} <= set(stable[0])
    # the step-0 record is the freshly built model's, as a Monitor of it measures
    task = build_task(watched)
    torch.manual_seed(watched.run.seed)
    model = build_model(watched, task)
    probe = task.rows("valid", torch.arange(MONITOR_PROBE))[0]
    want = Monitor(model, probe, every=2).measure(0)
    for key, value in want.items():
        if key not in ("step", "monitor/seconds"):
            assert stable[0][key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    out = write_report(tmp_path / "watched", tmp_path / "report")
    text = out.read_text()
    assert "radius/time/layer1" in text and "lyapunov/0" in text
    assert (tmp_path / "report" / "stability_adding.png").is_file()
    from stablernn.experiments.report import load_runs, stability_figure
    fig = stability_figure(load_runs(tmp_path / "watched"))
    assert [ax.get_title() for ax in fig.axes] == [
        f"adding, gru: {key}" for key in ("radius/time/layer0", "radius/time/layer1",
                                          "lyapunov/0")]
    line = fig.axes[2].get_lines()[0]  # the mean over the one seed: the records themselves
    assert list(line.get_xdata()) == [0, 2, 4]
    assert list(line.get_ydata()) == pytest.approx([r["lyapunov/0"] for r in stable])


@pytest.mark.parametrize("override,message", [
    ("model.hidden_size=0", "model.hidden_size must be > 0, got 0"),
    ("optim.lr=-1", "optim.lr must be > 0"),
    ("pretrain.rho=0", "pretrain.rho must be > 0"),
    ("model.cell=lstmm", "unknown cell 'lstmm'; valid: .*lstm"),
    ("task.name=copyy", "unknown task 'copyy'; valid: .*copy"),
    ("init.scheme=nope", "unknown init 'nope'; valid: .*default"),
    ("pretrain.method=lsc2", "unknown pretrain 'lsc2'; valid: .*lsc"),
    ("task.params.TT=5", r"unknown parameter\(s\) TT of task 'adding'; valid: T"),
    ("optim.name=sgd", "unknown optim.name 'sgd'; valid: adamw, adam, rmsprop"),
    ("optim.spectral_lr=-1", "optim.spectral_lr must be >= 0"),
    ("optim.floss_every=-1", "optim.floss_every must be >= 0"),
    ("optim.floss_weight=nan", "optim.floss_weight must be > 0 and finite"),
    ("optim.floss_window=1", "optim.floss_window must be >= 2"),
    ("run.monitor_every=-1", "run.monitor_every must be >= 0"),
])
def test_impossible_configs_fail_before_work(tmp_path, capsys, override, message):
    with pytest.raises(ConfigError, match=message):
        train(tiny(tmp_path, override))
    assert not any(tmp_path.iterdir())  # nothing started
    key, value = override.split("=")
    assert main(["train", "--root", str(tmp_path), "--set", f"{key}={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]


def test_train_completes_and_is_not_retrained(tmp_path):
    cfg = tiny(tmp_path, "run.steps=6", "run.eval_every=3")
    summary = train(cfg)
    run = run_dir_for(cfg)
    assert summary["status"] == "completed" and summary["step"] == 6
    assert summary["metric"] == "mse" and summary["chance"] > 0
    assert {"config.json", "metrics.jsonl", "checkpoint.pt", "summary.json", "model.pt"} <= \
        {p.name for p in run.iterdir()}
    rows = (run / "metrics.jsonl").read_text()
    assert train(cfg) == summary  # finished: skipped
    assert (run / "metrics.jsonl").read_text() == rows


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny(tmp_path, "run.steps=4", "run.eval_every=2", "run.tensorboard=true")
    train(cfg)
    events = EventAccumulator(str(run_dir_for(cfg) / "tensorboard"))
    events.Reload()
    assert {"train_loss", "valid_loss", "valid_metric"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("valid_loss")] == [2, 4]


def test_diagnose_cli_on_a_run(tmp_path, capsys):
    cfg = tiny(tmp_path, "run.steps=2", "run.eval_every=1")
    train(cfg)
    out = tmp_path / "diag"
    assert main(["diagnose", "--run", str(run_dir_for(cfg)), "--batch", "2", "--init",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "time" in printed and "depth" in printed and "xi" in printed
    assert (out / "diagnostics.json").exists() and (out / "gradient_flow.png").exists()
    assert main(["diagnose", "--run", str(tmp_path / "nope")]) == 2


@pytest.mark.parametrize("flags,cell", [
    (["--model", "spectral"], "SpectralRNNCell"),
    (["--model", "lstm", "--init", "critical"], "LSTMCell"),
    (["--model", "gru", "--pretrain", "lsc", "--set", "pretrain.options.steps=3"], "GRUCell")])
def test_cli_train_methods_smoke(tmp_path, capsys, flags, cell):
    tiny_sets = [o for o in TINY if not o.startswith("model.cell")]
    sets = sum((["--set", o] for o in tiny_sets + ["run.steps=2", "run.eval_every=1"]), [])
    assert main(["train", "--root", str(tmp_path), *sets, *flags]) == 0
    assert '"status": "completed"' in capsys.readouterr().out
    run = next(tmp_path.iterdir())
    model, _ = load_trained(run, batch_size=2)
    assert type(model.cells[0]).__name__.endswith(cell)


def test_divergence_stops_cleanly(tmp_path):
    cfg = tiny(tmp_path, "model.cell=rnn_relu", "optim.lr=1e8", "optim.clip=0",
               "run.steps=50", "run.eval_every=5", "optim.weight_decay=0")
    summary = train(cfg)
    assert summary["status"] == "diverged" and 1 <= summary["step"] < 50
    assert json.loads((run_dir_for(cfg) / "summary.json").read_text())["status"] == "diverged"


def test_second_process_is_refused(tmp_path, capsys):
    cfg = tiny(tmp_path, "run.steps=2", "run.eval_every=1")
    with RunDir(run_dir_for(cfg)):
        with pytest.raises(RunLockedError, match="in use by another process"):
            train(cfg)
        assert main(["train", "--root", str(tmp_path), *sum(
            (["--set", o] for o in TINY + ["run.steps=2", "run.eval_every=1"]), [])]) == 2
    assert "in use" in capsys.readouterr().err


def _cmd(root):
    sets = sum((["--set", o] for o in TINY + ["run.steps=80", "run.eval_every=4"]), [])
    return [sys.executable, "-m", "stablernn", "train", "--root", str(root), *sets]


@pytest.mark.slow
def test_sigkill_resume_gives_identical_results(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref_root, kill_root = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_cmd(ref_root), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(_cmd(kill_root), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    ckpts = []
    while time.time() < deadline and proc.poll() is None:
        ckpts = list(kill_root.glob("*/checkpoint.pt"))
        if ckpts:
            break
        time.sleep(0.01)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpts, "the run finished before a checkpoint appeared; lengthen it"
    run = ckpts[0].parent
    assert not (run / "summary.json").exists(), "killed too late to test resuming"
    subprocess.run(_cmd(kill_root), check=True, env=env, capture_output=True)
    ref_run = next(ref_root.iterdir())
    assert run.name == ref_run.name
    got, want = (json.loads((d / "summary.json").read_text()) for d in (run, ref_run))
    for key in ("status", "step", "best_step", "valid", "test"):
        assert got[key] == want[key]
    assert (run / "metrics.jsonl").read_text() == (ref_run / "metrics.jsonl").read_text()


def test_cli_list_and_demo_smoke(tmp_path, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in ("cells:", "tasks:", "inits:", "pretrain:"):
        assert kind in out
    assert "adding" in out and "T=" in out
    assert main(["demo", "--smoke", "--seeds", "2", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "default init" in out and "report:" in out
    report = next(tmp_path.glob("report-*/report.md")).read_text()
    assert "| default init |" in report and "loss_curves.png" in report
    assert list(tmp_path.glob("report-*/loss_curves.png"))
