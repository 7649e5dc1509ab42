"""``--likelihood say`` through the command line: map.json's -ln L, the provenance, NUTS's
convergence on the embedded toy dataset, and the report rebuilt from the run folder."""

import json

import arviz as az
import numpy as np
import pytest
from scipy.special import gammaln, xlogy

from diffuse_fit.cli import main
from diffuse_fit.report import predictive as pp

NAMES = ["atmos_norm", "astro_norm", "astro_gamma"]


def _say_neg_loglike(binned, p):
    """-sum_b ln L_b of arXiv:1901.04645 from the per-event weights, written out."""
    sim, index = binned.simulation, binned.sim_bin_index
    e = sim["primaryEnergy"] / 1e5
    w = p["atmos_norm"] * sim["atmoWeight"] + p["astro_norm"] * sim["astroWeight"] * e ** -(
        p["astro_gamma"] - 2.5
    )
    inside = index >= 0
    mu = np.bincount(index[inside], weights=w[inside], minlength=binned.binning.n_bins)
    s2 = np.bincount(index[inside], weights=w[inside] ** 2, minlength=binned.binning.n_bins)
    used = s2 > 0
    k, mu, s2 = binned.counts[used], mu[used], s2[used]
    a, b = mu**2 / s2 + 1, mu / s2
    lnl = a * np.log(b) + gammaln(k + a) - gammaln(k + 1) - (k + a) * np.log1p(b) - gammaln(a)
    return -float(np.sum(lnl))


@pytest.fixture(scope="module")
def say_run(tmp_path_factory):
    """``diffuse-fit sample --likelihood say --report`` with the default sampler settings
    (4 chains x (1000 tune + 1000 draws), target_accept 0.95) and default priors."""
    out = tmp_path_factory.mktemp("say_run")
    assert (
        main(
            [
                "sample",
                "--likelihood",
                "say",
                "--seed",
                "11",
                "--report",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    return out


def test_map_cli_with_say_records_its_likelihood(tmp_path, binned):
    assert (
        main(["map", "--likelihood", "say", "--prior", "flat", "--out", str(tmp_path), "--quiet"])
        == 0
    )
    result = json.loads((tmp_path / "map.json").read_text())
    assert result["likelihood"] == "say"
    assert result["provenance"]["likelihood"] == "say"
    assert result["reference_fit"] is None  # the workshop fit is Poisson: not a reference here
    point = {n: result[n] for n in NAMES}
    assert result["neg_log_likelihood"] == pytest.approx(_say_neg_loglike(binned, point), rel=1e-9)
    # the Poisson -ln L at the same point is another number (the check can fail)
    inside = binned.sim_bin_index >= 0
    e = binned.simulation["primaryEnergy"][inside] / 1e5
    w = point["atmos_norm"] * binned.simulation["atmoWeight"][inside] + point["astro_norm"] * (
        binned.simulation["astroWeight"][inside] * e ** -(point["astro_gamma"] - 2.5)
    )
    lam = np.bincount(binned.sim_bin_index[inside], weights=w, minlength=binned.binning.n_bins)
    k = binned.counts
    poisson = -float(np.sum(xlogy(k, lam) - lam - gammaln(k + 1)))
    assert abs(result["neg_log_likelihood"] - poisson) > 1e-3


def test_map_cli_default_is_poisson(tmp_path):
    assert main(["map", "--prior", "flat", "--out", str(tmp_path), "--quiet"]) == 0
    result = json.loads((tmp_path / "map.json").read_text())
    assert result["likelihood"] == "poisson" and result["provenance"]["likelihood"] == "poisson"
    assert result["reference_fit"] is not None


def test_bad_likelihood_is_a_one_line_usage_error(capsys):
    assert main(["map", "--likelihood", "gauss"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--likelihood" in err


@pytest.mark.slow
def test_nuts_with_say_converges_on_the_toy_dataset(say_run):
    summary = json.loads((say_run / "summary.json").read_text())
    assert summary["provenance"]["likelihood"] == "say"
    diag = summary["diagnostics"]
    assert diag["divergences"] == 0
    assert diag["max_r_hat"] <= 1.01
    assert diag["min_ess_bulk"] >= 400
    # independent of ArviZ's table: bulk ESS and R-hat recomputed per parameter
    posterior = az.from_netcdf(say_run / "posterior.nc")
    for name in NAMES:
        assert float(az.rhat(posterior, var_names=[name])[name]) <= 1.01
        assert float(az.ess(posterior, var_names=[name], method="bulk")[name]) >= 400
    assert int(posterior.sample_stats["diverging"].sum()) == 0


@pytest.mark.slow
def test_say_report_uses_the_recorded_likelihood(say_run):
    assert main(["report", "--run", str(say_run), "--quiet"]) == 0
    assert "SAY discrepancy" in (say_run / "report.md").read_text()
    assert "say likelihood" in (say_run / "report.md").read_text()
    tree = az.from_netcdf(say_run / "posterior.nc")
    group = tree["constant_data"].dataset
    record = pp.record_from_variables(
        {n: group[n].values for n in group.data_vars}, dict(group.attrs), "posterior.nc"
    )
    assert record.likelihood == "say"
    point = {"atmos_norm": 1.1, "astro_norm": 5.0, "astro_gamma": 2.6}
    s2 = record.templates.variance.sum_of_squares(point)
    assert np.all(s2 >= 0) and np.any(s2 > 0)


def test_say_deviance_is_poisson_where_s2_is_zero_and_the_formula_elsewhere(rng):
    k = rng.poisson(3.0, (4, 30)).astype(float)
    mu = rng.uniform(0.1, 8.0, (4, 30))
    np.testing.assert_allclose(
        pp.say_deviance(k, mu, np.zeros_like(mu)), pp.deviance(k, mu), rtol=1e-12
    )
    s2 = mu * rng.uniform(0.01, 1.0, mu.shape)
    a, b = mu**2 / s2 + 1, mu / s2
    lnl = a * np.log(b) + gammaln(k + a) - gammaln(k + 1) - (k + a) * np.log1p(b) - gammaln(a)
    saturated = xlogy(k, k) - k - gammaln(k + 1)
    np.testing.assert_allclose(
        pp.say_deviance(k, mu, s2), 2 * np.sum(saturated - lnl, axis=-1), rtol=1e-10
    )
