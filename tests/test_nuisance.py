"""The release's nuisance parameters (--components hese, --prior hese) against the per-event formula.

The independent reference here is written from the release's ``weighter.py`` directly on the
release-schema columns (``pionFlux``, ``kaonFlux``, ``promptFlux``, self-veto corrections,
``primaryType``), not through the package's components or tables.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
from scipy import stats
from scipy.special import gammaln

from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.hese_binning import release_binning
from diffuse_fit.binned.likelihoods import LIKELIHOODS
from diffuse_fit.cli import main
from diffuse_fit.errors import DataFormatError
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import build_model, parameter_supports
from diffuse_fit.io import hese_release as hr
from diffuse_fit.io.events import EventTable
from diffuse_fit.jobs.inputs import load_inputs
from diffuse_fit.physics import hese_toy
from diffuse_fit.physics import hese_weights as hw

T = hw.LIVETIME_S
NAMES = [
    "atmos_norm",
    "nunubar_ratio",
    "cr_delta_gamma",
    "kpi_ratio",
    "prompt_norm",
    "muon_norm",
    "astro_norm",
    "astro_gamma",
]
POINTS = [
    dict(
        atmos_norm=1.0,
        prompt_norm=1.0,
        muon_norm=1.0,
        astro_norm=6.0,
        astro_gamma=2.5,
        cr_delta_gamma=0.0,
        kpi_ratio=1.0,
        nunubar_ratio=1.0,
    ),
    dict(
        atmos_norm=1.3,
        prompt_norm=2.1,
        muon_norm=0.6,
        astro_norm=4.0,
        astro_gamma=2.95,
        cr_delta_gamma=-0.31,
        kpi_ratio=1.25,
        nunubar_ratio=0.7,
    ),
    dict(
        atmos_norm=0.8,
        prompt_norm=0.3,
        muon_norm=1.4,
        astro_norm=9.0,
        astro_gamma=1.3,
        cr_delta_gamma=0.42,
        kpi_ratio=0.05,
        nunubar_ratio=1.9,
    ),
]


def release_weights(sim, p):
    """Expected events of each simulated event, written from the release's weighter.py."""
    e, wofl = sim["primaryEnergy"], sim["weightOverFluxOverLivetime"]
    r = np.where(sim["primaryType"] > 0, p["nunubar_ratio"], 2.0 - p["nunubar_ratio"])
    conv = (
        p["atmos_norm"]
        * (e / 2020.0) ** -p["cr_delta_gamma"]
        * (sim["pionFlux"] + p["kpi_ratio"] * sim["kaonFlux"])
        * r
        * sim["conventionalSelfVetoCorrection"]
    )
    prompt = (
        p["prompt_norm"]
        * (e / 7887.0) ** -p["cr_delta_gamma"]
        * sim["promptFlux"]
        * r
        * sim["promptSelfVetoCorrection"]
    )
    astro = p["astro_norm"] * 1e-18 / 6.0 * (e / 1e5) ** -p["astro_gamma"]
    return {
        "conventional": wofl * conv * T,
        "prompt": wofl * prompt * T,
        "muon": p["muon_norm"] * sim["muonWeightOverLivetime"] * T,
        "astrophysical": wofl * astro * T,
    }


def per_bin(index, w, n):
    inside = index >= 0
    return np.bincount(index[inside], weights=w[inside], minlength=n)


def say_ref(k, mu, s2):
    """ln L_b of arXiv:1901.04645 eq. (3.16) (Poisson where s2 = 0)."""
    out = np.where(mu > 0, k * np.log(np.where(mu > 0, mu, 1.0)), 0.0) - mu - gammaln(k + 1)
    pos = s2 > 0
    m, s = mu[pos], s2[pos]
    a, b = m**2 / s + 1.0, m / s
    kk = k[pos]
    out[pos] = (
        a * np.log(b) + gammaln(kk + a) - gammaln(kk + 1) - (kk + a) * np.log1p(b) - gammaln(a)
    )
    return out


