"""The NumPy profile fitter against PyMC's MAP, the workshop's fit and an independent
per-event SciPy profile; the priors' NumPy log-densities against PyMC's."""

import math
import warnings

import numpy as np
import pymc as pm
import pytest
import scipy.optimize
from scipy import stats

from diffuse_fit.binned import reference_fit
from diffuse_fit.fitting.profile import ProfileFitter
from diffuse_fit.inference.map_fit import MapFitter
from diffuse_fit.inference.priors import PRIOR_SETS, Prior, PriorError, resolve_priors
from diffuse_fit.inference.pymc_model import build_model, parameter_supports

NAMES = list(reference_fit.PARAMETERS)
START = dict(zip(NAMES, reference_fit.X0, strict=True))


def priors_of(binned, spec):
    return resolve_priors(spec, parameter_supports(binned.components))


def per_event_nll(binned, params):
    """-ln L from the simulated events (the workshop's functions), no tables."""
    w = reference_fit.weight_event(binned.simulation, *(params[n] for n in NAMES))
    lam = reference_fit.get_expectation(binned.sim_bin_index, w, binned.binning.n_bins)
    return -reference_fit.llh(binned.counts, lam)


def scipy_profile(binned, fixed: dict) -> float:
    """Independent profile: min over the free parameters of the per-event -ln L (flat
    priors), Nelder-Mead from the workshop's start, bounded by a penalty."""
    free = [n for n in NAMES if n not in fixed]
    bounds = dict(zip(NAMES, reference_fit.BOUNDS, strict=True))

    def objective(x):
        params = {**fixed, **dict(zip(free, x, strict=True))}
        for n in free:
            lo, hi = bounds[n]
            if params[n] < lo or (hi is not None and params[n] > hi):
                return 1e30
        return per_event_nll(binned, params)

    result = scipy.optimize.minimize(
        objective,
        [START[n] for n in free],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000, "maxfev": 40_000},
    )
    return float(result.fun)


@pytest.mark.parametrize("spec", ["flat", "default"])
def test_best_fit_equals_pymc_map(binned, spec):
    priors = priors_of(binned, spec)
    best = ProfileFitter(binned.templates, priors).fit(binned.counts, x0=START)
    pymc_map = MapFitter(build_model(binned, priors)).fit()
    assert best.converged
    for name in NAMES:
        assert best.values[name] == pytest.approx(pymc_map.values[name], rel=1e-6)
    # -ln L is not stationary at a MAP with priors: MapFitter's L-BFGS-B stops at
    # |gradient| < 1e-5, which moves -ln L by ~1e-8
    assert best.neg_log_likelihood == pytest.approx(pymc_map.neg_log_likelihood, abs=1e-6)


