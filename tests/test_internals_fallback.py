"""Where the package uses another library's internals (issue 23: upper version bounds in
pyproject.toml, and a fallback that is tested), the fallback computes the same thing: an
upstream change costs speed, never correctness.  nutpie's: tests/test_nuts_fitter.py
(``test_cached_compile_falls_back_to_nutpie``, ``test_cached_route_draws_equal_nutpie_numba``)."""

from __future__ import annotations

import numpy as np
import pytest

from diffuse_fit.report import many_plots


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
