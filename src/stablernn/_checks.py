"""One home for argument checks: every public function validates its options with these, so a
bad value gets one clear line naming the argument, the value and what would be accepted.

Errors are ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, unusable value),
so callers and the CLI can catch them uniformly; the library's own error classes live in
:mod:`stablernn.errors`. See docs/robustness.md.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeGuard, TypeVar

import torch
from torch import Tensor, nn

from .errors import NonFiniteWeightsError

T = TypeVar("T")


def is_int(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is an integer and not a bool (JSON's ``true`` is no count).

    Example:
        >>> is_int(3), is_int(True), is_int(3.0)
        (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a real number and not a bool (NaN and Inf included).

    Example:
        >>> is_real(2.5), is_real(False)
        (True, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: Any, *, low: int | None = 1, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (bools and non-integral numbers refused).

    Example:
        >>> check_int("steps", 3)
        3
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be an int <= {high}, got {value}")
    return value


SEED_RANGE = (0, 2 ** 64 - 2)  # torch's generators take < 2**64 (some paths seed + 1)


def check_size(name: str, value: Any) -> int:
    """A positive int size (``hidden_size``, ``num_layers``, a count of axes, ...).

    Example:
        >>> check_size("hidden_size", 0)
        Traceback (most recent call last):
        ...
        ValueError: hidden_size must be a positive int, got 0
    """
    value = check_int(name, value, low=None)
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def check_sequence(name: str, value: Any, item: Callable[[str, Any], T], *,
                   min_len: int = 1) -> list[T]:
    """``value`` as a list, each entry checked by ``item(f"{name}[i]", entry)``; a str (a
    sequence of characters) is refused.

    Example:
        >>> check_sequence("layers", (0, 2), lambda n, v: check_int(n, v, low=0))
        [0, 2]
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list or tuple, got {type(value).__name__} "
                        f"({value!r})")
    if len(value) < min_len:
        raise ValueError(f"{name} needs at least {min_len} entr{'y' if min_len == 1 else 'ies'}"
                         f", got {len(value)}")
    return [item(f"{name}[{i}]", v) for i, v in enumerate(value)]


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed for a torch generator: an int (not a bool or a float) in :data:`SEED_RANGE`.

    Example:
        >>> check_seed(0)
        0
    """
    return check_int(name, seed, low=SEED_RANGE[0], high=SEED_RANGE[1])


def check_float(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the given range (NaN, Inf and bools refused).

    ``low_open`` / ``high_open`` exclude the bound itself (``low=0, low_open=True``: > 0).

    Example:
        >>> check_float("lr", 1e-3, low=0, low_open=True)
        0.001
    """
    if not is_real(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range, e.g. 10**400
        raise ValueError(f"{name} must be finite, got an int of {value.bit_length()} bits") \
            from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_positive(name: str, value: Any) -> float:
    """A finite float > 0 (learning rates, tolerances, time budgets)."""
    return check_float(name, value, low=0.0, low_open=True)


def check_bool(name: str, value: Any) -> bool:
    """A flag (``bias``, ``fused``, ``progress``): a real bool, not a truthy string or number."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} ({value!r})")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``; otherwise a ValueError listing them."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(repr, choices))}")
    return value


def check_options(what: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Refuse option names not in ``valid`` with a TypeError listing the valid ones.

    Example:
        >>> check_options("LSC", ["steps"], ["steps", "lr"])
    """
    valid = list(valid)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise TypeError(f"unknown {what} option(s) {', '.join(unknown)}; valid: "
                        f"{', '.join(valid)}")


def all_finite(tensors: Iterable[Tensor]) -> bool:
    """Whether every entry of every tensor is finite (a state, parameters after an update).

    Example:
        >>> all_finite([torch.zeros(2), torch.tensor([float("nan")])])
        False
    """
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def check_finite(name: str, x: Tensor) -> Tensor:
    """``x`` if every entry is finite; otherwise a ValueError counting the bad entries."""
    bad = int((~torch.isfinite(x)).sum()) if x.is_floating_point() or x.is_complex() else 0
    if bad:
        raise ValueError(f"{name} has {bad} NaN/Inf value(s) of {x.numel()}; clean it first")
    return x


def check_finite_weights(module: nn.Module) -> nn.Module:
    """``module`` if all its parameters and floating buffers are finite.

    Every path that reaches an eigensolver calls this first: LAPACK's balancing routine
    crashes the interpreter on NaN input instead of raising.

    Raises:
        NonFiniteWeightsError: naming the first bad tensor and how many entries are bad.

    Example:
        >>> check_finite_weights(nn.Linear(2, 2)).out_features
        2
    """
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    bad = [(name, int((~torch.isfinite(t)).sum())) for name, t in tensors
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        name, count = bad[0]
        more = f" (and {len(bad) - 1} more tensor(s))" if len(bad) > 1 else ""
        raise NonFiniteWeightsError(
            f"{type(module).__name__}.{name} has {count} NaN/Inf value(s){more}: the model has "
            f"diverged; load an earlier checkpoint or re-initialise it before analysing it")
    return module


def custom_backward_allowed() -> bool:
    """Whether a hand-written ``autograd.Function`` backward may run: not inside a ``torch.func``
    transform (``jacrev``, ``vmap``), which such a backward does not support; callers then
    fall back to plain autograd ops."""
    return not torch._C._are_functorch_transforms_active()
