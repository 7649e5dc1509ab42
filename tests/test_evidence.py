"""SMC evidence of a model with a conjugate-friendly toy against a numerical integral on a grid.

The reference ``log Z = log integral L(theta) pi(theta) dtheta`` is computed here with NumPy and
SciPy only: the expected counts from the NumPy twin of the tables
(:func:`diffuse_fit.binned.templates.expected_counts`), the Poisson log-likelihood written out
with ``scipy.special.gammaln``, the priors' densities from ``scipy.stats`` (not the project's
``Prior.log_density``), and the trapezoid rule in log space on a 3-D grid over a box that
holds all but a negligible part of the posterior mass.  A one-parameter model (atmospheric
normalization only, Gamma prior) has the closed-form evidence of a Gamma-Poisson mixture.
"""

import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import gammaln, logsumexp

from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.errors import UsageError
from diffuse_fit.inference.evidence import (
    Evidence,
    bayes_factor,
    final_stage_values,
    log_evidence,
)
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import build_model, parameter_supports
from diffuse_fit.physics.components import ATMOSPHERIC

SEED = 1
# |SMC - grid| must stay below max(4 SMC standard errors, FLOOR) + the grid's own error
FLOOR = 0.05


@pytest.fixture(scope="module")
def default_model(binned):
    return build_model(binned, resolve_priors("default", parameter_supports(binned.components)))


@pytest.fixture(scope="module")
def evidence(default_model):
    return log_evidence(default_model, runs=4, draws=2000, seed=SEED)


def _scipy_prior(prior):
    """The prior as a frozen ``scipy.stats`` distribution, from its parameters alone."""
    p = prior.params
    if prior.dist == "LogNormal":
        return stats.lognorm(s=p["sigma"], scale=math.exp(p["mu"]))
    if prior.dist == "Uniform":
        return stats.uniform(loc=p["lower"], scale=p["upper"] - p["lower"])
    if prior.dist == "Gamma":
        return stats.gamma(a=p["alpha"], scale=1.0 / p["beta"])
    raise AssertionError(f"no scipy twin for {prior}")


def _log_trapezoid_weights(x):
    w = np.full(x.size, x[1] - x[0])
    w[[0, -1]] /= 2.0
    return np.log(w)


def _grid_log_integrand(binned, priors, atmos, astro, gamma):
    """``ln L + ln pi`` on the grid (atmos, astro, gamma); the expectation is linear in the
    two normalizations, so the tables are evaluated once per gamma."""
    k = binned.counts
    seen = k > 0
    atmos_unit = expected_counts(
        binned.templates, {"atmos_norm": 1.0, "astro_norm": 0.0, "astro_gamma": 2.0}
    )
    log_prior = (
        _scipy_prior(priors["atmos_norm"]).logpdf(atmos)[:, None, None]
        + _scipy_prior(priors["astro_norm"]).logpdf(astro)[None, :, None]
        + _scipy_prior(priors["astro_gamma"]).logpdf(gamma)[None, None, :]
    )
    out = np.empty((atmos.size, astro.size, gamma.size))
    for j, g in enumerate(gamma):
        astro_unit = expected_counts(
            binned.templates, {"atmos_norm": 0.0, "astro_norm": 1.0, "astro_gamma": g}
        )
        mu_seen = atmos[:, None, None] * atmos_unit[seen] + astro[None, :, None] * astro_unit[seen]
        out[:, :, j] = (
            (k[seen] * np.log(mu_seen)).sum(axis=-1)
            - atmos[:, None] * atmos_unit.sum()
            - astro[None, :] * astro_unit.sum()
            - gammaln(k + 1.0).sum()
        )
    return out + log_prior


def _grid_log_z(binned, priors, n):
    """Trapezoid ``log Z`` on an ``n^3`` grid, and the highest log-integrand on the box faces
    inside the priors' support relative to the peak (the mass the box leaves out)."""
    atmos, astro = np.linspace(0.01, 3.5, n), np.linspace(0.5, 25.0, n)
    gamma = np.linspace(1.0, 4.0, n)  # the prior's support: nothing beyond
    f = _grid_log_integrand(binned, priors, atmos, astro, gamma)
    weights = (
        _log_trapezoid_weights(atmos)[:, None, None]
        + _log_trapezoid_weights(astro)[None, :, None]
        + _log_trapezoid_weights(gamma)[None, None, :]
    )
    faces = max(f[0].max(), f[-1].max(), f[:, 0].max(), f[:, -1].max())
    return float(logsumexp(f + weights)), float(faces - f.max())


