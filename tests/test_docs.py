"""Every code block of docs/*.md and README.md runs or is checked, so the pages never rot.

The rule (also in docs/robustness.md, "How the docs are tested"), by the fence's language:

- ``python``: the python blocks of one page run in order in one shared namespace, in a temporary
  working directory (nothing is written into the repository), with ``MPLBACKEND=Agg`` and
  warnings as errors (pytest's setting). A block must show the set-up it needs (imports, a tiny
  model, inputs) earlier on its page, and be sized to run in seconds: a page over
  ``PAGE_SECONDS`` fails. Errors name the page's own line.
- ``bash``, ``sh``, ``shell``, ``console``: every command (``console``: the lines that start with
  ``$ ``; ``\\`` continuations joined, comments dropped) must be one of
  ``stablernn ...`` (parsed by ``stablernn.cli.build_parser()``; ``train`` commands also build
  and validate their config), ``./dev JOB ...`` (a job of the ``./dev`` script or a tool it can
  run), ``python FILE.py ...`` (the file exists in the repository) or ``pip install ...``.
  Commands are checked, not run: they are full-size.
- ``toml`` parses with ``tomllib``; a toml block with a ``[base]``, ``[grid]`` or ``[zip]``
  table is a sweep file and must pass ``stablernn.sweep.parse_sweep``. ``json`` parses with
  ``json.loads``.
- ``text``: illustrative (printed tables, formulas, output); not run. ``mermaid``: a diagram,
  drawn by the docs site (``./dev docs``) and by GitHub; not run.
- A fence without a language, or with any other language, fails: every block says what it is.

Relative links and images of every page must point at existing files and headings.
The API pages (``docs/api/*.md``) render docstrings: every module, class and function they
show must have one. ``./dev docs`` builds the site with ``--strict`` (links, anchors, navigation).
"""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
import sys
import time
import tomllib
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
SHELLS = {"bash", "sh", "shell", "console"}
KNOWN = SHELLS | {"python", "toml", "json", "text", "mermaid"}
PAGE_SECONDS = 30  # generous on a busy 1-thread CPU; the whole docs test aims at < 60 s
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([^\s`]*)")


@dataclasses.dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the first line of code (after the opening fence)
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{shown(self.page)}:{self.line}"


def blocks_of(page: Path, text: str | None = None) -> list[Block]:
    """The fenced blocks of a markdown page; an unclosed fence is a block of language '?'."""
    text = page.read_text(encoding="utf-8") if text is None else text
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = match.groups()
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j].strip().startswith(fence[0] * len(fence))
                    and not lines[j].strip().strip(fence[0])), None)
        body = lines[i + 1:end if end is not None else len(lines)]
        code = "\n".join(line.removeprefix(indent) for line in body)
        out.append(Block(page, i + 2, lang.lower() if end is not None else "?", code + "\n"))
        i = (end if end is not None else len(lines)) + 1
    return out


BLOCKS = [b for page in PAGES for b in blocks_of(page)]
PYTHON_PAGES = sorted({b.page for b in BLOCKS if b.lang == "python"})
OTHER = [b for b in BLOCKS if b.lang != "python"]


def test_pages_have_blocks_to_check():
    """The parser finds the blocks (a broken fence regex would silently check nothing)."""
    assert len(PYTHON_PAGES) >= 8 and len(OTHER) >= 10, (len(PYTHON_PAGES), len(OTHER))


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[p.name for p in PYTHON_PAGES])
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    start = time.perf_counter()
    run_python_blocks([b for b in BLOCKS if b.page == page and b.lang == "python"])
    seconds = time.perf_counter() - start
    assert seconds < PAGE_SECONDS, (
        f"{shown(page)}: its python blocks took {seconds:.0f} s; the docs test allows "
        f"{PAGE_SECONDS} s a page: shrink the sizes shown on the page (e.g. steps=20)")


def run_python_blocks(blocks: list[Block]) -> None:
    """Run the blocks in order in one namespace; an error names the page and line."""
    namespace = {"__name__": "__main__"}  # a page may show the `if __name__ ...` guard
    try:
        for block in blocks:
            page = str(block.page)
            try:  # padded so that tracebacks give the page's own line numbers
                exec(compile("\n" * (block.line - 1) + block.code, page, "exec"),  # noqa: S102
                     namespace)
            except Exception as err:
                lines = [f.lineno for f in traceback.extract_tb(err.__traceback__)
                         if f.filename == page] or [getattr(err, "lineno", block.line)]
                raise AssertionError(f"{shown(block.page)}:{lines[-1]} (block at line "
                                     f"{block.line}): {type(err).__name__}: {err}") from err
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


def shown(page: Path) -> str:
    """``docs/x.md`` for a page of the repository, else its name."""
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


@pytest.mark.parametrize("block", OTHER, ids=[f"{b.page.name}:{b.line}-{b.lang}" for b in OTHER])
def test_block_is_valid(block):
    assert block.lang in KNOWN, (
        f"{block.where}: fence language {block.lang!r} is not checked; use one of "
        f"{', '.join(sorted(KNOWN))} ('text' for illustrative output, '?' means unclosed)")
    if block.lang in SHELLS:
        for command in shell_commands(block):
            check_command(block, command)
    elif block.lang == "toml":
        data = tomllib.loads(block.code)
        if {"base", "grid", "zip"} & set(data):
            from stablernn.sweep import parse_sweep

            parse_sweep(data)
    elif block.lang == "json":
        json.loads(block.code)


def shell_commands(block: Block) -> list[list[str]]:
    """The commands of a shell block as argument lists (comments, prompts, output dropped)."""
    text = block.code.replace("\\\n", " ")
    lines = text.splitlines()
    if block.lang == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    commands = [shlex.split(line, comments=True) for line in lines]
    return [c for c in commands if c]


def check_command(block: Block, argv: list[str]) -> None:
    where = f"{block.where}: {shlex.join(argv)}"
    head, rest = argv[0], argv[1:]
    if head == "stablernn":
        check_stablernn(where, rest)
    elif head == "./dev":
        job = rest[0] if rest else "test"
        assert job in dev_jobs() or (Path(sys.executable).parent / job).exists(), (
            f"{where}: ./dev knows the jobs {sorted(dev_jobs())} and the tools of the "
            f"environment; {job!r} is neither")
        if job == "demo":
            check_stablernn(where, ["demo", *rest[1:]])
        elif job == "stablernn":
            check_stablernn(where, rest[1:])
    elif head in ("python", "python3"):
        script = next((a for a in rest if a.endswith(".py")), None)
        assert script and (ROOT / script).is_file(), f"{where}: no such script in the repository"
    else:
        assert head in ("pip", "pip3") and rest[:1] == ["install"], (
            f"{where}: shell blocks may run stablernn, ./dev, python FILE.py or pip install; "
            "put other commands in a ```text block")


def check_stablernn(where: str, args: list[str]) -> None:
    from stablernn.cli import SHORTHANDS, build_parser

    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"{where}: the stablernn parser rejects it (see stderr)") from exc
    if parsed.command == "train":
        from stablernn.registry import registries
        from stablernn.train import Config, apply_overrides
        from stablernn.train.config import validate

        cfg = Config()
        shorthand = [f"{SHORTHANDS[k]}={v}" for k, v in vars(parsed).items()
                     if k in SHORTHANDS and v is not None]
        validate(apply_overrides(cfg, shorthand + (parsed.set or [])), registries())


def dev_jobs() -> set[str]:
    """The named jobs of the ./dev script's case statement (demo, test, ...)."""
    text = (ROOT / "dev").read_text()
    return set(re.findall(r"^\s*([a-z][\w-]*)\)", text, flags=re.MULTILINE))


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCED.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in re.findall(r"^#+\s+(.*)$", text, flags=re.MULTILINE)}


