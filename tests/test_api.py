"""The Python API (importable from ``model``) against the workshop's scipy fit."""

import numpy as np
import pytest

import model
from model.binned import reference_fit


def test_api_map_equals_the_workshop_fit(toy_dataset):
    inputs = model.load_inputs()  # the embedded toy dataset
    np.testing.assert_array_equal(inputs.data["energy"], toy_dataset.data["energy"])
    binned = model.bin_inputs(inputs)
    best = model.fit_map(model.build_model(binned, priors="flat"))
    ref = reference_fit.fit(
        binned.counts, binned.simulation, binned.sim_bin_index, binned.binning.n_bins
    )
    for name, value in ref.as_dict().items():
        assert best.values[name] == pytest.approx(value, rel=1e-6)
    assert best.neg_log_likelihood == pytest.approx(ref.neg_log_likelihood, rel=1e-10)


def test_api_rejects_unknown_components():
    with pytest.raises(ValueError, match="components must be one of"):
        model.bin_inputs(model.load_inputs(), components="nonsense")


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'fitt_map'"):
        model.fitt_map  # noqa: B018


def test_api_run_map_writes_a_verified_run_folder(tmp_path):
    from model.io.run_folder import read_run

    inputs = model.load_inputs()
    result = model.run_map(inputs, tmp_path / "run", priors="flat", say=lambda *a: None)
    run = read_run(tmp_path / "run")
    assert run.kind == "map"
    written = run.json("map.json")
    for name in ("atmos_norm", "astro_norm", "astro_gamma"):
        assert written[name] == pytest.approx(result["reference_fit"][name], rel=1e-6)
    assert written["units"] == {"atmos_norm": "1", "astro_gamma": "1",
                                "astro_norm": "1e-18 GeV^-1 cm^-2 s^-1 sr^-1"}  # fmt: skip
    assert written["map_path"] == "numpy"


def test_every_api_name_resolves():
    """Each name ``model`` advertises is importable from it (``model/__init__.py``'s list)."""
    for name in model.__all__:
        assert getattr(model, name) is not None, name