@pytest.mark.slow
def test_smc_evidence_matches_grid_integral(binned, default_model, evidence):
    priors = resolve_priors("default", parameter_supports(binned.components))
    reference, face = _grid_log_z(binned, priors, 61)
    coarse, _ = _grid_log_z(binned, priors, 41)
    grid_error = abs(reference - coarse)
    assert face < -15.0  # the box's faces carry < e^-15 of the peak density
    assert grid_error < 1e-3
    assert evidence.runs == 4 and len(evidence.log_z_runs) == 4
    assert np.isfinite(evidence.spread) and evidence.spread > 0
    assert evidence.standard_error == pytest.approx(evidence.spread / 2.0)
    tolerance = max(4.0 * evidence.standard_error, FLOOR) + grid_error
    assert abs(evidence.log_z - reference) < tolerance, (evidence.log_z_runs, reference)
    # log of the mean Z vs mean of the logs: equal to well within the standard error here
    assert abs(evidence.log_z - np.mean(evidence.log_z_runs)) < evidence.standard_error


@pytest.mark.slow
def test_summary_is_json_and_posterior_kept(evidence):
    record = json.loads(json.dumps(evidence.to_dict()))
    assert record["log_z"] == evidence.log_z
    assert record["log_z_runs"] == list(evidence.log_z_runs)
    assert "posterior" not in record
    posterior = evidence.posterior["posterior"]
    assert posterior.sizes["chain"] == 4 and posterior.sizes["draw"] == 2000


def test_same_seed_same_runs(default_model):
    first = log_evidence(default_model, runs=2, draws=200, seed=7)
    again = log_evidence(default_model, runs=2, draws=200, seed=7)
    other = log_evidence(default_model, runs=2, draws=200, seed=8)
    assert first.log_z_runs == again.log_z_runs
    assert first.log_z_runs != other.log_z_runs
    assert first.log_z_runs[0] != first.log_z_runs[1]  # the runs are independent


def test_gamma_poisson_evidence_is_analytic(toy_dataset):
    """Atmospheric normalization only, Gamma(alpha, beta) prior: Z = prod_b A_b^k_b / k_b! *
    beta^alpha / Gamma(alpha) * Gamma(alpha + K) / (beta + sum A)^(alpha + K)."""
    alpha, beta = 2.0, 0.5
    binned = bin_dataset(toy_dataset.data, toy_dataset.simulation, components=(ATMOSPHERIC,))
    spec = {"atmos_norm": {"dist": "Gamma", "alpha": alpha, "beta": beta}}
    model = build_model(binned, resolve_priors(spec, parameter_supports(binned.components)))
    unit = expected_counts(binned.templates, {"atmos_norm": 1.0})
    k = binned.counts
    seen = k > 0
    total = k.sum()
    exact = (
        (k[seen] * np.log(unit[seen])).sum()
        - gammaln(k + 1.0).sum()
        + alpha * math.log(beta)
        - gammaln(alpha)
        + gammaln(alpha + total)
        - (alpha + total) * math.log(beta + unit.sum())
    )
    result = log_evidence(model, runs=4, draws=2000, seed=SEED)
    assert abs(result.log_z - exact) < max(4.0 * result.standard_error, FLOOR), (
        result.log_z_runs,
        exact,
    )


@pytest.mark.parametrize("prior", ["flat", "hese"])
def test_improper_priors_are_refused(binned, prior):
    model = build_model(binned, resolve_priors(prior, parameter_supports(binned.components)))
    with pytest.raises(UsageError, match=r"proper priors; improper: .*astro_norm \(HalfFlat"):
        log_evidence(model, seed=SEED)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"runs": 1}, "at least 2 runs"),
        ({"draws": 5}, "at least 10 draws"),
    ],
)
def test_bad_options_are_refused(default_model, options, message):
    with pytest.raises(UsageError, match=message):
        log_evidence(default_model, seed=SEED, **options)


def test_final_stage_values_of_every_layout():
    """PyMC's stored layouts: (chain, stage) objects, ragged lists, one chain's stages."""
    nan = float("nan")
    square = np.array([[nan, nan, -3.0], [nan, nan, -4.0]], dtype=object)
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [nan, -3.0], [nan, nan, nan, -4.0]
    for stored in (square, ragged):
        np.testing.assert_array_equal(final_stage_values(stored, 2), [-3.0, -4.0])
    np.testing.assert_array_equal(final_stage_values(np.array([nan, nan, -5.0]), 1), [-5.0])
    assert np.isnan(final_stage_values(np.array([[nan], [-1.0]], dtype=object), 2)[0])


def test_bayes_factor_and_estimator():
    a = Evidence.from_runs([-10.0, -10.2], draws=100, seed=1)
    b = Evidence.from_runs([-12.0, -12.0, -12.0], draws=100, seed=1)
    assert a.log_z == pytest.approx(np.log(np.mean(np.exp([-10.0, -10.2]))))
    assert a.spread == pytest.approx(np.std([-10.0, -10.2], ddof=1))
    assert b.spread == 0.0 and b.standard_error == 0.0
    result = bayes_factor(a, b)
    assert result["log_bf"] == pytest.approx(a.log_z + 12.0)
    assert result["standard_error"] == pytest.approx(a.standard_error)
    with pytest.raises(UsageError, match="at least 2 runs"):
        Evidence.from_runs([-1.0], draws=100, seed=1)
