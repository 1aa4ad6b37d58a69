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
import os
import re
import statistics
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from .sweep import CRASH, error_line
from .train.runs import CHECKPOINT, CONFIG, METRICS, SUMMARY, RunDir

SEED = "run.seed"
RUN_FILES = (CONFIG, SUMMARY, METRICS, CRASH, CHECKPOINT)  # any of them marks a run directory
# summary.json fields a report reads, and their types (a summary without them is damaged)
NUMBER = (int, float)
SUMMARY_FIELDS = {"status": str, "task": str, "metric": str, "higher_is_better": bool,
                  "chance": NUMBER, "chance_loss": NUMBER}
SPLIT_FIELDS = {"metric": NUMBER, "loss": NUMBER}
# keys that do not change a run's result when another key has a value: (key prefix, that key,
# its value); e.g. pretrain.rho when pretrain.method = none (docs/sweeps.md, "Reports")
UNUSED_WHEN = (("pretrain.", "pretrain.method", "none"),
               ("init.options", "init.scheme", "default"))


class DamagedRunWarning(UserWarning):
    """A file of a run directory the report cannot read; the report skips it and goes on."""


# loading ----------------------------------------------------------------------------------
def load_run(path: str | Path, *, finished: bool = True) -> dict:
    """``{"path", "config", "summary", "crash", "metrics", "problems", "status"}`` of one run
    directory; damaged files are skipped with a :class:`DamagedRunWarning` each.

    A file that cannot be read (cut short by a kill, edited, missing fields) leaves its entry
    None (``metrics``: the readable rows), adds ``"<file>: <problem>"`` to ``problems`` and
    makes ``status`` ``"damaged"`` (see :func:`run_status`).

    Args:
        path: the run directory.
        finished: require ``summary.json`` and ``config.json``; with ``finished=False`` an
            unfinished, crashed or damaged run loads too.

    Raises:
        FileNotFoundError: no ``config.json`` or ``summary.json`` while ``finished``.
    """
    path = Path(path)
    for name, what in ((SUMMARY, "the run did not finish"), (CONFIG, "not a run directory")):
        if finished and not (path / name).exists():
            raise FileNotFoundError(f"{path} has no {name}: {what}")
    problems: list[str] = []
    run = {"path": str(path), "config": _read_config(path, problems),
           "summary": _read_json(path, SUMMARY, problems, _summary_problem),
           "crash": _read_json(path, CRASH, problems), "metrics": _read_metrics(path, problems)}
    if not any((path / name).exists() for name in RUN_FILES):
        problems.append(f"empty run directory (none of {', '.join(RUN_FILES)})")
    for problem in problems:
        warnings.warn(f"run directory {path}: {problem}", DamagedRunWarning, stacklevel=2)
    run["problems"] = problems
    run["status"] = run_status(run)
    return run


def _read_json(path: Path, name: str, problems: list[str], check: Any = None) -> dict | None:
    """A JSON object file, or None (missing; damaged, with a line added to ``problems``)."""
    file = path / name
    if not file.exists():
        return None
    try:
        data = json.loads(file.read_text())
    except UnicodeDecodeError:
        problem = "not a text file"
    except ValueError as err:
        problem = f"not valid JSON ({err})"
    except OSError as err:
        problem = f"cannot be read ({err.strerror or err})"
    else:
        problem = "not a JSON object" if not isinstance(data, dict) else \
            (check(data) if check else None)
    if problem:
        problems.append(f"{name}: {problem}; skipped")
        return None
    return data


def _summary_problem(data: dict) -> str | None:
    """What a summary lacks for the report's tables, or None."""
    bad = [k for k, kind in SUMMARY_FIELDS.items() if not _is(data.get(k), kind)]
    for split in ("valid", "test"):
        part = data.get(split)
        bad += [f"{split}.{k}" for k, kind in SPLIT_FIELDS.items()
                if not (isinstance(part, dict) and _is(part.get(k), kind))]
    return f"missing or wrong field(s) {', '.join(bad)}" if bad else None


