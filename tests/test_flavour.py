"""The flavour composition (issue 22, item 2): the single power law with free fractions f_e,
f_mu at Earth (f_tau = 1 - f_e - f_mu).  References: the single power law (fractions 1/3), the
per-event formula in plain NumPy, SciPy's constrained maximisation of the per-event Poisson
likelihood, finite differences, and PyMC's own log-density."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.optimize
from scipy.special import gammaln

from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.curvature import loglike_derivatives
from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.cli import main
from diffuse_fit.errors import DataFormatError
from diffuse_fit.fitting.profile import ProfileFitter
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.io.events import EventTable
from diffuse_fit.physics import flavour, toy
from diffuse_fit.physics.components import WORKSHOP_COMPONENTS
from diffuse_fit.physics.spectra import with_astro_model

FLAVOURED = with_astro_model(WORKSHOP_COMPONENTS, "flavour")
NAMES = ["atmos_norm", "astro_norm", "astro_gamma", "f_e", "f_mu"]
INTERIOR_TRUTH = {**toy.DEFAULT_TRUTH, "astro_norm": 12.0, "f_e": 0.45, "f_mu": 0.35}


@pytest.fixture(scope="module")
def flavour_toy():
    return toy.generate(astro_model="flavour")


@pytest.fixture(scope="module")
def interior_toy():
    """A toy whose pseudo-data have a composition inside the simplex (0.45 : 0.35 : 0.2)."""
    return toy.generate(seed=7, truth=INTERIOR_TRUTH, astro_model="flavour")


def _poisson_lnl(k, mu):
    live = mu > 0
    return float(np.sum(k[live] * np.log(mu[live]) - mu[live] - gammaln(k[live] + 1.0)))


def _per_event(sim, p):
    """Expected events per workshop bin, per-event formula (plain NumPy, PDG codes read here)."""
    b = Binning()
    index = b.bin_index(sim["energy"], sim["zenith"], sim["topology"])
    code = np.abs(np.asarray(sim["primaryType"]))
    fraction = np.select(
        [code == 12, code == 14, code == 16], [p["f_e"], p["f_mu"], 1 - p["f_e"] - p["f_mu"]]
    )
    e = np.asarray(sim["primaryEnergy"])
    w = p["atmos_norm"] * np.asarray(sim["atmoWeight"]) + 3.0 * fraction * p[
        "astro_norm"
    ] * np.asarray(sim["astroWeight"]) * (e / 1e5) ** (2.5 - p["astro_gamma"])
    keep = index >= 0
    return np.bincount(index[keep], weights=w[keep], minlength=b.n_bins)


def test_fractions_of_a_third_are_todays_model(flavour_toy):
    """f_e = f_mu = 1/3: the expectation and ln L of the single power law (1e-10)."""
    flav = bin_dataset(flavour_toy.data, flavour_toy.simulation, components=FLAVOURED)
    spl = bin_dataset(flavour_toy.data, flavour_toy.simulation)
    for a, n, g in ((1.0, 6.0, 2.5), (0.4, 9.5, 3.3), (2.0, 0.3, 1.7)):
        p = {"atmos_norm": a, "astro_norm": n, "astro_gamma": g}
        mu_f = expected_counts(flav.templates, {**p, "f_e": 1 / 3, "f_mu": 1 / 3})
        mu_s = expected_counts(spl.templates, p)
        np.testing.assert_allclose(mu_f, mu_s, rtol=1e-10, atol=1e-300)
        assert _poisson_lnl(flav.counts, mu_f) == pytest.approx(
            _poisson_lnl(spl.counts, mu_s), rel=1e-10
        )


@pytest.mark.parametrize(
    "p",
    [
        {"atmos_norm": 1.1, "astro_norm": 6.0, "astro_gamma": 2.7, "f_e": 0.2, "f_mu": 0.5},
        {"atmos_norm": 0.7, "astro_norm": 3.0, "astro_gamma": 1.4, "f_e": 0.0, "f_mu": 1.0},
        {"atmos_norm": 1.0, "astro_norm": 9.0, "astro_gamma": 3.8, "f_e": 0.9, "f_mu": 0.0},
    ],
)
def test_expectation_equals_the_per_event_formula(flavour_toy, p):
    binned = bin_dataset(flavour_toy.data, flavour_toy.simulation, components=FLAVOURED)
    mu = expected_counts(binned.templates, p)
    reference = _per_event(flavour_toy.simulation, p)
    np.testing.assert_allclose(mu, reference, rtol=1e-10, atol=1e-14 * reference.max())


def test_gradient_and_hessian_against_finite_differences(flavour_toy):
    binned = bin_dataset(flavour_toy.data, flavour_toy.simulation, components=FLAVOURED)
    bins = np.flatnonzero(binned.templates.covered())
    x0 = np.array([1.1, 6.0, 2.7, 0.2, 0.5])

    def at(x):
        return loglike_derivatives(
            binned.templates, binned.counts, dict(zip(NAMES, x, strict=False)), NAMES, bins
        )

    _, grad, hess = at(x0)
    h = 1e-5
    steps = np.eye(5) * h
    numeric_grad = np.array([(at(x0 + s)[0] - at(x0 - s)[0]) / (2 * h) for s in steps])
    numeric_hess = np.array([(at(x0 + s)[1] - at(x0 - s)[1]) / (2 * h) for s in steps])
    np.testing.assert_allclose(grad, numeric_grad, rtol=1e-6, atol=1e-6 * np.abs(grad).max())
    np.testing.assert_allclose(hess, numeric_hess, rtol=1e-5, atol=1e-6 * np.abs(hess).max())


def test_stick_breaking_coordinates_chain_rule(flavour_toy):
    """The fitter's gradient and Hessian in its unconstrained coordinates (stick-breaking for
    the fractions) against finite differences of log p composed with the map u -> theta; the
    map stays inside the simplex for any u."""
    binned = bin_dataset(flavour_toy.data, flavour_toy.simulation, components=FLAVOURED)
    fitter = ProfileFitter(
        binned.templates, resolve_priors("flat", binned.templates.parameter_supports())
    )
    coords = fitter.coordinates()
    rng = np.random.default_rng(3)
    for u in rng.normal(0, 3, (200, 5)):
        x = coords.natural(u)
        assert x[3] >= 0 and x[4] >= 0 and x[3] + x[4] <= 1 + 1e-15
        np.testing.assert_allclose(coords.unconstrained(x), u, rtol=1e-7, atol=1e-7)

    def logp_u(u):
        return fitter.log_posterior(
            binned.counts, dict(zip(fitter.names, coords.natural(u), strict=False))
        )[0]

    u0 = coords.unconstrained(np.array([1.1, 6.0, 2.7, 0.2, 0.5]))
    _, g, hess, _ = fitter.log_posterior(
        binned.counts, dict(zip(fitter.names, coords.natural(u0), strict=False))
    )
    grad_u, hess_u = coords.chain(coords.natural(u0), g, hess)
    h = 1e-5
    steps = np.eye(5) * h
    numeric = np.array([(logp_u(u0 + s) - logp_u(u0 - s)) / (2 * h) for s in steps])
    np.testing.assert_allclose(grad_u, numeric, rtol=1e-6, atol=1e-7 * np.abs(grad_u).max())

    def grad_of(u):
        x = coords.natural(u)
        return coords.chain(
            x, fitter.log_posterior(binned.counts, dict(zip(fitter.names, x, strict=False)))[1]
        )[0]

    numeric_h = np.array([(grad_of(u0 + s) - grad_of(u0 - s)) / (2 * h) for s in steps])
    np.testing.assert_allclose(hess_u, numeric_h, rtol=1e-5, atol=1e-6 * np.abs(hess_u).max())


def _scipy_map(sim, counts, fixed=None):
    """SciPy's maximum of the per-event Poisson likelihood (SLSQP; norms >= 0, gamma in
    [1, 4], fractions >= 0 with f_e + f_mu <= 1): the flat priors' MAP."""
    fixed = fixed or {}
    free = [n for n in NAMES if n not in fixed]

    # the model is linear in (atmos_norm, 3 astro_norm f_a): tabulate per gamma on the fly
    def nll(y):
        p = {**fixed, **dict(zip(free, y, strict=False))}
        return -_poisson_lnl(counts, _per_event(sim, p))

    bounds = {"atmos_norm": (0, None), "astro_norm": (0, None), "astro_gamma": (1, 4)}
    bounds |= {"f_e": (0, 1), "f_mu": (0, 1)}
    constraints = []
    if "f_e" in free or "f_mu" in free:

        def room(y):
            p = {**fixed, **dict(zip(free, y, strict=False))}
            return 1.0 - p["f_e"] - p["f_mu"]

        constraints.append({"type": "ineq", "fun": room})
    start = {"atmos_norm": 1.0, "astro_norm": 6.0, "astro_gamma": 2.5, "f_e": 0.3, "f_mu": 0.3}
    best = None
    for scale in (1.0, 1.3):
        x0 = [start[n] * (scale if n in ("astro_norm", "astro_gamma") else 1) for n in free]
        result = scipy.optimize.minimize(
            nll,
            x0,
            method="SLSQP",
            bounds=[bounds[n] for n in free],
            constraints=constraints,
            options={"ftol": 1e-14, "maxiter": 1000},
        )
        best = result if best is None or result.fun < best.fun else best
    return dict(zip(free, best.x, strict=False)), best.fun


