"""Regenerate the marked sections of a results page (docs/RESULTS.md) from run directories.

A section is the text between two markers; the opening one names where its runs come from,
and report options::

    <!-- results: benchmarks/reproduce/lsc_depth.toml --compare pretrain.method=lsc a=b -->
    (generated: the commands, the table of mean +- std, the paired win rates)
    <!-- /results -->

The source is a sweep file (its runs are the trials' run directories under its ``root``) or
``demo`` (the runs of ``stablernn demo``; options ``--seeds N`` and ``--root DIR``). Report
options: ``--split valid`` and ``--compare A B`` (repeatable), as for ``stablernn report``.
Only the text between markers changes, every section is computed before the page is written,
and the output depends on the runs alone, so a second run changes nothing
(docs/sweeps.md, "Results pages").

    stablernn report --results                 # rewrites docs/RESULTS.md's marked sections
"""
from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..._io import atomic_write_text
from ..rundir import SUMMARY, run_dir_for
from .load import load_run
from .render import markdown_table, win_rate_table
from .stats import compare_win_rate, group_runs, paired_win_rates, summary_table

PAGE = "docs/RESULTS.md"
OPEN, CLOSE = "<!-- results:", "<!-- /results -->"
SECTION = re.compile(r"^<!-- results: (?P<spec>.+?) -->\n(?P<body>.*?)^<!-- /results -->$",
                     re.MULTILINE | re.DOTALL)
DEMO = "demo"
THIS = "stablernn report --results"  # how a page says its sections are regenerated


@dataclass
class Section:
    """One marked section: where its runs come from and how they are reported."""

    source: str  # a sweep .toml, or "demo"
    split: str = "test"
    compare: tuple[tuple[str, str], ...] = ()
    seeds: int = 3  # demo only
    root: str = "runs/demo"  # demo only


def parse_section(spec: str) -> Section:
    """The marker text after ``results:`` -> :class:`Section`.

    Raises:
        ValueError: an unknown option, or an option the source does not take.

    Example:
        >>> parse_section("demo --seeds 5").seeds
        5
        >>> parse_section("x.toml --compare a=1 b=2").compare
        (('a=1', 'b=2'),)
    """
    words = shlex.split(spec)
    parser = _SpecParser(prog=f"{OPEN} {spec}", add_help=False)
    parser.add_argument("source")
    parser.add_argument("--split", choices=["test", "valid"], default="test")
    parser.add_argument("--compare", nargs=2, action="append", default=[])
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--root")
    args = parser.parse_args(words)
    demo_only = [f"--{k}" for k in ("seeds", "root") if getattr(args, k) is not None]
    if args.source != DEMO and demo_only:
        raise ValueError(f"results marker {spec!r}: {', '.join(demo_only)} only go with "
                         f"`demo`; a sweep's runs are set by its file")
    if args.source == DEMO and args.compare:
        raise ValueError(f"results marker {spec!r}: --compare goes with a sweep file, not demo")
    demo = {k: v for k, v in (("seeds", args.seeds), ("root", args.root)) if v is not None}
    return Section(args.source, args.split, tuple(map(tuple, args.compare)), **demo)


