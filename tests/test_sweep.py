"""Sweeps: TOML validation before any work, grid/zip expansion, crash records and re-runs,
the local process pool and the Ray backend (same summaries as local)."""
import json
from pathlib import Path

import pytest

from stablernn.cli import main
from stablernn.report import write_report
from stablernn.sweep import CRASH, load_sweep, parse_sweep, run_sweep, run_trial
from stablernn.train import ConfigError

# char_lm reads its text at build time, so a missing file crashes one trial inside train and
# creating the file "fixes" it without changing the config (same run directory on re-run)
TINY = """
root = "{root}"
[base]
"task.name" = "char_lm"
"task.size" = "smoke"
"task.params.T" = 8
"model.num_layers" = 1
"run.steps" = 3
"run.eval_every" = 3
"run.batch_size" = 8
[zip]
"model.hidden_size" = {sizes}
"task.params.path" = {paths}
"""


def write_sweep(tmp_path, paths, name="tiny", root="runs"):
    (tmp_path / "text.txt").write_text("abcd efg\nhij " * 200)
    sizes = list(range(4, 4 + len(paths)))
    body = TINY.format(root=tmp_path / root, sizes=json.dumps(sizes),
                       paths=json.dumps([str(tmp_path / p) for p in paths]))
    file = tmp_path / f"{name}.toml"
    file.write_text(body)
    return file


def test_grid_zip_seeds_expand_in_order():
    sweep = parse_sweep({"base": {"model": {"cell": "lstm"}}, "seeds": [3, 4],
                         "grid": {"model.num_layers": [1, 2]},
                         "zip": {"pretrain.method": ["none", "lsc"], "pretrain.rho": [0.5, 1]}},
                        name="x")
    got = [(c.model.num_layers, c.pretrain.method, c.pretrain.rho, c.run.seed)
           for c in sweep.configs]
    assert got == [(1, "none", 0.5, 3), (1, "none", 0.5, 4), (1, "lsc", 1.0, 3),
                   (1, "lsc", 1.0, 4), (2, "none", 0.5, 3), (2, "none", 0.5, 4),
                   (2, "lsc", 1.0, 3), (2, "lsc", 1.0, 4)]
    assert all(c.model.cell == "lstm" and c.run.root == "runs/sweeps/x" and not c.run.progress
               for c in sweep.configs)
    assert len({str(p) for p in sweep.run_dirs()}) == 8


@pytest.mark.parametrize("text,message", [
    ("seeds = [0,\n", "malformed TOML"),
    ("[base]\n\"model.hiden_size\" = 3\n", "unknown config key 'model.hiden_size'"),
    ("[base]\n\"model.cell\" = \"lstmm\"\n", "unknown cell 'lstmm'"),
    ("[base]\n\"task.params.TT\" = 3\n", "unknown parameter.*TT of task 'adding'"),
    ("[grid]\n", r"\[grid\] is empty"),
    ("[grid]\n\"model.num_layers\" = []\n", "must be a non-empty list"),
    ("[zip]\n\"model.num_layers\" = [1, 2]\n\"model.hidden_size\" = [3]\n", "equal lengths"),
    ("seeds = []\n", "seeds must be"),
    ("[gird]\n\"model.num_layers\" = [1]\n", "unknown top-level key.*gird"),
    ("[base]\n\"run.seed\" = 1\n", "top-level `seeds"),
    ("[grid]\n\"run.progress\" = [true, false]\n", "same config"),
])
def test_bad_sweep_files_fail_before_anything_starts(tmp_path, capsys, text, message):
    file = tmp_path / "bad.toml"
    file.write_text(f'root = "{tmp_path / "runs"}"\n' + text)
    with pytest.raises(ConfigError, match=message):
        load_sweep(file)
    assert main(["sweep", str(file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stablernn sweep: error: ") and "\n" not in err and "bad.toml" in err
    assert not (tmp_path / "runs").exists()  # nothing started


@pytest.mark.slow
def test_run_trial_records_a_crash_then_retries_it(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, ["missing.txt"]))
    run_dir = sweep.run_dirs()[0]
    record = run_trial(sweep.configs[0].to_dict())
    assert record["status"] == "crashed" and "missing.txt" in record["error"]
    assert json.loads((run_dir / CRASH).read_text())["error"] == record["error"]
    assert not (run_dir / "summary.json").exists()  # so a re-run retries it
    (tmp_path / "missing.txt").write_text("some text\n" * 50)
    assert run_trial(sweep.configs[0].to_dict())["status"] == "completed"
    assert not (run_dir / CRASH).exists()


def test_finished_trials_are_skipped_diverged_included(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, ["text.txt"]))
    run_dir = sweep.run_dirs()[0]
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"status": "diverged", "step": 2}))
    result = run_sweep(sweep, workers=1, progress=False)
    assert [(t.status, t.ran) for t in result.trials] == [("diverged", False)]
    assert not result.crashed