def test_map_equals_scipy(tmp_path, interior_toy):
    """map --astro-model flavour --prior flat on a toy with a composition inside the simplex:
    the MAP equals SciPy's constrained maximum of the per-event likelihood (1e-4)."""
    from diffuse_fit.io.workshop_format import write_workshop_file

    data, sim = tmp_path / "data.json", tmp_path / "sim.json"
    write_workshop_file(data, interior_toy.data)
    write_workshop_file(sim, interior_toy.simulation)
    out = tmp_path / "run"
    argv = ["map", "--data", str(data), "--sim", str(sim), "--astro-model", "flavour"]
    assert main([*argv, "--prior", "flat", "--out", str(out), "--quiet", "--no-cache"]) == 0
    fit = json.loads((out / "map.json").read_text())
    b = Binning()
    d = interior_toy.data
    counts = b.histogram(b.bin_index(d["energy"], d["zenith"], d["topology"]))
    best, nll = _scipy_map(interior_toy.simulation, counts)
    assert 0.05 < best["f_e"] and 0.05 < best["f_mu"] and best["f_e"] + best["f_mu"] < 0.95
    np.testing.assert_allclose([fit[n] for n in NAMES], [best[n] for n in NAMES], rtol=1e-4)
    assert fit["neg_log_likelihood"] == pytest.approx(nll, abs=1e-6)


