"""Reports: moved to :mod:`stablernn.experiments.report` (``load``, ``stats``, ``render``,
``plots``, ``write``); this module re-exports the public names so ``stablernn.report`` keeps
working.

    stablernn report runs/sweeps/lsc_depth     # -> runs/sweeps/lsc_depth/report/report.md
"""
# ruff: noqa: F401 - a module of re-exports (its __all__ is every name imported here)
from .experiments.report import (
    NUMBER,
    SEED,
    SPLIT_FIELDS,
    SUMMARY_FIELDS,
    UNUSED_WHEN,
    DamagedRunWarning,
    applies,
    compare_win_rate,
    curves_figure,
    group_runs,
    load_run,
    load_runs,
    markdown_table,
    mean_std,
    paired_win_rates,
    parse_selector,
    plot_curves,
    plot_flow,
    plot_stability,
    radii_after,
    run_status,
    settings_of,
    stability_figure,
    summary_table,
    varying_keys,
    win_rate_sentence,
    win_rate_table,
    write_csv,
    write_report,
)
from .experiments.rundir import RUN_FILES

__all__ = [name for name in dir() if not name.startswith("_")]  # the names above
