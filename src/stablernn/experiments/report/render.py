"""Rendering report tables: Markdown tables of mean +- std and of paired win rates, win-rate
sentences, CSV files and the text of ``report.md``."""
from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..rundir import SUMMARY
from .load import run_status
from .stats import as_text, flatten


def markdown_table(rows: Iterable[dict], *, split: str = "test") -> str:
    """Render :func:`summary_table` rows as a Markdown table (a radii column when any row
    has radii after pre-training, a VAA column when any has VAA measures); a std over
    fewer than two seeds prints as ``-``.

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
    extras = [(key, title) for key, title in (("radii", "radii after pre-training"),
                                              ("vaa", "VAA (mean per stage)"))
              if any(r.get(key) for r in rows)]
    head = (f"| setting | {split} {metric} (mean +- std) | {split} loss | chance {metric} "
            f"| seeds | diverged | crashed | damaged |"
            + "".join(f" {title} |" for _, title in extras))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        named = "" if metric != "metric" else f" {r['metric']}"
        seeds = r.get("seeds", 2)
        line = (f"| {r['setting']} | {_pm(r['mean'], r['std'], seeds)}{named} | "
                f"{_pm(r['loss_mean'], r['loss_std'], seeds)} | {_num(r['chance'])} | "
                f"{seeds} | {r.get('diverged', 0)} | {r.get('crashed', 0)} | "
                f"{r.get('damaged', 0)} |")
        for key, _ in extras:
            line += " " + " ".join(f"{k}={v:.3f}" for k, v in r.get(key, {}).items()) + " |"
        lines.append(line)
    return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else ("-" if math.isnan(value) else f"{value}")


def _pm(mean: float, std: float, seeds: int) -> str:
    """``mean +- std``; ``-`` for what is undefined (no seeds; one seed's std)."""
    if seeds < 1:
        return "- +- -"
    return f"{mean:.4f} +- {f'{std:.4f}' if seeds > 1 else '-'}"


def win_rate_sentence(row: dict) -> str:
    """``"rho=0.5 beats rho=1 in 83% of 6 paired runs"``."""
    if row["key"] == "compare":
        a, b = row["a"], row["b"]
    else:
        name = row["key"].rsplit(".", 1)[-1]
        a, b = f"{name}={as_text(row['a'])}", f"{name}={as_text(row['b'])}"
    return f"{a} beats {b} in {100 * row['win_rate']:.0f}% of {row['pairs']} paired runs"


def win_rate_table(rows: Iterable[dict]) -> str:
    """Render :func:`paired_win_rates` rows as a Markdown table."""
    lines = ["| key | a | b | a wins | ties | b wins | pairs | a win rate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['key']} | {as_text(r['a'])} | {as_text(r['b'])} | {r['wins']} | "
                     f"{r['ties']} | {r['losses']} | {r['pairs']} | "
                     f"{100 * r['win_rate']:.0f}% |")
    return "\n".join(lines)


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    """Write dict rows as CSV (nested dicts, e.g. radii, become ``radii.<kind>`` columns)."""
    flat = [{k: v for k, v in flatten(r).items() if v != {}} for r in rows]
    fields = list(dict.fromkeys(k for r in flat for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)
    return Path(path)


def report_text(root: str | Path, runs: list[dict], rows: list[dict], wins: list[dict],
                images: list[tuple[str, str]], notes: list[str], split: str) -> str:
    """The text of ``report.md``: counts, the table, win rates, problem runs, images, notes."""
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
