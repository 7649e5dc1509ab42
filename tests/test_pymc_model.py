"""The PyMC model against the NumPy/SciPy reference (celerite2-style: twin implementations)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from diffuse_fit.binned import reference_fit
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.inference.map_fit import X0, MapFitter, find_map
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import (
    build_model,
    expected_counts_pt,
    parameter_supports,
    set_counts,
)

NAMES = ("atmos_norm", "astro_norm", "astro_gamma")


@pytest.fixture(scope="module")
def flat_model(binned):
    return build_model(binned, resolve_priors("flat", parameter_supports(binned.components)))


@pytest.fixture(scope="module")
def fitter(flat_model):
    """One compiled MAP fitter, reused for every dataset below (counts swapped by set_counts)."""
    return MapFitter(flat_model)


def _random_points(rng, n):
    return [
        {
            "atmos_norm": rng.uniform(0.05, 3),
            "astro_norm": rng.uniform(0.1, 20),
            "astro_gamma": rng.uniform(1.001, 3.999),
        }
        for _ in range(n)
    ]


def _transformed(point):
    """Point in PyMC's unconstrained space (log for HalfFlat, logit-interval for Uniform(1, 4))."""
    g = point["astro_gamma"]
    return {
        "atmos_norm_log__": np.log(point["atmos_norm"]),
        "astro_norm_log__": np.log(point["astro_norm"]),
        "astro_gamma_interval__": np.log((g - 1.0) / (4.0 - g)),
    }


def test_expectation_matches_numpy(binned, flat_model, rng):
    symbols = {n: pt.scalar(n) for n in NAMES}
    bins = np.asarray(flat_model.coords["bin"])
    lam = pt.add(*expected_counts_pt(binned.templates, symbols, bins).values())
    f = pytensor.function(list(symbols.values()), lam)
    for p in _random_points(rng, 20):
        np.testing.assert_allclose(
            f(*p.values()), expected_counts(binned.templates, p)[bins], rtol=1e-10, atol=0
        )


def test_log_likelihood_matches_reference(binned, flat_model, rng):
    """Observed-term logp == the workshop llh (constant 0); full flat logp == llh - log 3."""
    loglike = flat_model.compile_logp(vars=flat_model.observed_RVs, jacobian=False)
    logp = flat_model.compile_logp(jacobian=False)
    for p in _random_points(rng, 20):
        w = reference_fit.weight_event(binned.simulation, *p.values())
        lam = reference_fit.get_expectation(binned.sim_bin_index, w, binned.binning.n_bins)
        reference = reference_fit.llh(binned.counts, lam)
        assert loglike(_transformed(p)) == pytest.approx(reference, rel=1e-10)
        assert logp(_transformed(p)) == pytest.approx(reference - np.log(3.0), rel=1e-10)


def test_gradient_matches_finite_differences(binned, flat_model, rng):
    dlogp = flat_model.compile_dlogp(jacobian=False)
    logp = flat_model.compile_logp(jacobian=False)
    for p in _random_points(rng, 5):
        x = _transformed(p)
        grad = dlogp(x)
        for i, key in enumerate(x):
            h = 1e-6
            up, down = dict(x), dict(x)
            up[key] += h
            down[key] -= h
            numeric = (logp(up) - logp(down)) / (2 * h)
            assert grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


def _reference(binned, counts):
    fit = reference_fit.fit(counts, binned.simulation, binned.sim_bin_index, binned.binning.n_bins)
    assert fit.converged, fit.message
    return fit


def _reference_errors(binned, x, h=1e-4):
    """Errors from a central finite-difference Hessian of the reference -llh (steps h * x)."""

    def nll(p):
        w = reference_fit.weight_event(binned.simulation, *p)
        lam = reference_fit.get_expectation(binned.sim_bin_index, w, binned.binning.n_bins)
        return -reference_fit.llh(binned.counts, lam)

    steps = h * np.asarray(x)
    hess = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            ei, ej = np.eye(3)[i] * steps[i], np.eye(3)[j] * steps[j]
            hess[i, j] = (
                nll(x + ei + ej) - nll(x + ei - ej) - nll(x - ei + ej) + nll(x - ei - ej)
            ) / (4 * steps[i] * steps[j])
    return np.sqrt(np.diag(np.linalg.inv(hess)))


def test_map_equals_reference_fit_on_default_data(binned, flat_model, fitter):
    set_counts(flat_model, binned.counts)
    result, ref = fitter.fit(), _reference(binned, binned.counts)
    assert result.converged and result.problems == [] and result.unconstrained == []
    np.testing.assert_allclose([result.values[n] for n in NAMES], ref.x, rtol=1e-4)
    assert result.neg_log_likelihood == pytest.approx(ref.neg_log_likelihood, abs=1e-6)
    # covariance: symmetric positive definite; errors = a finite-difference Hessian of the
    # reference -llh (its truncation error ~h^2 ~ 1e-8 relative, noise ~1e-13 / h^2 ~ 1e-5)
    assert np.allclose(result.covariance, result.covariance.T)
    assert np.all(np.linalg.eigvalsh(result.covariance) > 0)
    np.testing.assert_allclose(
        [result.errors[n] for n in NAMES], _reference_errors(binned, ref.x), rtol=1e-3
    )


def test_map_start_is_the_workshop_x0(fitter):
    """The MAP starts where the workshop's scipy fit does, (1, 6, 2.5), in natural units."""
    assert X0 == dict(zip(reference_fit.PARAMETERS, reference_fit.X0, strict=True))
    assert tuple(X0.values()) == (1.0, 6.0, 2.5)
    np.testing.assert_allclose(fitter.natural(fitter.start(X0)), reference_fit.X0, rtol=1e-14)


