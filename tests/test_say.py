"""The SAY likelihood's NumPy core: tables of squared weights, ln L and its derivatives,
against independent per-event sums, the formula of arXiv:1901.04645 written out with SciPy,
and finite differences."""

import pickle

import numpy as np
import pytest
from scipy.special import gammaln, xlogy

from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.say import say_loglike, say_loglike_derivatives
from diffuse_fit.binned.variance import build_variance_tables, sum_of_squares_exact
from diffuse_fit.io import hese_release as hr
from diffuse_fit.jobs.inputs import load_inputs
from diffuse_fit.physics import hese_toy
from diffuse_fit.physics.components import PowerLawComponent
from diffuse_fit.physics.hese_weights import HESE_COMPONENTS_SPLIT

TABLE_RTOL = 1e-10  # stated accuracy of the Chebyshev tables (built to 1e-11)
SPLIT_NAMES = ["atmos_norm", "prompt_norm", "muon_norm", "astro_norm", "astro_gamma"]


@pytest.fixture(scope="module")
def say_binned(binned):
    return binned.with_variance()


@pytest.fixture(scope="module")
def split_binned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    toy = hese_toy.make_toy_release(n=4000)
    hr.write_release_folder(folder, toy.simulation, toy.data)
    inputs = load_inputs(hese_release=folder)
    return bin_dataset(
        inputs.data, inputs.simulation, components=HESE_COMPONENTS_SPLIT, variance=True
    )


def _per_event_workshop(sim, index, n_bins, p):
    """Independent per-event mu_b and s2_b for the workshop model, written out."""
    e = sim["primaryEnergy"] / 1e5
    w = p["atmos_norm"] * sim["atmoWeight"] + p["astro_norm"] * sim["astroWeight"] * e ** -(
        p["astro_gamma"] - 2.5
    )
    mu, s2 = np.zeros(n_bins), np.zeros(n_bins)
    np.add.at(mu, index[index >= 0], w[index >= 0])
    np.add.at(s2, index[index >= 0], w[index >= 0] ** 2)
    return mu, s2


def _say_reference(k, mu, s2):
    """ln L_b of arXiv:1901.04645 eq. (3.15) form, bin by bin in plain Python floats."""
    out = []
    for kb, m, s in zip(k, mu, s2, strict=True):
        if s == 0:
            out.append(float(xlogy(kb, m) - m - gammaln(kb + 1)) if m > 0 or kb == 0 else -np.inf)
            continue
        a, b = m * m / s + 1.0, m / s
        out.append(
            a * np.log(b)
            + gammaln(kb + a)
            - gammaln(kb + 1)
            - (kb + a) * np.log(1 + b)
            - gammaln(a)
        )
    return np.array(out)


def test_variance_tables_match_per_event_sums(say_binned, rng):
    b, n = say_binned, say_binned.binning.n_bins
    variance = b.templates.variance
    assert variance.max_relative_error < 1e-11
    assert len(variance.pairs) == 3  # aa, a*astro, astro*astro
    for _ in range(30):
        p = {
            "atmos_norm": rng.uniform(0, 3),
            "astro_norm": rng.uniform(0, 20),
            "astro_gamma": rng.uniform(1, 4),
        }
        _, s2 = _per_event_workshop(b.simulation, b.sim_bin_index, n, p)
        np.testing.assert_allclose(variance.sum_of_squares(p), s2, rtol=TABLE_RTOL, atol=0)
    for gamma in (1.0, 4.0):  # the ends of the tabulated range
        p = {"atmos_norm": 0.7, "astro_norm": 3.0, "astro_gamma": gamma}
        _, s2 = _per_event_workshop(b.simulation, b.sim_bin_index, n, p)
        np.testing.assert_allclose(variance.sum_of_squares(p), s2, rtol=TABLE_RTOL, atol=0)


def test_variance_tables_of_split_components_match_per_event_sums(split_binned, rng):
    """Four components: every pair (10 tables), the cross terms included."""
    b = split_binned
    assert len(b.templates.variance.pairs) == 10
    for _ in range(10):
        p = dict(
            zip(
                SPLIT_NAMES,
                [*rng.uniform(0.1, 3, 3), rng.uniform(0, 20), rng.uniform(1, 4)],
                strict=True,
            )
        )
        exact = sum_of_squares_exact(
            b.simulation, b.sim_bin_index, b.binning.n_bins, b.components, p
        )
        w = sum(c.event_weights(b.simulation, p) for c in b.components)
        inside = b.sim_bin_index >= 0
        direct = np.zeros(b.binning.n_bins)
        np.add.at(direct, b.sim_bin_index[inside], w[inside] ** 2)
        np.testing.assert_allclose(exact, direct, rtol=1e-12)
        np.testing.assert_allclose(
            b.templates.variance.sum_of_squares(p), direct, rtol=TABLE_RTOL, atol=0
        )


