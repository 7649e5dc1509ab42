"""The posterior as PyMC and ArviZ users expect it (issue 18, item 2): the saved
``posterior.nc`` opened with plain ArviZ works with ``az.loo``, ``az.compare``,
``az.plot_ppc_dist``, ``az.plot_forest`` and ``az.summary`` without extra arguments; the
point-wise log-likelihood equals PyMC's ``pm.compute_log_likelihood``; counts are on the
analysis's axes with their edges in GeV and rad."""

from __future__ import annotations

import warnings

import arviz as az
import matplotlib
import numpy as np
import pymc as pm
import pytest
import xarray as xr

import diffuse_fit as df
from diffuse_fit.binned.binning import Binning
from diffuse_fit.cli import main

matplotlib.use("Agg")  # the tests draw ArviZ's figures off-screen

SHORT = dict(draws=200, tune=200, chains=2)


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory):
    """Two short ``diffuse-fit sample`` runs with the point-wise log-likelihood and the prior
    predictive (default priors: proper)."""
    runs = []
    for seed in (5, 6):
        out = tmp_path_factory.mktemp(f"run{seed}")
        code = main(
            [
                "sample",
                "--draws",
                "500",
                "--tune",
                "500",
                "--chains",
                "2",
                "--seed",
                str(seed),
                "--log-likelihood",
                "--prior-predictive",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        assert code == 0
        runs.append(out / "posterior.nc")
    return runs


@pytest.mark.slow
# a short run's Pareto-k notice is ArviZ's diagnostic of the data, not a failure of the file
@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")
def test_saved_posterior_works_with_arviz(saved_runs):
    tree = az.from_netcdf(saved_runs[0])
    for group in (
        "posterior",
        "sample_stats",
        "observed_data",
        "constant_data",
        "posterior_predictive",
        "log_likelihood",
        "prior",
        "prior_predictive",
    ):
        assert group in tree.children, group
    loo = az.loo(tree)
    assert np.isfinite(float(loo.elpd)) and int(loo.n_data_points) == 400
    ranked = az.compare({"a": tree, "b": az.from_netcdf(saved_runs[1])})
    assert set(ranked.index) == {"a", "b"}
    table = az.summary(tree)
    assert {"atmos_norm", "astro_norm", "astro_gamma"} <= set(table.index)
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Variables observed in 'predictive' look discrete"
        )
        assert az.plot_ppc_dist(tree) is not None
    assert az.plot_forest(tree) is not None


@pytest.mark.slow
def test_counts_on_the_analysis_axes(saved_runs):
    tree = az.from_netcdf(saved_runs[0])
    binning = Binning()
    observed = tree.observed_data["observed"]
    assert observed.dims == ("topology", "zenith", "energy")
    assert list(tree.observed_data["topology"].values) == ["cascade", "track"]
    np.testing.assert_array_equal(tree.observed_data["energy_lower"], binning.energy_edges[:-1])
    np.testing.assert_array_equal(tree.observed_data["energy_upper"], binning.energy_edges[1:])
    np.testing.assert_array_equal(tree.observed_data["zenith_upper"], binning.zenith_edges[1:])
    assert tree.observed_data["energy"].attrs["units"] == "GeV"
    assert tree.observed_data["zenith"].attrs["units"] == "rad"
    # the observed counts are the fit record's, reshaped (topology, zenith, energy)
    counts = np.asarray(tree.constant_data["counts"])
    np.testing.assert_array_equal(observed.values.reshape(-1), counts)
    ppc = tree.posterior_predictive["observed"]
    assert ppc.dims == ("chain", "draw", "topology", "zenith", "energy")
    assert tree.log_likelihood["observed"].dims == ppc.dims


@pytest.fixture(scope="module")
def small_posterior():
    binned = df.bin_inputs(df.load_inputs())
    m = df.build_model(binned, priors="default")
    tree = df.sample(m, seed=3, progressbar=False, log_likelihood=True, **SHORT)
    return m, tree


@pytest.mark.slow
def test_log_likelihood_equals_pymc(small_posterior):
    """Our NumPy point-wise log-likelihood equals PyMC's compiled one (1e-10)."""
    m, tree = small_posterior
    posterior_only = xr.DataTree.from_dict({"posterior": tree.posterior.to_dataset()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = pm.compute_log_likelihood(
            posterior_only, model=m, progressbar=False, extend_inferencedata=False
        )
    bins = np.asarray(m.coords["bin"])
    ours = np.asarray(tree.log_likelihood["observed"]).reshape(2, SHORT["draws"], -1)
    np.testing.assert_allclose(ours[..., bins], np.asarray(theirs["observed"]), rtol=1e-10)


@pytest.mark.slow
def test_posterior_predictive_follows_the_expectations(small_posterior):
    """The predictive counts' mean over draws matches the mean expectation per bin within
    Monte Carlo error (expectations from the tables; Poisson variance)."""
    from diffuse_fit.jobs.inference_data import expectations

    m, tree = small_posterior
    twin = m.diffuse_fit_twin
    mu = expectations(twin.templates, tree.posterior, ["atmos_norm", "astro_norm", "astro_gamma"])
    draws = np.asarray(tree.posterior_predictive["observed"]).reshape(mu.shape)
    n = mu.shape[0] * mu.shape[1]
    mean_mu = mu.reshape(n, -1).mean(axis=0)
    sd = np.sqrt(draws.reshape(n, -1).var(axis=0) / n) + 1e-12
    pulls = (draws.reshape(n, -1).mean(axis=0) - mean_mu) / sd
    assert np.all(np.abs(pulls[mean_mu > 0.5]) < 5.5)
    assert np.all(draws.reshape(n, -1)[:, mean_mu == 0] == 0)


@pytest.mark.slow
def test_extended_model_groups():
    """A Potential leaves the observation the builder's: the groups come from the tables, on
    the analysis axes.  A model whose observation is not provably the builder's (pm.do makes
    a new model) gets PyMC's groups on its own ``bin`` dim."""
    binned = df.bin_inputs(df.load_inputs())
    m = df.build_model(binned, priors="default")
    with m:
        pm.Potential("gamma_constraint", pm.logp(pm.Normal.dist(2.5, 0.1), m["astro_gamma"]))
    tree = df.sample(m, seed=3, progressbar=False, log_likelihood=True, **SHORT)
    assert tree.posterior_predictive["observed"].dims[2:] == ("topology", "zenith", "energy")
    fixed = pm.do(df.build_model(binned, priors="default"), {"astro_gamma": 2.5})
    tree = df.sample(fixed, seed=3, progressbar=False, log_likelihood=True, **SHORT)
    assert tree.posterior_predictive["observed"].dims == ("chain", "draw", "bin")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        assert np.isfinite(float(az.loo(tree).elpd))


@pytest.mark.slow
def test_expected_counts_on_request_agree_with_the_models_deterministic():
    """``expected=True``: the expected events per bin at every draw on the analysis axes;
    summed over bins they are the model's own ``n_expected`` (PyMC's graph), to float32."""
    binned = df.bin_inputs(df.load_inputs())
    m = df.build_model(binned, priors="default")
    tree = df.sample(m, seed=4, progressbar=False, expected=True, **SHORT)
    expected = tree.posterior["expected"]
    assert expected.dims == ("chain", "draw", "topology", "zenith", "energy")
    total = expected.sum(("topology", "zenith", "energy")).values
    np.testing.assert_allclose(
        total, tree.posterior["n_expected"].sum("component").values, rtol=1e-5
    )
    assert "expected" not in df.sample(m, seed=4, progressbar=False, **SHORT).posterior
