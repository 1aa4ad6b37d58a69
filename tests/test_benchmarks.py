"""The benchmark scripts behind docs/RESULTS.md run at smoke size (so they never rot)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def run(script: str, *args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("task", ["copy", "adding"])
def test_copy1000_smoke_runs_reports_and_skips_finished_runs(tmp_path, task):
    out = tmp_path / "runs"
    args = ["--smoke", "--task", task, "--models", "spectral,lstm", "--out", str(out),
            "--threads", "1"]
    table = run("copy1000.py", "run", *args, cwd=tmp_path)
    assert "| spectral |" in table and "| lstm |" in table
    results = sorted(out.glob("*/result.json"))
    assert [p.parent.name for p in results] == ["lstm-s0", "spectral-s0"]
    first = json.loads(results[1].read_text())
    assert first["task"] == task and first["history"] and first["updates"] > 0
    assert not list(out.glob("*/checkpoint.pt"))  # finished runs leave no checkpoint
    run("copy1000.py", "report", *args, "--plot", str(tmp_path / "c.png"), cwd=tmp_path)
    assert (tmp_path / "c.png").stat().st_size > 0
    again = run("copy1000.py", "run", *args, cwd=tmp_path)  # finished: skipped, same table
    assert again == "".join(line for line in table.splitlines(True) if line.startswith("|"))
    assert json.loads(results[1].read_text()) == first


@pytest.mark.slow
def test_bench_spectral_smoke(tmp_path):
    table = run("bench_spectral.py", "--sizes", "8", "--reps", "1", "--T", "3", "--batch", "2",
                "--threads", "1", cwd=tmp_path)
    assert "| ours, k = n |" in table and "torch orthogonal (cayley)" in table


@pytest.mark.slow
def test_bench_monitor_smoke(tmp_path):
    table = run("bench_monitor.py", "--smoke", "--threads", "1", cwd=tmp_path)
    assert "| without monitor | 10 |" in table and "| with monitor | 10 |" in table
    assert "monitor's own share of its loop" in table
