"""Shared test support: snapshots that prove a module was left unchanged, the one-line error
check, and hypothesis strategies of values an argument must refuse (docs/robustness.md)."""
import math

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

NAN, INF = float("nan"), float("inf")
HYPOTHESIS = settings(max_examples=30, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


# ----- helpers -----------------------------------------------------------------------------
def _parametrised(module: nn.Module) -> list:
    return [(name, sorted(m.parametrizations)) for name, m in module.named_modules()
            if parametrize.is_parametrized(m)]


def snapshot(module: nn.Module) -> dict:
    """Every parameter / buffer (object and a copy of its value), the classes of the modules
    and which tensors are parametrised."""
    return {"tensors": {name: (t, t.detach().clone()) for name, t in
                        [*module.named_parameters(), *module.named_buffers()]},
            "classes": [type(m) for m in module.modules()],
            "parametrised": _parametrised(module)}


def assert_unchanged(module: nn.Module, snap: dict) -> None:
    """Same tensor objects holding the same values; no parametrisation added or left behind."""
    now = dict([*module.named_parameters(), *module.named_buffers()])
    assert set(now) == set(snap["tensors"])
    for name, (obj, value) in snap["tensors"].items():
        assert now[name] is obj, f"{name} was replaced"
        torch.testing.assert_close(now[name].detach(), value, rtol=0, atol=0, equal_nan=True,
                                   msg=f"{name} was changed")
    assert [type(m) for m in module.modules()] == snap["classes"]
    assert _parametrised(module) == snap["parametrised"]


def raises_cleanly(fn, module=None):
    """Call ``fn``; it must raise ValueError / TypeError (one line) and leave ``module``."""
    snap = None if module is None else snapshot(module)
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    message = str(info.value)
    assert message and "\n" not in message
    assert "unexpected keyword" not in message and "not supported between" not in message
    if module is not None:
        assert_unchanged(module, snap)
    return message


def bad_ints(low: int, *, none: bool = True) -> st.SearchStrategy:
    """Values an int argument ``>= low`` must refuse (None too unless ``none=False``: None
    means "the default" for ``k``, ``blocks``, ``state_size``)."""
    return st.one_of(st.integers(max_value=low - 1), st.floats(allow_nan=True),
                     st.booleans(), st.text(max_size=3), *([st.none()] if none else []),
                     st.sampled_from([NAN, INF, -INF, 2.5, 3.0]))


def bad_floats(low: float | None = None, *, inclusive: bool = False) -> st.SearchStrategy:
    """Values a finite float argument (``> low``, or ``>= low`` if ``inclusive``) must refuse."""
    special = st.sampled_from([NAN, INF, -INF])
    wrong = st.one_of(st.booleans(), st.text(max_size=3), st.none(), st.just([1.0]))
    if low is None:
        return st.one_of(special, wrong)
    below = st.floats(max_value=low, allow_nan=False, allow_infinity=False,
                      exclude_max=inclusive)
    return st.one_of(special, wrong, below)


def _valid_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _valid_positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


class Boom(RuntimeError):
    pass


def _fail_on_call(n: int, fn):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise Boom("interrupted part-way")
        return fn(*args, **kwargs)

    return wrapper