FENCED = re.compile(r"^([ \t]*)```.*?^\1```", flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_resolve(page):
    """Relative links and images of a page point at files (and headings) that exist."""
    broken = broken_links(page)
    assert not broken, f"{shown(page)}: broken links: {'; '.join(broken)}"


def broken_links(page: Path) -> list[str]:
    text = FENCED.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    return broken


def test_block_parser_and_command_checker():
    """The checker itself: fences, languages, and commands it must reject or accept."""
    page = ROOT / "tests" / "fixture.md"
    text = ("x\n```python\na = 1\n```\n\n  ```bash\n  stablernn list \\\n    cells\n  ```\n"
            "```\nuntagged\n```\n```toml\n")
    blocks = blocks_of(page, text)
    assert [(b.line, b.lang) for b in blocks] == [(3, "python"), (7, "bash"), (11, ""),
                                                  (14, "?")]
    assert shell_commands(blocks[1]) == [["stablernn", "list", "cells"]]
    check_command(blocks[1], ["stablernn", "train", "--task", "copy", "--set", "run.steps=5"])
    check_command(blocks[1], ["./dev", "demo", "--smoke"])
    check_command(blocks[1], ["python", "examples/models_tour.py"])
    for bad in (["stablernn", "trian"], ["stablernn", "train", "--set", "run.nope=1"],
                ["stablernn", "train", "--task", "no_such_task"], ["./dev", "nope"],
                ["python", "examples/missing.py"], ["rm", "-rf", "runs"]):
        with pytest.raises((AssertionError, ValueError)):
            check_command(blocks[1], bad)
    assert {"demo", "test"} <= dev_jobs()


def test_link_checker(tmp_path):
    """The link checker finds a missing file and a missing heading, and accepts good links."""
    (tmp_path / "other.md").write_text(  # a heading between fences that follow blank lines
        "\n```text\nx\n```\n# Warm-up: learning (issue: W) (arXiv 2106.01001)\n\n```text\n```\n")
    page = tmp_path / "page.md"
    page.write_text("[a](other.md#warm-up-learning-issue-w-arxiv-210601001) [b](https://x.org)"
                    " [c](missing.md) [d](other.md#nope)\n```text\n[e](gone.md)\n```\n")
    assert broken_links(page) == ["missing.md (no such file)",
                                  "other.md#nope (no heading #nope in other.md)"]


def test_python_runner_names_page_and_line(tmp_path, monkeypatch):
    """Blocks share one namespace; a failure names the page's own line, syntax errors too."""
    monkeypatch.chdir(tmp_path)
    page = tmp_path / "page.md"
    text = "```python\na = 1\n```\ntext\n```python\nb = a + 1\nassert b == 3, b\n```\n"
    with pytest.raises(AssertionError, match=r"page\.md:7 \(block at line 6\): AssertionError"):
        run_python_blocks(blocks_of(page, text))
    with pytest.raises(AssertionError, match=r"page\.md:3 .*SyntaxError"):
        run_python_blocks(blocks_of(page, "```python\nx = 1\ny = (\n```\n"))
    run_python_blocks(blocks_of(page, text.replace("b == 3", "b == 2")))


API_PAGES = sorted((ROOT / "docs" / "api").glob("*.md"))
DIRECTIVE = re.compile(r"^::: ([\w.]+)((?:\n[ \t]+.*)*)", flags=re.MULTILINE)


def api_names(page: Path) -> list[str]:
    """The dotted names an API page renders: each ``::: ident`` block's own object and its
    public members (``options: members: [...]`` when given, else the module's ``__all__``)."""
    import importlib

    names = []
    for ident, options in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
        listed = re.search(r"members:\s*(\[.*\]|false)", options)
        obj = resolve(ident)
        names.append(ident)
        if listed and listed.group(1) == "false":
            continue
        members = (re.findall(r"\w+", listed.group(1)) if listed
                   else getattr(obj, "__all__", []) if isinstance(obj, type(importlib)) else [])
        names += [f"{ident}.{m}" for m in members]
    return names


def resolve(dotted: str):
    """The object named by a dotted path: the longest importable module, then attributes."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


@pytest.mark.parametrize("page", API_PAGES, ids=[p.name for p in API_PAGES])
def test_api_names_have_docstrings(page):
    """Every module, class and function an API page renders has a docstring (mkdocstrings would
    silently render an empty entry), and every name resolves."""
    names = api_names(page)
    assert names, f"{shown(page)}: no '::: module' blocks found"
    missing = undocumented(names)
    assert not missing, f"{shown(page)}: public names without a docstring: {', '.join(missing)}"


def undocumented(names: list[str]) -> list[str]:
    """The modules, classes and functions among ``names`` without a docstring (data such as a
    registry dict is skipped: it documents itself in its module)."""
    import inspect

    return [n for n in names if (inspect.ismodule(o := resolve(n)) or inspect.isclass(o)
                                 or inspect.isroutine(o)) and not inspect.getdoc(o)]


def test_api_checker_finds_a_missing_docstring(tmp_path, monkeypatch):
    """The docstring check reads ``::: ident`` blocks and their member lists, and reports an
    undocumented function."""
    (tmp_path / "undoc_mod.py").write_text('"""A module."""\n__all__ = ["f", "g", "N"]\n'
                                           'def f():\n    """Documented."""\n'
                                           'def g():\n    pass\nN = 3\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    page = tmp_path / "page.md"
    page.write_text("# x\n\n::: undoc_mod\n\n::: stablernn.stack\n    options:\n"
                    "      members: [DeepRNN]\n\n::: stablernn.tasks\n    options:\n"
                    "      members: false\n")
    names = api_names(page)
    assert names == ["undoc_mod", "undoc_mod.f", "undoc_mod.g", "undoc_mod.N", "stablernn.stack",
                     "stablernn.stack.DeepRNN", "stablernn.tasks"]
    assert undocumented(names) == ["undoc_mod.g"]
