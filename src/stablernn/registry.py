"""Every name -> constructor registry, gathered by kind (what ``stablernn list`` prints and
what configs are validated against). Each registry lives beside its kind; this only reads."""
from __future__ import annotations


def registries() -> dict[str, dict]:
    """``{"cells": ..., "tasks": ..., "inits": ..., "pretrain": ..., "envs": ...}`` (``envs``:
    the environments ``task.name`` also accepts, docs/rl.md)."""
    from .cells import CELLS
    from .init import INITS
    from .rl.envs import ENVS
    from .tasks import TASKS
    from .train.pretrain import PRETRAIN

    return {"cells": CELLS, "tasks": TASKS, "inits": {"default": None, **INITS},
            "pretrain": PRETRAIN, "envs": ENVS}
