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
        mu_spl = expected_counts(
            spl.templates, {"atmos_norm": a, "astro_norm": n, "astro_gamma": 2.0}
        )
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
    binned = bin_dataset(
        inputs.data,
        inputs.simulation,
        components=with_astro_model(WORKSHOP_COMPONENTS, "segmented"),
    )
    params = {"atmos_norm": 0.8, **{f"astro_norm_{k}": 2.0 + k for k in range(1, 6)}}
    np.testing.assert_allclose(
        expected_counts(binned.templates, params),
        _per_event(inputs.simulation, SEGMENT_EDGES_GEV, params),
        rtol=1e-10,
        atol=1e-14,
    )


def _workshop_counts(inputs):
    b = Binning()
    return b.histogram(
        b.bin_index(inputs.data["energy"], inputs.data["zenith"], inputs.data["topology"])
    )


def _nll_of(edges):
    """The per-event Poisson -ln L of the segmented model between ``edges`` (plain NumPy),
    as a function of (atmos_norm, astro_norm_1, ...), with its gradient; and the names."""
    inputs = df.load_inputs()
    names = ["atmos_norm", *(f"astro_norm_{k}" for k in range(1, len(edges)))]
    k = _workshop_counts(inputs)
    basis = np.stack(
        [_per_event(inputs.simulation, edges, {n: float(n == m) for n in names}) for m in names],
        axis=1,
    )

    def nll(x):
        mu = basis @ x
        live = mu > 0
        value = -np.sum(k[live] * np.log(mu[live]) - mu[live] - gammaln(k[live] + 1.0))
        grad = -(basis[live].T @ (k[live] / mu[live] - 1.0))
        return value, grad

    return nll, names


def _scipy_min(nll, n, fixed=None):
    """SciPy's bounded minimum of ``nll`` (norms >= 0), ``fixed``: index -> value."""
    fixed = fixed or {}
    free = [i for i in range(n) if i not in fixed]

    def f(y):
        x = np.empty(n)
        x[free] = y
        for i, v in fixed.items():
            x[i] = v
        value, grad = nll(x)
        return value, grad[free]

    return scipy.optimize.minimize(
        f,
        np.ones(len(free)),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * len(free),
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
    )


