"""Deprecation paths for renamed options and classes: the old name keeps working and warns.

Option names are unified across the library: ``steps`` counts optimiser
updates, ``batch_size`` counts sequences, every result class is a ``*Report``. A rename keeps
the old keyword (or class name) as an alias that raises a ``DeprecationWarning`` naming the
new one, so no user code breaks without notice.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def rename_kwargs(where: str, kwargs: dict[str, Any], renames: dict[str, str], *,
                  stacklevel: int = 3, keys: bool = False) -> dict[str, Any]:
    """``kwargs`` with every old name of ``renames`` (old -> new) replaced by the new one, each
    with a DeprecationWarning. ``where`` names the function (``where(old=...)``) or, with
    ``keys=True``, the config section (``where.old``).

    Raises:
        TypeError: both the old and the new name were given.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     rename_kwargs("warmup", {"batch": 8}, {"batch": "batch_size"})
        {'batch_size': 8}
        >>> str(caught[0].message)
        'warmup(batch=...) is deprecated; use batch_size=... instead'
    """
    out = dict(kwargs)
    for old, new in renames.items():
        if old not in out:
            continue
        was, now = (f"{where}.{old}", f"{where}.{new}") if keys else (f"{old}=", f"{new}=")
        if new in out:
            raise TypeError(f"{where if keys else where + '()'} got both {was} (deprecated) and "
                            f"{now}; pass {now} only")
        warnings.warn(f"{was if keys else f'{where}({old}=...)'} is deprecated; use "
                      f"{now if keys else now + '...'} instead", DeprecationWarning,
                      stacklevel=stacklevel)
        out[new] = out.pop(old)
    return out


def renamed_kwargs(**renames: str) -> Callable[[F], F]:
    """Decorator: ``func`` also accepts each old keyword (``old="new"``), with a
    DeprecationWarning; its signature shows the new names only.

    Example:
        >>> @renamed_kwargs(batch="batch_size")
        ... def f(*, batch_size=1):
        ...     return batch_size
        >>> f(batch_size=4)
        4
    """
    def wrap(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **rename_kwargs(func.__name__, kwargs, renames))
        return wrapper  # type: ignore[return-value]
    return wrap


def deprecated_aliases(namespace: dict[str, Any], aliases: dict[str, str], *,
                       stacklevel: int = 2) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving each old name of ``aliases`` (old -> new) as the object
    now called new, with a DeprecationWarning; use as
    ``__getattr__ = deprecated_aliases(globals(), {"GradientFlow": "GradientFlowReport"})``.
    """
    module = namespace.get("__name__", "module")

    def __getattr__(name: str) -> Any:
        if name in aliases:
            warnings.warn(f"{module}.{name} is deprecated; use {aliases[name]} instead",
                          DeprecationWarning, stacklevel=stacklevel)
            return namespace[aliases[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
