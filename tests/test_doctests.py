"""The examples in the API's docstrings run (as the documentation shows them): every module
listed has examples, and all of them pass."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES_WITH_EXAMPLES = [
    "diffuse_fit.api",
    "diffuse_fit.physics.flux",
    "diffuse_fit.io.spectrum_names",
    "diffuse_fit.physics.flavour",
]


@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