@pytest.mark.parametrize("edges", [None, (6e4, 2e5, 1e6, 1e7)], ids=["default", "--segments"])
def test_segmented_map_equals_scipy(tmp_path, edges):
    """map --astro-model segmented --prior flat (default edges, and the user's through
    --segments): the MAP equals SciPy's maximum of the per-event likelihood (bounded,
    norms >= 0): 1e-4 relative, 1e-6 absolute at 0."""
    out = tmp_path / "run"
    extra = ["--segments", ",".join(f"{e:g}" for e in edges)] if edges else []
    assert (
        main(
            [
                "map",
                "--astro-model",
                "segmented",
                "--prior",
                "flat",
                *extra,
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    fit = json.loads((out / "map.json").read_text())
    nll, names = _nll_of(edges or SEGMENT_EDGES_GEV)
    assert fit["parameter_order"] == names
    best = _scipy_min(nll, len(names))
    np.testing.assert_allclose([fit[n] for n in names], best.x, rtol=1e-4, atol=1e-6)
    assert fit["neg_log_likelihood"] == pytest.approx(best.fun, abs=1e-6)


def test_segments_in_the_specification_equal_the_option(tmp_path):
    """A specification's segments_GeV fits the same model as --segments (the recorded
    specification of the --segments run has them); bad edges are refused in one line
    naming the field."""
    from diffuse_fit.io.analysis import read_analysis

    spec = tmp_path / "a.toml"
    spec.write_text(
        'priors = "flat"\n[[samples]]\nastro_model = "segmented"\n'
        "segments_GeV = [6e4, 2e5, 1e6, 1e7]\n"
    )
    assert main(["map", "--analysis", str(spec), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert (
        main(
            [
                "map",
                "--astro-model",
                "segmented",
                "--segments",
                "6e4,2e5,1e6,1e7",
                "--prior",
                "flat",
                "--out",
                str(tmp_path / "b"),
                "--quiet",
            ]
        )
        == 0
    )
    a, b = (json.loads((tmp_path / r / "map.json").read_text()) for r in "ab")
    assert (
        a["parameter_order"]
        == b["parameter_order"]
        == ["atmos_norm", "astro_norm_1", "astro_norm_2", "astro_norm_3"]
    )
    assert a["neg_log_likelihood"] == pytest.approx(b["neg_log_likelihood"], abs=1e-9)
    assert (
        main(
            [
                "spec",
                "--from-run",
                str(tmp_path / "b"),
                "--out",
                str(tmp_path / "b.json"),
                "--quiet",
            ]
        )
        == 0
    )
    sample = read_analysis(tmp_path / "b.json").samples[0]
    assert (sample.astro_model, sample.segments_GeV) == ("segmented", [6e4, 2e5, 1e6, 1e7])
    for bad, words in (("[6e4, 2e5, 1e5]", "strictly increasing"), ("[6e4]", "segments_GeV")):
        spec.write_text(f'[[samples]]\nastro_model = "segmented"\nsegments_GeV = {bad}\n')
        with pytest.raises(Exception, match=words):
            read_analysis(spec)
    spec.write_text('[[samples]]\nastro_model = "spl"\nsegments_GeV = [6e4, 1e7]\n')
    with pytest.raises(Exception, match="segments_GeV is for astro_model"):
        read_analysis(spec)


@pytest.mark.parametrize(
    "args, words",
    [
        (["map", "--segments", "6e4,1e7"], "--segments is for --astro-model segmented"),
        (["map", "--astro-model", "segmented", "--segments", "6e4,abc"], "--segments 6e4,abc"),
        (["map", "--astro-model", "segmented", "--segments", "1e7,6e4"], "strictly increasing"),
        (["compare", "--models", "spl,logparabola", "--segments", "6e4,1e7"], "segmented among"),
    ],
)
def test_bad_segments_are_refused_in_one_line(tmp_path, capsys, args, words):
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


@pytest.mark.slow
def test_segmented_sample_reports_the_differential_flux(tmp_path):
    """NUTS on the toy with the user's segments: 0 divergences; the report's flux figure is
    the segmented one; summary.json records each segment's median, 68% interval and upper
    limit, its profile-likelihood interval (equal to SciPy's profile of the per-event
    likelihood, 1e-4 relative) and the single power law's band (its median at the 100 TeV
    pivot, where the flux is linear in astro_norm, at the power law's MAP)."""
    from scipy.optimize import brentq

    out = tmp_path / "run"
    edges = (6e4, 2e5, 1e6, 1e7)
    assert (
        main(
            [
                "sample",
                "--astro-model",
                "segmented",
                "--segments",
                "6e4,2e5,1e6,1e7",
                "--prior",
                "flat",
                "--draws",
                "400",
                "--tune",
                "400",
                "--chains",
                "2",
                "--report",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diagnostics"]["divergences"] == 0
    assert (out / "flux.png").is_file()
    segments = summary["segments"]
    assert [s["norm"] for s in segments] == ["astro_norm_1", "astro_norm_2", "astro_norm_3"]
    for s in segments:
        assert s["q16"] <= s["median"] <= s["q84"] <= s["upper_limit_95"] or s["limit"]
    assert not segments[0]["limit"]  # the lowest segment is measured on the toy
    nll, names = _nll_of(edges)
    best = _scipy_min(nll, len(names))
    to_flux = 1e-18 * 1e10  # E^2 dPhi/dE of a segment of index 2: norm 1e-18 (100 TeV)^2
    for i, s in enumerate(segments, start=1):

        def excess(x, i=i):
            return 2 * (_scipy_min(nll, len(names), {i: x}).fun - best.fun) - 1.0

        x_hat = best.x[i]
        low = 0.0 if excess(0.0) < 0 else brentq(excess, 0.0, x_hat, xtol=1e-12)
        high = brentq(excess, x_hat, 10 * x_hat + 10, xtol=1e-12)
        np.testing.assert_allclose(
            s["profile_68"], [low * to_flux, high * to_flux], rtol=1e-4, atol=1e-6 * to_flux
        )
        assert s["profile_map"] == pytest.approx(x_hat * to_flux, rel=1e-4, abs=1e-6 * to_flux)
    band = summary["power_law_band"]
    at = int(np.argmin(np.abs(np.log(np.asarray(band["energies"]) / 1e5))))
    median, q16, q84 = (band["e2_flux"][band["quantiles"].index(q)][at] for q in (0.5, 0.16, 0.84))
    assert band["energies"][at] == pytest.approx(1e5)
    assert abs(median - band["map"]["astro_norm"] * to_flux) < 0.1 * (q84 - q16) / 2


@pytest.mark.slow
def test_compare_segmented_with_the_power_law(tmp_path):
    """compare --models spl,segmented --segments ...: both fitted and ranked; the segmented
    model's files are named 'segmented' and its band is piecewise constant; its MAP equals
    SciPy's (1e-4)."""
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--models",
                "spl,segmented",
                "--segments",
                "6e4,2e5,1e6,1e7",
                "--prior",
                "flat",
                "--draws",
                "200",
                "--tune",
                "300",
                "--chains",
                "2",
                "--smc-runs",
                "0",
                "--lrt-toys",
                "0",
                "--seed",
                "2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    table = json.loads((out / "compare.json").read_text())
    name = "segmented:60000.0,200000.0,1000000.0,10000000.0"
    assert set(table["models"]) == {"spl", name}
    assert sorted(r["model"] for r in table["loo_ranking"]) == sorted(["spl", name])
    for file in ("corner_segmented.png", "posterior_segmented.nc", "spectrum.png"):
        assert (out / file).stat().st_size > 0
    nll, names = _nll_of((6e4, 2e5, 1e6, 1e7))
    best = _scipy_min(nll, len(names))
    fit = table["models"][name]["map"]
    np.testing.assert_allclose([fit[n] for n in names], best.x, rtol=1e-4, atol=1e-6)


def test_segment_priors_flat_and_weakly_informative():
    """``flat``: HalfFlat on each segment norm; ``default``: HalfNormal(20), proper (its
    log-density against SciPy's half-normal, up to the constant), so that SBC and the
    evidence apply."""
    from scipy import stats

    from diffuse_fit.inference.priors import resolve_priors

    supports = {
        "atmos_norm": (0.0, np.inf),
        **{f"astro_norm_{k}": (0.0, np.inf) for k in (1, 2, 12)},
    }
    flat = resolve_priors("flat", supports)
    default = resolve_priors("default", supports)
    for k in (1, 2, 12):
        assert flat[f"astro_norm_{k}"].dist == "HalfFlat"
        prior = default[f"astro_norm_{k}"]
        assert (prior.dist, prior.params) == ("HalfNormal", {"sigma": 20.0})
        assert prior.proper
        x = np.array([0.5, 7.0, 40.0])
        diff = [prior.log_density(v) - stats.halfnorm.logpdf(v, scale=20.0) for v in x]
        np.testing.assert_allclose(diff, diff[0], atol=1e-12)
    assert default["atmos_norm"].dist == "LogNormal"  # the set's own prior is kept


def test_the_injected_spectrum_is_the_truths_own_model():
    """The segmented figure's injected line is the model of the truth: a cutoff's truth
    (which also holds spl's parameters) is drawn as the cutoff, against its formula
    E^2 phi 1e-18 (E/100 TeV)^-gamma exp(-E/E_cut) (1e-12); real data have none."""
    from diffuse_fit.report.document import _injected_flux

    segments = segment_components(WORKSHOP_COMPONENTS[1])
    truth = {"astro_norm": 6.0, "astro_gamma": 2.5, "astro_log10_ecut": 6.0}
    line = _injected_flux(truth, segments)
    assert line["label"].startswith("injected (cutoff:")
    e = line["energies"]
    want = e**2 * 6.0e-18 * (e / 1e5) ** -2.5 * np.exp(-e / 1e6)
    np.testing.assert_allclose(line["e2_flux"], want, rtol=1e-12)
    assert _injected_flux({"atmos_norm": 1.0}, segments) is None