def _is(value: Any, kind: type | tuple) -> bool:
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _read_config(path: Path, problems: list[str]) -> dict | None:
    from .train.config import Config

    config = _read_json(path, CONFIG, problems)
    if config is None:
        if not (path / CONFIG).exists() and any((path / n).exists() for n in RUN_FILES):
            problems.append(f"{CONFIG}: missing; the run is in no setting")
        return None
    try:
        Config.from_dict({k: v for k, v in config.items() if k != "hash"})
    except Exception as err:  # noqa: BLE001 - any unreadable config is one damaged run
        problems.append(f"{CONFIG}: not a stablernn config ({error_line(err)}); skipped")
        return None
    return config


def _read_metrics(path: Path, problems: list[str]) -> list[dict]:
    run = RunDir(path)
    try:
        rows, damaged = run.read_metrics(), run.damaged_metrics()
    except OSError as err:
        problems.append(f"{METRICS}: cannot be read ({err.strerror or err}); skipped")
        return []
    if damaged:
        problems.append(f"{METRICS}: {damaged} damaged line(s) (cut short, not JSON or "
                        f"without a step) skipped")
    return rows


def run_status(run: dict) -> str:
    """``"damaged"`` (a file could not be read), the summary's status (``completed``,
    ``early_stopped``, ``diverged``), ``"crashed"`` (a crash record) or ``"unfinished"``.

    Example:
        >>> run_status({"summary": None, "crash": {"error": "boom"}, "problems": []})
        'crashed'
    """
    if run.get("problems"):
        return "damaged"
    if run.get("summary"):
        return run["summary"]["status"]
    return "crashed" if run.get("crash") else "unfinished"


def load_runs(root: str | Path, *, ignore: Iterable[str | Path] = ()) -> list[dict]:
    """Every run directory under ``root`` (any depth), finished or not, damaged ones too
    (with a warning each), sorted by path.

    A run directory is one holding any of ``config.json``, ``summary.json``,
    ``metrics.jsonl``, ``crash.json`` or ``checkpoint.pt``, or an empty folder below
    ``root`` (a trial killed before it wrote anything), which loads as damaged; folders in
    ``ignore`` (e.g. the report's own output folder) and below them are skipped.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no run directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no directory {root}")
    runs = [load_run(p, finished=False) for p in _run_dirs(root, [Path(p) for p in ignore])]
    if not runs:
        raise FileNotFoundError(f"no run directories (with {CONFIG}) under {root}")
    return runs


def _run_dirs(root: Path, ignore: list[Path]) -> list[Path]:
    found, empty = set(), []
    inside = [p.resolve() for p in ignore if root.resolve() in p.resolve().parents]
    for top, dirs, files in os.walk(root):
        here = Path(top).resolve()
        if any(here == p or p in here.parents for p in inside):
            continue
        if any(name in files for name in RUN_FILES):
            found.add(Path(top))
        elif Path(top) != root and not dirs and all(name.startswith(".") for name in files):
            empty.append(Path(top))
    # an empty folder inside a run directory (e.g. tensorboard's) is not a run
    empty = [p for p in empty if not any(run in p.parents for run in found)]
    return sorted(found | set(empty))


def _configured(runs: Iterable[dict]) -> list[dict]:
    return [r for r in runs if r.get("config") is not None]


def _done(runs: Iterable[dict]) -> list[dict]:
    """Runs with a readable config and summary: the ones tables average and pair."""
    return [r for r in _configured(runs) if r.get("summary")]


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


def applies(key: str, settings: dict[str, Any]) -> bool:
    """Whether config ``key`` changes the result of a run with these (flat) ``settings``:
    pre-training keys do not when ``pretrain.method`` is ``none``, ``init.options`` do not
    when ``init.scheme`` is ``default``. Labels leave out keys that do not apply.

    Example:
        >>> applies("pretrain.rho", {"pretrain.method": "none", "pretrain.rho": 0.5})
        False
        >>> applies("pretrain.rho", {"pretrain.method": "lsc", "pretrain.rho": 0.5})
        True
    """
    return not any(key.startswith(prefix) and key != control and settings.get(control) == value
                   for prefix, control, value in UNUSED_WHEN)


def varying_keys(runs: Sequence[dict]) -> list[str]:
    """Config keys (without ``run.seed``) whose value differs between ``runs`` (runs without a
    readable config are left out)."""
    flats = [settings_of(r) for r in _configured(runs)]
    keys = sorted({k for f in flats for k in f} - {SEED})
    return [k for k in keys if len({_ident(f.get(k)) for f in flats}) > 1]


def _short(keys: list[str]) -> dict[str, str]:
    """``model.num_layers`` -> ``num_layers`` unless two keys would share a short name."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last)}


