"""The segmented (differential) astrophysical flux (issue 22, item 1): an E^-2 flux with its
own normalization in each segment of true neutrino energy.  References: the single power law
at gamma = 2 (one segment over every simulated energy), the per-event formula in plain NumPy,
and SciPy's maximisation of the per-event Poisson likelihood."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.optimize
from scipy.special import gammaln

import diffuse_fit as df
from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.cli import main
from diffuse_fit.physics.components import WORKSHOP_COMPONENTS, PowerLawComponent
from diffuse_fit.physics.spectra import SEGMENT_EDGES_GEV, segment_components, with_astro_model


def _poisson_lnl(k, mu):
    live = mu > 0
    return float(np.sum(k[live] * np.log(mu[live]) - mu[live] - gammaln(k[live] + 1.0)))


def test_one_segment_over_every_energy_is_the_power_law_at_gamma_2():
    inputs = df.load_inputs()
    energy = inputs.simulation["primaryEnergy"]
    atmospheric, astro = WORKSHOP_COMPONENTS
    assert isinstance(astro, PowerLawComponent)
    one = (atmospheric, *segment_components(astro, [energy.min(), energy.max() * 1.001]))
    seg = bin_dataset(inputs.data, inputs.simulation, components=one)
    spl = bin_dataset(inputs.data, inputs.simulation)
    for a, n in ((1.0, 6.0), (0.4, 9.5), (2.0, 0.3)):
        mu_seg = expected_counts(seg.templates, {"atmos_norm": a, "astro_norm_1": n})
        mu_spl = expected_counts(spl.templates, {"atmos_norm": a, "astro_norm": n,
                                                 "astro_gamma": 2.0})  # fmt: skip
        assert _poisson_lnl(seg.counts, mu_seg) == pytest.approx(
            _poisson_lnl(spl.counts, mu_spl), rel=1e-10
        )


def _per_event(sim, edges, params):
    """Expected events per workshop bin from the per-event formula (plain NumPy)."""
    b = Binning()
    index = b.bin_index(sim["energy"], sim["zenith"], sim["topology"])
    e = np.asarray(sim["primaryEnergy"])
    w = params["atmos_norm"] * np.asarray(sim["atmoWeight"])
    for k, (lo, hi) in enumerate(zip(edges, edges[1:], strict=False), start=1):
        inside = (e >= lo) & (e < hi)
        w = w + np.where(
            inside, params[f"astro_norm_{k}"] * sim["astroWeight"] * (e / 1e5) ** 0.5, 0
        )
    keep = index >= 0
    return np.bincount(index[keep], weights=w[keep], minlength=b.n_bins)


def test_segment_expectations_equal_the_per_event_formula():
    inputs = df.load_inputs()
    binned = bin_dataset(inputs.data, inputs.simulation,
                         components=with_astro_model(WORKSHOP_COMPONENTS, "segmented"))  # fmt: skip
    params = {"atmos_norm": 0.8, **{f"astro_norm_{k}": 2.0 + k for k in range(1, 6)}}
    np.testing.assert_allclose(expected_counts(binned.templates, params),
                               _per_event(inputs.simulation, SEGMENT_EDGES_GEV, params),
                               rtol=1e-10, atol=1e-14)  # fmt: skip


def test_segmented_map_equals_scipy(tmp_path):
    """map --astro-model segmented --prior flat: the MAP equals SciPy's maximum of the
    per-event likelihood (bounded, norms >= 0): 1e-4 relative, 1e-6 absolute at 0."""
    out = tmp_path / "run"
    assert main(["map", "--astro-model", "segmented", "--prior", "flat", "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    fit = json.loads((out / "map.json").read_text())
    names = ["atmos_norm", *(f"astro_norm_{k}" for k in range(1, 6))]
    assert fit["parameter_order"] == names
    inputs = df.load_inputs()
    b = Binning()
    k = b.histogram(b.bin_index(inputs.data["energy"], inputs.data["zenith"],
                                inputs.data["topology"]))  # fmt: skip
    basis = np.stack([_per_event(inputs.simulation, SEGMENT_EDGES_GEV,
                                 {n: float(n == m) for n in names}) for m in names], axis=1)  # fmt: skip

    def nll(x):
        mu = basis @ x
        live = mu > 0
        value = -np.sum(k[live] * np.log(mu[live]) - mu[live] - gammaln(k[live] + 1.0))
        grad = -(basis[live].T @ (k[live] / mu[live] - 1.0))
        return value, grad

    best = scipy.optimize.minimize(nll, np.ones(len(names)), jac=True, method="L-BFGS-B",
                                   bounds=[(0, None)] * len(names),
                                   options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})  # fmt: skip
    np.testing.assert_allclose([fit[n] for n in names], best.x, rtol=1e-4, atol=1e-6)
    assert fit["neg_log_likelihood"] == pytest.approx(best.fun, abs=1e-6)


def test_segmented_sample_reports_the_differential_flux(tmp_path):
    """NUTS on the toy: 0 divergences; the report's flux figure is the segmented one and
    summary.json records each segment's median, 68% interval and upper limit."""
    out = tmp_path / "run"
    assert main(["sample", "--astro-model", "segmented", "--draws", "500", "--tune", "500",
                 "--chains", "2", "--report", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diagnostics"]["divergences"] == 0
    assert (out / "flux.png").is_file()
    segments = summary["segments"]
    assert [s["norm"] for s in segments] == [f"astro_norm_{k}" for k in range(1, 6)]
    for s in segments:
        assert s["q16"] <= s["median"] <= s["q84"] <= s["upper_limit_95"] or s["limit"]
    assert not segments[0]["limit"]  # the lowest segment is measured on the toy


def test_segmented_is_refused_where_not_implemented(tmp_path, capsys):
    assert main(["compare", "--models", "spl,segmented", "--out", str(tmp_path / "o")]) == 2
    assert "segmented is not compared yet" in capsys.readouterr().err
