"""Hardening of sweeps and reports: damaged run directories render (with a warning naming the
file), faceted curve plots with readable labels, "-" for a one-seed std, every trial validated
before anything runs, Slurm refused where there is none, and crash retries bounded."""
import json
import math
import os
import re
import stat
import warnings

import pytest
from test_report import make_run

from stablernn.cli import main
from stablernn.experiments import backends
from stablernn.report import (
    DamagedRunWarning,
    curves_figure,
    group_runs,
    load_runs,
    markdown_table,
    summary_table,
    write_report,
)
from stablernn.sweep import (
    CRASH,
    check_run_args,
    load_sweep,
    parse_sweep,
    run_sweep,
    run_trial,
    sweep_command,
)
from stablernn.train import ConfigError


# --------------------------------------------------------------------- 1. damaged run dirs
def _good_runs(root):
    """rho 0.5 at seeds 0, 1 (0.9, 0.7) and the damaged candidate rho 0.5 seed 2 (0.8)."""
    for seed, acc in enumerate([0.9, 0.7]):
        make_run(root, ["pretrain.method=lsc", "pretrain.rho=0.5", f"run.seed={seed}"],
                 metric=acc)
    return make_run(root, ["pretrain.method=lsc", "pretrain.rho=0.5", "run.seed=2"], metric=0.8)


def _append(name, text):
    def damage(run):
        with open(run / name, "a") as f:
            f.write(text)
    return damage


def _write(name, text):
    return lambda run: (run / name).write_text(text)


def _edit_summary(edit):
    def damage(run):
        data = json.loads((run / "summary.json").read_text())
        edit(data)
        (run / "summary.json").write_text(json.dumps(data))
    return damage


def _empty(run, keep_lock=False):
    for p in run.iterdir():
        p.unlink()
    if keep_lock:
        (run / ".lock").write_text("")


# damage -> (warning naming file and problem, or None; seeds averaged in the setting's row;
# damaged count in that row; the run's status). A run whose config cannot be read belongs to
# no setting, so its row counts neither its seed nor its damage; it is listed below the table.
DAMAGE = {
    "truncated last metrics line": (_append("metrics.jsonl", '{"step": 9, "train_lo'),
                                    r"metrics\.jsonl: 1 damaged line", 3, 1, "damaged"),
    "metrics row without step": (_append("metrics.jsonl", '{"train_loss": 0.5}\n'),
                                 r"metrics\.jsonl: 1 damaged line", 3, 1, "damaged"),
    "binary garbage in metrics": (lambda run: (run / "metrics.jsonl").write_bytes(b"\xff\x00{"),
                                  r"metrics\.jsonl: 1 damaged line", 3, 1, "damaged"),
    "metrics is a directory": (lambda run: ((run / "metrics.jsonl").unlink(),
                                            (run / "metrics.jsonl").mkdir()),
                               r"metrics\.jsonl: cannot be read", 3, 1, "damaged"),
    "summary is {}": (_write("summary.json", "{}"),
                      r"summary\.json: missing or wrong field\(s\) status, task", 2, 1,
                      "damaged"),
    "summary is garbage": (_write("summary.json", "\x00garbage{"),
                           r"summary\.json: not valid JSON", 2, 1, "damaged"),
    "summary is a list": (_write("summary.json", "[1, 2]"),
                          r"summary\.json: not a JSON object", 2, 1, "damaged"),
    "summary metric is text": (_edit_summary(lambda d: d["test"].update(metric="x")),
                               r"summary\.json: .*test\.metric", 2, 1, "damaged"),
    "config is garbage": (_write("config.json", "{{{ not json"),
                          r"config\.json: not valid JSON", 2, 0, "damaged"),
    "config is missing": (lambda run: (run / "config.json").unlink(),
                          r"config\.json: missing", 2, 0, "damaged"),
    "config has an unknown section": (_write("config.json", '{"nope": {"a": 1}}'),
                                      r"config\.json: not a stablernn config", 2, 0,
                                      "damaged"),
    "crash record is garbage": (_write("crash.json", "{"), r"crash\.json: not valid JSON", 3,
                                1, "damaged"),
    "empty run dir": (_empty, r"empty run directory", 2, 0, "damaged"),
    "run dir with only a lock": (lambda run: _empty(run, keep_lock=True),
                                 r"empty run directory", 2, 0, "damaged"),
    "test metric is NaN": (_edit_summary(lambda d: d["test"].update(metric=math.nan)), None,
                           3, 0, "completed"),
    "NaN in a metrics row": (_append("metrics.jsonl", '{"step": 4, "train_loss": NaN}\n'),
                             None, 3, 0, "completed"),
}


