"""Reports from run directories: tables of mean +- std over seeds, paired win rates, learning
curves and gradient-flow plots.

Reports read only run directories (``config.json``, ``metrics.jsonl``, ``summary.json``, a
sweep's ``crash.json`` and, for gradient-flow plots, ``model.pt``). Runs are grouped into
*settings* by their canonical config without ``run.seed``; the paired win rate of two settings
that differ in one key compares runs with the same seed and every other key equal, as in
Herranz-Celotti & Rouat (arXiv 2308.12075, section 4): "rho 0.5 beats rho 1 in x % of paired
runs".

    stablernn report runs/sweeps/lsc_depth     # -> runs/sweeps/lsc_depth/report/report.md
"""
from __future__ import annotations

import csv
import json
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from .sweep import CRASH
from .train.runs import CONFIG, METRICS, SUMMARY

SEED = "run.seed"


# loading ----------------------------------------------------------------------------------
def load_run(path: str | Path, *, finished: bool = True) -> dict:
    """``{"path", "config", "summary", "crash", "metrics"}`` of one run directory.

    Args:
        path: the run directory.
        finished: require ``summary.json``; with ``finished=False`` an unfinished or crashed
            run loads with ``summary`` None (and its ``crash.json`` record, if any).

    Raises:
        FileNotFoundError: no ``config.json``, or no ``summary.json`` while ``finished``.
    """
    path = Path(path)
    if finished and not (path / SUMMARY).exists():
        raise FileNotFoundError(f"{path} has no {SUMMARY}: the run did not finish")
    if not (path / CONFIG).exists():
        raise FileNotFoundError(f"{path} has no {CONFIG}: not a run directory")
    metrics = path / METRICS
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line] \
        if metrics.exists() else []
    return {"path": str(path), "config": json.loads((path / CONFIG).read_text()),
            "summary": _json_or_none(path / SUMMARY), "crash": _json_or_none(path / CRASH),
            "metrics": rows}