def test_map_of_empty_counts_is_reported(binned, flat_model, fitter):
    """No observed event (e.g. a pseudo-experiment swapped in by set_counts): the norms run
    to 0, where log p is flat in them; the fit says so and gives no errors."""
    set_counts(flat_model, np.zeros(binned.binning.n_bins))
    try:
        result = fitter.fit()
    finally:
        set_counts(flat_model, binned.counts)
    assert result.values["atmos_norm"] < 1e-6 and result.values["astro_norm"] < 1e-6
    assert {"atmos_norm", "astro_norm"} <= set(result.unconstrained)
    assert result.problems and all(v is None for v in result.errors.values())


@pytest.mark.parametrize(
    "truth",
    [
        {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0},
        {"atmos_norm": 1.5, "astro_norm": 2.0, "astro_gamma": 2.2},
    ],
)
def test_map_equals_reference_fit_on_asimov_data(binned, flat_model, fitter, truth):
    asimov = expected_counts(binned.templates, truth)
    set_counts(flat_model, asimov)  # the same model and compiled fitter, new observations
    try:
        result, ref = fitter.fit(), _reference(binned, asimov)
    finally:
        set_counts(flat_model, binned.counts)
    np.testing.assert_allclose([result.values[n] for n in NAMES], ref.x, rtol=1e-4)
    np.testing.assert_allclose(ref.x, list(truth.values()), rtol=1e-4)
    assert result.neg_log_likelihood == pytest.approx(ref.neg_log_likelihood, abs=1e-6)


def test_fitter_agrees_with_pm_find_map(binned, flat_model, fitter):
    import warnings

    import pymc as pm

    set_counts(flat_model, binned.counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # find_MAP's notices about its future defaults
        fm = pm.find_MAP(
            initvals=X0,
            return_inferencedata=True,
            jitter=False,
            progressbar=False,
            model=flat_model,
            options={"ftol": 1e-15, "gtol": 1e-10},
        )
    result = fitter.fit()
    for name in NAMES:
        assert result.values[name] == pytest.approx(float(fm.posterior[name].squeeze()), rel=1e-6)


def test_bins_without_simulation_are_left_out_and_guarded(toy_dataset):
    """Energy bins up to 1e9 GeV: the top ones hold no simulated events."""
    from diffuse_fit.binned.binning import Binning
    from diffuse_fit.binned.dataset import bin_dataset
    from diffuse_fit.errors import DataFormatError
    from diffuse_fit.io.events import EventTable

    binning = Binning(energy_edges=np.logspace(np.log10(6e4), 9, 25))
    binned = bin_dataset(toy_dataset.data, toy_dataset.simulation, binning)
    model = build_model(binned, resolve_priors("flat", parameter_supports(binned.components)))
    empty = np.setdiff1d(np.arange(binning.n_bins), model.coords["bin"])
    assert empty.size > 0 and np.all(binned.counts[empty] == 0)
    counts = binned.counts.copy()
    counts[empty[0]] = 1
    with pytest.raises(DataFormatError, match="simulation has none"):
        set_counts(model, counts)
    data = toy_dataset.data
    extra = {
        k: np.append(v, {"energy": 5e8, "zenith": 1.0, "topology": 0.0}[k])
        for k, v in data.columns.items()
    }
    with pytest.raises(DataFormatError, match="predicts no events"):
        bin_dataset(EventTable(extra, "extra.json"), toy_dataset.simulation, binning)


def test_observation_is_the_poisson_density(rng):
    import pymc as pm

    from diffuse_fit.inference.pymc_model import poisson_logp

    k = rng.poisson(3.0, 50).astype(float)
    mu = rng.uniform(0.1, 10.0, 50)
    ours = poisson_logp(pt.as_tensor(k), pt.as_tensor(mu)).eval()
    np.testing.assert_allclose(ours, pm.logp(pm.Poisson.dist(mu=mu), k).eval(), rtol=1e-12)
    assert np.isclose(poisson_logp(pt.as_tensor(0.0), pt.as_tensor(2.0)).eval(), -2.0)


@pytest.mark.filterwarnings("ignore:Numba will use object mode:UserWarning")  # NumPy random draws
def test_posterior_predictive_draws_are_poisson(flat_model, binned):
    import pymc as pm
    import xarray as xr

    point = {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0}
    n = 2000
    posterior = xr.Dataset({k: (("chain", "draw"), np.full((1, n), v)) for k, v in point.items()})
    with flat_model:
        pp = pm.sample_posterior_predictive(posterior, random_seed=1, progressbar=False)
    draws = pp.posterior_predictive["observed"].values.reshape(n, -1)
    lam = expected_counts(binned.templates, point)[np.asarray(flat_model.coords["bin"])]
    assert np.all(draws == np.round(draws))
    # totals: Poisson mean and variance both sum(lam)
    total = draws.sum(axis=1)
    assert abs(total.mean() - lam.sum()) < 5 * np.sqrt(lam.sum() / n)
    assert abs(total.var() / lam.sum() - 1) < 0.15


def test_default_priors_change_the_map(binned):
    priors = resolve_priors("default", parameter_supports(binned.components))
    result = find_map(build_model(binned, priors))
    ref = _reference(binned, binned.counts)
    # the LogNormal(0, 0.5) prior pulls atmos_norm towards 1
    assert abs(result.values["atmos_norm"] - 1.0) < abs(ref.x[0] - 1.0)
