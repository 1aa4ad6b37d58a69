"""Deprecated aliases of renamed options and classes: they work and name the new spelling."""
import types
import warnings

import pytest

from stablernn._deprecation import deprecated_aliases, rename_kwargs, renamed_kwargs


@renamed_kwargs(batch="batch_size")
def _f(x, *, batch_size=1):
    """Returns its arguments."""
    return x, batch_size


def test_old_keyword_warns_and_maps_to_the_new_one():
    assert _f(1, batch_size=3) == (1, 3)
    with pytest.warns(DeprecationWarning, match=r"_f\(batch=\.\.\.\) is deprecated; use "
                      r"batch_size=\.\.\. instead") as caught:
        assert _f(1, batch=3) == (1, 3)
    assert caught[0].filename == __file__  # points at the caller
    with pytest.raises(TypeError, match="got both batch= .* and batch_size="):
        _f(1, batch=3, batch_size=3)
    assert _f.__doc__ == "Returns its arguments."


def test_rename_kwargs_leaves_other_keywords_alone():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rename_kwargs("g", {"a": 1}, {"batch": "batch_size"}) == {"a": 1}


def test_old_class_name_is_served_with_a_warning():
    module = types.ModuleType("demo")
    module.NewReport = type("NewReport", (), {})
    module.__getattr__ = deprecated_aliases(vars(module), {"Old": "NewReport"})
    with pytest.warns(DeprecationWarning, match=r"demo\.Old is deprecated; use NewReport"):
        assert module.Old is module.NewReport
    with pytest.raises(AttributeError, match="has no attribute 'Missing'"):
        _ = module.Missing


def test_library_renames_keep_the_old_spellings_with_the_same_results():
    """Each renamed public option gives the same result under its old name, with a warning."""
    import torch

    import stablernn
    import stablernn.stability as stability
    from stablernn.init.simulate import measure_m
    from stablernn.stability.diagnose import random_inputs

    gru, cell = torch.nn.GRU(2, 6, batch_first=True), stablernn.GRUCell(2, 6)
    x = torch.randn(4, 5, 2)
    new_old = [
        (lambda: stablernn.vaa(gru, x, time_steps=20).vaa,
         lambda: stablernn.vaa(gru, x, steps=20).vaa, r"vaa\(steps="),
        (lambda: stablernn.radii(gru, x, time_steps=[1, 3]).values,
         lambda: stablernn.radii(gru, x, steps=[1, 3]).values, r"radii\(steps="),
        (lambda: random_inputs(gru, batch_size=3).shape,
         lambda: random_inputs(gru, batch=3).shape, r"random_inputs\(batch="),
        (lambda: measure_m(cell, batch_size=2, burn=2, probes=1),
         lambda: measure_m(cell, batch=2, burn=2, probes=1),
         r"measure_m\(batch="),
    ]
    for new, old, match in new_old:
        want = new()
        with pytest.warns(DeprecationWarning, match=match):
            assert old() == want
    for old, new in [("GradientFlow", "GradientFlowReport"),
                     ("LyapunovSpectrum", "LyapunovReport")]:
        with pytest.warns(DeprecationWarning, match=new):
            assert getattr(stability, old) is getattr(stability, new)


def test_gate_hyper_rho_is_bias_std():
    """``rho`` means only the LSC target; the mean-field bias spread is ``bias_std``."""
    from stablernn.init.meanfield import GateHyper, MeanFieldHyper

    with pytest.warns(DeprecationWarning, match=r"GateHyper\(rho=\.\.\.\)"):
        old = GateHyper(sigma=0.5, rho=0.3)
    assert old == GateHyper(sigma=0.5, bias_std=0.3)
    with pytest.warns(DeprecationWarning, match="bias_std"):
        assert old.rho == 0.3
    hp = MeanFieldHyper("gru", {k: GateHyper() for k in "rzn"})
    assert hp.with_gate("z", bias_std=0.2).gates["z"].bias_std == 0.2
    with pytest.raises(TypeError, match="no field spread"):
        GateHyper(spread=1.0)
