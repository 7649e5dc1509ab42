"""The MAP of the model the user holds (issue 18, item 1).

``fit_map`` takes the exact NumPy twin only for the model ``build_model`` made, unchanged;
a model extended by the user (a Potential, an added random variable, a prior changed with
``pm.do`` or rebuilt) is fitted by PyMC's own compiled log-density.  The reference is
``pm.find_MAP`` on the same model (PyMC's L-BFGS-B, tight tolerance), compared at 1e-5
relative; the unmodified model is compared with the workshop's scipy fit (an independent
transcription of the notebook, :mod:`diffuse_fit.binned.reference_fit`).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pymc as pm
import pytest

import diffuse_fit as df
from diffuse_fit.binned import reference_fit
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.inference.map_fit import MapFitter
from diffuse_fit.inference.pymc_model import builder_twin, expected_counts_pt, set_counts

PARAMETERS = ("atmos_norm", "astro_norm", "astro_gamma")


@pytest.fixture(scope="module")
def binned_toy():
    return df.bin_inputs(df.load_inputs())


def _find_map(m: pm.Model) -> dict:
    """PyMC's own MAP of ``m`` (natural values), from the workshop's start."""
    start = dict(zip(reference_fit.PARAMETERS, reference_fit.X0, strict=True))
    with m, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = pm.find_MAP(
            initvals=start,
            progressbar=False,
            return_inferencedata=False,
            jitter=False,
            tol=1e-12,
            maxiter=20_000,
        )
    return {k: float(np.asarray(v)) for k, v in point.items() if np.ndim(v) == 0}


def _assert_close(result, reference: dict, rtol=1e-5):
    for name, value in result.values.items():
        assert value == pytest.approx(reference[name], rel=rtol, abs=1e-7), name


def test_unmodified_model_takes_the_fast_path_and_equals_the_workshop_fit(binned_toy, caplog):
    m = df.build_model(binned_toy, priors="flat")
    with caplog.at_level(logging.INFO, logger="diffuse_fit.inference.map_fit"):
        result = df.fit_map(m)
    assert result.path == "numpy" and result.path_reason == ""
    assert "NumPy twin" in caplog.text  # the one line saying which path
    b = binned_toy
    ref = reference_fit.fit(b.counts, b.simulation, b.sim_bin_index, b.binning.n_bins)
    for name in PARAMETERS:
        assert result.values[name] == pytest.approx(ref.as_dict()[name], rel=1e-6)


def test_potential_is_fitted_not_ignored(binned_toy, caplog):
    """The issue's reproduction: Normal(2, 0.05) on gamma by a Potential moves the MAP."""
    m = df.build_model(binned_toy, priors="flat")
    free = df.fit_map(m)
    with m:
        pm.Potential("gamma_constraint", pm.logp(pm.Normal.dist(2.0, 0.05), m["astro_gamma"]))
    with caplog.at_level(logging.INFO, logger="diffuse_fit.inference.map_fit"):
        result = df.fit_map(m)
    assert result.path == "pymc" and "gamma_constraint" in result.path_reason
    assert "PyMC's compiled log-density" in caplog.text
    assert result.converged and result.problems == []
    assert abs(result.values["astro_gamma"] - 2.05) < 0.05 < abs(free.values["astro_gamma"] - 2)
    _assert_close(result, _find_map(m))
    # -ln L is the observed term only (no potential): the twin's -ln L at the same point
    twin = builder_twin(df.build_model(binned_toy, priors="flat"))[0]
    assert twin is not None
    from diffuse_fit.binned.likelihoods import LIKELIHOODS

    loglike = LIKELIHOODS["poisson"](
        twin.templates, binned_toy.counts, result.values, list(PARAMETERS), twin.bins
    )[0]
    assert result.neg_log_likelihood == pytest.approx(-loglike, rel=1e-10)


def test_added_random_variable(binned_toy):
    m = df.build_model(binned_toy, priors="flat")
    with m:
        shift = pm.Normal("shift", 0.0, 0.1)
        pm.Potential("tie", pm.logp(pm.Normal.dist(2.0 + shift, 0.05), m["astro_gamma"]))
    result = df.fit_map(m)
    assert result.path == "pymc" and "shift" in result.path_reason
    assert set(result.values) == {*PARAMETERS, "shift"}
    assert result.converged and np.all(np.isfinite(np.diag(result.covariance)))
    _assert_close(result, _find_map(m))


def test_prior_changed_with_do_and_rebuilt_model(binned_toy):
    m = df.build_model(binned_toy, priors="flat")
    # pm.do replaces a variable by an expression: gamma fixed at 2.5 in a new model
    intervened = pm.do(m, {"astro_gamma": 2.5})
    result = df.fit_map(intervened)
    assert result.path == "pymc" and "astro_gamma" not in result.values
    reference = _find_map(intervened)
    _assert_close(result, reference)
    # a model the user rebuilt from the builder's tables, with another prior on gamma
    twin = builder_twin(m)[0]
    with pm.Model() as rebuilt:
        params = {
            "atmos_norm": pm.HalfFlat("atmos_norm"),
            "astro_norm": pm.HalfFlat("astro_norm"),
            "astro_gamma": pm.TruncatedNormal("astro_gamma", 2.5, 0.2, lower=1, upper=4),
        }
        per_component = expected_counts_pt(twin.templates, params, twin.bins)
        pm.Poisson("k", sum(per_component.values()), observed=binned_toy.counts[twin.bins])
    result = df.fit_map(rebuilt)
    assert result.path == "pymc" and "not made by build_model" in result.path_reason
    _assert_close(result, _find_map(rebuilt))


def test_new_counts_keep_the_fast_path(binned_toy):
    """pm.set_data / set_counts change the data, not the model: the twin stays valid."""
    m = df.build_model(binned_toy, priors="flat")
    asimov = expected_counts(
        binned_toy.templates, {"atmos_norm": 1.2, "astro_norm": 5.0, "astro_gamma": 2.7}
    )
    set_counts(m, asimov)
    result = df.fit_map(m)
    assert result.path == "numpy"
    for name, truth in zip(PARAMETERS, (1.2, 5.0, 2.7), strict=True):
        assert result.values[name] == pytest.approx(truth, rel=1e-6)  # Asimov: the truth
    _assert_close(result, _find_map(m))


def test_fitter_notices_a_model_extended_after_it_was_made(binned_toy):
    m = df.build_model(binned_toy, priors="flat")
    fitter = MapFitter(m)
    assert fitter.fit().path == "numpy"
    with m:
        pm.Potential("gamma_constraint", pm.logp(pm.Normal.dist(2.0, 0.05), m["astro_gamma"]))
    result = fitter.fit()
    assert result.path == "pymc"
    _assert_close(result, _find_map(m))


def test_fit_result_reads_like_a_fit_result(binned_toy):
    """Values, errors, units, covariance and correlation (from the covariance), -ln L, path,
    problems; printed as a table."""
    result = df.fit_map(df.build_model(binned_toy, priors="flat"))
    cov = result.covariance
    d = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(result.correlation, cov / np.outer(d, d), rtol=1e-12)
    np.testing.assert_allclose(np.diag(result.correlation), 1.0, rtol=1e-12)
    assert result.units["astro_norm"] == "1e-18 GeV^-1 cm^-2 s^-1 sr^-1"
    assert result.units["astro_gamma"] == "1" and result.names == list(PARAMETERS)
    content = result.to_dict()
    assert content["errors"] == result.errors and content["path"] == "numpy"
    text = str(result)
    assert "astro_norm" in text and "-ln L" in text and "GeV^-1" in text
