"""What every backend shares: a lost trial's record and optional imports with an install hint."""
from __future__ import annotations

import importlib
from typing import Any


def lost(err: BaseException) -> dict:
    """A trial whose worker died (nothing recorded on disk, so a re-run retries it)."""
    return {"status": "crashed", "error": f"worker lost: {type(err).__name__}: {err}"}


def optional(module: str, extra: str, what: str) -> Any:
    """``import module``, or an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{what} needs {module}: pip install 'stablernn[{extra}]'") from err
