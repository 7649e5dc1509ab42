import numpy as np
from scipy.special import gammaln

from diffuse_fit.binned import reference_fit
from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.templates import build_templates, expected_counts
from diffuse_fit.io.events import EventTable

from .test_binning import make_bin_masks, notebook_index


def test_llh_equals_notebook_mask_loop(toy_dataset, rng):
    """The toy events have no value exactly on an outer edge (60 TeV, 10 PeV, zenith pi),
    so the package's bin index, which both the reference fit and the PyMC tables are
    given, equals the notebook's masks for them, and so do the likelihoods."""
    sim, data = toy_dataset.simulation, toy_dataset.data
    bin_masks = make_bin_masks(sim["energy"], sim["zenith"], sim["topology"])
    data_masks = make_bin_masks(data["energy"], data["zenith"], data["topology"])
    k = np.sum(np.array(data_masks), axis=1)
    index = Binning().bin_index(sim["energy"], sim["zenith"], sim["topology"])
    np.testing.assert_array_equal(
        index, notebook_index(sim["energy"], sim["zenith"], sim["topology"])
    )
    np.testing.assert_array_equal(
        Binning().histogram(Binning().bin_index(data["energy"], data["zenith"], data["topology"])),
        k,
    )
    for _ in range(5):
        x = (rng.uniform(0.2, 2), rng.uniform(0.5, 15), rng.uniform(1.5, 3.5))
        w = reference_fit.weight_event(sim, *x)
        lam_loop = np.array([np.sum(w[m]) for m in bin_masks])
        terms = [
            (ki * np.log(li) if ki > 0 else 0.0) - li - gammaln(ki + 1)
            for ki, li in zip(k, lam_loop, strict=True)
        ]
        lam = reference_fit.get_expectation(index, w, len(bin_masks))
        assert abs(reference_fit.llh(k, lam) - np.sum(terms)) <= 1e-10 * abs(np.sum(terms))


def test_asimov_fit_recovers_truth(binned):
    for truth in (
        {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0},
        {"atmos_norm": 1.4, "astro_norm": 3.0, "astro_gamma": 2.3},
    ):
        asimov = expected_counts(binned.templates, truth)
        fit = reference_fit.fit(
            asimov, binned.simulation, binned.sim_bin_index, binned.binning.n_bins
        )
        np.testing.assert_allclose(fit.x, list(truth.values()), rtol=1e-4)


def test_fit_on_default_data_is_a_maximum(binned):
    fit = reference_fit.fit(
        binned.counts, binned.simulation, binned.sim_bin_index, binned.binning.n_bins
    )
    best = fit.neg_log_likelihood
    for step in np.eye(3) * 1e-3:
        for sign in (1, -1):
            x = fit.x * (1 + sign * step)
            w = reference_fit.weight_event(binned.simulation, *x)
            lam = reference_fit.get_expectation(binned.sim_bin_index, w, binned.binning.n_bins)
            assert -reference_fit.llh(binned.counts, lam) > best


def test_reference_fit_and_tables_count_events_on_the_outer_edges(binned):
    """An event at exactly 60 TeV is in the first energy bin for the reference fit too:
    it is given the same per-event index as the tables (the notebook would drop it)."""
    sim = binned.simulation
    inside = np.flatnonzero(binned.sim_bin_index >= 0)[:3]
    energy = sim["energy"].copy()
    energy[inside] = [6.0e4, 1.0e7, 6.0e4]
    moved = EventTable({**sim.columns, "energy": energy}, "edges.json")
    index = binned.binning.bin_index(moved["energy"], moved["zenith"], moved["topology"])
    assert np.all(index[inside] >= 0)
    assert np.all(
        notebook_index(energy[inside], sim["zenith"][inside], sim["topology"][inside]) < 0
    )
    p = {"atmos_norm": 1.3, "astro_norm": 5.0, "astro_gamma": 2.7}
    lam = reference_fit.get_expectation(
        index, reference_fit.weight_event(moved, *p.values()), binned.binning.n_bins
    )
    tables = build_templates(moved, binned.binning, binned.components, bin_index=index)
    np.testing.assert_allclose(expected_counts(tables, p), lam, rtol=1e-10)


def test_absurd_weight_is_reported_not_raised(binned):
    """One atmoWeight of 1e300 stops L-BFGS-B at its first line search: the fit returns,
    with converged False and the reason, instead of raising."""
    sim = binned.simulation
    weights = sim["atmoWeight"].copy()
    weights[np.flatnonzero(binned.sim_bin_index >= 0)[0]] = 1e300
    absurd = EventTable({**sim.columns, "atmoWeight": weights}, "absurd.json")
    fit = reference_fit.fit(binned.counts, absurd, binned.sim_bin_index, binned.binning.n_bins)
    assert not fit.converged and not fit.result.success
    assert "did not converge" in fit.message and "1.0e+300" in fit.message
    normal = reference_fit.fit(
        binned.counts, binned.simulation, binned.sim_bin_index, binned.binning.n_bins
    )
    assert normal.converged and normal.result.success


def test_fit_equals_the_notebooks_loop_over_every_simulated_event(binned):
    """:func:`reference_fit.fit` drops the events outside the bins once; the notebook
    reweights all of them at every step.  Same objective, same L-BFGS-B path: the same
    optimum, bit for bit (the toy has ~24,000 of its 78,000 events outside the bins)."""
    import scipy.optimize

    sim, index, n = binned.simulation, binned.sim_bin_index, binned.binning.n_bins
    assert (index < 0).sum() > 10_000
    k = np.asarray(binned.counts, dtype=np.float64)
    log_e = np.log(sim["primaryEnergy"] / 1.0e5)

    def notebook(x):  # every event, every time, as transcribed from the notebook
        lam = reference_fit.get_expectation(index, reference_fit.weight_event(sim, *x), n)
        astro = reference_fit.weight_event(sim, 0.0, 1.0, x[2])
        d_lam = (
            reference_fit.get_expectation(index, sim["atmoWeight"], n),
            reference_fit.get_expectation(index, astro, n),
            x[1] * reference_fit.get_expectation(index, -log_e * astro, n),
        )
        residual = np.divide(k, lam, out=np.zeros_like(lam), where=lam > 0) - 1.0
        return -reference_fit.llh(k, lam), -np.array([residual @ d for d in d_lam])

    expected = scipy.optimize.minimize(
        notebook,
        np.asarray(reference_fit.X0),
        jac=True,
        method="L-BFGS-B",
        bounds=reference_fit.BOUNDS,
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000},
    )
    fit = reference_fit.fit(binned.counts, sim, index, n)
    np.testing.assert_array_equal(fit.x, expected.x)
    assert fit.neg_log_likelihood == expected.fun
