"""A spectrum registered from Python (issue 20): a power law with an exponential cut-off
written here, not in the package, fits like a built-in one.  Reference: SciPy's maximum of
the workshop's per-event Poisson likelihood with the same spectrum in plain NumPy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.optimize
from scipy.special import gammaln

import diffuse_fit as df
from diffuse_fit.binned.binning import Binning
from diffuse_fit.errors import UsageError
from diffuse_fit.physics.spectra import _REGISTERED

PIVOT = 1e5  # GeV
RANGES = {"astro_index": (1.0, 4.0), "astro_lg_ecut": (5.0, 8.0)}


def expcut(x, v, xp):
    """ln(phi(E) / phi(pivot)) of E^-index exp(-E / E_cut), x = ln(E / pivot): the flux is
    astro_norm at the pivot."""
    inverse_ecut = xp.exp(-math.log(10.0) * v[1])  # 1 / E_cut, GeV^-1
    return -v[0] * x - PIVOT * (xp.exp(x) - 1.0) * inverse_ecut


def _plain_expcut(x, index, lg_ecut):
    e = PIVOT * np.exp(x)
    return -index * x - e / 10**lg_ecut + PIVOT / 10**lg_ecut


@pytest.fixture
def registered():
    df.register_spectrum("test_expcut", RANGES, expcut)
    yield "test_expcut"
    _REGISTERED.pop("test_expcut", None)


def _scipy_reference(inputs, binning):
    data, sim = inputs.data, inputs.simulation
    k = binning.histogram(binning.bin_index(data["energy"], data["zenith"], data["topology"]))
    index = binning.bin_index(sim["energy"], sim["zenith"], sim["topology"])
    keep = index >= 0
    atmo, astro = np.asarray(sim["atmoWeight"])[keep], np.asarray(sim["astroWeight"])[keep]
    x = np.log(np.asarray(sim["primaryEnergy"])[keep] / PIVOT)
    idx, n = index[keep], binning.n_bins

    def nll(p):
        a, norm, g, lg = p
        if not (RANGES["astro_index"][0] <= g <= RANGES["astro_index"][1]) or not (
            RANGES["astro_lg_ecut"][0] <= lg <= RANGES["astro_lg_ecut"][1]
        ):
            return np.inf
        w = a * atmo + norm * astro * np.exp(_plain_expcut(x, g, lg) + 2.5 * x)
        mu = np.bincount(idx, weights=w, minlength=n)
        live = mu > 0
        return -np.sum(k[live] * np.log(mu[live]) - mu[live] - gammaln(k[live] + 1.0))

    return nll


def test_registered_spectrum_fits_like_scipy(registered):
    """MAP (flat priors) of the registered spectrum equals SciPy's maximum (1e-5), on the
    NumPy path and on PyMC's (pytensor, the same ``expcut``)."""
    inputs = df.load_inputs()
    binned = df.bin_inputs(inputs, astro_model=registered)
    m = df.build_model(binned, priors="flat")
    fit = df.fit_map(m)
    assert fit.path == "numpy"
    nll = _scipy_reference(inputs, Binning())
    names = ("atmos_norm", "astro_norm", "astro_index", "astro_lg_ecut")
    start = [fit.values[n] for n in names]
    best = scipy.optimize.minimize(
        nll,
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40_000},
    )
    assert fit.neg_log_likelihood == pytest.approx(best.fun, abs=1e-7)
    np.testing.assert_allclose(start, best.x, rtol=1e-5)
    # the same spectrum in pytensor: PyMC's own log-density (a model with a potential is
    # fitted on the PyMC path) has the same optimum
    import pymc as pm

    with m:
        pm.Potential("nothing", pm.math.constant(0.0))
    by_pymc = df.fit_map(m)
    assert by_pymc.path == "pymc"
    np.testing.assert_allclose([by_pymc.values[n] for n in names], best.x, rtol=1e-5)


def test_registered_spectrum_runs_as_a_job(registered, tmp_path):
    """The API's job (run folder) takes the registered model by name; unknown names are
    refused naming the way to register one."""
    out = tmp_path / "run"
    df.run_map(df.load_inputs(), out, priors="flat", astro_model=registered, say=lambda *a: None)
    result = json.loads((out / "map.json").read_text())
    assert result["parameter_order"] == ["atmos_norm", "astro_norm", "astro_index", "astro_lg_ecut"]
    with pytest.raises(UsageError, match="register_spectrum"):
        df.run_map(
            df.load_inputs(), tmp_path / "x", astro_model="not_registered", say=lambda *a: None
        )
