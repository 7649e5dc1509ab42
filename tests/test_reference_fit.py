import numpy as np
from scipy.special import gammaln

from model.binned import reference_fit
from model.binned.templates import expected_counts

from .test_binning import make_bin_masks


def test_llh_equals_notebook_mask_loop(toy_dataset, rng):
    sim, data = toy_dataset.simulation, toy_dataset.data
    bin_masks = make_bin_masks(sim["energy"], sim["zenith"], sim["topology"])
    data_masks = make_bin_masks(data["energy"], data["zenith"], data["topology"])
    k = np.sum(np.array(data_masks), axis=1)
    from model.binned.binning import Binning

    index = Binning().bin_index(sim["energy"], sim["zenith"], sim["topology"])
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
    for truth in ({"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0},
                  {"atmos_norm": 1.4, "astro_norm": 3.0, "astro_gamma": 2.3}):  # fmt: skip
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
