"""Pre-training methods selectable with ``pretrain.method`` (``--pretrain`` on the CLI).

Each entry is a :class:`PretrainMethod`: called as ``method(model, inputs, cfg, progress=...)``
it pre-trains in place and returns a report; ``method.check(model, cfg)`` validates
``pretrain.rho`` and ``pretrain.options`` (e.g. ``--set pretrain.options.steps=300``) against the
built model without changing it, so ``stablernn train`` refuses bad options before it creates
the run directory. A new method registers its own runner and checker here.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from .._deprecation import rename_kwargs

# option keys of every method that only change what is shown, never the result (unhashed)
COSMETIC = ("progress",)


class PretrainMethod:
    """A registered pre-training method: a runner and a checker of its options.

    Args:
        summary: one line for ``stablernn list``.
        function: returns the library function, ``function(model, inputs, **kwargs)`` (imported
            on first use: the registry is read by every command).
        checker: returns ``checker(model, **kwargs)``, which raises what ``function`` would
            for these options without touching the model.
        fixed: keyword arguments taken from the config rather than from ``options``, as
            ``{name: getter(cfg)}`` (LSC's ``rho``).
        renamed: old option names of the method, ``{old: new}``: a config that still uses one
            runs as with the new name, with a DeprecationWarning.
    """

    def __init__(self, summary: str, function: Callable[[], Callable],
                 checker: Callable[[], Callable],
                 fixed: dict[str, Callable[[Any], Any]] | None = None,
                 renamed: dict[str, str] | None = None) -> None:
        self.__doc__ = summary
        self._function, self._checker, self.fixed = function, checker, fixed or {}
        self.renamed = renamed or {}

    def kwargs(self, cfg: Any) -> dict[str, Any]:
        """The keyword arguments of the method for ``cfg`` (a PretrainConfig), without the
        cosmetic ones (progress)."""
        options = rename_kwargs("pretrain.options", {k: v for k, v in cfg.options.items()
                                                     if k not in COSMETIC}, self.renamed,
                                keys=True)
        clash = sorted(set(options) & set(self.fixed))
        if clash:
            raise ValueError(f"set {', '.join(clash)} with pretrain.{clash[0]}, not "
                             f"pretrain.options.{clash[0]}")
        return {**{k: get(cfg) for k, get in self.fixed.items()}, **options}

    def check(self, model: nn.Module, cfg: Any) -> None:
        """Validate ``cfg`` for ``model``: ValueError / TypeError naming the bad option; the
        model is not changed."""
        self._checker()(model, **self.kwargs(cfg))

    def __call__(self, model: nn.Module, inputs: Tensor, cfg: Any, *,
                 progress: bool = False) -> Any:
        progress = bool(cfg.options.get("progress", progress))
        return self._function()(model, inputs, progress=progress, **self.kwargs(cfg))


def _lazy(module: str, name: str) -> Callable[[], Callable]:
    """``name`` of ``stablernn.<module>``, imported on first use."""
    return lambda: getattr(importlib.import_module(f"stablernn.{module}"), name)


PRETRAIN: dict[str, PretrainMethod | None] = {
    "none": None,
    "lsc": PretrainMethod(
        "LSC pre-training to the Local Stability Condition (rho: pretrain.rho)",
        _lazy("stability.lsc", "lsc_pretrain"), _lazy("stability.lsc", "check_lsc_args"),
        fixed={"rho": lambda cfg: cfg.rho}),
    "warmup": PretrainMethod(
        "warm-up to maximise reachable multistability (VAA*; double layers: partial)",
        _lazy("stability.warmup", "warmup"), _lazy("stability.warmup", "check_warmup_args"),
        renamed={"batch": "batch_size"}),
    "floss": PretrainMethod(
        "gradient flossing: push the k leading Lyapunov exponents toward 0 (docs/floss.md)",
        _lazy("stability.floss", "floss"), _lazy("stability.floss", "check_floss_args")),
}
