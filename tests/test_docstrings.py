"""Every docstring example of the library runs and prints what it says (doctest)."""
import doctest
import importlib
import pkgutil

import pytest

import stablernn

MODULES = sorted(m.name for m in pkgutil.walk_packages(stablernn.__path__, "stablernn.")
                 if m.name != "stablernn.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
