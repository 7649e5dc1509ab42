"""The Python API (importable from ``diffuse_fit``) against the workshop's scipy fit."""

import numpy as np
import pytest

import diffuse_fit
from diffuse_fit.binned import reference_fit


def test_api_map_equals_the_workshop_fit(toy_dataset):
    inputs = diffuse_fit.load_inputs()  # the embedded toy dataset
    np.testing.assert_array_equal(inputs.data["energy"], toy_dataset.data["energy"])
    binned = diffuse_fit.bin_inputs(inputs)
    best = diffuse_fit.fit_map(diffuse_fit.build_model(binned, priors="flat"))
    ref = reference_fit.fit(
        binned.counts, binned.simulation, binned.sim_bin_index, binned.binning.n_bins
    )
    for name, value in ref.as_dict().items():
        assert best.values[name] == pytest.approx(value, rel=1e-6)
    assert best.neg_log_likelihood == pytest.approx(ref.neg_log_likelihood, rel=1e-10)


def test_api_rejects_unknown_components():
    with pytest.raises(ValueError, match="components must be one of"):
        diffuse_fit.bin_inputs(diffuse_fit.load_inputs(), components="nonsense")


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'fitt_map'"):
        diffuse_fit.fitt_map  # noqa: B018


def test_api_run_map_writes_a_verified_run_folder(tmp_path):
    from diffuse_fit.io.run_folder import read_run

    inputs = diffuse_fit.load_inputs()
    result = diffuse_fit.run_map(inputs, tmp_path / "run", priors="flat", say=lambda *a: None)
    run = read_run(tmp_path / "run")
    assert run.kind == "map"
    written = run.json("map.json")
    for name in ("atmos_norm", "astro_norm", "astro_gamma"):
        assert written[name] == pytest.approx(result["reference_fit"][name], rel=1e-6)
    assert written["units"] == {
        "atmos_norm": "1",
        "astro_gamma": "1",
        "astro_norm": "1e-18 GeV^-1 cm^-2 s^-1 sr^-1",
    }
    assert written["map_path"] == "numpy"


def test_every_api_name_resolves():
    """Each name ``diffuse_fit`` advertises is importable from it (``model/__init__.py``'s list)."""
    for name in diffuse_fit.__all__:
        assert getattr(diffuse_fit, name) is not None, name


def test_a_users_model_py_does_not_shadow_the_package(tmp_path):
    """The import name is ``diffuse_fit``: a ``model.py`` of the user's in the working
    directory (and ``with pm.Model() as model:``) cannot shadow it."""
    import subprocess
    import sys

    (tmp_path / "model.py").write_text("raise ImportError('the user model.py was imported')\n")
    code = "import diffuse_fit; print(diffuse_fit.load_inputs.__module__)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "diffuse_fit.jobs.inputs"