def test_flat_best_fit_equals_the_workshop_fit(binned):
    best = ProfileFitter(binned.templates, priors_of(binned, "flat")).fit(binned.counts, x0=START)
    ref = reference_fit.fit(
        binned.counts, binned.simulation, binned.sim_bin_index, binned.binning.n_bins
    )
    assert ref.converged
    for name, value in ref.as_dict().items():
        assert best.values[name] == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize(
    "fixed",
    [
        {"astro_gamma": 2.6},
        {"astro_gamma": 3.6},
        {"astro_norm": 5.0},
        {"astro_norm": 11.0, "astro_gamma": 3.0},
    ],
)
def test_profile_equals_independent_scipy_profile(binned, fixed):
    profile = ProfileFitter(binned.templates, priors_of(binned, "flat"))
    fit = profile.fit(binned.counts, fixed=fixed, x0=START)
    assert fit.converged
    for name, value in fixed.items():
        assert fit.values[name] == value
    assert fit.neg_log_likelihood == pytest.approx(scipy_profile(binned, fixed), abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_profile_interval_ends_are_where_ts_is_one(binned, name):
    profile = ProfileFitter(binned.templates, priors_of(binned, "flat"))
    best = profile.fit(binned.counts, x0=START)
    lower, upper = profile.interval(binned.counts, best, name)
    assert lower < best.values[name] < upper
    best_nll = scipy_profile(binned, {})
    for end in (lower, upper):
        ts = 2.0 * (scipy_profile(binned, {name: end}) - best_nll)
        assert ts == pytest.approx(1.0, abs=1e-5)


def test_interval_reaching_a_boundary_is_the_boundary(binned):
    """With few astrophysical events the lower end of astro_norm is 0 (ts < 1 there)."""
    profile = ProfileFitter(binned.templates, priors_of(binned, "flat"))
    counts = np.asarray(binned.counts, dtype=float).copy()
    truth = {"atmos_norm": 1.0, "astro_norm": 0.05, "astro_gamma": 2.5}
    counts = np.random.default_rng(3).poisson(profile.expected(truth)).astype(float)
    best = profile.fit(counts, x0=START)
    lower, upper = profile.interval(counts, best, "astro_norm")
    ts_at_zero = -2 * (
        profile.fit(counts, fixed={"astro_norm": 0.0}, x0=best.values).log_posterior
        - best.log_posterior
    )
    assert ts_at_zero < 1.0
    assert lower == 0.0
    assert upper > best.values["astro_norm"]


PRIORS = [
    Prior("HalfFlat"),
    Prior("LogNormal", {"mu": 0.3, "sigma": 0.7}),
    Prior("HalfNormal", {"sigma": 2.0}),
    Prior("Gamma", {"alpha": 3.0, "beta": 0.5}),
    Prior("Exponential", {"lam": 0.4}),
    Prior("Uniform", {"lower": 1.0, "upper": 4.0}),
    Prior("TruncatedNormal", {"mu": 2.5, "sigma": 0.5, "lower": 1.0, "upper": 4.0}),
    Prior("TruncatedNormal", {"mu": 2.5, "sigma": 0.5}),
]


@pytest.mark.parametrize("prior", PRIORS, ids=str)
def test_prior_log_density_equals_pymc(prior):
    xs = [1.3, 2.0, 3.7]
    with pm.Model():
        rv = prior.build("x")
    for x in xs:
        expected = float(pm.logp(rv, np.float64(x)).eval())
        # PyMC's TruncatedNormal normalisation is 1.4e-9 off scipy.stats.truncnorm (which
        # log_density equals to 1e-15); the other densities agree to rounding
        tolerance = 1e-8 if prior.dist == "TruncatedNormal" else 1e-12
        assert prior.log_density(x) == pytest.approx(expected, abs=tolerance)
        if prior.dist == "TruncatedNormal":
            lo, hi = prior.support()
            mu, sigma = prior.params["mu"], prior.params["sigma"]
            reference = stats.truncnorm.logpdf(x, (lo - mu) / sigma, (hi - mu) / sigma, mu, sigma)
            assert prior.log_density(x) == pytest.approx(reference, abs=1e-12)
        h = 1e-5
        numeric = (prior.log_density(x + h) - prior.log_density(x - h)) / (2 * h)
        assert prior.log_density_gradient(x) == pytest.approx(numeric, rel=1e-6, abs=1e-8)
        numeric2 = (prior.log_density_gradient(x + h) - prior.log_density_gradient(x - h)) / (2 * h)
        assert prior.log_density_curvature(x) == pytest.approx(numeric2, rel=1e-5, abs=1e-8)
    lo, hi = prior.support()
    if math.isfinite(hi):
        assert prior.log_density(hi + 0.1) == -math.inf


@pytest.mark.parametrize("prior", [p for p in PRIORS if p.proper], ids=str)
def test_prior_draws_follow_pymc(prior):
    draws = prior.draw(np.random.default_rng(1), size=4000)
    with pm.Model():
        rv = prior.build("x")
    with warnings.catch_warnings():  # numba: TruncatedNormal draws run in object mode
        warnings.simplefilter("ignore", UserWarning)
        reference = pm.draw(rv, draws=4000, random_seed=2)
    assert stats.ks_2samp(draws, reference).pvalue > 1e-3
    lo, hi = prior.support()
    assert np.all((draws >= lo) & (draws <= hi))


def test_improper_prior_cannot_be_drawn():
    with pytest.raises(PriorError, match="improper"):
        PRIOR_SETS["flat"]["atmos_norm"].draw(np.random.default_rng(0))


@pytest.mark.parametrize("spec", ["flat", "default"])
def test_log_posterior_is_the_pymc_models_density(binned, spec):
    """The fitter's objective is the PyMC model's log-density without the Jacobian (the
    density ``map`` maximises), at random points, with its gradient."""
    priors = priors_of(binned, spec)
    profile = ProfileFitter(binned.templates, priors)
    model = build_model(binned, priors)
    logp = model.compile_logp(jacobian=False)
    dlogp = model.compile_dlogp(jacobian=False)
    rng = np.random.default_rng(4)
    for _ in range(5):
        values = {
            "atmos_norm": rng.uniform(0.2, 2),
            "astro_norm": rng.uniform(2, 15),
            "astro_gamma": rng.uniform(1.5, 3.8),
        }
        point = model.initial_point()
        for rv, value_var in zip(model.free_RVs, model.value_vars, strict=True):
            transform = model.rvs_to_transforms[rv]
            x = np.float64(values[rv.name])
            point[value_var.name] = (
                transform.forward(x, *rv.owner.inputs).eval() if transform is not None else x
            )
        ours, grad, _, _ = profile.log_posterior(binned.counts, values)
        assert ours == pytest.approx(float(logp(point)), abs=1e-9)
        # d log p / d u = d log p / d x * dx/du, compared in the unconstrained coordinates
        du = [
            grad[i] * profile.transforms[n].derivative(values[n])
            for i, n in enumerate(profile.names)
        ]
        np.testing.assert_allclose(du, dlogp(point), rtol=1e-9, atol=1e-9)