@pytest.fixture(scope="module")
def release():
    toy = hese_toy.make_toy_release(seed=21, n=20_000)
    sim = EventTable({k: np.asarray(v, float) for k, v in toy.simulation.items()}, "toy sim")
    data = EventTable({k: np.asarray(v, float) for k, v in toy.data.items()}, "toy data")
    ws, wd = hw.to_workshop(sim, data, "drop")
    binned = bin_dataset(wd, ws, components=hw.HESE_COMPONENTS_NUISANCE, variance=True)
    return sim, binned


def test_converter_fills_the_nuisance_columns(release):
    sim, binned = release
    ws = binned.simulation
    np.testing.assert_allclose(
        ws["pionWeight"] + ws["kaonWeight"], ws["conventionalWeight"], rtol=1e-12
    )
    np.testing.assert_array_equal(ws["primaryType"], sim["primaryType"])
    ref = (
        sim["weightOverFluxOverLivetime"] * sim["kaonFlux"] * sim["conventionalSelfVetoCorrection"]
    )
    np.testing.assert_allclose(ws["kaonWeight"], ref * T, rtol=1e-12)


@pytest.mark.parametrize("point", POINTS)
def test_each_component_table_equals_the_per_event_formula(release, point):
    sim, binned = release
    n, index = binned.binning.n_bins, binned.sim_bin_index
    ref = release_weights(sim, point)
    tables = binned.templates.component_counts(point)
    for name, w in ref.items():
        np.testing.assert_allclose(tables[name], per_bin(index, w, n), rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("point", POINTS)
def test_squared_weight_tables_equal_the_per_event_sum(release, point):
    sim, binned = release
    w = sum(release_weights(sim, point).values())
    exact = per_bin(binned.sim_bin_index, w * w, binned.binning.n_bins)
    s2 = binned.templates.variance.sum_of_squares(point)
    np.testing.assert_allclose(s2, exact, rtol=1e-9, atol=1e-300)
    assert binned.templates.variance.max_relative_error < 1e-10


@pytest.mark.parametrize("likelihood", ["poisson", "say"])
def test_numpy_gradient_and_hessian_against_finite_differences(release, likelihood):
    sim, binned = release
    bins = np.flatnonzero(binned.templates.covered())
    f = LIKELIHOODS[likelihood]
    point = POINTS[1]
    lnl, grad, hess = f(binned.templates, binned.counts, point, NAMES, bins)
    w = sum(release_weights(sim, point).values())
    n = binned.binning.n_bins
    mu, s2 = per_bin(binned.sim_bin_index, w, n), per_bin(binned.sim_bin_index, w * w, n)
    k = binned.counts
    ref = np.sum(say_ref(k[bins], mu[bins], s2[bins] if likelihood == "say" else 0 * mu[bins]))
    assert lnl == pytest.approx(ref, rel=1e-10)
    eps = 1e-6
    for i, name in enumerate(NAMES):
        up, down = dict(point), dict(point)
        up[name] += eps
        down[name] -= eps
        fu, gu, _ = f(binned.templates, binned.counts, up, NAMES, bins)
        fd, gd, _ = f(binned.templates, binned.counts, down, NAMES, bins)
        assert grad[i] == pytest.approx((fu - fd) / (2 * eps), rel=1e-5, abs=1e-5)
        np.testing.assert_allclose(hess[i], (gu - gd) / (2 * eps), rtol=1e-5, atol=1e-4)


def test_hese_prior_set_is_the_release_priors():
    supports = parameter_supports(hw.HESE_COMPONENTS_NUISANCE)
    priors = resolve_priors("hese", supports)
    # HESE_fit.py `priors`: (mean, sigma, low, high); flat where mean is None
    release = {
        "cr_delta_gamma": (-0.05, 0.05),
        "nunubar_ratio": (1.0, 0.1),
        "atmos_norm": (1.0, 0.4),
        "muon_norm": (1.0, 0.5),
        "kpi_ratio": (1.0, 0.1),
    }
    for name, (mu, sigma) in release.items():
        x = np.array([mu - 0.3 * sigma, mu + 0.7 * sigma])
        diff = [priors[name].log_density(v) - stats.norm.logpdf(v, mu, sigma) for v in x]
        assert diff[0] == pytest.approx(diff[1], abs=1e-12)  # equal up to a constant
    assert priors["nunubar_ratio"].support() == (0.0, 2.0)
    assert priors["prompt_norm"].dist == priors["astro_norm"].dist == "HalfFlat"


def test_pymc_logp_equals_numpy_twin(release):
    _, binned = release
    priors = resolve_priors("hese", parameter_supports(binned.components))
    model = build_model(binned, priors, likelihood="say")
    # pytensor's Python backend: the graph's meaning, without a minute of numba compilation
    # (its numba route is sampled by test_cli_sample_and_report_with_nuisances below; the
    # cached cfunc's density is checked against this backend in tests/test_nuts_fitter.py)
    logp = model.compile_logp(jacobian=False, mode="FAST_COMPILE")
    bins = np.flatnonzero(binned.templates.covered())
    for point in POINTS[1:]:
        ip = {}
        for rv in model.free_RVs:
            value_var = model.rvs_to_values[rv]
            transform = model.rvs_to_transforms[rv]
            ip[value_var.name] = transform.forward(
                np.float64(point[rv.name]), *rv.owner.inputs
            ).eval()
        lnl, _, _ = LIKELIHOODS["say"](binned.templates, binned.counts, point, NAMES, bins)
        prior = sum(priors[n].log_density(point[n]) for n in NAMES)
        assert logp(ip) == pytest.approx(lnl + prior, rel=1e-10)


def scipy_map(sim, binned, priors):
    """MAP of the per-event SAY likelihood plus the release's Gaussian priors (scipy)."""
    n, index, k = binned.binning.n_bins, binned.sim_bin_index, binned.counts
    gauss = {
        "cr_delta_gamma": (-0.05, 0.05),
        "nunubar_ratio": (1.0, 0.1),
        "atmos_norm": (1.0, 0.4),
        "muon_norm": (1.0, 0.5),
        "kpi_ratio": (1.0, 0.1),
    }
    bounds = {
        "cr_delta_gamma": (-0.55, 0.45),
        "nunubar_ratio": (0, 2),
        "atmos_norm": (0, None),
        "muon_norm": (0, None),
        "kpi_ratio": (0, None),
        "prompt_norm": (0, None),
        "astro_norm": (0, None),
        "astro_gamma": (1, 4),
    }

    def neg(x):
        p = dict(zip(NAMES, x, strict=True))
        w = sum(release_weights(sim, p).values())
        mu, s2 = per_bin(index, w, n), per_bin(index, w * w, n)
        keep = mu > 0
        lnl = np.sum(say_ref(k[keep], mu[keep], s2[keep]))
        return -(lnl + sum(stats.norm.logpdf(p[m], *g) for m, g in gauss.items()))

    x0 = [1.0, 1.0, -0.05, 1.0, 1.0, 1.0, 6.0, 2.5]
    best = None
    for method in ("L-BFGS-B", "Powell"):
        r = scipy.optimize.minimize(
            neg,
            x0 if best is None else best.x,
            method=method,
            bounds=[bounds[m] for m in NAMES],
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20000}
            if method == "L-BFGS-B"
            else {"xtol": 1e-10, "ftol": 1e-15, "maxiter": 200000},
        )
        best = r if best is None or r.fun <= best.fun else best
    return dict(zip(NAMES, best.x, strict=True)), best.fun


