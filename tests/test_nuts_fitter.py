"""The compile-once NUTS fitter: same posterior as pm.sample, refits without compiling."""

import numpy as np
import nutpie
import pytest

from model.binned.templates import expected_counts
from model.inference import nuts_fitter
from model.inference.map_fit import MapFitter
from model.inference.priors import resolve_priors
from model.inference.pymc_model import build_model, parameter_supports, set_counts
from model.inference.sampling import sample
from model.inference.settings import SamplerSettings

NAMES = ["atmos_norm", "astro_norm", "astro_gamma"]
SETTINGS = SamplerSettings(draws=200, tune=200, chains=2, seed=7, sampler="nutpie")


def posterior(idata):
    return {n: np.asarray(idata.posterior[n]) for n in NAMES}


@pytest.mark.slow
def test_refit_equals_fresh_fit_and_does_not_compile(binned, monkeypatch):
    priors = resolve_priors("default", parameter_supports(binned.components))
    model = build_model(binned, priors)
    fitter = nuts_fitter.NutsFitter(model)
    first = posterior(fitter.sample(SETTINGS))
    # the same run as pm.sample's nutpie path, bit for bit
    reference = posterior(sample(model, SETTINGS, progressbar=False))
    for name in NAMES:
        np.testing.assert_array_equal(first[name], reference[name])

    compilations = []
    real = nutpie.compile_pymc_model
    monkeypatch.setattr(
        nutpie, "compile_pymc_model", lambda *a, **k: compilations.append(1) or real(*a, **k)
    )

    asimov = expected_counts(
        binned.templates, {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0}
    )
    set_counts(model, asimov)
    refit = posterior(fitter.sample(SETTINGS))
    assert compilations == [] and fitter.n_compilations == 1  # no compilation on refit
    fresh_model = build_model(binned, priors)
    set_counts(fresh_model, asimov)
    fresh = posterior(nuts_fitter.NutsFitter(fresh_model).sample(SETTINGS))
    assert compilations == [1]
    for name in NAMES:
        np.testing.assert_array_equal(refit[name], fresh[name])
        assert not np.array_equal(refit[name], first[name])  # the new counts were used


def test_map_refit_equals_fresh_map(binned):
    """MapFitter: a refit after set_counts gives the MAP of a fresh fitter on those counts."""
    priors = resolve_priors("flat", parameter_supports(binned.components))
    model = build_model(binned, priors)
    fitter = MapFitter(model)
    fitter.fit()
    asimov = expected_counts(
        binned.templates, {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0}
    )
    set_counts(model, asimov)
    refit = fitter.fit()
    fresh_model = build_model(binned, priors)
    set_counts(fresh_model, asimov)
    fresh = MapFitter(fresh_model).fit()
    for name in NAMES:
        assert refit.values[name] == pytest.approx(fresh.values[name], rel=1e-10)
    np.testing.assert_allclose(refit.covariance, fresh.covariance, rtol=1e-10)