def _json_or_none(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def load_runs(root: str | Path) -> list[dict]:
    """Every run directory under ``root`` (any depth), finished or not, sorted by path.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no run directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no directory {root}")
    runs = [load_run(p.parent, finished=False) for p in sorted(root.rglob(CONFIG))]
    if not runs:
        raise FileNotFoundError(f"no run directories (with {CONFIG}) under {root}")
    return runs


def settings_of(run: dict) -> dict[str, Any]:
    """The run's canonical config flattened to dotted keys (``run.seed`` included)."""
    from .train.config import Config, canonical

    data = {k: v for k, v in run["config"].items() if k != "hash"}
    return _flatten(canonical(Config.from_dict(data)))


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _ident(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _order(value: Any) -> tuple:
    """Numbers first in numeric order, then everything else by its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, _ident(value))


def varying_keys(runs: Sequence[dict]) -> list[str]:
    """Config keys (without ``run.seed``) whose value differs between ``runs``."""
    flats = [settings_of(r) for r in runs]
    keys = sorted({k for f in flats for k in f} - {SEED})
    return [k for k in keys if len({_ident(f.get(k)) for f in flats}) > 1]


def _short(keys: list[str]) -> dict[str, str]:
    """``model.num_layers`` -> ``num_layers`` unless two keys would share a short name."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last)}


def group_runs(runs: Sequence[dict]) -> dict[str, list[dict]]:
    """Runs grouped by setting (config without seed), labelled by the keys that vary.

    Returns:
        ``{"cell=gru, num_layers=2": [run, ...], ...}`` sorted by the varying values; one
        group labelled ``"all"`` when nothing but the seed varies.
    """
    keys = varying_keys(runs)
    short = _short(keys)
    groups: dict[str, list[dict]] = defaultdict(list)
    values: dict[str, list] = {}
    for run in runs:
        flat = settings_of(run)
        setting = [flat.get(k) for k in keys]
        values.setdefault(_ident(setting), setting)
        groups[_ident(setting)].append(run)
    ordered = sorted(groups, key=lambda g: [_order(v) for v in values[g]])
    return {(", ".join(f"{short[k]}={_text(v)}" for k, v in zip(keys, values[g])) or "all"):
            groups[g] for g in ordered}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# tables -------------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value, nan for none)."""
    values = list(values)
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def radii_after(summaries: Iterable[dict]) -> dict[str, float]:
    """Mean radius per map kind after pre-training (``summary["pretrain"]["after"]``, keys
    ``"kind layer"``), over layers and runs; empty without a pre-training report."""
    per_kind: dict[str, list[float]] = defaultdict(list)
    for s in summaries:
        after = (s.get("pretrain") or {}).get("after") or {}
        for key, value in after.items():
            if isinstance(value, (int, float)):
                per_kind[key.split()[0]].append(float(value))
    return {kind: statistics.fmean(v) for kind, v in sorted(per_kind.items())}


def summary_table(groups: dict[str, list[dict]], *, split: str = "test") -> list[dict]:
    """One row per group of runs: metric mean/std over finished seeds, chance, radii after
    pre-training, and counts of seeds, diverged and crashed (or unfinished) runs."""
    rows = []
    for label, runs in groups.items():
        s = [r["summary"] for r in runs if r.get("summary")]
        m, sd = mean_std([x[split]["metric"] for x in s])
        loss_m, loss_sd = mean_std([x[split]["loss"] for x in s])
        rows.append({"setting": label, "metric": s[0]["metric"] if s else "metric",
                     "mean": m, "std": sd, "loss_mean": loss_m, "loss_std": loss_sd,
                     "chance": s[0]["chance"] if s else math.nan, "seeds": len(s),
                     "diverged": sum(x["status"] == "diverged" for x in s),
                     "crashed": len(runs) - len(s), "radii": radii_after(s)})
    return rows


def markdown_table(rows: Iterable[dict], *, split: str = "test") -> str:
    """Render :func:`summary_table` rows as a Markdown table (a radii column when any row
    has radii after pre-training)."""
    rows = list(rows)
    metrics = {r["metric"] for r in rows}
    # rows of different tasks can carry different metrics: then name it in each row
    metric = metrics.pop() if len(metrics) == 1 else "metric"
    radii = any(r.get("radii") for r in rows)
    head = (f"| setting | {split} {metric} (mean +- std) | {split} loss | chance {metric} "
            f"| seeds | diverged | crashed |" + (" radii after pre-training |" if radii else ""))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        named = "" if metric != "metric" else f" {r['metric']}"
        line = (f"| {r['setting']} | {r['mean']:.4f} +- {r['std']:.4f}{named} | "
                f"{r['loss_mean']:.4f} +- {r['loss_std']:.4f} | {r['chance']:.4f} | "
                f"{r['seeds']} | {r['diverged']} | {r.get('crashed', 0)} |")
        if radii:
            line += " " + " ".join(f"{k}={v:.3f}" for k, v in r.get("radii", {}).items()) + " |"
        lines.append(line)
    return "\n".join(lines)


def paired_win_rates(runs: Sequence[dict], *, split: str = "test") -> list[dict]:
    """Win rates of settings that differ in exactly one config key, over paired runs.

    Two finished runs are paired when they have the same seed and every other key equal. For
    each key and pair of its values ``(a, b)`` (``a`` first in numeric/text order) this pools
    every pair over all other settings: ``a`` wins when its ``split`` metric is better
    (higher or lower, as the task says); a tie counts half.

    Returns:
        Rows ``{"key", "a", "b", "wins", "ties", "losses", "pairs", "win_rate"}``.

    Example:
        >>> rows = paired_win_rates(load_runs("runs/sweeps/lsc_depth"))  # doctest: +SKIP
        >>> win_rate_sentence(rows[0])                                   # doctest: +SKIP
        'rho=0.5 beats rho=1 in 83% of 6 paired runs'
    """
    done = [(settings_of(r), r["summary"]) for r in runs if r.get("summary")]
    done = [(f, s) for f, s in done if math.isfinite(s[split]["metric"])]
    rows = []
    for key in varying_keys([r for r in runs if r.get("summary")]):
        rows += _pairs_for_key(key, done, split)
    return rows


def _pairs_for_key(key: str, done: list[tuple[dict, dict]], split: str) -> list[dict]:
    buckets: dict[str, dict[str, tuple[Any, dict]]] = defaultdict(dict)
    for flat, summary in done:
        rest = _ident({k: v for k, v in flat.items() if k != key})
        buckets[rest][_ident(flat.get(key))] = (flat.get(key), summary)
    tally: dict[tuple[str, str], list] = {}
    for bucket in buckets.values():
        entries = sorted(bucket.values(), key=lambda e: _order(e[0]))
        for (va, sa), (vb, sb) in combinations(entries, 2):
            if sa["metric"] != sb["metric"]:
                continue  # different metrics (a task key differs): not comparable
            row = tally.setdefault((_ident(va), _ident(vb)), [va, vb, 0, 0, 0])
            row[2 + _outcome(sa[split]["metric"], sb[split]["metric"],
                             sa["higher_is_better"])] += 1
    return [{"key": key, "a": va, "b": vb, "wins": w, "ties": t, "losses": lo,
             "pairs": w + t + lo, "win_rate": (w + t / 2) / (w + t + lo)}
            for va, vb, w, t, lo in tally.values()]


def parse_selector(text: str) -> dict[str, Any]:
    """``"pretrain.method=lsc,pretrain.rho=1"`` -> ``{"pretrain.method": "lsc", ...}``
    (values read as JSON when they parse, else kept as text)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad selector {part!r} in {text!r}: write key=value[,key=value]")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    if not out:
        raise ValueError("empty selector: write key=value[,key=value]")
    return out


def _same(x: Any, y: Any) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
    return float(x) == float(y) if numbers else _ident(x) == _ident(y)


def compare_win_rate(runs: Sequence[dict], a: str, b: str, *, split: str = "test") -> dict:
    """Paired win rate of the runs matching selector ``a`` over those matching ``b``.

    A run of ``a`` is paired with the run of ``b`` that agrees on every key neither selector
    names (seed included): e.g. LSC with ``rho = 1`` against the default, whose ``rho`` is
    unused but differs, which one-key pairing (:func:`paired_win_rates`) cannot pair.

    Example:
        >>> compare_win_rate(load_runs("runs/reproduce/lsc_learning_digits"),  # doctest: +SKIP
        ...                  "pretrain.method=lsc,pretrain.rho=1", "pretrain.method=none")
    """
    sel_a, sel_b = parse_selector(a), parse_selector(b)
    names = set(sel_a) | set(sel_b)
    done = [(settings_of(r), r["summary"]) for r in runs if r.get("summary")]
    known = {k for flat, _ in done for k in flat}
    unknown = sorted(names - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)} in --compare; keys of "
                         f"these runs include: {', '.join(varying_keys(runs))}")
    sides: list[dict[str, dict]] = [{}, {}]
    for flat, summary in done:
        rest = _ident({k: v for k, v in flat.items() if k not in names})
        for side, sel in zip(sides, (sel_a, sel_b)):
            if all(_same(flat.get(k), v) for k, v in sel.items()):
                side[rest] = summary
    if not sides[0] or not sides[1]:
        empty = a if not sides[0] else b
        raise ValueError(f"no finished run matches {empty!r}")
    tally = [0, 0, 0]
    for rest, sa in sides[0].items():
        sb = sides[1].get(rest)
        if sb is not None and sa["metric"] == sb["metric"] and \
                math.isfinite(sa[split]["metric"]) and math.isfinite(sb[split]["metric"]):
            tally[_outcome(sa[split]["metric"], sb[split]["metric"], sa["higher_is_better"])] += 1
    w, t, lo = tally
    return {"key": "compare", "a": a, "b": b, "wins": w, "ties": t, "losses": lo,
            "pairs": w + t + lo, "win_rate": (w + t / 2) / (w + t + lo) if w + t + lo else math.nan}


def _outcome(a: float, b: float, higher_is_better: bool) -> int:
    """0: ``a`` wins, 1: tie, 2: ``b`` wins."""
    if a == b:
        return 1
    return 0 if (a > b) == higher_is_better else 2


def win_rate_sentence(row: dict) -> str:
    """``"rho=0.5 beats rho=1 in 83% of 6 paired runs"``."""
    if row["key"] == "compare":
        a, b = row["a"], row["b"]
    else:
        name = row["key"].rsplit(".", 1)[-1]
        a, b = f"{name}={_text(row['a'])}", f"{name}={_text(row['b'])}"
    return f"{a} beats {b} in {100 * row['win_rate']:.0f}% of {row['pairs']} paired runs"


def win_rate_table(rows: Iterable[dict]) -> str:
    """Render :func:`paired_win_rates` rows as a Markdown table."""
    lines = ["| key | a | b | a wins | ties | b wins | pairs | a win rate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['key']} | {_text(r['a'])} | {_text(r['b'])} | {r['wins']} | "
                     f"{r['ties']} | {r['losses']} | {r['pairs']} | "
                     f"{100 * r['win_rate']:.0f}% |")
    return "\n".join(lines)


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    """Write dict rows as CSV (nested dicts, e.g. radii, become ``radii.<kind>`` columns)."""
    flat = [{k: v for k, v in _flatten(r).items() if v != {}} for r in rows]
    fields = list(dict.fromkeys(k for r in flat for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)
    return Path(path)


# plots --------------------------------------------------------------------------------------
def plot_curves(groups: dict[str, list[dict]], path: str | Path, *, key: str = "train_loss",
                chance: float | None = None) -> Path:
    """Learning curves (``key`` from metrics.jsonl), mean over seeds with min-max band."""
    from .plotting import new_figure

    fig = new_figure((6.0, 3.6))
    ax = fig.add_subplot()
    for label, runs in groups.items():
        curves = [[(row["step"], row[key]) for row in r["metrics"] if key in row] for r in runs]
        n = min((len(c) for c in curves), default=0)
        if n == 0:
            continue
        steps = [p[0] for p in curves[0][:n]]
        vals = [[c[i][1] for c in curves] for i in range(n)]  # (steps, seeds)
        ax.plot(steps, [statistics.fmean(v) for v in vals], label=label)
        ax.fill_between(steps, [min(v) for v in vals], [max(v) for v in vals], alpha=0.2)
    if chance is not None:
        ax.axhline(chance, color="gray", ls="--", lw=1, label="chance")
    ax.set(xlabel="step", ylabel=key.replace("_", " "))
    ax.legend(frameon=False, fontsize="small")
    fig.savefig(path, dpi=120)
    return Path(path)


def plot_flow(run: dict, path: str | Path, *, title: str = "", batch: int = 8) -> Path:
    """Gradient-flow heat-map of a finished run's best weights (``model.pt``) on ``batch``
    test sequences; rebuilds the task and model from ``config.json``.

    Raises:
        FileNotFoundError: the run has no ``model.pt``.
    """
    from .plotting import new_figure
    from .stability import gradient_flow
    from .train.loop import load_trained

    model, x = load_trained(run["path"], batch=batch)  # x: (batch, T, D) test inputs
    fig = new_figure((6.0, 3.0))
    gradient_flow(model, x).plot(fig.add_subplot(), title=title or None)
    fig.savefig(path, dpi=120)
    return Path(path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:120] or "all"


def _by_task(groups: dict[str, list[dict]]) -> dict[str, dict[str, list[dict]]]:
    """Finished runs of each group, split by task (curves of different tasks do not share
    axes)."""
    tasks: dict[str, dict[str, list[dict]]] = defaultdict(dict)
    for label, runs in groups.items():
        for run in runs:
            if run.get("summary"):
                tasks[run["summary"]["task"]].setdefault(label, []).append(run)
    return tasks


def _plot_all(groups: dict[str, list[dict]], out: Path, flow: bool) -> tuple[list, list]:
    """Curves per task and, with ``flow``, a gradient-flow heat-map per setting."""
    images, notes = [], []
    for task, task_groups in _by_task(groups).items():
        first = next(iter(task_groups.values()))[0]["summary"]
        for key, chance in (("train_loss", first["chance_loss"]),
                            ("valid_metric", first["chance"])):
            name = f"curves_{_slug(task)}_{key}.png"
            plot_curves(task_groups, out / name, key=key, chance=chance)
            images.append((f"{task}: {key.replace('_', ' ')}", name))
        for label, runs in task_groups.items() if flow else ():
            name = f"flow_{_slug(task)}_{_slug(label)}.png"
            try:
                plot_flow(runs[0], out / name, title=f"{task}: {label}")
                seed = runs[0]["config"]["run"]["seed"]
                images.append((f"{task}, {label}: gradient flow (seed {seed})", name))
            except Exception as err:  # noqa: BLE001 - a plot must not sink the report
                notes.append(f"no gradient-flow plot for {label}: {type(err).__name__}: {err}")
    return images, notes


def write_report(root: str | Path, out: str | Path | None = None, *, split: str = "test",
                 flow: bool = True, compare: Sequence[tuple[str, str]] = ()) -> Path:
    """Write the report of every run under ``root``: ``report.md``, ``table.csv``,
    ``win_rates.csv`` and PNG learning curves (and gradient-flow heat-maps with ``flow``).

    Args:
        root: a directory of run directories (e.g. a sweep's root), searched at any depth.
        out: the output directory (default ``<root>/report``).
        split: ``"test"`` or ``"valid"``: the split the tables compare.
        flow: draw a gradient-flow heat-map of one seed per setting (rebuilds each task).
        compare: extra ``(a, b)`` selector pairs for :func:`compare_win_rate`.

    Returns:
        The path of ``report.md``.

    Raises:
        FileNotFoundError: no run directories under ``root``.
        ValueError: ``split`` is not ``test`` or ``valid``.

    Example:
        >>> write_report("runs/sweeps/lsc_depth", flow=False)  # doctest: +SKIP
        PosixPath('runs/sweeps/lsc_depth/report/report.md')
    """
    if split not in ("test", "valid"):
        raise ValueError(f"split must be 'test' or 'valid', got {split!r}")
    runs = load_runs(root)
    out = Path(out) if out is not None else Path(root) / "report"
    out.mkdir(parents=True, exist_ok=True)
    groups = group_runs(runs)
    rows, wins = summary_table(groups, split=split), paired_win_rates(runs, split=split)
    wins += [compare_win_rate(runs, a, b, split=split) for a, b in compare]
    write_csv(rows, out / "table.csv")
    write_csv(wins, out / "win_rates.csv")
    images, notes = _plot_all(groups, out, flow)
    text = _report_text(root, runs, rows, wins, images, notes, split)
    (out / "report.md").write_text(text)
    return out / "report.md"


def _report_text(root, runs, rows, wins, images, notes, split) -> str:
    crashed = [r for r in runs if not r.get("summary")]
    parts = [f"# Report: {root}", "",
             f"{len(runs)} runs in {len(rows)} settings; {len(crashed)} crashed or unfinished.",
             "", markdown_table(rows, split=split), ""]
    if wins:
        parts += ["## Paired win rates", "",
                  ("Settings that differ in one key (or the `--compare` selectors), paired by "
                   "seed (ties count half)."), "",
                  win_rate_table(wins), ""] + [f"- {win_rate_sentence(w)}" for w in wins] + [""]
    for r in crashed:
        error = (r.get("crash") or {}).get("error", "no summary (unfinished)")
        parts.append(f"- crashed: `{Path(r['path']).name}`: {error}")
    parts += [""] + [f"![{alt}]({name})\n" for alt, name in images]
    parts += [f"- {n}" for n in notes]
    return "\n".join(parts).rstrip() + "\n"