@pytest.mark.parametrize("case", DAMAGE, ids=list(DAMAGE))
def test_report_renders_what_it_can(tmp_path, capsys, case):
    damage, warning, seeds, damaged_in_row, status = DAMAGE[case]
    root, out = tmp_path / "runs", tmp_path / "rep"
    damaged = _good_runs(root)
    damage(damaged)
    if warning:
        with pytest.warns(DamagedRunWarning, match=warning) as record:
            runs = load_runs(root)
        assert all(str(damaged) in str(w.message) for w in record)  # names the run dir
    else:
        runs = load_runs(root)
    assert sorted(r["status"] for r in runs) == sorted([status] + ["completed"] * 2)
    with warnings.catch_warnings(record=True) as caught:  # the CLI may print them itself
        warnings.simplefilter("always")
        assert main(["report", str(root), "--no-flow", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    said = [str(w.message) for w in caught] + err.splitlines()
    assert "error" not in err and "Traceback" not in err
    assert any(re.search(warning, line) and str(damaged) in line for line in said) \
        if warning else not said
    text = (out / "report.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| all |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert (int(cells[4]), int(cells[7])) == (seeds, damaged_in_row)  # seeds, damaged
    assert (f"| `{damaged.name}` | damaged |" in text) == (status == "damaged")
    if case == "test metric is NaN":
        assert cells[1].startswith("nan")
    for name in ("curves_copy_train_loss.png", "curves_copy_valid_metric.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_damaged_counts_match_hand_computation(tmp_path):
    root = tmp_path / "runs"
    damaged = _good_runs(root)
    _append("metrics.jsonl", "cut{\n{}\n")(damaged)  # 2 damaged lines
    with pytest.warns(DamagedRunWarning, match="2 damaged line"):
        (row,) = summary_table(group_runs(load_runs(root)))
    # the summary is intact: averaged (0.9, 0.7, 0.8) and counted as damaged
    assert (row["seeds"], row["damaged"], row["crashed"]) == (3, 1, 0)
    assert row["mean"] == pytest.approx(0.8) and row["std"] == pytest.approx(0.1)


def test_the_report_folder_is_not_a_run_and_out_may_be_the_root(tmp_path):
    root = tmp_path / "runs"
    _good_runs(root)
    (root / "report").mkdir()  # e.g. left empty by a report killed early: not a damaged run
    assert write_report(root, flow=False) == root / "report" / "report.md"
    assert "3 runs in 1 settings; 0 crashed or unfinished, 0 damaged." in \
        (root / "report" / "report.md").read_text()
    assert write_report(root, root, flow=False) == root / "report.md"
    assert write_report(root, flow=False).read_text().count("| all |") == 1


def test_report_errors_are_one_line(tmp_path, capsys):
    root = tmp_path / "runs"
    _good_runs(root)
    (tmp_path / "afile").write_text("x")
    for argv in (["report", str(root), "--out", str(tmp_path / "afile")],
                 ["report", str(tmp_path / "afile")], ["report", str(tmp_path / "nope")],
                 ["report", str(root), "--compare", "nokey", "pretrain.method=none"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("stablernn report: error: ") and "\n" not in err
    assert not (root / "report").exists()  # a bad selector fails before writing anything


# --------------------------------------------------------------------- 2. readable plots
def _twelve_settings(root):
    """12 GRU settings (method/rho zip x layers x hidden) on copy + one LSTM setting."""
    zips = [("none", 0.5), ("lsc", 0.5), ("lsc", 1.0)]
    for (method, rho) in zips:
        for layers in (1, 2):
            for hidden in (8, 16):
                make_run(root, [f"pretrain.method={method}", f"pretrain.rho={rho}",
                                f"model.num_layers={layers}", f"model.hidden_size={hidden}"],
                         metric=0.5)
    make_run(root, ["model.cell=lstm"], metric=0.4)


def _lines(ax):
    return [line for line in ax.get_lines() if line.get_label() != "chance"]


def test_curves_are_faceted_by_task_and_cell_with_distinct_styles(tmp_path):
    root = tmp_path / "runs"
    _twelve_settings(root)
    fig = curves_figure(load_runs(root), key="valid_metric")
    assert [ax.get_title() for ax in fig.axes] == ["copy, gru", "copy, lstm"]
    gru, lstm = fig.axes
    labels = [line.get_label() for line in _lines(gru)]
    assert len(labels) == 12 and len(set(labels)) == 12
    baselines = [lab for lab in labels if "method=none" in lab]
    assert len(baselines) == 4 and not any("rho" in lab for lab in baselines)
    assert "hidden_size=8, num_layers=1, method=lsc, rho=0.5" in labels
    styles = [(line.get_color(), line.get_linestyle(), line.get_marker())
              for line in _lines(gru)]
    assert len(set(styles)) == 12  # 10 colours: the 11th and 12th lines change line style
    assert [line.get_label() for line in _lines(lstm)] == ["all"]
    for ax in fig.axes:
        assert ax.get_ylabel() == "valid accuracy"
        chance = [line for line in ax.get_lines() if line.get_label() == "chance"]
        assert len(chance) == 1 and list(chance[0].get_ydata()) == [0.1, 0.1]


def test_labels_fall_back_to_every_key_when_applying_keys_collide(tmp_path):
    root = tmp_path / "runs"
    for rho in (0.5, 1.0):  # two baselines that differ only in the unused rho
        make_run(root, ["pretrain.method=none", f"pretrain.rho={rho}"], metric=0.5)
    make_run(root, ["pretrain.method=lsc", "pretrain.rho=1.0"], metric=0.6)
    assert list(group_runs(load_runs(root))) == [
        "method=lsc, rho=1.0", "method=none, rho=0.5", "method=none, rho=1.0"]
    fig = curves_figure(load_runs(root), key="train_loss")
    (ax,) = fig.axes
    assert ax.get_ylabel() == "train loss"
    assert [line.get_ydata()[0] for line in ax.get_lines() if line.get_label() == "chance"] \
        == [2.3]


def test_labelled_groups_keep_their_labels_and_chance(tmp_path):
    root = tmp_path / "runs"
    a = make_run(root, ["run.seed=0"], metric=0.5)
    b = make_run(root, ["pretrain.method=lsc"], metric=0.6)
    runs = {r["path"]: r for r in load_runs(root)}
    fig = curves_figure({"default": [runs[str(a)]], "LSC": [runs[str(b)]]}, key="train_loss",
                        chance=1.5)
    (ax,) = fig.axes
    assert [line.get_label() for line in _lines(ax)] == ["default", "LSC"]
    assert [line.get_ydata()[0] for line in ax.get_lines() if line.get_label() == "chance"] \
        == [1.5]


def test_curve_is_the_mean_and_band_over_seeds(tmp_path):
    root = tmp_path / "runs"
    paths = [make_run(root, [f"run.seed={s}"], metric=0.5) for s in (0, 1)]
    rows = [[{"step": 1, "train_loss": 1.0}, {"step": 2, "train_loss": 0.5}],
            [{"step": 1, "train_loss": 3.0}]]  # seed 1 logged step 1 only
    for path, r in zip(paths, rows):
        (path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in r))
    (ax,) = curves_figure(load_runs(root)).axes
    (line,) = _lines(ax)
    assert list(line.get_xdata()) == [1, 2] and list(line.get_ydata()) == [2.0, 0.5]


def test_no_finished_runs_gives_an_empty_figure_not_a_crash(tmp_path):
    root = tmp_path / "runs"
    make_run(root, [], crash=True)
    fig = curves_figure(load_runs(root))
    assert len(fig.axes) == 1 and not fig.axes[0].get_lines()


# --------------------------------------------------------------------- 3. one-seed std
def test_one_seed_std_prints_a_dash_and_two_seeds_a_number(tmp_path):
    root = tmp_path / "runs"
    make_run(root, ["pretrain.method=lsc", "run.seed=0"], metric=0.9)
    for seed, acc in enumerate([0.5, 0.7]):
        make_run(root, [f"run.seed={seed}"], metric=acc)
    rows = summary_table(group_runs(load_runs(root)))
    text = markdown_table(rows)
    assert "| method=lsc | 0.9000 +- - |" in text
    assert "| method=none | 0.6000 +- 0.1414 |" in text
    assert math.isnan(rows[0]["std"])


# --------------------------------------------------------------------- sweeps
TINY = """root = "{root}"
[base]
"task.name" = "char_lm"
"task.size" = "smoke"
"task.params.T" = 8
"model.num_layers" = 1
"model.hidden_size" = 4
"run.steps" = 3
"run.eval_every" = 3
"run.batch_size" = 8
"""


def _file(tmp_path, extra, name="s.toml"):
    file = tmp_path / name
    file.write_text(TINY.format(root=tmp_path / "runs") + extra)
    return file


# ------------------------------------------------------------- 4. task parameters checked
@pytest.mark.parametrize("values,message", [
    ('["x", 5]', r"trial \{task.params.T=x, run.seed=0\}: .*'char_lm': T must be an int"),
    ("[5, -3]", r"trial \{task.params.T=-3, run.seed=0\}: .*T must be an int >= 1"),
    ("[2.5]", r"trial \{task.params.T=2.5, run.seed=0\}"),
])
def test_every_trial_is_checked_before_any_runs_dry_run_too(tmp_path, capsys, values, message):
    file = _file(tmp_path, f'[grid]\n"task.params.T" = {values}\n')
    with pytest.raises(ConfigError, match=message):
        load_sweep(file)
    for extra in (["--dry-run"], []):
        assert main(["sweep", str(file), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("stablernn sweep: error: ") and "\n" not in err
        assert "task.params.T=" in err and "s.toml" in err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------- 5. slurm without Slurm
@pytest.fixture
def no_slurm(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


def test_slurm_backend_is_refused_without_sbatch(tmp_path, capsys, no_slurm):
    file = _file(tmp_path, "")
    for extra in (["--dry-run"], []):
        assert main(["sweep", str(file), "--backend", "slurm", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert "no `sbatch` on PATH" in err and "slurm-local" in err and "\n" not in err
    with pytest.raises(ValueError, match="no `sbatch`"):
        run_sweep(load_sweep(file), backend="slurm")
    slurm_cluster = _file(tmp_path, '[slurm]\ncluster = "slurm"\n', "c.toml")
    with pytest.raises(ValueError, match="no `sbatch`"):
        check_run_args(load_sweep(slurm_cluster), "slurm")
    assert not (tmp_path / "runs").exists()


def test_slurm_is_allowed_with_sbatch_or_when_local_is_asked_for(tmp_path, capsys, no_slurm):
    sweep = load_sweep(_file(tmp_path, ""))
    check_run_args(sweep, "slurm-local")  # submitit's local executor, on purpose
    local = load_sweep(_file(tmp_path, '[slurm]\ncluster = "local"\n', "l.toml"))
    check_run_args(local, "slurm")
    sbatch = no_slurm / "sbatch"
    sbatch.write_text("#!/bin/sh\nexit 1\n")
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    check_run_args(sweep, "slurm")  # a Slurm machine: accepted
    assert sweep_command(str(_file(tmp_path, "")), backend="slurm-local", dry_run=True,
                         out=lambda line: None) == 0


# ------------------------------------------------------------- 6. bounded retries
def _inline_backend(monkeypatch):
    """Run trials in this process (the retry bookkeeping, not the process pool, is tested)."""
    def backend(name, configs, *args):
        return ((k, run_trial(c)) for k, c in enumerate(configs))
    monkeypatch.setattr(backends, "run_configs", backend)


def test_a_trial_that_always_crashes_is_retried_a_bounded_number_of_times(tmp_path, capsys,
                                                                            monkeypatch):
    _inline_backend(monkeypatch)
    (tmp_path / "text.txt").write_text("abcd efg\nhij " * 200)
    paths = json.dumps([str(tmp_path / "text.txt"), str(tmp_path / "missing.txt")])
    file = _file(tmp_path, f'[grid]\n"task.params.path" = {paths}\n')
    good, bad = load_sweep(file).run_dirs()
    outputs = []
    for attempt in (1, 2, 3, 4):
        assert main(["sweep", str(file)]) == 1  # the failing trial keeps the exit code 1
        outputs.append(capsys.readouterr().out)
        attempts = json.loads((bad / CRASH).read_text())["attempts"]
        assert attempts == min(attempt, 3)
    assert "crashed (attempt 1; a re-run retries it)" in outputs[0]
    assert "2 trials, 2 ran (1 completed, 1 crashed)" in outputs[0]
    assert "1 ran (1 crashed)" in outputs[1]
    assert "1 ran (1 failed)" in outputs[2] and "failed 3 times, not retried" in outputs[2]
    assert "0 ran, 1 skipped (already finished), 1 not retried" in outputs[3]
    assert "missing.txt" in outputs[3]  # the error is reported with the failed trial
    assert (good / "summary.json").exists() and not (bad / "summary.json").exists()
    lines = []
    assert sweep_command(str(file), dry_run=True, out=lines.append) == 0
    assert [line.split()[0] for line in lines] == ["done", "failed"]
    (bad / CRASH).unlink()  # fresh attempts
    assert run_sweep(load_sweep(file), progress=False).trials[1].status == "crashed"
    result = run_sweep(load_sweep(file), progress=False, max_attempts=1)
    assert [(t.status, t.ran) for t in result.trials] == [("completed", False),
                                                          ("failed", False)]
    (bad / CRASH).write_text("{")  # a damaged record still counts as one crash
    failed = run_sweep(load_sweep(file), progress=False, max_attempts=1).trials[1]
    assert (failed.status, failed.summary["attempts"]) == ("failed", 1)
    assert "crash.json is damaged" in failed.summary["error"]


def test_a_damaged_summary_does_not_mark_a_trial_finished(tmp_path, monkeypatch):
    _inline_backend(monkeypatch)
    (tmp_path / "text.txt").write_text("abcd efg\nhij " * 200)
    file = _file(tmp_path, f'"task.params.path" = "{tmp_path / "text.txt"}"\n')
    (run_dir,) = load_sweep(file).run_dirs()
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text("{")
    lines = []
    assert sweep_command(str(file), dry_run=True, out=lines.append) == 0
    assert lines[0].startswith("todo")


# ------------------------------------------------------------- 7. bad input, one line
BAD_SWEEPS = {
    "in grid and zip": ('[grid]\n"model.num_layers" = [1, 2]\n[zip]\n"model.num_layers" = [1]\n',
                        "in both \\[grid\\] and \\[zip\\]"),
    "a billion seeds": ("seeds = 1000000000\n", "seeds = 1000000000: give a count"),
    "a huge grid": ('[grid]\n"run.steps" = ' + json.dumps(list(range(1, 400))) +
                    '\n"run.batch_size" = ' + json.dumps(list(range(1, 400))) + "\n",
                    "159,201 trials"),
    "slurm cluster unknown": ('[slurm]\ncluster = "pbs"\n', "cluster = 'pbs'"),
    "slurm poll negative": ("[slurm]\npoll = -1\n", "poll must be a number of seconds > 0"),
    "slurm not a table": ("slurm = 3\n", "\\[slurm\\] must be a table"),
    "a TOML date in options": ('"model.options.when" = 1979-05-27\n', "must be numbers"),
    "task.params not a table": ('"task.params" = 5\n', "trial \\{run.seed=0\\}"),
    "grid value not a list": ('[grid]\n"model.num_layers" = 2\n', "non-empty list"),
    "zip empty list": ('[zip]\n"model.num_layers" = []\n', "non-empty list"),
    "seeds negative": ("seeds = [-1]\n", "seeds must be"),
    "name not text": ("name = 3\n", "name must be a str"),
}


def _bad_file(tmp_path, text):
    file = tmp_path / "bad.toml"
    if text.startswith(("seeds", "name", "slurm =")):  # top-level keys go before [base]
        file.write_text(text + TINY.format(root=tmp_path / "runs"))
    else:
        file.write_text(TINY.format(root=tmp_path / "runs") + text)
    return file


@pytest.mark.parametrize("case", BAD_SWEEPS, ids=list(BAD_SWEEPS))
def test_bad_sweep_files_give_one_line(tmp_path, capsys, case):
    text, message = BAD_SWEEPS[case]
    file = _bad_file(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_sweep(file)
    assert main(["sweep", str(file), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stablernn sweep: error: ") and "\n" not in err
    assert not (tmp_path / "runs").exists()


def test_sweep_paths_that_are_not_sweep_files(tmp_path, capsys):
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "dir.toml").mkdir()
    for path, message in ((tmp_path, "is a directory"), (tmp_path / "dir.toml", "directory"),
                          (tmp_path / "binary.toml", "not a text"),
                          (tmp_path / "nope.toml", "does not exist")):
        assert main(["sweep", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
    if os.geteuid() != 0:  # root reads any file
        unreadable = _file(tmp_path, "", "locked.toml")
        unreadable.chmod(0)
        with pytest.raises(ConfigError, match="cannot read"):
            load_sweep(unreadable)
    with pytest.raises(ConfigError, match="must be a table"):
        parse_sweep([1, 2])


@pytest.mark.parametrize("kwargs,error,message", [
    ({"backend": "dask"}, ValueError, "unknown backend 'dask'"),
    ({"workers": 0}, ValueError, "workers must be >= 1, got 0"),
    ({"workers": -1}, ValueError, "workers must be >= 1"),
    ({"workers": 2.5}, TypeError, "workers must be an int"),
    ({"workers": True}, TypeError, "workers must be an int"),
    ({"max_attempts": 0}, ValueError, "max_attempts must be >= 1"),
    ({"address": "auto"}, ValueError, "needs --backend ray"),
])
def test_run_arguments_are_checked_before_anything_runs(tmp_path, kwargs, error, message):
    file = _file(tmp_path, "")
    with pytest.raises(error, match=message):
        sweep_command(str(file), dry_run=True, **kwargs)
    with pytest.raises(error, match=message):
        run_sweep(load_sweep(file), **kwargs)
    assert not (tmp_path / "runs").exists()


def test_unknown_submitit_parameter_is_one_value_error(tmp_path):
    pytest.importorskip("submitit")
    file = _file(tmp_path, '[slurm]\nnope = 1\n')
    with pytest.raises(ValueError, match=r"^\[slurm\] table of sweep s: .*nope") as err:
        run_sweep(load_sweep(file), backend="slurm-local", progress=False)
    assert "\n" not in str(err.value)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["submitit"]  # no trial ran
