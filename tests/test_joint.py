"""Joint fits of several samples (issue 20, item 2): the likelihood is the sum over samples.

References: (a) the single-sample fit of the same events (splitting a sample by topology into
two samples with the same bins changes nothing), (b) an independent SciPy maximisation of the
summed per-event Poisson likelihood, each sample binned by hand in its own bins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import xarray as xr
from scipy.special import gammaln

import diffuse_fit as df
from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.dataset import bin_dataset, bin_samples
from diffuse_fit.cli import main
from diffuse_fit.errors import DataFormatError
from diffuse_fit.fitting.map_core import fit_map
from diffuse_fit.fitting.profile import ProfileFitter
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.io.analysis import from_dict, read_analysis
from diffuse_fit.physics import toy
from diffuse_fit.physics.components import parameter_supports
from tests.test_analysis_spec import _binned_by_hand

ROOT = Path(__file__).parents[1]
PARAMETERS = ("atmos_norm", "astro_norm", "astro_gamma")


def _split_by_topology(inputs, binnings=None):
    """The toy as two samples, cascades and tracks, each with its own events only."""
    binnings = binnings or {}
    return [
        (
            name,
            inputs.data.select(inputs.data["topology"] == code),
            inputs.simulation.select(inputs.simulation["topology"] == code),
            binnings.get(name, Binning(topology_codes=[code])),
        )
        for name, code in (("cascades", 0), ("tracks", 1))
    ]


def _numpy_map(binned, priors="flat"):
    p = resolve_priors(priors, parameter_supports(binned.components))
    return fit_map(ProfileFitter(binned.templates, p), binned.counts)


@pytest.mark.parametrize("priors", ["flat", "default"])
def test_split_into_samples_with_the_same_bins_is_the_same_fit(priors):
    """(a) cascades and tracks as two samples in the workshop's bins: the MAP and -ln L of
    the single sample (1e-10)."""
    inputs = df.load_inputs()
    single = bin_dataset(inputs.data, inputs.simulation)
    joint = bin_samples(_split_by_topology(inputs))
    assert np.array_equal(joint.counts, single.counts)
    one, two = _numpy_map(single, priors), _numpy_map(joint, priors)
    for name in PARAMETERS:
        assert two.values[name] == pytest.approx(one.values[name], rel=1e-10)
    assert two.neg_log_likelihood == pytest.approx(one.neg_log_likelihood, rel=1e-10)


def test_split_into_samples_has_the_same_posterior():
    """(a) the PyMC models' densities agree at random points (1e-10), and NUTS gives the
    same posterior means within Monte Carlo error (4 MCSE)."""
    inputs = df.load_inputs()
    single = df.build_model(bin_dataset(inputs.data, inputs.simulation), priors="default")
    joint = df.build_model(bin_samples(_split_by_topology(inputs)), priors="default")
    f1, f2 = single.compile_logp(), joint.compile_logp()
    rng = np.random.default_rng(3)
    for _ in range(5):
        point = {
            "atmos_norm_log__": rng.normal(0, 0.5),
            "astro_norm_log__": rng.normal(1.8, 0.3),
            "astro_gamma_interval__": rng.normal(0, 1),
        }
        assert f2(point) == pytest.approx(f1(point), rel=1e-10)
    a = df.sample(
        single, draws=400, tune=400, chains=2, seed=5, progressbar=False, posterior_predictive=False
    )
    b = df.sample(
        joint, draws=400, tune=400, chains=2, seed=6, progressbar=False, posterior_predictive=False
    )
    for name in PARAMETERS:
        x, y = (np.asarray(t.posterior[name]).reshape(-1) for t in (a, b))
        mcse = np.hypot(*(df.summary(t)["mcse_mean"][name] for t in (a, b)))
        assert abs(x.mean() - y.mean()) < 4 * mcse, name


TWO_BINNINGS = {
    "format": "diffuse-fit-analysis",
    "format_version": 1,
    "priors": "flat",
    "samples": [
        {
            "name": "cascades",
            "inputs": {"toy": "default"},
            "binning": {
                "energy_edges_GeV": [6e4, 1e5, 2e5, 4e5, 1e6, 3e6, 1e7],
                "cos_zenith_edges": [-1, -0.3, 0.3, 1],
                "topology_codes": [0],
            },
        },
        {
            "name": "tracks",
            "inputs": {"toy": "default"},
            "binning": {
                "energy_edges_GeV": [6e4, 1.5e5, 5e5, 1e7],
                "cos_zenith_edges": [-1, 0, 1],
                "topology_codes": [1],
            },
        },
    ],
}


def _by_hand(samples) -> list[tuple]:
    """Per sample of a specification: observed counts per bin, and the atmospheric weight,
    astrophysical weight, true energy and bin of each simulated event in its bins, all
    binned by hand (:func:`_binned_by_hand`), with the number of bins."""
    ds = toy.generate()
    sim = ds.simulation
    out = []
    for s in samples:
        b = s["binning"]
        args = (b["energy_edges_GeV"], b["cos_zenith_edges"], b["topology_codes"])
        data_bin, n = _binned_by_hand(ds.data, *args)
        sim_bin, _ = _binned_by_hand(sim, *args)
        keep = sim_bin >= 0
        out.append(
            (
                np.bincount(data_bin[data_bin >= 0], minlength=n).astype(float),
                np.asarray(sim["atmoWeight"])[keep],
                np.asarray(sim["astroWeight"])[keep],
                np.asarray(sim["primaryEnergy"])[keep],
                sim_bin[keep],
                n,
            )
        )
    return out


def test_joint_fit_with_two_binnings_equals_scipy(tmp_path):
    """(b) two samples with different binnings: the MAP (flat priors) equals SciPy's
    maximum of the summed per-event Poisson likelihood, each sample binned by hand (1e-4)."""
    path = tmp_path / "two.json"
    path.write_text(json.dumps(TWO_BINNINGS))
    out = tmp_path / "run"
    assert main(["map", "--analysis", str(path), "--out", str(out), "--quiet"]) == 0
    fit = json.loads((out / "map.json").read_text())
    per_sample = _by_hand(TWO_BINNINGS["samples"])

    def nll(x):
        a, norm, gamma = x
        total = 0.0
        for k, atmo, astro, energy, index, n in per_sample:
            w = a * atmo + norm * astro * (energy / 1e5) ** (-(gamma - 2.5))
            mu = np.bincount(index, weights=w, minlength=n)
            live = mu > 0
            total -= np.sum(k[live] * np.log(mu[live]) - mu[live] - gammaln(k[live] + 1.0))
        return total

    best = scipy.optimize.minimize(
        nll,
        [1.0, 6.0, 2.5],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000},
    )
    np.testing.assert_allclose([fit[p] for p in PARAMETERS], best.x, rtol=1e-4)
    assert fit["neg_log_likelihood"] == pytest.approx(best.fun, abs=1e-6)
    # the run records the specification and each sample's bins and files
    prov = fit["provenance"]
    assert [s["name"] for s in prov["binning"]["samples"]] == ["cascades", "tracks"]
    assert [s["name"] for s in prov["samples"]] == ["cascades", "tracks"]
    assert from_dict(prov["analysis"]) == from_dict(TWO_BINNINGS)


def test_joint_run_is_arviz_ready_and_reports_each_sample(tmp_path):
    """The shipped example: sample writes a DataTree whose groups sit on one ``bin`` dim
    with each bin's sample and axes as coordinates (az.loo works), and the report draws each
    sample's projections."""
    import arviz as az

    spec = ROOT / "examples/joint_cascades_tracks.toml"
    out = tmp_path / "run"
    assert (
        main(
            [
                "sample",
                "--analysis",
                str(spec),
                "--out",
                str(out),
                "--draws",
                "200",
                "--tune",
                "200",
                "--chains",
                "2",
                "--log-likelihood",
                "--report",
                "--quiet",
            ]
        )
        == 0
    )
    tree = xr.open_datatree(out / "posterior.nc")
    observed = tree["observed_data"]["observed"]
    assert observed.dims == ("bin",)
    analysis = read_analysis(spec)
    sizes = {s.name: Binning(**_edges(s)).n_bins for s in analysis.samples}
    names, counts = np.unique(observed["sample"].values, return_counts=True)
    assert dict(zip(names.tolist(), counts.tolist(), strict=True)) == sizes
    assert tree["log_likelihood"]["observed"].dims == ("chain", "draw", "bin")
    assert az.loo(tree).elpd is not None
    for name in sizes:
        for axis in ("energy", "zenith", "topology"):
            assert (out / f"events_{axis}_{name}.png").is_file()
            assert f"events_{axis}_{name}.png" in (out / "report.md").read_text()
    # the report command reads the joint record back
    assert main(["report", "--run", str(out), "--quiet"]) == 0


