"""The experiments package keeps the old import paths working and the import graph acyclic:
each module imports on its own in a fresh interpreter, and the config layer, the registry and
the run directory load without the training loop."""
import subprocess
import sys

import pytest

import stablernn.report
import stablernn.sweep
import stablernn.train.runs
from stablernn.experiments import report, rundir, spec, sweep, trial


@pytest.mark.parametrize("old, new", [
    (stablernn.sweep, [spec, sweep, trial]),
    (stablernn.report, [report, rundir]),
    (stablernn.train.runs, [rundir]),
])
def test_old_modules_re_export_the_same_objects(old, new):
    assert old.__all__
    for name in old.__all__:
        assert any(getattr(m, name, None) is getattr(old, name) for m in new), name


@pytest.mark.parametrize("module", ["stablernn.registry", "stablernn.train.config",
                                    "stablernn.experiments.rundir",
                                    "stablernn.experiments.spec"])
def test_modules_import_alone_without_the_training_loop(module):
    code = (f"import sys, {module}\n"
            f"assert 'stablernn.train.loop' not in sys.modules, 'the loop was imported'\n")
    _python(code)


@pytest.mark.parametrize("module", ["stablernn.train.loop", "stablernn.report",
                                    "stablernn.sweep", "stablernn.experiments.sweep",
                                    "stablernn.experiments.backends.local", "stablernn.demo"])
def test_modules_import_alone(module):
    _python(f"import {module}")


def _python(code: str) -> None:
    """Run ``code`` in a fresh interpreter; fail with its error."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_train_names_load_on_first_use():
    from stablernn.train import Config, train
    from stablernn.train.loop import train as loop_train

    assert train is loop_train and Config.__module__ == "stablernn.train.config"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        stablernn.train.nope  # noqa: B018
