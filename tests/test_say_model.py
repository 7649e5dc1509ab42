"""The PyMC model with the SAY likelihood against its NumPy twin, finite differences and an
independent SciPy maximisation of the per-event formula."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.optimize
from pytensor.graph.replace import graph_replace
from scipy.special import gammaln

from diffuse_fit.binned.say import say_loglike
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.inference.map_fit import X0, MapFitter
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import build_model, numpy_twin, parameter_supports, say_logp

NAMES = ["atmos_norm", "astro_norm", "astro_gamma"]


@pytest.fixture(scope="module")
def say_model(binned):
    priors = resolve_priors("flat", parameter_supports(binned.components))
    return build_model(binned, priors, likelihood="say")


def natural_functions(model, with_hessian=False):
    """Compiled ``theta -> (ln L, d ln L / d theta[, Hessian of log p])`` in the natural
    parameters (PyMC's own graphs, transforms replaced).  The Hessian needs trigamma, which
    pytensor's numba backend runs in object mode (with a warning): tests only."""
    theta = pt.vector("theta")
    replacements = {}
    for i, rv in enumerate(model.free_RVs):
        transform = model.rvs_to_transforms.get(rv)
        replacements[model.rvs_to_values[rv]] = (
            transform.forward(theta[i], *rv.owner.inputs) if transform is not None else theta[i]
        )
    loglike = graph_replace(model.logp(vars=model.observed_RVs), replacements, strict=False)
    logp = graph_replace(model.logp(jacobian=False), replacements, strict=False)
    gradient = pytensor.grad(logp, theta)
    hessian = pt.stack([pytensor.grad(gradient[i], theta) for i in range(len(model.free_RVs))])
    outputs = [loglike, pytensor.grad(loglike, theta)] + ([hessian] if with_hessian else [])
    return pytensor.function([theta], outputs)


def _per_event_say(binned, p):
    """-ln L of SAY from the per-event weights, written out (independent of the tables)."""
    sim, index = binned.simulation, binned.sim_bin_index
    e = sim["primaryEnergy"] / 1e5
    w = p[0] * sim["atmoWeight"] + p[1] * sim["astroWeight"] * e ** -(p[2] - 2.5)
    inside = index >= 0
    mu = np.bincount(index[inside], weights=w[inside], minlength=binned.binning.n_bins)
    s2 = np.bincount(index[inside], weights=w[inside] ** 2, minlength=binned.binning.n_bins)
    k = binned.counts
    used = s2 > 0
    k, mu, s2 = k[used], mu[used], s2[used]
    a, b = mu**2 / s2 + 1, mu / s2
    lnl = a * np.log(b) + gammaln(k + a) - gammaln(k + 1) - (k + a) * np.log1p(b) - gammaln(a)
    return -float(np.sum(lnl))


def test_pytensor_logp_equals_numpy_twin(binned, say_model, rng):
    f = natural_functions(say_model)
    variance = say_model.diffuse_fit_twin.templates.variance
    bins = np.asarray(say_model.coords["bin"])
    for _ in range(10):
        point = {
            "atmos_norm": rng.uniform(0.05, 3),
            "astro_norm": rng.uniform(0.1, 20),
            "astro_gamma": rng.uniform(1.001, 3.999),
        }
        mu = expected_counts(binned.templates, point)[bins]
        s2 = variance.sum_of_squares(point)[bins]
        numpy = float(np.sum(say_loglike(binned.counts[bins], mu, s2)))
        loglike, _ = f(np.array([point[n] for n in NAMES]))
        assert float(loglike) == pytest.approx(numpy, rel=1e-10)
        assert float(loglike) == pytest.approx(
            -_per_event_say(binned, list(point.values())), rel=1e-9
        )


def test_say_logp_elementwise_and_at_s2_zero(rng):
    k = rng.poisson(3.0, 100).astype(float)
    mu = rng.uniform(0.01, 10, 100)
    s2 = np.where(rng.uniform(size=100) < 0.2, 0.0, mu * rng.uniform(0.001, 2.0, 100))
    ours = say_logp(pt.as_tensor(k), pt.as_tensor(mu), pt.as_tensor(s2)).eval()
    np.testing.assert_allclose(ours, say_loglike(k, mu, s2), rtol=1e-12)
    # the gradient through the s2 = 0 branch is finite (no NaN from the unused branch)
    m = pt.vector("m")
    grad = pytensor.grad(say_logp(pt.as_tensor(k), m, pt.as_tensor(s2)).sum(), m)
    assert np.all(np.isfinite(grad.eval({m: mu})))


@pytest.mark.filterwarnings("ignore:Numba will use object mode:UserWarning")  # trigamma
def test_pytensor_gradient_and_twin_hessian_against_finite_differences(say_model):
    f = natural_functions(say_model, with_hessian=True)
    twin = numpy_twin(say_model)
    for point in ([0.6, 8.3, 3.2], [1.3, 2.0, 1.7], [0.9, 5.0, 2.6]):
        x = np.array(point)
        loglike, gradient, hessian = f(x)
        for i in range(3):
            e = np.zeros(3)
            e[i] = 1e-6 * max(1.0, abs(x[i]))
            numeric = (float(f(x + e)[0]) - float(f(x - e)[0])) / (2 * e[i])
            assert gradient[i] == pytest.approx(numeric, rel=1e-6, abs=1e-6)
        twin_loglike, twin_hessian = twin.curvature(say_model, dict(zip(NAMES, point, strict=True)))
        assert twin_loglike == pytest.approx(float(loglike), rel=1e-10)
        np.testing.assert_allclose(twin_hessian, hessian, rtol=1e-7, atol=1e-7)


def test_say_map_equals_scipy_on_the_per_event_formula(binned, say_model):
    result = MapFitter(say_model).fit()
    assert result.converged, result.problems
    reference = scipy.optimize.minimize(
        lambda p: _per_event_say(binned, p),
        [X0[n] for n in NAMES],
        method="Nelder-Mead",
        bounds=[(0, None), (0, None), (1, 4)],
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20_000, "maxfev": 20_000},
    )
    assert reference.success, reference.message
    for name, value in zip(NAMES, reference.x, strict=True):
        assert result.values[name] == pytest.approx(value, rel=1e-4)
    assert result.neg_log_likelihood == pytest.approx(reference.fun, rel=1e-8)