def test_profile_with_a_fraction_fixed_stays_on_the_simplex(interior_toy):
    """Fixing f_mu leaves f_e in [0, 1 - f_mu]: the profile fit equals SciPy's (1e-4)."""
    binned = bin_dataset(interior_toy.data, interior_toy.simulation, components=FLAVOURED)
    fitter = ProfileFitter(
        binned.templates, resolve_priors("flat", binned.templates.parameter_supports())
    )
    for f_mu in (0.1, 0.6, 0.95):
        fit = fitter.fit(binned.counts, fixed={"f_mu": f_mu})
        assert fit.converged
        assert 0 <= fit.values["f_e"] <= 1 - f_mu
        best, nll = _scipy_map(interior_toy.simulation, binned.counts, fixed={"f_mu": f_mu})
        assert fit.neg_log_likelihood == pytest.approx(nll, abs=2e-6)
        np.testing.assert_allclose(
            [fit.values[n] for n in best], list(best.values()), rtol=1e-3, atol=1e-4
        )


@pytest.mark.parametrize("alpha", [None, (2.0, 3.0, 1.5), (0.7, 1.0, 2.5)])
@pytest.mark.parametrize("fix", [{}, {"f_mu": 0.4}, {"f_e": 0.25}])
def test_pymc_log_density_equals_the_fitter(fix, alpha, flavour_toy):
    """The PyMC model's log-density (no Jacobian) equals the NumPy fitter's log p, the
    Dirichlet's density included (flat, and two others), with both fractions free and with one
    fixed (1e-9); with both free the prior's part equals SciPy's Dirichlet log-density."""
    import pymc as pm
    from scipy import stats

    from diffuse_fit.inference.pymc_model import build_model

    binned = bin_dataset(flavour_toy.data, flavour_toy.simulation, components=FLAVOURED)
    supports = binned.templates.parameter_supports()
    if alpha is None:
        priors = resolve_priors("default", supports)
    else:
        dirichlet = dict(zip(("alpha_e", "alpha_mu", "alpha_tau"), alpha, strict=True))
        priors = resolve_priors({"f_e": {"dist": "Dirichlet", **dirichlet}}, supports)
        assert priors["f_mu"].alpha() == alpha
    templates = binned.templates
    from dataclasses import replace

    binned = replace(binned, templates=replace(templates, fixed=dict(fix)))
    from pymc.model.transform.conditioning import remove_value_transforms

    model = remove_value_transforms(build_model(binned, priors))  # values: natural parameters
    fitter = ProfileFitter(binned.templates, priors)
    logp = model.compile_logp(jacobian=False)
    rng = np.random.default_rng(5)
    for _ in range(5):
        f = rng.dirichlet(np.ones(3))
        values = {"atmos_norm": rng.uniform(0.5, 2), "astro_norm": rng.uniform(1, 10)}
        values |= {"astro_gamma": rng.uniform(1.5, 3.5), "f_e": f[0], "f_mu": f[1]}
        values = {k: v for k, v in values.items() if k not in fix}
        for name, held in fix.items():  # the other fraction inside [0, 1 - held]
            other = "f_e" if name == "f_mu" else "f_mu"
            values[other] = rng.uniform(0, 1 - held)
        point = {rv.name: np.float64(values[rv.name]) for rv in model.free_RVs}
        assert set(point) == set(values)
        mine = fitter.log_posterior(binned.counts, values)[0]
        assert float(logp(point)) == pytest.approx(mine, rel=1e-9, abs=1e-9)
        if not fix:  # the prior's part: SciPy's Dirichlet
            flat = {**values, "f_e": 1 / 3, "f_mu": 1 / 3}
            part = mine - fitter.log_posterior(binned.counts, flat)[0]
            part -= fitter.log_posterior(binned.counts, values)[3]
            part += fitter.log_posterior(binned.counts, flat)[3]
            a = np.ones(3) if alpha is None else np.array(alpha)
            f3 = [values["f_e"], values["f_mu"], 1 - values["f_e"] - values["f_mu"]]
            expected = stats.dirichlet(a).logpdf(f3) - stats.dirichlet(a).logpdf([1 / 3] * 3)
            assert part == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert isinstance(model, pm.Model)