SPLINES = Path(__file__).parents[2] / "shared" / "hese7" / "splines"
NOMINAL_DETECTOR = [
    "--fix",
    "epsilon_dom=0.99",
    "--fix",
    "epsilon_head_on=0",
    "--fix",
    "anisotropy_scale=1",
]


@pytest.mark.parametrize("splines", [False, True], ids=["no-splines", "splines-fixed-nominal"])
def test_cli_map_hese_release_say_prior_hese_equals_scipy(tmp_path, capsys, splines):
    """Issue 21's acceptance: with the release's spline tables beside the files and the
    detector systematics fixed at nominal, the MAP equals SciPy's maximisation of the
    release's objective (its priors and bounds), and -ln L its calcEffLLH formula."""
    if splines and not SPLINES.is_dir():
        pytest.skip("../shared/hese7/splines not present")
    folder = tmp_path / "release"
    toy = hese_toy.make_toy_release(seed=21, n=20_000)
    hr.write_release_folder(folder, toy.simulation, toy.data)
    if splines:
        (folder / "resources").mkdir()
        (folder / "resources" / "splines").symlink_to(SPLINES)
    out = tmp_path / "fit"
    assert (
        main(
            [
                "map",
                "--hese-release",
                str(folder),
                "--components",
                "hese",
                "--likelihood",
                "say",
                "--prior",
                "hese",
                "--out",
                str(out),
                *(NOMINAL_DETECTOR if splines else []),
            ]
        )
        == 0
    )
    result = json.loads((out / "map.json").read_text())
    if splines:
        assert result["fixed"] == {
            "epsilon_dom": 0.99,
            "epsilon_head_on": 0.0,
            "anisotropy_scale": 1.0,
        }
        assert "detector systematics" in capsys.readouterr().out
    inputs = load_inputs(hese_release=folder)
    binned = bin_dataset(
        inputs.data,
        inputs.simulation,
        components=hw.HESE_COMPONENTS_NUISANCE,
        binning=release_binning(),
    )  # the default for --hese-release
    assert binned.binning.n_bins == 840
    sim_release = EventTable({k: np.asarray(v, float) for k, v in toy.simulation.items()}, "s")
    assert len(sim_release) == len(binned.simulation)
    ref, _ = scipy_map(sim_release, binned, None)
    for name in NAMES:  # prompt_norm sits at its bound 0 on this toy: absolute there
        assert result[name] == pytest.approx(ref[name], rel=1e-4, abs=1e-6), name
    # -ln L (SAY, lnGamma(k + 1) included) at the MAP from the per-event formula
    w = sum(release_weights(sim_release, {n: result[n] for n in NAMES}).values())
    n = binned.binning.n_bins
    mu = per_bin(binned.sim_bin_index, w, n)
    s2 = per_bin(binned.sim_bin_index, w * w, n)
    keep = mu > 0
    ref_nll = -np.sum(say_ref(binned.counts[keep], mu[keep], s2[keep]))
    assert result["neg_log_likelihood"] == pytest.approx(ref_nll, rel=1e-10)


