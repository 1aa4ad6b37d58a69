"""Lazy matplotlib access for the report objects' ``.plot(ax=None)`` methods, and the helpers
that keep many-line plots readable: distinct line styles and small-multiple grids
(docs/sweeps.md, "Reports")."""
from __future__ import annotations

import math
from typing import Any

from ._checks import check_int, check_size

LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("", "o", "s", "^", "v", "D", "x", "+")
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
         "#7f7f7f", "#bcbd22", "#17becf")


def new_figure(figsize: tuple[float, float] = (6.0, 3.5)) -> Any:
    """A new matplotlib Figure (no pyplot, so no GUI backend is needed).

    Raises:
        ImportError: matplotlib is missing (the message names the ``plot`` extra).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'stablernn[plot]'") from err
    return Figure(figsize=figsize, layout="constrained")


def new_axes(ax: Any = None, *, figsize: tuple[float, float] = (6.0, 3.5)) -> Any:
    """``ax`` itself, or the axes of a new :func:`new_figure`."""
    return ax if ax is not None else new_figure(figsize).add_subplot()


def line_style(i: int, colours: tuple[str, ...] = TAB10) -> dict[str, Any]:
    """Colour, line style and marker of the ``i``-th line of an axes, so that no two of the
    first ``len(colours) * 4 * 8`` lines look alike: the colour cycles fastest, then the line
    style, then the marker (a 10-colour cycle alone gives two of 12 settings one colour).

    Example:
        >>> line_style(0) == line_style(10)
        False
        >>> line_style(10)["linestyle"], line_style(10)["color"] == line_style(0)["color"]
        ('--', True)
    """
    check_int("line index", i, low=0)
    if not colours:
        raise ValueError("colours must not be empty")
    n = len(colours)
    style: dict[str, Any] = {"color": colours[i % n],
                             "linestyle": LINESTYLES[(i // n) % len(LINESTYLES)]}
    marker = MARKERS[(i // (n * len(LINESTYLES))) % len(MARKERS)]
    if marker:
        style["marker"], style["markevery"] = marker, 0.2
    return style


def facet_axes(fig: Any, n: int, *, max_cols: int = 3) -> list[Any]:
    """``n`` axes on a grid of at most ``max_cols`` columns (small multiples); the unused
    slots of the last row are removed, so ``fig.axes`` has exactly ``n`` axes.

    Example:
        >>> fig = new_figure()
        >>> len(facet_axes(fig, 4)), len(fig.axes)
        (4, 4)
    """
    check_size("number of axes", n)
    cols = min(n, max_cols)
    grid = fig.subplots(math.ceil(n / cols), cols, squeeze=False).ravel()
    for ax in grid[n:]:
        ax.remove()
    return list(grid[:n])
