"""``stablernn report --results``: marked sections of a results page regenerated from tiny
hand-made run directories; the rest of the page untouched, a second run changes nothing, and a
missing run directory fails with the command that makes it."""
import json

import pytest

from stablernn.cli import main
from stablernn.demo import demo_configs
from stablernn.experiments.report.results import parse_section, write_results
from stablernn.experiments.rundir import CONFIG, METRICS, SUMMARY, run_dir_for
from stablernn.experiments.spec import load_sweep
from stablernn.train.config import config_hash

SWEEP = """
root = "{root}"
seeds = [0, 1]
[base]
"task.name" = "copy"
[zip]
"pretrain.method" = ["none", "lsc"]
"""
MARKER = "<!-- results: {source}{options} -->"
PAGE = """# Results

Hand-written text stays.

{marker}
stale table
<!-- /results -->

More hand-written text.
"""


def fake_run(cfg, accuracy: float) -> None:
    """A finished run directory of ``cfg`` as training would leave it (no training)."""
    path = run_dir_for(cfg)
    path.mkdir(parents=True)
    (path / CONFIG).write_text(json.dumps({**cfg.to_dict(), "hash": config_hash(cfg)}))
    split = {"metric": accuracy, "loss": 1 - accuracy}
    (path / SUMMARY).write_text(json.dumps({
        "status": "completed", "task": cfg.task.name, "metric": "accuracy",
        "higher_is_better": True, "chance": 0.125, "chance_loss": 2.0, "valid": split,
        "test": split}))
    (path / METRICS).write_text(json.dumps({"step": 1, "train_loss": 1.0}) + "\n")


@pytest.fixture
def sweep_page(tmp_path):
    """A sweep file, its four finished runs and a page with one marked section."""
    toml = tmp_path / "tiny.toml"
    toml.write_text(SWEEP.format(root=tmp_path / "runs"))
    for k, cfg in enumerate(load_sweep(toml).configs):
        fake_run(cfg, 0.5 + 0.1 * k)
    page = tmp_path / "RESULTS.md"
    options = " --compare pretrain.method=lsc pretrain.method=none"
    page.write_text(PAGE.format(marker=MARKER.format(source=toml, options=options)))
    return page, toml


def test_a_section_is_rewritten_between_its_markers_only(sweep_page):
    page, toml = sweep_page
    before = page.read_text()
    assert write_results(page) == [f"{toml} --compare pretrain.method=lsc pretrain.method=none"]
    text = page.read_text()
    assert "stale table" not in text
    head, tail = before.split("stale table\n")
    assert text.startswith(head) and text.endswith(tail)
    assert f"`stablernn sweep {toml}`" in text
    assert (f"`stablernn report {toml.parent / 'runs'} --compare pretrain.method=lsc "
            f"pretrain.method=none`") in text
    # seeds 0, 1: none -> 0.5, 0.6; lsc -> 0.7, 0.8 (trial order: zip x seeds)
    assert "| method=lsc | 0.7500 +- 0.0707 |" in text
    assert "| method=none | 0.5500 +- 0.0707 |" in text
    assert "| compare | pretrain.method=lsc | pretrain.method=none | 2 | 0 | 0 | 2 | 100% |" \
        in text


def test_regenerating_twice_changes_nothing(sweep_page):
    page, _ = sweep_page
    write_results(page)
    once = page.read_text()
    mtime = page.stat().st_mtime_ns
    write_results(page)
    assert page.read_text() == once
    assert page.stat().st_mtime_ns == mtime  # not even rewritten


def test_a_missing_run_directory_names_it_and_the_command_and_leaves_the_page(sweep_page,
                                                                             capsys):
    page, toml = sweep_page
    before = page.read_text()
    missing = load_sweep(toml).run_dirs()[1]
    (missing / SUMMARY).unlink()
    with pytest.raises(FileNotFoundError, match="missing or unfinished") as err:
        write_results(page)
    assert str(missing) in str(err.value) and f"`stablernn sweep {toml}`" in str(err.value)
    assert page.read_text() == before
    assert main(["report", "--results", str(page)]) == 2
    assert f"stablernn sweep {toml}" in capsys.readouterr().err


def test_cli_regenerates_the_page_and_wants_a_runs_dir_or_results(sweep_page, capsys):
    page, _ = sweep_page
    assert main(["report", "--results", str(page)]) == 0
    assert "1 section(s)" in capsys.readouterr().out
    assert "stale table" not in page.read_text()
    assert main(["report"]) == 2
    assert "--results" in capsys.readouterr().err


def test_demo_sections_read_the_demo_run_directories(tmp_path):
    root = tmp_path / "demo"
    for k, cfg in enumerate(c for cfgs in demo_configs(str(root), 2, False).values()
                            for c in cfgs):
        fake_run(cfg, 0.5 + 0.1 * k)
    page = tmp_path / "RESULTS.md"
    page.write_text(PAGE.format(marker=MARKER.format(source="demo",
                                                     options=f" --seeds 2 --root {root}")))
    write_results(page)
    text = page.read_text()
    assert f"`stablernn demo --seeds 2 --root {root}`" in text
    assert "| default init | 0.5500 +- 0.0707 |" in text
    assert "| LSC rho=0.5 | 0.7500 +- 0.0707 |" in text


@pytest.mark.parametrize("page_text, message", [
    ("no markers here\n", "has no"),
    ("<!-- results: demo -->\nunclosed\n", "unbalanced results markers at line 1"),
    ("<!-- results: demo --bogus -->\n<!-- /results -->\n", "bad results marker"),
    ("<!-- results: x.toml --seeds 2 -->\n<!-- /results -->\n", "only go with `demo`"),
])
def test_bad_pages_and_markers_are_refused(tmp_path, page_text, message):
    page = tmp_path / "RESULTS.md"
    page.write_text(page_text)
    with pytest.raises(ValueError, match=message):
        write_results(page)
    assert page.read_text() == page_text


def test_parse_section_reads_split_and_compare():
    section = parse_section("a.toml --split valid --compare x=1 y=2 --compare x=1 z=3")
    assert (section.source, section.split) == ("a.toml", "valid")
    assert section.compare == (("x=1", "y=2"), ("x=1", "z=3"))
