"""``write_report``: load the run directories under a folder, compute the statistics and
render ``report.md``, ``table.csv``, ``win_rates.csv`` and plots into its report folder."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..rundir import REPORT, REPORT_DIR, TABLE, WIN_RATES
from .load import load_runs
from .plots import plot_all
from .render import report_text, write_csv
from .stats import compare_win_rate, group_runs, paired_win_rates, summary_table


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
    out = Path(out) if out is not None else Path(root) / REPORT_DIR
    runs = load_runs(root, ignore=[out])
    wins = paired_win_rates(runs, split=split)
    wins += [compare_win_rate(runs, a, b, split=split) for a, b in compare]
    out = _out_dir(out)
    rows = summary_table(group_runs(runs), split=split)
    write_csv(rows, out / TABLE)
    write_csv(wins, out / WIN_RATES)
    images, notes = plot_all(runs, out, flow)
    text = report_text(root, runs, rows, wins, images, notes, split)
    (out / REPORT).write_text(text)
    return out / REPORT


def _out_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the report folder {out}: {err.strerror or err}") \
            from None
    return out