def test_flavour_fractions_take_only_the_simplex_prior(tmp_path):
    from diffuse_fit.inference.priors import PriorError

    supports = {"astro_norm": (0.0, math.inf), "f_e": (0.0, 1.0), "f_mu": (0.0, 1.0)}
    with pytest.raises(PriorError, match="Dirichlet"):
        resolve_priors({"f_e": {"dist": "Uniform", "lower": 0, "upper": 1}}, supports)
    with pytest.raises(PriorError, match="Dirichlet"):
        resolve_priors({"astro_norm": {"dist": "Dirichlet"}}, supports)
    with pytest.raises(PriorError, match="share one Dirichlet"):
        resolve_priors(
            {"f_e": {"dist": "Dirichlet", "alpha_e": 2}, "f_mu": {"dist": "Dirichlet"}}, supports
        )
    with pytest.raises(PriorError, match="alpha_mu"):
        resolve_priors({"f_mu": {"dist": "Dirichlet", "alpha_mu": -1}}, supports)
    priors = resolve_priors("flat", supports)
    assert priors["f_e"].dist == priors["f_mu"].dist == "Dirichlet"
    assert priors["f_e"].alpha() == (1.0, 1.0, 1.0)


def test_draws_from_the_prior_are_flat_on_the_simplex():
    """SBC's draws of the fractions: the flat Dirichlet (f_e's marginal is Beta(1, 2)), and a
    Dirichlet of the user's (f_e's marginal Beta(2, 4))."""
    from scipy import stats

    from diffuse_fit.inference.priors import draw_priors

    supports = {"astro_gamma": (1.0, 4.0), "f_e": (0.0, 1.0), "f_mu": (0.0, 1.0)}
    priors = resolve_priors("default", supports)
    rng = np.random.default_rng(11)
    draws = [draw_priors(priors, rng) for _ in range(4000)]
    f_e = np.array([d["f_e"] for d in draws])
    f_mu = np.array([d["f_mu"] for d in draws])
    assert np.all(f_e + f_mu <= 1.0)
    assert stats.kstest(f_e, stats.beta(1, 2).cdf).pvalue > 1e-3
    assert stats.kstest(f_mu, stats.beta(1, 2).cdf).pvalue > 1e-3
    spec = {"f_e": {"dist": "Dirichlet", "alpha_e": 2, "alpha_mu": 3, "alpha_tau": 1}}
    priors = resolve_priors(spec, supports)
    f_e = np.array([draw_priors(priors, rng)["f_e"] for _ in range(4000)])
    assert stats.kstest(f_e, stats.beta(2, 4).cdf).pvalue > 1e-3


