"""Report plots: learning curves (mean over seeds with a min-max band, one axes per task and
cell), the stability monitor's curves over training, and gradient-flow heat-maps of trained
runs."""
from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..rundir import error_line
from .load import NUMBER, finished_runs, is_a
from .stats import SEED, group_runs, ident, settings_of


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
    from ...plotting import facet_axes, new_figure

    facets = _facets(runs)
    cols = min(len(facets), 3) or 1
    wide = any(len(groups) > 5 for groups in facets.values())  # room for outside legends
    fig = new_figure(((8.0 if wide else 5.0) * cols, 3.6 * math.ceil(max(len(facets), 1) / cols)))
    if not facets:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center")
        return fig
    axes = facet_axes(fig, len(facets))  # exactly one per facet
    for ax, ((task, cell), groups) in zip(axes, facets.items(), strict=True):
        _plot_facet(ax, groups, key, chance)
        ax.set_title(f"{task}, {cell}")
    return fig


def plot_stability(runs: Sequence[dict] | dict[str, list[dict]], path: str | Path) -> Path:
    """Save :func:`stability_figure` as ``path`` (PNG)."""
    fig = stability_figure(runs)
    fig.savefig(path, dpi=120)
    return Path(path)


def stability_figure(runs: Sequence[dict] | dict[str, list[dict]]) -> Any:
    """The stability monitor's curves over training (``run.monitor_every``, docs/monitor.md):
    one row per (task, cell), one axes per :func:`stability_keys` key (each layer's time radius,
    the leading Lyapunov exponent), a line per setting (mean over seeds, min-max band), with the
    stable level (radius 1, exponent 0) dotted.

    Example:
        >>> fig = stability_figure(load_runs("runs/reproduce/floss"))  # doctest: +SKIP
    """
    from ...plotting import new_figure

    facets = _facets(runs)
    keys = stability_keys([r for groups in facets.values() for rs in groups.values() for r in rs])
    cols = max(len(keys), 1)
    fig = new_figure((4.6 * cols, 3.4 * max(len(facets), 1)))
    if not facets or not keys:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no stability records (run.monitor_every)", ha="center", va="center")
        return fig
    for row, ((task, cell), groups) in enumerate(facets.items()):
        for col, key in enumerate(keys):
            ax = fig.add_subplot(len(facets), cols, row * cols + col + 1)
            _plot_facet(ax, groups, key, None)
            ax.axhline(0.0 if key.startswith("lyapunov") else 1.0, color="black", ls=":", lw=1)
            ax.set_title(f"{task}, {cell}: {key}", fontsize="small")
            if col:  # one legend per row
                legend = ax.get_legend()
                if legend is not None:
                    legend.remove()
    return fig


def _facets(runs: Sequence[dict] | dict[str, list[dict]]) -> dict[tuple, dict[str, list]]:
    """``{(task, cell): {label: [run, ...]}}`` of the finished runs, sorted by facet."""
    labelled = isinstance(runs, dict)
    pairs: list[tuple[str | None, dict]]
    if isinstance(runs, dict):
        pairs = [(label, r) for label, rs in runs.items() for r in rs]
    else:
        pairs = [(None, r) for r in runs]
    split: dict[tuple, list] = defaultdict(list)
    for label, run in pairs:
        if run.get("summary") and run.get("config") is not None:
            flat = settings_of(run)
            split[(flat.get("task.name"), flat.get("model.cell"))].append((label, run))
    facets = {}
    for facet in sorted(split, key=ident):
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
    from ...plotting import line_style

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
                  if is_a(row.get(key), NUMBER) and math.isfinite(row[key])
                  and is_a(row.get("step"), int)}
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
    from ...plotting import new_figure
    from ...stability import gradient_flow
    from ...train.loop import load_trained

    model, x = load_trained(run["path"], batch_size=batch)  # x: (batch, T, D) test inputs
    fig = new_figure((6.0, 3.0))
    gradient_flow(model, x).plot(fig.add_subplot(), title=title or None)
    fig.savefig(path, dpi=120)
    return Path(path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:120] or "all"


def plot_all(runs: list[dict], out: Path, flow: bool) -> tuple[list, list]:
    """Curves per task (one axes per cell; RL runs also their greedy return) and, with
    ``flow``, a gradient-flow heat-map per setting; a plot that fails becomes a note (a plot
    must not sink the report)."""
    images: list[tuple[str, str]] = []  # (caption, file name)
    notes: list[str] = []
    tasks: dict[str, list[dict]] = defaultdict(list)
    for run in finished_runs(runs):
        tasks[settings_of(run)["task.name"]].append(run)
    for task, task_runs in sorted(tasks.items()):
        logged = {k for run in task_runs for row in run["metrics"] for k in row}
        extra = ["valid_return"] if "valid_return" in logged else []  # RL: the greedy return
        for key in ["train_loss", "valid_metric", *extra]:
            name = f"curves_{_slug(task)}_{key}.png"
            if _try(notes, f"{task} {key} curves", plot_curves, task_runs, out / name, key=key):
                images.append((f"{task}: {key.replace('_', ' ')}", name))
        keys = stability_keys(task_runs)
        name = f"stability_{_slug(task)}.png"
        if keys and _try(notes, f"{task} stability curves", plot_stability, task_runs,
                         out / name):
            images.append((f"{task}: stability over training ({', '.join(keys)})", name))
        for (_, cell), groups in _facets(task_runs).items() if flow else ():
            for label, group in groups.items():
                name = f"flow_{_slug(task)}_{_slug(cell)}_{_slug(label)}.png"
                seed = settings_of(group[0])[SEED]
                if _try(notes, f"gradient-flow plot for {task}, {cell}, {label}", plot_flow,
                        group[0], out / name, title=f"{task}, {cell}: {label}"):
                    images.append((f"{task}, {cell}, {label}: gradient flow (seed {seed})",
                                   name))
    return images, notes


def stability_keys(runs: Sequence[dict]) -> list[str]:
    """The stability curves worth a plot among the runs' metric rows (``run.monitor_every``,
    docs/monitor.md): the time radius of every layer and the leading Lyapunov exponent."""
    keys = {key for run in runs for row in run["metrics"] for key in row}
    layers = sorted((k for k in keys if k.startswith("radius/time/layer")),
                    key=lambda k: (len(k), k))  # layer2 before layer10
    return layers + (["lyapunov/0"] if "lyapunov/0" in keys else [])


def _try(notes: list[str], what: str, plot: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        plot(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - a plot must not sink the report
        notes.append(f"no {what}: {error_line(err)}")
        return False
    return True
