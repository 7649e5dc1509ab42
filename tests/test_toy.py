import numpy as np
import pytest

from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.io.workshop_format import (
    DATA_FIELDS,
    SIMULATION_FIELDS,
    read_data,
    read_simulation,
    write_workshop_file,
)
from diffuse_fit.physics import toy


def test_deterministic_for_a_seed():
    a, b, c = (
        toy.generate(7, n_simulated=5000),
        toy.generate(7, n_simulated=5000),
        toy.generate(8, n_simulated=5000),
    )
    assert a.simulation.sha256 == b.simulation.sha256 and a.data.sha256 == b.data.sha256
    assert a.simulation.sha256 != c.simulation.sha256 and a.data.sha256 != c.data.sha256


def test_default_dataset_resembles_the_workshop(toy_dataset, binned):
    assert 100 <= binned.counts.sum() <= 130
    nominal = expected_counts(
        binned.templates, {"atmos_norm": 1, "astro_norm": 1, "astro_gamma": 2.5}
    )
    assert 20 <= nominal.sum() <= 60  # "a few tens" at (1, 1, 2.5)
    at_truth = expected_counts(binned.templates, toy_dataset.truth)
    assert 100 <= at_truth.sum() <= 130
    sim = toy_dataset.simulation
    assert set(np.unique(sim["topology"])) == {0.0, 1.0}
    np.testing.assert_allclose(sim["atmoWeight"], sim["conventionalWeight"] + sim["promptWeight"])
    # tracks come mostly from numu CC: a minority of events, as in HESE
    assert 0.1 < np.mean(sim["topology"]) < 0.4


def test_weights_follow_the_flux_conventions(toy_dataset):
    """astroWeight / exposure is the six-neutrino E^-2.5 flux at norm 1, and for up-going
    events (no self-veto) atmoWeight / exposure is the nuflux table's conventional + prompt
    flux of one flavour."""
    from diffuse_fit.physics.atmospheric_flux import FLAVOURS, flux

    sim = toy_dataset.simulation
    e, cosz = sim["primaryEnergy"], np.cos(sim["primaryZenith"])
    per_flavour_astro = 1.0e-18 / 6 * 2 * (e / 1e5) ** -2.5  # 1/6 per species; nu + nubar
    exposure = sim["astroWeight"] / per_flavour_astro  # cm^2 s sr GeV per generated event
    up = cosz < -0.05
    ratio = sim["atmoWeight"][up] / exposure[up]
    candidates = np.stack(
        [
            flux("conventional", f, e[up], cosz[up]) + flux("prompt", f, e[up], cosz[up])
            for f in FLAVOURS
        ]
    )
    closest = np.min(np.abs(candidates / ratio - 1.0), axis=0)
    assert np.max(closest) < 1e-10


def test_written_files_validate_and_match(tmp_path, toy_dataset):
    write_workshop_file(tmp_path / "sim.json", toy_dataset.simulation)
    write_workshop_file(tmp_path / "data.json", toy_dataset.data)
    sim, data = read_simulation(tmp_path / "sim.json"), read_data(tmp_path / "data.json")
    assert set(SIMULATION_FIELDS) <= set(sim.fields) and set(DATA_FIELDS) == set(data.fields)
    assert data.meta["toy"]["truth"] == toy.DEFAULT_TRUTH
    np.testing.assert_array_equal(sim["astroWeight"], toy_dataset.simulation["astroWeight"])


def test_default_dataset_is_the_one_the_committed_results_were_made_from(toy_dataset, binned):
    """The embedded default is the dataset of ``results/default``: its event counts, and the
    workshop's -ln L at the committed workshop fit (``reference_fit``, NumPy + SciPy only),
    which depends on every bin's count and every simulated weight, to 1e-10.  A change of the
    generator fails here, not in a user's comparison with the committed results.

    The SHA-256s of the bytes are not compared: NumPy's transcendental functions differ in
    their last bits between CPUs (the same code and versions give another SHA-256 on one
    machine of this workplace than on the one that made the results), so the bytes are
    machine-dependent at the level of rounding, while everything computed from them agrees.
    """
    import json
    from pathlib import Path

    from diffuse_fit.binned import reference_fit

    record = json.loads((Path(__file__).parents[1] / "results/default/map.json").read_text())
    provenance = record["provenance"]
    assert provenance["data"]["source"] == f"<toy data seed={toy.DEFAULT_SEED}>"
    for name, table in (("data", toy_dataset.data), ("simulation", toy_dataset.simulation)):
        assert len(table) == provenance[name]["n_events"]
    assert int(np.sum(binned.sim_bin_index < 0)) == provenance["simulation"]["n_outside_bins"]
    reference = record["reference_fit"]
    weights = reference_fit.weight_event(
        toy_dataset.simulation, *(reference[n] for n in reference_fit.PARAMETERS)
    )
    n_bins = binned.binning.n_bins
    expectation = reference_fit.get_expectation(binned.sim_bin_index, weights, n_bins)
    counts = np.asarray(binned.counts, dtype=np.float64)
    assert counts.sum() == provenance["data"]["n_events"] - provenance["data"]["n_outside_bins"]
    nll = -reference_fit.llh(counts, expectation)
    assert nll == pytest.approx(reference["neg_log_likelihood"], rel=1e-10)