def test_inputs_without_flavour_are_refused_in_one_line(capsys):
    assert main(["map", "--astro-model", "flavour", "--quiet"]) != 0
    err = capsys.readouterr().err.strip()
    assert "primaryType" in err and "\n" not in err


def test_a_weighted_event_without_a_neutrino_flavour_is_refused(flavour_toy):
    columns = dict(flavour_toy.simulation.columns)
    code = columns["primaryType"].copy()
    code[np.flatnonzero(columns["astroWeight"] > 0)[3]] = 13.0
    columns["primaryType"] = code
    with pytest.raises(DataFormatError) as err:
        bin_dataset(flavour_toy.data, EventTable(columns, "muonic.json"), components=FLAVOURED)
    assert "muonic.json" in str(err.value) and "primaryType" in str(err.value)
    assert "\n" not in str(err.value)


def _rotation(i, j, angle_deg, phase_deg=0.0):
    """The rotation in the (i, j) plane, with the phase on the sine (plain NumPy)."""
    out = np.eye(3, dtype=complex)
    t, d = np.radians(angle_deg), np.radians(phase_deg)
    out[i, i] = out[j, j] = np.cos(t)
    out[i, j] = np.sin(t) * np.exp(-1j * d)
    out[j, i] = -np.sin(t) * np.exp(1j * d)
    return out


def test_source_expectations_after_oscillation():
    """P_ab = sum_i |U_ai|^2 |U_bi|^2 with U = R23 U13(delta) R12 built here (1e-12); at
    tri-bimaximal mixing the textbook values: pion decay 1:1:1, muon-damped 2/9 : 7/18 : 7/18."""
    m = flavour.MIXING
    u = (
        _rotation(1, 2, m["theta23_deg"])
        @ _rotation(0, 2, m["theta13_deg"], m["delta_cp_deg"])
        @ _rotation(0, 1, m["theta12_deg"])
    )
    u2 = np.abs(u) ** 2
    np.testing.assert_allclose(flavour.averaged_transition(), u2 @ u2.T, atol=1e-12)
    for source in flavour.SOURCES.values():
        s = np.array(source) / sum(source)
        np.testing.assert_allclose(flavour.at_earth(source), u2 @ u2.T @ s, atol=1e-12)
    tbm = {"theta12_deg": math.degrees(math.asin(math.sqrt(1 / 3))), "theta23_deg": 45.0}
    tbm |= {"theta13_deg": 0.0, "delta_cp_deg": 0.0}
    np.testing.assert_allclose(flavour.at_earth((1, 2, 0), tbm), [1 / 3] * 3, atol=1e-12)
    np.testing.assert_allclose(
        flavour.at_earth((0, 1, 0), tbm), [2 / 9, 7 / 18, 7 / 18], atol=1e-12
    )


