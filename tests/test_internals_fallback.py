"""Where the package uses another library's internals (issue 23: upper version bounds in
pyproject.toml, and a fallback that is tested), the fallback computes the same thing: an
upstream change costs speed, never correctness."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffuse_fit as df
from diffuse_fit.inference import nutpie_cached
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.report import many_plots


def test_nutpie_without_its_internals_samples_the_same_draws(monkeypatch):
    """nutpie_cached builds on nutpie.compile_pymc's private functions; without them it warns
    and compiles with nutpie.compile_pymc_model: the same draws for the same seed."""
    from diffuse_fit.inference.sampling import sample

    model = df.build_model(df.bin_inputs(df.load_inputs()), priors="default")
    settings = SamplerSettings(draws=200, tune=200, chains=2, seed=3, sampler="nutpie")
    cached = sample(model, settings, progressbar=False)
    monkeypatch.setattr(nutpie_cached, "cached_compile_available", lambda: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallback = sample(model, settings, progressbar=False)
    assert any("lacks the internals" in str(w.message) for w in caught)
    for name in ("atmos_norm", "astro_norm", "astro_gamma"):
        np.testing.assert_array_equal(fallback.posterior[name], cached.posterior[name])


def test_sbc_band_without_arviz_stats_internals(monkeypatch):
    """The SBC figure's simultaneous ECDF band comes from arviz_stats.ecdf_utils; without it
    the same method in SciPy gives the same band to simulation noise (the pointwise level
    within 25%, the band's edges within 2 / N), and the band's coverage is checked directly:
    about ``prob`` of uniform ECDFs stay inside it."""
    n, draws = 200, 99
    z, lower, upper = many_plots.sbc_bands(n, draws)
    monkeypatch.setattr(many_plots, "_arviz_ecdf_utils", lambda: None)
    z2, lower2, upper2 = many_plots.sbc_bands(n, draws)
    np.testing.assert_array_equal(z, z2)
    assert np.max(np.abs(lower - lower2)) <= 2 / n and np.max(np.abs(upper - upper2)) <= 2 / n
    rng = np.random.default_rng(5)
    inside = 0
    trials = 2000
    for _ in range(trials):
        ecdf = np.searchsorted(np.sort(rng.uniform(size=n)), z2, side="right") / n
        inside += bool(np.all((ecdf >= lower2 - 1e-12) & (ecdf <= upper2 + 1e-12)))
    assert inside / trials == pytest.approx(many_plots.SBC_BAND, abs=0.03)
