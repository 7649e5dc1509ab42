"""The NumPy Hessian of the MAP against PyMC's symbolic Hessian and finite differences."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.replace import graph_replace
from scipy.special import gammaln, xlogy

from diffuse_fit.binned.curvature import loglike_derivatives
from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.inference.priors import Prior, resolve_priors
from diffuse_fit.inference.pymc_model import build_model, numpy_twin, parameter_supports, set_counts
from diffuse_fit.io import hese_release as hr
from diffuse_fit.jobs.inputs import load_inputs
from diffuse_fit.physics import hese_toy
from diffuse_fit.physics.hese_weights import HESE_COMPONENTS_SPLIT


def symbolic_curvature(model):
    """PyMC's own jacobian-free log p, its Hessian and log L in the natural parameters."""
    theta = pt.vector("theta")
    replacements = {}
    for i, rv in enumerate(model.free_RVs):
        transform = model.rvs_to_transforms.get(rv)
        natural = theta[i]
        replacements[model.rvs_to_values[rv]] = (
            transform.forward(natural, *rv.owner.inputs) if transform is not None else natural
        )
    logp = graph_replace(model.logp(jacobian=False), replacements, strict=False)
    loglike = graph_replace(model.logp(vars=model.observed_RVs), replacements, strict=False)
    gradient = pytensor.grad(logp, theta)
    hessian = pt.stack([pytensor.grad(gradient[i], theta) for i in range(len(model.free_RVs))])
    return pytensor.function([theta], [hessian, loglike])


PRIOR_SETS = {
    "flat": "flat",
    "default": "default",
    "every distribution": {
        "atmos_norm": {"dist": "Gamma", "alpha": 3.0, "beta": 2.0},
        "astro_norm": {"dist": "HalfNormal", "sigma": 10.0},
        "astro_gamma": {"dist": "TruncatedNormal", "mu": 2.5, "sigma": 0.5, "lower": 1, "upper": 4},
    },
    "lognormal and exponential": {
        "atmos_norm": {"dist": "Exponential", "lam": 0.5},
        "astro_norm": {"dist": "LogNormal", "mu": 1.5, "sigma": 0.3},
    },
}


@pytest.mark.parametrize("prior_set", sorted(PRIOR_SETS))
def test_numpy_hessian_equals_pymc_symbolic_hessian(binned, prior_set):
    priors = resolve_priors(PRIOR_SETS[prior_set], parameter_supports(binned.components))
    model = build_model(binned, priors)
    reference = symbolic_curvature(model)
    names = [rv.name for rv in model.free_RVs]
    for point in ([0.6, 8.3, 3.2], [1.3, 2.0, 1.7], [0.05, 15.0, 3.9]):
        values = dict(zip(names, point, strict=True))
        loglike, hessian = numpy_twin(model).curvature(model, values)
        ref_hessian, ref_loglike = reference(np.array(point))
        np.testing.assert_allclose(hessian, ref_hessian, rtol=1e-9, atol=1e-9)
        assert loglike == pytest.approx(float(ref_loglike), rel=1e-12)


def test_loglike_derivatives_against_finite_differences(tmp_path):
    """Gradient and Hessian of ln L against central differences (split components: 5
    parameters, several tables)."""
    toy = hese_toy.make_toy_release(n=4000)
    hr.write_release_folder(tmp_path, toy.simulation, toy.data)
    inputs = load_inputs(hese_release=tmp_path)
    split = bin_dataset(inputs.data, inputs.simulation, components=HESE_COMPONENTS_SPLIT)
    names = ["atmos_norm", "prompt_norm", "muon_norm", "astro_norm", "astro_gamma"]
    point = np.array([0.9, 1.4, 0.7, 5.0, 2.7])
    bins = np.flatnonzero(split.templates.covered())

    def loglike(x):
        return loglike_derivatives(
            split.templates, split.counts, dict(zip(names, x, strict=True)), names, bins
        )

    value, gradient, hessian = loglike(point)
    step = 1e-5
    for i in range(len(names)):
        e = np.zeros(len(names))
        e[i] = step * max(1.0, abs(point[i]))
        up, down = loglike(point + e), loglike(point - e)
        assert gradient[i] == pytest.approx((up[0] - down[0]) / (2 * e[i]), rel=1e-6, abs=1e-6)
        np.testing.assert_allclose(
            hessian[:, i], (up[1] - down[1]) / (2 * e[i]), rtol=1e-5, atol=1e-6
        )
    # ln L itself against the tables' expectation
    lam = expected_counts(split.templates, dict(zip(names, point, strict=True)))[bins]
    k = split.counts[bins]
    assert value == pytest.approx(np.sum(xlogy(k, lam) - lam - gammaln(k + 1)), rel=1e-12)


def test_prior_curvature_against_finite_differences():
    from scipy import stats

    cases = [
        (Prior("LogNormal", {"mu": 0.3, "sigma": 0.7}), stats.lognorm(0.7, scale=np.exp(0.3)), 1.7),
        (Prior("Gamma", {"alpha": 3.0, "beta": 2.0}), stats.gamma(3.0, scale=0.5), 0.8),
        (Prior("HalfNormal", {"sigma": 2.0}), stats.halfnorm(scale=2.0), 1.1),
        (Prior("Exponential", {"lam": 0.5}), stats.expon(scale=2.0), 3.0),
    ]
    h = 1e-4
    for prior, dist, x in cases:
        numeric = (dist.logpdf(x + h) - 2 * dist.logpdf(x) + dist.logpdf(x - h)) / h**2
        assert prior.log_density_curvature(x) == pytest.approx(numeric, rel=1e-5, abs=1e-7)


def test_refit_uses_current_counts(binned):
    """The twin reads the model's counts as they are now (after set_counts)."""
    model = build_model(binned, resolve_priors("flat", parameter_supports(binned.components)))
    values = {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0}
    before, _ = numpy_twin(model).curvature(model, values)
    set_counts(model, expected_counts(binned.templates, values))
    after, _ = numpy_twin(model).curvature(model, values)
    assert before != after