def test_missing_nuisance_field_is_a_one_line_error(release):
    _, binned = release
    sim = binned.simulation
    columns = {k: v for k, v in sim.columns.items() if k != "kaonWeight"}
    broken = EventTable(columns, "broken_sim.json")
    with pytest.raises(DataFormatError) as err:
        bin_dataset(binned.data, broken, components=hw.HESE_COMPONENTS_NUISANCE)
    assert "broken_sim.json" in str(err.value) and "kaonWeight" in str(err.value)
    assert "\n" not in str(err.value)


def test_neutrino_without_particle_type_is_refused(release):
    _, binned = release
    sim = binned.simulation
    columns = dict(sim.columns)
    code = columns["primaryType"].copy()
    code[np.flatnonzero(columns["pionWeight"] > 0)[0]] = 0.0
    columns["primaryType"] = code
    with pytest.raises(DataFormatError) as err:
        bin_dataset(
            binned.data,
            EventTable(columns, "typeless.json"),
            components=hw.HESE_COMPONENTS_NUISANCE,
        )
    assert "typeless.json" in str(err.value) and "primaryType" in str(err.value)


@pytest.mark.slow
def test_cli_sample_and_report_with_nuisances(tmp_path):
    folder = tmp_path / "release"
    toy = hese_toy.make_toy_release(seed=22, n=8_000)
    hr.write_release_folder(folder, toy.simulation, toy.data)
    out = tmp_path / "run"
    assert (
        main(
            [
                "sample",
                "--hese-release",
                str(folder),
                "--components",
                "hese",
                "--likelihood",
                "say",
                "--prior",
                "hese",
                "--draws",
                "200",
                "--tune",
                "300",
                "--chains",
                "2",
                "--seed",
                "3",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["report", "--run", str(out), "--quiet"]) == 0
    summary = json.loads((out / "map.json").read_text())
    assert set(NAMES) <= set(summary)
    import arviz as az

    tree = az.from_netcdf(out / "posterior.nc")
    draws = tree["posterior"]["kpi_ratio"].values
    assert draws.shape == (2, 200)
    # the data barely constrain kpi_ratio: its posterior is close to the prior N(1, 0.1)
    assert abs(float(np.mean(draws)) - 1.0) < 0.1
    assert 0.05 < float(np.std(draws)) < 0.15
