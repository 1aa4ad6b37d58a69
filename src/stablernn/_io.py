"""Atomic file writes: a temporary file in the same directory, then a rename, so a reader (or
a run killed mid-write) never sees a half-written file.

Temporary files are named ``.<name>.<random>.tmp`` and created with ``os.open(..., 0o666)``, so
the umask applies exactly as for a plain ``open``: every file of a run directory gets the same
mode (``tempfile.mkstemp`` would make them 0600). A write interrupted by an exception or Ctrl-C
removes its temporary file; one cut by SIGKILL leaves it behind, for :func:`remove_stale_temps`.
"""
from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

TEMP_SUFFIX = ".tmp"


def _temp_path(path: Path) -> tuple[Path, int]:
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object],
                  previous: Path | None = None) -> None:
    path = Path(path)
    tmp, fd = _temp_path(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename (never half-written).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.txt"
        >>> atomic_write_text(p, "hi\\n"); p.read_text()
        'hi\\n'
    """
    _atomic_write(path, lambda f: f.write(text.encode()))


def atomic_save(obj: Any, path: Path, *, previous: Path | None = None) -> None:
    """``torch.save`` through a temporary file and a rename.

    Args:
        obj: what ``torch.save`` accepts.
        path: the destination.
        previous: if given, an existing ``path`` is first renamed to it, so the last complete
            file survives until the new one is in place (a fallback for damaged files).
    """
    _atomic_write(path, lambda f: torch.save(obj, f), previous)


def check_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """``path`` as a Path if it is, or can become, a writable folder; checked without creating
    anything, so a command can refuse a bad ``--out`` / ``--root`` before any work.

    Raises:
        NotADirectoryError: ``path`` or one of its parents is a file.
        PermissionError: the nearest existing folder is not writable.

    Example:
        >>> check_folder("/tmp/some/new/folder").name
        'folder'
    """
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise NotADirectoryError(f"{what} {path}: {existing} is a file, not a folder; choose "
                                 f"another path")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: {existing} is not writable; choose another path")
    return path


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files of atomic writes cut short in ``folder`` (by SIGKILL or a
    power cut); call it only while no other process writes there. Returns what it removed."""
    stale = [p for p in Path(folder).glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def json_safe(value: Any) -> Any:
    """``value`` with every NaN / Inf float (a diverged model's record, the std of one seed) as
    None, in nested dicts, lists and tuples too, so strict JSON readers accept it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