class _SpecParser(argparse.ArgumentParser):
    """argparse that raises a ValueError naming the marker instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(f"bad results marker `{self.prog} -->`: {message}")


def render_section(section: Section) -> str:
    """The generated text of one section: the commands that made its runs and its table,
    then the table of mean +- std (and, for a sweep, the paired win rates).

    Raises:
        FileNotFoundError: a run directory of the section is missing or unfinished (the
            message gives the command that produces it).
    """
    if section.source == DEMO:
        return _demo_text(section)
    from ..spec import load_sweep

    sweep = load_sweep(section.source)
    made_by = f"stablernn sweep {shlex.quote(section.source)}"
    runs = _load(sweep.run_dirs(), made_by)
    report = ["stablernn", "report", sweep.root] + \
        (["--split", section.split] if section.split != "test" else []) + \
        [w for pair in section.compare for w in ("--compare", *pair)]
    wins = paired_win_rates(runs, split=section.split)
    wins += [compare_win_rate(runs, a, b, split=section.split) for a, b in section.compare]
    table = markdown_table(summary_table(group_runs(runs), split=section.split),
                           split=section.split)
    parts = [_commands(made_by, shlex.join(report), len(runs), sweep.root), table]
    return "\n\n".join(parts + ([win_rate_table(wins)] if wins else []))


def _demo_text(section: Section) -> str:
    from ...demo import demo_configs

    groups = demo_configs(section.root, section.seeds, smoke=False)
    made_by = shlex.join(["stablernn", "demo", "--seeds", str(section.seeds)] +
                         (["--root", section.root] if section.root != "runs/demo" else []))
    runs = {label: _load([run_dir_for(c) for c in cfgs], made_by)
            for label, cfgs in groups.items()}
    count = sum(len(r) for r in runs.values())
    table = markdown_table(summary_table(runs, split=section.split), split=section.split)
    return "\n\n".join([_commands(made_by, made_by, count, f"{section.root}/runs"), table])


def _commands(made_by: str, report: str, count: int, where: str) -> str:
    return (f"Runs: `{made_by}` ({count} run directories in `{where}`); table: `{report}`. "
            f"Generated by `{THIS}`: edits between the markers are overwritten.")


def _load(paths: list[Path], made_by: str) -> list[dict]:
    """The finished runs at ``paths``, or one error naming what is missing and the fix."""
    missing = [p for p in paths if not (p / SUMMARY).is_file()]
    if missing:
        what = "is missing or unfinished" if len(missing) == 1 else \
            f"and {len(missing) - 1} more of {len(paths)} are missing or unfinished"
        raise FileNotFoundError(f"run directory {missing[0]} {what}; produce the runs with "
                                f"`{made_by}` (from the repository root), then run `{THIS}` "
                                f"again")
    return [load_run(p) for p in paths]


def write_results(page: str | Path = PAGE) -> list[str]:
    """Rewrite every marked section of ``page`` from its run directories; nothing else of the
    page changes, and the page is written only when some section changed.

    Returns:
        The marker texts of the page's sections, in page order.

    Raises:
        FileNotFoundError: no such page, or a section's run directory is missing (the page is
            then left as it was).
        ValueError: the page has no sections, an unclosed marker or a bad marker.

    Example:
        >>> write_results("docs/RESULTS.md")  # doctest: +SKIP
        ['benchmarks/reproduce/lsc_learning_digits.toml --compare ...', ...]
    """
    page = Path(page)
    if not page.is_file():
        raise FileNotFoundError(f"no results page {page}")
    text = page.read_text(encoding="utf-8")
    sections = list(SECTION.finditer(text))
    _check_markers(page, text, sections)
    bodies = {m.group("spec"): render_section(parse_section(m.group("spec"))) + "\n"
              for m in sections}
    new = SECTION.sub(lambda m: f"{OPEN} {m.group('spec')} -->\n{bodies[m.group('spec')]}"
                                f"{CLOSE}", text)
    if new != text:
        atomic_write_text(page, new)
    return [m.group("spec") for m in sections]


def _check_markers(page: Path, text: str, sections: list[re.Match]) -> None:
    opened = [i for i, line in enumerate(text.splitlines(), 1) if line.startswith(OPEN)]
    if not opened:
        raise ValueError(f"{page} has no `{OPEN} SOURCE -->` ... `{CLOSE}` sections")
    if len(opened) != len(sections) or text.count(CLOSE) != len(sections):
        closed = {text.count("\n", 0, m.start()) + 1 for m in sections}
        bad = [i for i in opened if i not in closed]
        where = f"line {bad[0]}" if bad else "a stray closing marker"
        raise ValueError(f"{page}: unbalanced results markers at {where}: each `{OPEN} ... -->` "
                         f"line needs its own `{CLOSE}` line below it")