@pytest.mark.slow
def test_flavour_sample_has_no_divergences(tmp_path):
    """NUTS on the flavour toy (truth in the corner 0:1:0): 0 divergences; the report has the
    ternary figure and its paragraph; the posterior stays on the simplex."""
    import arviz as az

    out = tmp_path / "run"
    argv = ["sample", "--toy", "flavour", "--astro-model", "flavour", "--seed", "1"]
    assert main([*argv, "--report", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diagnostics"]["divergences"] == 0
    assert summary["diagnostics"]["max_r_hat"] < 1.01
    assert (out / "flavour.png").is_file()
    assert "![flavour](flavour.png)" in (out / "report.md").read_text()
    posterior = az.from_netcdf(out / "posterior.nc").posterior
    f_e, f_mu = posterior["f_e"].values, posterior["f_mu"].values
    assert np.all(f_e >= 0) and np.all(f_mu >= 0) and np.all(f_e + f_mu <= 1)


def test_scan_over_the_simplex(tmp_path):
    """scan f_e x f_mu: points outside the simplex are empty (null), the others equal a
    profile fit of the NumPy fitter; the ternary figure is written."""
    out = tmp_path / "scan"
    argv = ["scan", "--toy", "flavour", "--astro-model", "flavour", "--workers", "1"]
    argv += ["--param", "f_e=0:1:6", "--param", "f_mu=0:1:6", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    scan = json.loads((out / "scan.json").read_text())
    ts = np.array(scan["ts"], dtype=float)
    e, mu = np.meshgrid(scan["grid"]["f_e"], scan["grid"]["f_mu"], indexing="ij")
    assert np.all(np.isnan(ts[e + mu > 1 + 1e-9]))
    assert np.all(np.isfinite(ts[e + mu <= 1 + 1e-9]))
    assert np.all(ts[np.isfinite(ts)] >= -1e-6)
    assert (out / "flavour.png").is_file()
    t = toy.generate(astro_model="flavour")
    binned = bin_dataset(t.data, t.simulation, components=FLAVOURED)
    fitter = ProfileFitter(
        binned.templates, resolve_priors("flat", binned.templates.parameter_supports())
    )
    best = fitter.fit(binned.counts)
    at = fitter.fit(binned.counts, fixed={"f_e": 0.2, "f_mu": 0.4})
    assert ts[1, 2] == pytest.approx(-2 * (at.log_posterior - best.log_posterior), abs=1e-6)


def test_toys_record_the_flavour_region(tmp_path):
    """toys at the corner 0:1:0: ts at the truth per experiment equals a direct profile fit;
    coverage.json has both regions' coverage; the coverage figure is written."""
    import xarray as xr

    out = tmp_path / "toys"
    argv = ["toys", "--toy", "flavour", "--astro-model", "flavour", "--n", "4", "--seed", "2"]
    assert main([*argv, "--workers", "1", "--out", str(out), "--quiet"]) == 0
    coverage = json.loads((out / "coverage.json").read_text())
    regions = coverage["flavour_regions"]
    assert set(regions) == {"0.6827", "0.9545"}
    from scipy import stats

    for level, region in regions.items():
        assert region["threshold"] == pytest.approx(stats.chi2.ppf(float(level), 2), rel=1e-12)
    ds = xr.open_dataset(out / "toys.nc")
    ts = ds["flavour_ts"].values
    assert regions["0.9545"]["coverage"] == pytest.approx(np.mean(ts <= 6.18), abs=1e-3)
    assert (out / "flavour_coverage.png").is_file()
    assert np.all(ts >= -1e-6)


def test_map_with_a_dirichlet_prior_equals_scipy(interior_toy):
    """The NumPy fitter's MAP under the default priors and a Dirichlet(2, 3, 1.5) on the
    fractions equals SciPy's constrained maximum of the per-event ln L plus SciPy's
    log-densities of the same priors (LogNormal norms, uniform gamma, Dirichlet) (1e-4)."""
    from scipy import stats

    binned = bin_dataset(interior_toy.data, interior_toy.simulation, components=FLAVOURED)
    spec = {"f_e": {"dist": "Dirichlet", "alpha_e": 2.0, "alpha_mu": 3.0, "alpha_tau": 1.5}}
    priors = resolve_priors(spec, binned.templates.parameter_supports())
    best = ProfileFitter(binned.templates, priors).fit(binned.counts)
    assert best.converged
    sim = interior_toy.simulation
    dirichlet = stats.dirichlet([2.0, 3.0, 1.5])

    def negative(y):
        p = dict(zip(NAMES, y, strict=True))
        f = [p["f_e"], p["f_mu"], 1 - p["f_e"] - p["f_mu"]]
        if min(f) <= 0:
            return 1e10
        log_prior = stats.lognorm(0.5, scale=1.0).logpdf(p["atmos_norm"])
        log_prior += stats.lognorm(1.0, scale=5.0).logpdf(p["astro_norm"])
        log_prior += stats.uniform(1, 3).logpdf(p["astro_gamma"]) + dirichlet.logpdf(f)
        return -(_poisson_lnl(binned.counts, _per_event(sim, p)) + log_prior)

    result = scipy.optimize.minimize(
        negative,
        [1.0, 8.0, 2.8, 0.3, 0.3],
        method="SLSQP",
        bounds=[(1e-9, None), (1e-9, None), (1, 4), (1e-9, 1), (1e-9, 1)],
        constraints=[{"type": "ineq", "fun": lambda y: 1 - y[3] - y[4] - 1e-9}],
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    np.testing.assert_allclose([best.values[n] for n in NAMES], result.x, rtol=1e-4)
    assert -best.log_posterior == pytest.approx(result.fun, abs=1e-6)
