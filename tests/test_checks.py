"""The shared argument checks and the transactional snapshot of a module."""
import math

import numpy as np
import pytest
import torch
from _support import _valid_int, _valid_positive, bad_floats, bad_ints
from hypothesis import find, settings
from hypothesis.errors import NoSuchExample
from torch import nn
from torch.nn.utils import parametrize

from stablernn._checks import (
    NonFiniteWeightsError,
    check_choice,
    check_finite,
    check_finite_weights,
    check_float,
    check_int,
    check_positive,
)
from stablernn._transaction import transaction


@pytest.mark.parametrize("value, error", [
    (True, TypeError), (1.0, TypeError), ("3", TypeError), (None, TypeError), (0, ValueError),
    (-5, ValueError), (11, ValueError)])
def test_check_int_refuses(value, error):
    with pytest.raises(error, match="steps"):
        check_int("steps", value, low=1, high=10)


def test_check_int_accepts_numpy_ints():
    assert check_int("n", np.int64(4)) == 4 and type(check_int("n", np.int64(4))) is int


@pytest.mark.parametrize("value, error", [
    (math.nan, ValueError), (math.inf, ValueError), (-math.inf, ValueError), (0.0, ValueError),
    (-1e-9, ValueError), (False, TypeError), ("0.1", TypeError), (None, TypeError),
    (torch.tensor([1.0, 2.0]), TypeError), (10**400, ValueError)])
def test_check_positive_refuses(value, error):
    with pytest.raises(error, match="lr"):
        check_positive("lr", value)


def test_check_float_bounds():
    assert check_float("p", 0.0, low=0.0) == 0.0
    with pytest.raises(ValueError, match="< 1"):
        check_float("p", 1.0, high=1.0, high_open=True)
    assert check_float("p", np.float32(0.5), high=1.0) == 0.5


def test_check_choice_lists_valid():
    with pytest.raises(ValueError, match="'a', 'b'"):
        check_choice("mode", "c", ["a", "b"])


def test_check_finite_counts_bad_entries():
    x = torch.zeros(3, 4)
    x[0, 1], x[2, 2] = math.nan, math.inf
    with pytest.raises(ValueError, match="2 NaN/Inf value"):
        check_finite("inputs", x)
    assert check_finite("idx", torch.arange(3)) is not None


def test_check_finite_weights_names_the_parameter():
    gru = nn.GRU(3, 4, num_layers=2)
    check_finite_weights(gru)
    with torch.no_grad():
        gru.weight_hh_l1[0, 0] = math.nan
    with pytest.raises(NonFiniteWeightsError, match="weight_hh_l1 has 1 NaN"):
        check_finite_weights(gru)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_transaction_restores_values_objects_and_flags():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    before, weight = _state(model), model[0].weight
    with pytest.raises(RuntimeError, match="part-way"), transaction(model):
        with torch.no_grad():
            model[0].weight.mul_(math.nan)
        model[0].bias.requires_grad_(False)
        model[0].weight = nn.Parameter(torch.ones(4, 3))  # a replaced Parameter object
        model[1].running_mean.fill_(7.0)
        raise RuntimeError("failed part-way")
    after = _state(model)
    assert model[0].weight is weight and model[0].bias.requires_grad
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_transaction_keeps_changes_on_success():
    lin = nn.Linear(2, 2)
    with transaction(lin), torch.no_grad():
        lin.weight.fill_(3.0)
    assert torch.all(lin.weight == 3.0)


def test_transaction_restores_on_keyboard_interrupt():
    lin = nn.Linear(2, 2)
    before = _state(lin)
    with pytest.raises(KeyboardInterrupt), transaction(lin):
        with torch.no_grad():
            lin.weight.zero_()
        raise KeyboardInterrupt
    assert torch.equal(lin.weight, before["weight"])


def test_transaction_snapshot_of_parametrised_module_restores_original():
    lin = nn.Linear(3, 3)
    parametrize.register_parametrization(lin, "weight", nn.Identity())
    before = lin.parametrizations.weight.original.detach().clone()
    with pytest.raises(ValueError), transaction(lin):
        with torch.no_grad():
            lin.parametrizations.weight.original.fill_(math.nan)
        raise ValueError("bad")
    assert torch.equal(lin.parametrizations.weight.original, before)


def test_check_sequence_checks_every_entry_and_refuses_strings():
    from stablernn._checks import check_int, check_sequence

    def item(n, v):
        return check_int(n, v, low=0)
    assert check_sequence("layers", [0, 3], item) == [0, 3]
    with pytest.raises(TypeError, match=r"layers\[1\] must be an int"):
        check_sequence("layers", [0, True], item)
    with pytest.raises(TypeError, match="layers must be a list or tuple, got str"):
        check_sequence("layers", "01", item)
    with pytest.raises(ValueError, match="layers needs at least 1 entry, got 0"):
        check_sequence("layers", [], item)


def test_error_family_keeps_the_builtin_bases():
    from stablernn import errors
    for cls in (errors.ConfigError, errors.NonFiniteError, errors.NonFiniteWeightsError):
        assert issubclass(cls, errors.StableRNNError) and issubclass(cls, ValueError)
    assert issubclass(errors.RunDirError, OSError)
    assert issubclass(errors.RunLockedError, RuntimeError)


@pytest.mark.parametrize("strategy, valid", [(bad_ints(1), _valid_int),
                                             (bad_floats(0.0), _valid_positive)])
def test_bad_value_strategies_never_draw_a_valid_value(strategy, valid):
    """The property tests mean something only if their strategies never draw a valid value."""
    with pytest.raises(NoSuchExample):
        find(strategy, valid, settings=settings(max_examples=500, database=None))
