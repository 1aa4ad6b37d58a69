"""Reports from hand-made run directories: means, std, radii and paired win rates match values
computed by hand; crashed runs are counted, not averaged; CSV, Markdown and PNG come out."""
import csv
import json
import math

import pytest

from stablernn.cli import main
from stablernn.report import (
    compare_win_rate,
    group_runs,
    load_runs,
    paired_win_rates,
    summary_table,
    win_rate_sentence,
)
from stablernn.train import Config, apply_overrides, config_hash

# rho -> test accuracy per seed 0, 1, 2
ACC = {0.5: [0.9, 0.8, 0.7], 1.0: [0.85, 0.8, 0.6]}


def make_run(root, overrides, *, metric=None, name="accuracy", higher=True, radii=None,
             crash=False, extra=None):
    cfg = apply_overrides(Config(), ["task.name=copy", *overrides])
    path = root / config_hash(cfg)
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({**cfg.to_dict(), "hash": config_hash(cfg)}))
    if crash:
        (path / "crash.json").write_text(json.dumps({"status": "crashed", "error": "boom"}))
        return path
    summary = {"status": "completed", "task": "copy", "metric": name, "higher_is_better": higher,
               "chance": 0.1, "chance_loss": 2.3, "test": {"metric": metric, "loss": 1 - metric},
               "valid": {"metric": metric, "loss": 1 - metric}}
    if radii:
        summary["pretrain"] = {"after": radii, "seconds": 1.0}
    summary.update(extra or {})
    (path / "summary.json").write_text(json.dumps(summary))
    rows = [{"step": s, "train_loss": 1 / s} for s in (1, 2, 3)] + \
        [{"step": 3, "valid_loss": 0.5, "valid_metric": metric}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def lsc_runs(tmp_path):
    root = tmp_path / "runs"
    for rho, accs in ACC.items():
        for seed, acc in enumerate(accs):
            make_run(root, ["pretrain.method=lsc", f"pretrain.rho={rho}", f"run.seed={seed}"],
                     metric=acc, radii={"time 0": rho, "time 1": rho + 0.2, "depth 1": 1.0})
    make_run(root, ["pretrain.method=lsc", "pretrain.rho=1.0", "run.seed=3"], crash=True)
    return root


def test_means_std_radii_and_crashes_match_hand_computation(lsc_runs):
    rows = summary_table(group_runs(load_runs(lsc_runs)))
    assert [r["setting"] for r in rows] == ["rho=0.5", "rho=1.0"]
    half, one = rows
    assert half["mean"] == pytest.approx(0.8) and half["std"] == pytest.approx(0.1)
    assert one["mean"] == pytest.approx(0.75)
    assert one["std"] == pytest.approx(math.sqrt((0.1**2 + 0.05**2 + 0.15**2) / 2))
    assert (half["seeds"], half["crashed"], one["seeds"], one["crashed"]) == (3, 0, 3, 1)
    assert half["chance"] == 0.1
    assert half["radii"] == pytest.approx({"depth": 1.0, "time": 0.6})  # (0.5 + 0.7) / 2
    assert one["radii"] == pytest.approx({"depth": 1.0, "time": 1.1})


def test_paired_win_rates_match_hand_computation(lsc_runs):
    (row,) = paired_win_rates(load_runs(lsc_runs))
    # seed 0: 0.9 > 0.85 win, seed 1: 0.8 = 0.8 tie, seed 2: 0.7 > 0.6 win; seed 3 crashed
    assert (row["key"], row["a"], row["b"]) == ("pretrain.rho", 0.5, 1.0)
    assert (row["wins"], row["ties"], row["losses"], row["pairs"]) == (2, 1, 0, 3)
    assert row["win_rate"] == pytest.approx(2.5 / 3)
    assert win_rate_sentence(row) == "rho=0.5 beats rho=1.0 in 83% of 3 paired runs"


def test_lower_is_better_and_only_one_key_differences_pair(tmp_path):
    root = tmp_path / "runs"
    mse = {("none", 2): [0.2, 0.3], ("lsc", 2): [0.1, 0.4], ("lsc", 5): [0.05, 0.5]}
    for (method, layers), values in mse.items():
        for seed, value in enumerate(values):
            make_run(root, [f"pretrain.method={method}", f"model.num_layers={layers}",
                            f"run.seed={seed}"], metric=value, name="mse", higher=False)
    rows = {(r["key"], r["a"], r["b"]): r for r in paired_win_rates(load_runs(root))}
    # (none, 2) vs (lsc, 5) differ in two keys: never paired
    assert set(rows) == {("pretrain.method", "lsc", "none"), ("model.num_layers", 2, 5)}
    lsc_none = rows[("pretrain.method", "lsc", "none")]  # 0.1 < 0.2 win, 0.4 > 0.3 loss
    assert (lsc_none["wins"], lsc_none["losses"], lsc_none["win_rate"]) == (1, 1, 0.5)
    depth = rows[("model.num_layers", 2, 5)]  # lsc only: 0.1 vs 0.05 loss, 0.4 vs 0.5 win
    assert (depth["wins"], depth["losses"], depth["pairs"]) == (1, 1, 2)


def test_write_report_files_and_cli(lsc_runs, tmp_path, capsys):
    assert main(["report", str(lsc_runs), "--no-flow", "--out", str(tmp_path / "rep")]) == 0
    out = tmp_path / "rep"
    assert capsys.readouterr().out.strip() == f"report: {out / 'report.md'}"
    text = (out / "report.md").read_text()
    assert "| rho=0.5 | 0.8000 +- 0.1000 |" in text
    assert "rho=0.5 beats rho=1.0 in 83% of 3 paired runs" in text
    assert "| crashed | no | boom |" in text  # the runs-without-a-result table
    with open(out / "table.csv") as f:
        table = list(csv.DictReader(f))
    assert float(table[1]["mean"]) == pytest.approx(0.75) and table[1]["crashed"] == "1"
    assert float(table[0]["radii.time"]) == pytest.approx(0.6)
    with open(out / "win_rates.csv") as f:
        assert float(next(csv.DictReader(f))["win_rate"]) == pytest.approx(2.5 / 3)
    for name in ("curves_copy_train_loss.png", "curves_copy_valid_metric.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_report_of_a_directory_without_runs_fails_clearly(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no run directories" in capsys.readouterr().err


def test_markdown_table_names_the_metric_per_row_when_tasks_differ():
    from stablernn.report import markdown_table

    base = {"std": 0.0, "loss_mean": 1.0, "loss_std": 0.0, "chance": 0.5, "seeds": 1,
            "diverged": 0}
    rows = [{**base, "setting": "a", "metric": "mse", "mean": 0.1},
            {**base, "setting": "b", "metric": "accuracy", "mean": 0.9}]
    text = markdown_table(rows)
    assert "test metric (mean +- std)" in text
    assert "0.1000 +- - mse" in text and "0.9000 +- - accuracy" in text  # 1 seed: no std
    assert "test mse" in markdown_table(rows[:1])


def test_vaa_column_averages_each_stage_over_the_runs_that_measured_it(tmp_path):
    from stablernn.report import markdown_table

    root = tmp_path / "runs"
    for seed, (init, final) in enumerate([(0.25, 0.5), (0.75, None)]):
        make_run(root, [f"run.seed={seed}"], metric=0.5, extra={
            "vaa": {"init": init, "final": final}, "vaa_horizon": {"init": 1.0}})
    (row,) = summary_table(group_runs(load_runs(root)))
    assert row["vaa"] == {"init": 0.5, "final": 0.5, "init@horizon": 1.0}
    text = markdown_table([row])
    assert "VAA (mean per stage)" in text and "init=0.500 final=0.500 init@horizon=1.000" in text
    no_vaa = {**row, "vaa": {}}
    assert "VAA" not in markdown_table([no_vaa])


def test_compare_pairs_on_every_key_the_selectors_do_not_name(tmp_path, capsys):
    root = tmp_path / "runs"
    # default (rho unused, left at 0.5) vs LSC rho = 1: they differ in two keys
    acc = {("none", 0.5): [0.5, 0.6, 0.7], ("lsc", 1.0): [0.6, 0.6, 0.65],
           ("lsc", 0.5): [0.4, 0.9, 0.9]}
    for (method, rho), values in acc.items():
        for seed, value in enumerate(values):
            make_run(root, [f"pretrain.method={method}", f"pretrain.rho={rho}",
                            f"run.seed={seed}"], metric=value)
    runs = load_runs(root)
    row = compare_win_rate(runs, "pretrain.method=lsc,pretrain.rho=1", "pretrain.method=none")
    # seed 0: 0.6 > 0.5 win, seed 1: tie, seed 2: 0.65 < 0.7 loss
    assert (row["wins"], row["ties"], row["losses"], row["win_rate"]) == (1, 1, 1, 0.5)
    assert win_rate_sentence(row) == ("pretrain.method=lsc,pretrain.rho=1 beats "
                                      "pretrain.method=none in 50% of 3 paired runs")
    with pytest.raises(ValueError, match="unknown config key"):
        compare_win_rate(runs, "pretrain.methd=lsc", "pretrain.method=none")
    with pytest.raises(ValueError, match="no finished run matches"):
        compare_win_rate(runs, "pretrain.rho=2", "pretrain.method=none")
    with pytest.raises(ValueError, match="key=value"):
        compare_win_rate(runs, "lsc", "pretrain.method=none")
    out = tmp_path / "rep"
    assert main(["report", str(root), "--no-flow", "--out", str(out), "--compare",
                 "pretrain.method=lsc,pretrain.rho=0.5", "pretrain.method=none"]) == 0
    assert ("pretrain.method=lsc,pretrain.rho=0.5 beats pretrain.method=none in 67% of 3 "
            "paired runs") in (out / "report.md").read_text()