def _edges(sample) -> dict:
    b = sample.binning
    default = Binning()
    return {
        "energy_edges": b.energy_edges_GeV or default.energy_edges,
        "zenith_edges": default.zenith_edges if b.zenith_edges() is None else b.zenith_edges(),
        "topology_codes": b.topology_codes,
    }


def test_each_sample_is_checked_on_its_own_files():
    """A sample whose bins hold no observed event is refused naming that sample's data."""
    inputs = df.load_inputs()
    samples = _split_by_topology(inputs)
    empty = inputs.data.select(inputs.data["energy"] > 1e12)  # no event
    samples[1] = (samples[1][0], empty, samples[1][2], samples[1][3])
    with pytest.raises(DataFormatError, match="empty likelihood"):
        bin_samples(samples)


def test_a_per_sample_nuisance_parameter_equals_scipy(tmp_path):
    """tracks rename atmos_norm: each sample has its own atmospheric norm, the astrophysical
    parameters stay shared; the MAP (flat priors) equals SciPy's maximum of the summed
    per-event likelihood with those four parameters (1e-4)."""
    spec = json.loads(json.dumps(TWO_BINNINGS))
    spec["samples"][1]["parameters"] = {"atmos_norm": "atmos_norm_tracks"}
    path = tmp_path / "own.json"
    path.write_text(json.dumps(spec))
    out = tmp_path / "run"
    assert main(["map", "--analysis", str(path), "--out", str(out), "--quiet"]) == 0
    fit = json.loads((out / "map.json").read_text())
    assert fit["parameter_order"] == [
        "atmos_norm",
        "atmos_norm_tracks",
        "astro_norm",
        "astro_gamma",
    ]
    per_sample = _by_hand(spec["samples"])

    def nll(x):
        a_c, a_t, norm, gamma = x
        total = 0.0
        for a, (k, atmo, astro, energy, index, n) in zip((a_c, a_t), per_sample, strict=True):
            w = a * atmo + norm * astro * (energy / 1e5) ** (-(gamma - 2.5))
            mu = np.bincount(index, weights=w, minlength=n)
            live = mu > 0
            total -= np.sum(k[live] * np.log(mu[live]) - mu[live] - gammaln(k[live] + 1.0))
        return total

    best = scipy.optimize.minimize(
        nll,
        [1.0, 1.0, 6.0, 2.5],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40_000},
    )
    got = [fit[n] for n in ("atmos_norm", "atmos_norm_tracks", "astro_norm", "astro_gamma")]
    np.testing.assert_allclose(got, best.x, rtol=1e-4)
    assert fit["neg_log_likelihood"] == pytest.approx(best.fun, abs=1e-6)


def test_renaming_an_astrophysical_parameter_is_refused(tmp_path, capsys):
    spec = json.loads(json.dumps(TWO_BINNINGS))
    spec["samples"][0]["parameters"] = {"astro_gamma": "gamma_cascades"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    assert main(["map", "--analysis", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "samples.cascades.parameters.astro_gamma" in err and len(err.splitlines()) == 1
