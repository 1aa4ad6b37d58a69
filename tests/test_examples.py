"""Every script in examples/ runs at smoke size (so the docs never rot), and writes files only
where it is told: a new temporary folder by default, ``--out DIR`` when given; never the
committed docs images (regenerating them is on purpose only: ``--out docs/img``)."""
import hashlib
import pathlib
import runpy
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
WRITERS = [p for p in EXAMPLES if "out_dir(" in p.read_text()]  # examples that write files


def docs_images() -> dict[str, tuple[str, int]]:
    """Hash and modification time of every file under docs/img: catches a rewrite even with
    identical bytes, and without git."""
    return {str(p.relative_to(ROOT)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                       p.stat().st_mtime_ns)
            for p in sorted((ROOT / "docs" / "img").rglob("*")) if p.is_file()}


def git_status() -> str | None:
    """``git status --porcelain docs/img``, or None outside a git checkout."""
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "status", "--porcelain", "docs/img"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def files_under(path: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def temp_folders(tmp: pathlib.Path) -> list[pathlib.Path]:
    """The examples' own temporary folders (torch also keeps caches in the temp dir)."""
    return sorted(tmp.glob("stablernn-*"))


def run_example(path, argv, tmp_path, monkeypatch) -> tuple[pathlib.Path, pathlib.Path]:
    """Run ``path`` with ``argv`` in an empty working directory, with temporary folders made
    under ``tmp_path / "tmp"``; assert the docs images are untouched. Returns (cwd, tmp)."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    monkeypatch.syspath_prepend(str(path.parent))  # as `python examples/x.py` does
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("STABLERNN_SMOKE", "1")
    images, status = docs_images(), git_status()
    runpy.run_path(str(path), run_name="__main__")
    assert docs_images() == images, f"{path.name} changed docs/img"
    assert git_status() == status, f"{path.name} changed docs/img (git status)"
    assert files_under(cwd) == [], f"{path.name} wrote into the working directory"
    return cwd, tmp


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, tmp_path, monkeypatch):
    """With no arguments: files (if any) go into one new temporary folder, nowhere else."""
    _, tmp = run_example(path, [], tmp_path, monkeypatch)
    made = temp_folders(tmp)
    if path in WRITERS:
        assert len(made) == 1 and made[0].name.startswith(f"stablernn-{path.stem}-"), made
        assert files_under(made[0]), f"{path.name} wrote nothing"
    else:
        assert made == [], f"{path.name} made {made} but takes no --out"


@pytest.mark.slow
@pytest.mark.parametrize("path", WRITERS, ids=[p.name for p in WRITERS])
def test_example_writes_only_into_out(path, tmp_path, monkeypatch):
    out = tmp_path / "out" / "nested"  # created by the example
    _, tmp = run_example(path, ["--out", str(out)], tmp_path, monkeypatch)
    assert files_under(out), f"{path.name} wrote nothing into --out"
    assert temp_folders(tmp) == [], f"{path.name} made a temporary folder despite --out"


def test_writers_are_found():
    """The examples that write files are the ones that take --out (a rename would hide one)."""
    assert {p.name for p in WRITERS} >= {"pascal_heatmaps.py", "plot_init.py",
                                          "plot_spectral.py", "plot_warmup.py"}