def group_runs(runs: Sequence[dict]) -> dict[str, list[dict]]:
    """Runs grouped by setting (config without seed), labelled by the keys that vary and
    apply to the setting (:func:`applies`; all varying keys where that would make two labels
    equal). Runs without a readable config belong to no setting.

    Returns:
        ``{"cell=gru, num_layers=2": [run, ...], ...}`` sorted by the varying values; one
        group labelled ``"all"`` when nothing but the seed varies.
    """
    runs = _configured(runs)
    keys = varying_keys(runs)
    groups: dict[str, list[dict]] = defaultdict(list)
    flats: dict[str, dict] = {}
    for run in runs:
        flat = settings_of(run)
        ident = _ident([flat.get(k) for k in keys])
        flats.setdefault(ident, flat)
        groups[ident].append(run)
    ordered = sorted(groups, key=lambda g: [_order(flats[g].get(k)) for k in keys])
    labels = _labels(keys, {g: flats[g] for g in ordered})
    return {labels[g]: groups[g] for g in ordered}


def _labels(keys: list[str], flats: dict[str, dict]) -> dict[str, str]:
    """A label per setting from the varying ``keys`` that are set and apply; settings whose
    labels would collide get every varying key."""
    short = _short(keys)

    def label(flat: dict, only_applying: bool) -> str:
        parts = [f"{short[k]}={_text(flat.get(k))}" for k in keys
                 if flat.get(k) not in (None, {}) and (not only_applying or applies(k, flat))]
        return ", ".join(parts) or "all"

    labels = {g: label(flat, True) for g, flat in flats.items()}
    counts = Counter(labels.values())
    return {g: lab if counts[lab] == 1 else label(flats[g], False) for g, lab in labels.items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# tables -------------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation; the std is nan where it is undefined: fewer than
    two values, or a NaN/Inf among them (whose mean is then NaN/Inf too).

    Example:
        >>> mean_std([1.0, 3.0])
        (2.0, 1.4142135623730951)
        >>> mean_std([1.0]), mean_std([1.0, float("nan")])
        ((1.0, nan), (nan, nan))
    """
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    finite = all(math.isfinite(v) for v in values)
    std = statistics.stdev(values) if len(values) > 1 and finite else math.nan
    return statistics.fmean(values), std


def radii_after(summaries: Iterable[dict]) -> dict[str, float]:
    """Mean radius per map kind after pre-training (``summary["pretrain"]["after"]``, keys
    ``"kind layer"``), over layers and runs; empty without a pre-training report."""
    per_kind: dict[str, list[float]] = defaultdict(list)
    for s in summaries:
        pretrain = s.get("pretrain")
        after = pretrain.get("after") if isinstance(pretrain, dict) else None
        for key, value in (after.items() if isinstance(after, dict) else ()):
            if _is(value, NUMBER) and isinstance(key, str) and key.split():
                per_kind[key.split()[0]].append(float(value))
    return {kind: statistics.fmean(v) for kind, v in sorted(per_kind.items())}


def summary_table(groups: dict[str, list[dict]], *, split: str = "test") -> list[dict]:
    """One row per group of runs: metric mean/std over finished seeds, chance, radii after
    pre-training, and counts of seeds, diverged, crashed (or unfinished) and damaged runs.

    A damaged run (:func:`run_status`) whose summary is readable is averaged and counted as
    damaged; one whose summary is not counts only as damaged."""
    rows = []
    for label, runs in groups.items():
        s = [r["summary"] for r in runs if r.get("summary")]
        m, sd = mean_std([x[split]["metric"] for x in s])
        loss_m, loss_sd = mean_std([x[split]["loss"] for x in s])
        damaged = sum(run_status(r) == "damaged" for r in runs)
        rows.append({"setting": label, "metric": s[0]["metric"] if s else "metric",
                     "mean": m, "std": sd, "loss_mean": loss_m, "loss_std": loss_sd,
                     "chance": s[0]["chance"] if s else math.nan, "seeds": len(s),
                     "diverged": sum(x["status"] == "diverged" for x in s),
                     "crashed": sum(not r.get("summary") and run_status(r) != "damaged"
                                    for r in runs),
                     "damaged": damaged, "radii": radii_after(s)})
    return rows


def markdown_table(rows: Iterable[dict], *, split: str = "test") -> str:
    """Render :func:`summary_table` rows as a Markdown table (a radii column when any row
    has radii after pre-training); a std over fewer than two seeds prints as ``-``.

    Example:
        >>> row = {"setting": "a", "metric": "mse", "mean": 0.5, "std": 0.0, "loss_mean": 0.5,
        ...        "loss_std": 0.0, "chance": 1.0, "seeds": 1, "diverged": 0}
        >>> markdown_table([row]).splitlines()[-1]
        '| a | 0.5000 +- - | 0.5000 +- - | 1.0000 | 1 | 0 | 0 | 0 |'
    """
    rows = list(rows)
    metrics = {r["metric"] for r in rows}
    # rows of different tasks can carry different metrics: then name it in each row
    metric = metrics.pop() if len(metrics) == 1 else "metric"
    radii = any(r.get("radii") for r in rows)
    head = (f"| setting | {split} {metric} (mean +- std) | {split} loss | chance {metric} "
            f"| seeds | diverged | crashed | damaged |"
            + (" radii after pre-training |" if radii else ""))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        named = "" if metric != "metric" else f" {r['metric']}"
        seeds = r.get("seeds", 2)
        line = (f"| {r['setting']} | {_pm(r['mean'], r['std'], seeds)}{named} | "
                f"{_pm(r['loss_mean'], r['loss_std'], seeds)} | {_num(r['chance'])} | "
                f"{seeds} | {r.get('diverged', 0)} | {r.get('crashed', 0)} | "
                f"{r.get('damaged', 0)} |")
        if radii:
            line += " " + " ".join(f"{k}={v:.3f}" for k, v in r.get("radii", {}).items()) + " |"
        lines.append(line)
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else ("-" if math.isnan(value) else f"{value}")


def _pm(mean: float, std: float, seeds: int) -> str:
    """``mean +- std``; ``-`` for what is undefined (no seeds; one seed's std)."""
    if seeds < 1:
        return "- +- -"
    return f"{mean:.4f} +- {f'{std:.4f}' if seeds > 1 else '-'}"


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
    done = [(settings_of(r), r["summary"]) for r in _done(runs)]
    done = [(f, s) for f, s in done if math.isfinite(s[split]["metric"])]
    rows = []
    for key in varying_keys(_done(runs)):
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
    done = [(settings_of(r), r["summary"]) for r in _done(runs)]
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
def plot_curves(runs: Sequence[dict] | dict[str, list[dict]], path: str | Path, *,
                key: str = "train_loss", chance: float | None = None) -> Path:
    """Save :func:`curves_figure` as ``path`` (PNG)."""
    fig = curves_figure(runs, key=key, chance=chance)
    fig.savefig(path, dpi=120)
    return Path(path)


def curves_figure(runs: Sequence[dict] | dict[str, list[dict]], *, key: str = "train_loss",
                  chance: float | None = None) -> Any:
    """Learning curves (``key`` of metrics.jsonl), one axes per (task, cell): mean over
    seeds with a min-max band, a line per setting, the chance level in every axes.

    Lines are labelled by the keys that vary within the axes and apply to the setting
    (:func:`group_runs`), or by the keys of ``runs`` when it is a dict ``{label: runs}``; no
    two lines of an axes share colour and line style (:func:`stablernn.plotting.line_style`).
    The y axis names the metric (``valid accuracy``). Only finished runs are drawn.

    Args:
        runs: run dicts (:func:`load_runs`), or labelled groups of them.
        key: a column of metrics.jsonl, e.g. ``train_loss`` or ``valid_metric``.
        chance: the chance line's value (default: the summaries' ``chance`` for metrics,
            ``chance_loss`` for losses).

    Returns:
        The matplotlib Figure.

    Example:
        >>> runs = load_runs("runs/sweeps/lsc_depth")              # doctest: +SKIP
        >>> fig = curves_figure(runs, key="valid_metric")          # doctest: +SKIP
        >>> [ax.get_title() for ax in fig.axes]                    # doctest: +SKIP
        ['sl_digits, gru', 'sl_digits, lstm']
    """
    from .plotting import facet_axes, new_figure

    facets = _facets(runs)
    cols = min(len(facets), 3) or 1
    wide = any(len(groups) > 5 for groups in facets.values())  # room for outside legends
    fig = new_figure(((8.0 if wide else 5.0) * cols, 3.6 * math.ceil(max(len(facets), 1) / cols)))
    if not facets:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center")
        return fig
    for ax, ((task, cell), groups) in zip(facet_axes(fig, len(facets)), facets.items()):
        _plot_facet(ax, groups, key, chance)
        ax.set_title(f"{task}, {cell}")
    return fig


def _facets(runs: Sequence[dict] | dict[str, list[dict]]) -> dict[tuple, dict[str, list]]:
    """``{(task, cell): {label: [run, ...]}}`` of the finished runs, sorted by facet."""
    labelled = isinstance(runs, dict)
    pairs = [(label, r) for label, rs in runs.items() for r in rs] if labelled else \
        [(None, r) for r in runs]
    split: dict[tuple, list] = defaultdict(list)
    for label, run in pairs:
        if run.get("summary") and run.get("config") is not None:
            flat = settings_of(run)
            split[(flat.get("task.name"), flat.get("model.cell"))].append((label, run))
    facets = {}
    for facet in sorted(split, key=_ident):
        if labelled:
            groups: dict[str, list] = defaultdict(list)
            for label, run in split[facet]:
                groups[label].append(run)
            facets[facet] = dict(groups)
        else:
            facets[facet] = group_runs([run for _, run in split[facet]])
    return facets


def _plot_facet(ax: Any, groups: dict[str, list[dict]], key: str,
                chance: float | None) -> None:
    from .plotting import line_style

    summaries = [r["summary"] for runs in groups.values() for r in runs]
    for i, (label, runs) in enumerate(groups.items()):
        steps, mean, low, high = _mean_curve(runs, key)
        if steps:
            style = line_style(i)
            ax.plot(steps, mean, label=label, **style)
            ax.fill_between(steps, low, high, alpha=0.15, color=style["color"], lw=0)
    field = "chance_loss" if key.endswith("loss") else "chance" if key.endswith("metric") \
        else None
    levels = [chance] if chance is not None else \
        sorted({s[field] for s in summaries if field and math.isfinite(s[field])})
    for j, level in enumerate(levels):
        ax.axhline(level, color="black", ls=":", lw=1, label="chance" if j == 0 else "_chance")
    ax.set(xlabel="step", ylabel=_axis_label(key, summaries))
    handles = ax.get_legend_handles_labels()[0]
    if len(handles) > 6:  # a long legend beside the axes, not over the curves
        ax.legend(frameon=False, fontsize="x-small", loc="upper left", bbox_to_anchor=(1, 1))
    elif handles:
        ax.legend(frameon=False, fontsize="small")


def _mean_curve(runs: list[dict], key: str) -> tuple[list, list, list, list]:
    """Steps, mean, min and max of ``key`` over the runs that logged it at each step (finite
    numbers only: a damaged or NaN value leaves a gap, not a crash)."""
    at: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        points = {row["step"]: row[key] for row in run["metrics"]
                  if _is(row.get(key), NUMBER) and math.isfinite(row[key])
                  and _is(row.get("step"), int)}
        for step, value in points.items():
            at[step].append(float(value))
    steps = sorted(at)
    return (steps, [statistics.fmean(at[s]) for s in steps], [min(at[s]) for s in steps],
            [max(at[s]) for s in steps])


def _axis_label(key: str, summaries: list[dict]) -> str:
    """``valid_metric`` -> ``valid accuracy`` (the summaries' metric); else the key."""
    split, _, what = key.partition("_")
    if what == "metric":
        names = sorted({s["metric"] for s in summaries})
        return f"{split} {' / '.join(names)}" if names else key.replace("_", " ")
    return key.replace("_", " ")


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


def _plot_all(runs: list[dict], out: Path, flow: bool) -> tuple[list, list]:
    """Curves per task (one axes per cell) and, with ``flow``, a gradient-flow heat-map per
    setting; a plot that fails becomes a note (a plot must not sink the report)."""
    images, notes = [], []
    tasks: dict[str, list[dict]] = defaultdict(list)
    for run in _done(runs):
        tasks[settings_of(run)["task.name"]].append(run)
    for task, task_runs in sorted(tasks.items()):
        for key in ("train_loss", "valid_metric"):
            name = f"curves_{_slug(task)}_{key}.png"
            if _try(notes, f"{task} {key} curves", plot_curves, task_runs, out / name, key=key):
                images.append((f"{task}: {key.replace('_', ' ')}", name))
        for (_, cell), groups in _facets(task_runs).items() if flow else ():
            for label, group in groups.items():
                name = f"flow_{_slug(task)}_{_slug(cell)}_{_slug(label)}.png"
                seed = settings_of(group[0])[SEED]
                if _try(notes, f"gradient-flow plot for {task}, {cell}, {label}", plot_flow,
                        group[0], out / name, title=f"{task}, {cell}: {label}"):
                    images.append((f"{task}, {cell}, {label}: gradient flow (seed {seed})",
                                   name))
    return images, notes


def _try(notes: list[str], what: str, plot: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        plot(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - a plot must not sink the report
        notes.append(f"no {what}: {error_line(err)}")
        return False
    return True


def write_report(root: str | Path, out: str | Path | None = None, *, split: str = "test",
                 flow: bool = True, compare: Sequence[tuple[str, str]] = ()) -> Path:
    """Write the report of every run under ``root``: ``report.md``, ``table.csv``,
    ``win_rates.csv`` and PNG learning curves (and gradient-flow heat-maps with ``flow``).

    Renders what it can: a damaged file of a run (a metrics line cut short, a summary or
    config that is not JSON, an empty run directory) is skipped with a
    :class:`DamagedRunWarning` naming it, and the run is listed as ``damaged``.

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
        ValueError: ``split`` is not ``test`` or ``valid``, a bad ``compare`` selector, or
            ``out`` cannot be created (e.g. it is a file).

    Example:
        >>> write_report("runs/sweeps/lsc_depth", flow=False)  # doctest: +SKIP
        PosixPath('runs/sweeps/lsc_depth/report/report.md')
    """
    if split not in ("test", "valid"):
        raise ValueError(f"split must be 'test' or 'valid', got {split!r}")
    out = Path(out) if out is not None else Path(root) / "report"
    runs = load_runs(root, ignore=[out])
    wins = paired_win_rates(runs, split=split)
    wins += [compare_win_rate(runs, a, b, split=split) for a, b in compare]
    out = _out_dir(out)
    rows = summary_table(group_runs(runs), split=split)
    write_csv(rows, out / "table.csv")
    write_csv(wins, out / "win_rates.csv")
    images, notes = _plot_all(runs, out, flow)
    text = _report_text(root, runs, rows, wins, images, notes, split)
    (out / "report.md").write_text(text)
    return out / "report.md"


def _out_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the report folder {out}: {err.strerror or err}") \
            from None
    return out


def _report_text(root, runs, rows, wins, images, notes, split) -> str:
    status = Counter(run_status(r) for r in runs)
    lost = status["crashed"] + status["unfinished"]
    counts = (f"{len(runs)} runs in {len(rows)} settings; {lost} crashed or unfinished, "
              f"{status['damaged']} damaged.")
    parts = [f"# Report: {root}", "", counts, "", markdown_table(rows, split=split), ""]
    if wins:
        parts += ["## Paired win rates", "",
                  ("Settings that differ in one key (or the `--compare` selectors), paired by "
                   "seed (ties count half)."), "",
                  win_rate_table(wins), ""] + [f"- {win_rate_sentence(w)}" for w in wins] + [""]
    parts += _problem_table(runs)
    parts += [f"![{alt}]({name})\n" for alt, name in images]
    parts += [f"- {n}" for n in notes]
    return "\n".join(parts).rstrip() + "\n"


def _problem_table(runs: list[dict]) -> list[str]:
    """Markdown lines: every run that is not a plain result, with its status and problem."""
    lines = []
    for r in runs:
        status = run_status(r)
        if status in ("damaged", "crashed", "unfinished"):
            problem = "; ".join(r.get("problems") or []) or \
                (r.get("crash") or {}).get("error", f"no {SUMMARY} (unfinished)")
            averaged = "yes" if r.get("summary") and r.get("config") is not None else "no"
            lines.append(f"| `{Path(r['path']).name}` | {status} | {averaged} | "
                         f"{str(problem).replace('|', '/')} |")
    if not lines:
        return []
    return (["## Runs without a clean result", "", "| run | status | averaged | problem |",
             "|---|---|---|---|"] + lines + [""])