def test_say_loglike_equals_the_formula(rng):
    k = rng.poisson(3.0, 200).astype(float)
    mu = rng.uniform(0.01, 10, 200)
    s2 = mu * rng.uniform(0.001, 2.0, 200)
    np.testing.assert_allclose(say_loglike(k, mu, s2), _say_reference(k, mu, s2), rtol=1e-11)
    # s2 = 0: Poisson; mu = 0 with k = 0 adds 0, with k > 0 -inf
    np.testing.assert_allclose(
        say_loglike([2.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.0, 0.0, 0.0])[:2],
        [2 * np.log(1.5) - 1.5 - np.log(2), 0.0],
        rtol=1e-14,
    )
    assert say_loglike(1.0, 0.0, 0.0) == -np.inf
    # a bin of 1e6 effective simulated events (alpha ~ 1e6): SAY is Poisson to O(1e-6)
    mu = 2.5
    assert say_loglike(4.0, mu, mu**2 / 1e6) == pytest.approx(
        4 * np.log(mu) - mu - gammaln(5.0), abs=1e-5
    )


def test_say_loglike_derivatives_value_is_the_per_event_formula(say_binned):
    b = say_binned
    p = {"atmos_norm": 0.8, "astro_norm": 5.5, "astro_gamma": 2.7}
    names = list(p)
    bins = np.flatnonzero(b.templates.covered())
    value, _, _ = say_loglike_derivatives(b.templates, b.counts, p, names, bins)
    mu, s2 = _per_event_workshop(b.simulation, b.sim_bin_index, b.binning.n_bins, p)
    reference = _say_reference(b.counts[bins], mu[bins], s2[bins]).sum()
    assert value == pytest.approx(reference, rel=1e-10)
    # and it differs from Poisson by more than the tolerance (the test can fail)
    poisson = np.sum(xlogy(b.counts, mu) - mu - gammaln(b.counts + 1))
    assert abs(value - poisson) > 1e-3


@pytest.mark.parametrize("which", ["workshop", "split"])
def test_say_gradient_and_hessian_against_finite_differences(which, say_binned, split_binned):
    b = say_binned if which == "workshop" else split_binned
    names = list(dict.fromkeys(p for c in b.components for p in c.parameters))
    point = np.array([0.9, 5.0, 2.7] if which == "workshop" else [0.9, 1.4, 0.7, 5.0, 2.7])
    bins = np.flatnonzero(b.templates.covered())

    def f(x):
        return say_loglike_derivatives(
            b.templates, b.counts, dict(zip(names, x, strict=True)), names, bins
        )

    _, gradient, hessian = f(point)
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-12, atol=1e-12)
    for i in range(len(names)):
        e = np.zeros(len(names))
        e[i] = 1e-5 * max(1.0, abs(point[i]))
        up, down = f(point + e), f(point - e)
        assert gradient[i] == pytest.approx((up[0] - down[0]) / (2 * e[i]), rel=1e-6, abs=1e-6)
        np.testing.assert_allclose(
            hessian[:, i], (up[1] - down[1]) / (2 * e[i]), rtol=1e-5, atol=1e-6
        )


def test_say_needs_the_variance_tables(binned):
    with pytest.raises(ValueError, match="tables of squared weights"):
        say_loglike_derivatives(
            binned.templates,
            binned.counts,
            {"atmos_norm": 1, "astro_norm": 1, "astro_gamma": 2.5},
            ["atmos_norm", "astro_norm", "astro_gamma"],
            np.arange(3),
        )


def test_templates_with_variance_stay_small_and_picklable(say_binned):
    templates = say_binned.templates
    again = pickle.loads(pickle.dumps(templates))
    p = {"atmos_norm": 1.1, "astro_norm": 4.0, "astro_gamma": 2.2}
    np.testing.assert_array_equal(
        again.variance.sum_of_squares(p), templates.variance.sum_of_squares(p)
    )
    # bins x nodes of every table and little else, independent of the number of events
    arrays = [
        getattr(t, a)
        for t in (*templates.tables, *templates.variance.pairs)
        for a in ("per_bin", "active", "log_coeffs")
        if hasattr(t, a)
    ]
    assert len(pickle.dumps(templates)) < sum(a.nbytes for a in arrays) + 20_000
    assert len(pickle.dumps(templates)) < say_binned.simulation["astroWeight"].nbytes


def test_two_power_laws_with_different_indices_are_refused(toy_dataset):
    second = PowerLawComponent("second", "astroWeight", "primaryEnergy", "n2", "gamma2")
    sim = toy_dataset.simulation
    with pytest.raises(ValueError, match="different spectral indices"):
        build_variance_tables(
            sim,
            np.zeros(len(sim), dtype=int),
            1,
            (PowerLawComponent("first", "astroWeight", "primaryEnergy", "n1", "gamma1"), second),
        )