@pytest.mark.slow
def test_local_sweep_survives_a_crash_and_reruns_only_it(tmp_path, capsys):
    file = write_sweep(tmp_path, ["text.txt", "text.txt", "missing.txt", "text.txt"])
    assert main(["sweep", str(file), "--workers", "2"]) == 1  # a crash -> exit code 1
    assert "4 ran (3 completed, 1 crashed)" in capsys.readouterr().out
    dirs = load_sweep(file).run_dirs()
    assert [(d / "summary.json").exists() for d in dirs] == [True, True, False, True]
    assert "missing.txt" in json.loads((dirs[2] / CRASH).read_text())["error"]
    stamps = [(d / "summary.json").stat().st_mtime_ns for d in dirs if d != dirs[2]]

    (tmp_path / "missing.txt").write_text("now it exists\n" * 50)
    result = run_sweep(load_sweep(file), workers=2, progress=False)
    assert [t.ran for t in result.trials] == [False, False, True, False]
    assert [t.status for t in result.trials] == ["completed"] * 4
    assert stamps == [(d / "summary.json").stat().st_mtime_ns for d in dirs if d != dirs[2]]
    assert not (dirs[2] / CRASH).exists()
    report = write_report(tmp_path / "runs")  # real runs: curves and gradient-flow maps
    assert len(list(report.parent.glob("flow_*.png"))) == 4


def _results_only(data):
    """A summary without wall-clock fields (which differ run to run)."""
    if isinstance(data, dict):
        return {k: _results_only(v) for k, v in data.items() if k != "seconds"}
    return data


@pytest.mark.slow
def test_ray_backend_matches_local(tmp_path):
    pytest.importorskip("ray", reason="the ray backend needs ray: pip install 'stablernn[ray]'")
    local = run_sweep(load_sweep(write_sweep(tmp_path, ["text.txt"] * 2, "a", root="local")),
                      workers=2, progress=False)
    remote = run_sweep(load_sweep(write_sweep(tmp_path, ["text.txt"] * 2, "b", root="ray")),
                       backend="ray", workers=2, progress=False)
    assert [t.ran and t.status == "completed" for t in local.trials + remote.trials] == [True] * 4
    assert [_results_only(t.summary) for t in local.trials] == \
        [_results_only(t.summary) for t in remote.trials]
    for a, b in zip(local.trials, remote.trials):  # same config hash -> same directory name
        assert a.path.split("/")[-1] == b.path.split("/")[-1]
        assert (Path(a.path) / "metrics.jsonl").read_text() == \
            (Path(b.path) / "metrics.jsonl").read_text()


def test_backend_arguments_are_checked(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, ["text.txt"]))
    with pytest.raises(ValueError, match="unknown backend 'dask'"):
        run_sweep(sweep, backend="dask")
    with pytest.raises(ValueError, match="needs --backend ray"):
        run_sweep(sweep, address="auto")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        run_sweep(sweep, workers=0)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_slurm_backend_through_submitit_local_executor(tmp_path):
    pytest.importorskip("submitit", reason="the slurm backend needs submitit: "
                                           "pip install 'stablernn[slurm]'")
    file = write_sweep(tmp_path, ["text.txt", "missing.txt"])
    with open(file, "a") as f:  # submitit's local executor stands in for a Slurm cluster
        f.write('[slurm]\ncluster = "local"\npoll = 0.2\ntimeout_min = 5\n')
    result = run_sweep(load_sweep(file), backend="slurm", workers=2, progress=False)
    assert [t.status for t in result.trials] == ["completed", "crashed"]
    assert (Path(result.trials[1].path) / CRASH).exists()


REPRODUCE = sorted((Path(__file__).parents[1] / "benchmarks" / "reproduce").glob("*.toml"))


@pytest.mark.parametrize("path", REPRODUCE, ids=[p.name for p in REPRODUCE])
def test_reproduction_sweeps_are_valid(path):
    sweep = load_sweep(path)  # names, keys and values checked by the config layer
    assert sweep.name == path.stem
    assert len({c.run.seed for c in sweep.configs}) >= 3  # a learning claim takes several seeds