def test_unknown_likelihood_is_refused(binned):
    priors = resolve_priors("flat", parameter_supports(binned.components))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        build_model(binned, priors, likelihood="gauss")


def test_split_components_pytensor_logp_equals_numpy_twin(tmp_path):
    """Four components (10 tables of squared weights): the pytensor SAY log-likelihood
    equals the NumPy twin's."""
    from diffuse_fit.binned.dataset import bin_dataset
    from diffuse_fit.io import hese_release as hr
    from diffuse_fit.jobs.inputs import load_inputs
    from diffuse_fit.physics import hese_toy
    from diffuse_fit.physics.hese_weights import HESE_COMPONENTS_SPLIT

    toy = hese_toy.make_toy_release(n=4000)
    hr.write_release_folder(tmp_path, toy.simulation, toy.data)
    inputs = load_inputs(hese_release=tmp_path)
    split = bin_dataset(inputs.data, inputs.simulation, components=HESE_COMPONENTS_SPLIT)
    model = build_model(
        split, resolve_priors("flat", parameter_supports(split.components)), likelihood="say"
    )
    names = [rv.name for rv in model.free_RVs]
    f = natural_functions(model)
    for point in ([0.9, 1.4, 0.7, 5.0, 2.7], [1.2, 0.3, 2.0, 11.0, 1.9]):
        values = dict(zip(names, point, strict=True))
        twin_loglike, _ = numpy_twin(model).curvature(model, values)
        assert float(f(np.array(point))[0]) == pytest.approx(twin_loglike, rel=1e-10)
