"""Reports from run directories: tables of mean +- std over seeds, paired win rates, learning
curves and gradient-flow plots (docs/sweeps.md, "Reports").

Split by concern: :mod:`.load` reads run directories, :mod:`.stats` groups runs into settings
and computes means and paired win rates, :mod:`.render` writes tables and text, :mod:`.plots`
draws, :mod:`.write` puts a report folder together and :mod:`.results` regenerates the marked
sections of docs/RESULTS.md.

    stablernn report runs/sweeps/lsc_depth     # -> runs/sweeps/lsc_depth/report/report.md
"""
from .load import (
    NUMBER,
    SPLIT_FIELDS,
    SUMMARY_FIELDS,
    DamagedRunWarning,
    load_run,
    load_runs,
    run_status,
)
from .plots import curves_figure, plot_curves, plot_flow, plot_stability, stability_figure
from .render import markdown_table, win_rate_sentence, win_rate_table, write_csv
from .stats import (
    SEED,
    UNUSED_WHEN,
    applies,
    compare_win_rate,
    group_runs,
    mean_std,
    paired_win_rates,
    parse_selector,
    radii_after,
    settings_of,
    summary_table,
    vaa_stages,
    varying_keys,
)
from .write import write_report

__all__ = ["NUMBER", "SEED", "SPLIT_FIELDS", "SUMMARY_FIELDS", "UNUSED_WHEN", "DamagedRunWarning",
           "applies", "compare_win_rate", "curves_figure", "group_runs", "load_run", "load_runs",
           "markdown_table", "mean_std", "paired_win_rates", "parse_selector", "plot_curves",
           "plot_flow", "plot_stability", "radii_after", "run_status", "settings_of",
           "stability_figure", "summary_table", "vaa_stages", "varying_keys", "win_rate_sentence",
           "win_rate_table", "write_csv", "write_report"]
