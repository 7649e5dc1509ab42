"""``diffuse-fit compare``: the point-wise log-likelihood of LOO, the likelihood-ratio
pseudo-experiments against an independent SciPy maximisation of the per-event formula, the
p-value and Bayes-factor arithmetic of ``compare.json``, the broken-power-law toy dataset,
and one-line refusals."""

import json

import numpy as np
import pytest
from scipy.special import gammaln
from scipy.stats import poisson

from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.cli import TOY_DATASETS, main
from diffuse_fit.fitting.profile import ProfileFitter
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.jobs.compare import lrt_toy, nested_pairs, parse_models, pointwise_log_likelihood
from diffuse_fit.jobs.inputs import component_set, inputs_from_spec, load_inputs
from diffuse_fit.jobs.many import FitContext, task_seed
from diffuse_fit.jobs.prepared import PreparedFit
from diffuse_fit.physics import toy
from diffuse_fit.physics.components import parameter_supports
from diffuse_fit.physics.spectra import spl_inside
from tests.test_spectral_models import _scipy_fit, reference_expectation

# ----------------------------------------------------------------------------- pieces


def test_parse_models_and_nested_pairs():
    assert parse_models("spl, broken") == ["spl", "broken"]
    for bad in ("spl", "spl,spl", "spl,powerlaw", ""):
        with pytest.raises(Exception, match="--models"):
            parse_models(bad)
    assert nested_pairs(["spl", "logparabola", "broken", "cutoff"]) == [
        ("spl", "logparabola"),
        ("spl", "broken"),
    ]
    assert nested_pairs(["logparabola", "broken"]) == []  # no null model among them


@pytest.mark.parametrize("model", ["logparabola", "broken"])
def test_spl_inside_gives_the_spl_expectation(toy_dataset, model):
    """The null's fit placed inside the alternative (where the LRT's alternative fit
    starts) gives the same expectation, per the single power law's per-event formula."""
    spl = {"atmos_norm": 0.8, "astro_norm": 5.0, "astro_gamma": 2.7}
    inside = spl_inside(model, spl)
    if model == "broken":
        inside["astro_log10_ebreak"] = 5.9  # any break energy
    b_spl, b_alt = (
        bin_dataset(
            toy_dataset.data, toy_dataset.simulation, components=component_set("workshop", m)
        )
        for m in ("spl", model)
    )
    np.testing.assert_allclose(
        expected_counts(b_alt.templates, inside),
        reference_expectation(b_spl, "spl", spl),
        rtol=1e-10,
        atol=1e-14,
    )


def test_pointwise_log_likelihood_is_the_poisson_of_the_per_event_expectation(toy_dataset):
    """Every bin some component populates, at every draw: k ln mu - mu - ln k! with mu from
    the per-event formula (np.bincount) and scipy's Poisson pmf."""
    import xarray as xr

    job = PreparedFit.prepare(
        load_inputs(), "default", astro_model="logparabola", build=False, say=lambda *a: None
    )
    rng = np.random.default_rng(3)
    draws = {
        "atmos_norm": rng.uniform(0.5, 1.5, (2, 3)),
        "astro_norm": rng.uniform(4, 9, (2, 3)),
        "astro_alpha": rng.uniform(2.5, 3.3, (2, 3)),
        "astro_beta": rng.uniform(-0.1, 0.3, (2, 3)),
    }
    posterior = xr.Dataset({k: (("chain", "draw"), v) for k, v in draws.items()})
    bins, loglike = pointwise_log_likelihood(job, posterior)
    assert loglike.shape == (2, 3, bins.size)
    counts = job.binned.counts[bins]
    p0 = {k: float(v[0, 0]) for k, v in draws.items()}
    populated = np.flatnonzero(reference_expectation(job.binned, "logparabola", p0) > 0)
    np.testing.assert_array_equal(bins, populated)  # bins no component populates are left out
    for c, d in ((0, 0), (1, 2)):
        p = {k: float(v[c, d]) for k, v in draws.items()}
        lam = reference_expectation(job.binned, "logparabola", p)[bins]
        np.testing.assert_allclose(loglike[c, d], poisson.logpmf(counts, lam), rtol=1e-10)
        np.testing.assert_allclose(
            loglike[c, d].sum(),
            np.sum(counts * np.log(lam) - lam - gammaln(counts + 1)),
            rtol=1e-12,
        )


@pytest.fixture(scope="module")
def lrt_context(toy_dataset):
    """The null (spl) and the alternative (logparabola), flat priors, as compare ships them."""
    fitters = {}
    for m in ("spl", "logparabola"):
        b = bin_dataset(
            toy_dataset.data, toy_dataset.simulation, components=component_set("workshop", m)
        )
        priors = resolve_priors("flat", parameter_supports(b.components))
        f = ProfileFitter(b.templates, priors)
        fitters[m] = (b, priors, f.fit(b.counts, x0={"atmos_norm": 1.0, "astro_norm": 6.0}))
    b, priors, best = fitters["spl"]
    alt_b, alt_priors, alt_best = fitters["logparabola"]
    context = FitContext(
        key="test-lrt",
        templates=b.templates,
        counts=b.counts.astype(float),
        priors=priors,
        start=dict(best.values),
        alternatives={"logparabola": (alt_b.templates, alt_priors, dict(alt_best.values))},
    )
    return context, fitters


def test_lrt_toy_matches_an_independent_scipy_maximisation(lrt_context):
    """One pseudo-experiment: the counts redrawn from its seed, both models maximised by
    SciPy on the per-event formula; ts to 1e-5 absolute."""
    context, fitters = lrt_context
    b, _, best = fitters["spl"]
    truth = dict(best.values)
    out = lrt_toy(context, "k", {"index": 4, "seed": 11, "truth": truth})
    assert out["seed"] == task_seed(11, 4)
    rng = np.random.default_rng(out["seed"])
    counts = rng.poisson(reference_expectation(b, "spl", truth)).astype(float)
    assert out["n_observed"] == counts.sum()
    nll = {}
    for m, x0 in (("spl", truth), ("logparabola", {**spl_inside("logparabola", truth)})):
        bm = fitters[m][0]
        supports = parameter_supports(bm.components)
        names = list(supports)
        toy_binned = _with_counts(bm, counts)
        _, nll[m] = _scipy_fit(
            toy_binned, m, names, list(supports.values()), [x0[n] for n in names]
        )
    assert out["null_neg_log_likelihood"] == pytest.approx(nll["spl"], abs=1e-6)
    assert out["ts"]["logparabola"] == pytest.approx(
        2 * (nll["spl"] - nll["logparabola"]), abs=1e-5
    )
    assert out["ts"]["logparabola"] >= 0


def _with_counts(binned, counts):
    import dataclasses

    return dataclasses.replace(binned, counts=counts)


# ----------------------------------------------------------------------------- the toy datasets


def test_broken_toy_shares_the_simulation_and_records_its_truth():
    default, broken = toy.generate(), toy.generate(astro_model="broken")
    assert broken.simulation.sha256 == default.simulation.sha256
    assert broken.data.sha256 != default.data.sha256
    assert broken.truth == toy.BROKEN_TRUTH
    assert broken.data.meta["toy"]["astro_model"] == "broken"
    assert tuple(toy.TOY_DATASETS) == TOY_DATASETS  # the CLI's copy (it imports no NumPy)
    inputs = load_inputs(toy_name="broken")
    assert inputs.spec == {"toy_seed": toy.DEFAULT_SEED, "toy": "broken"}
    assert inputs_from_spec(inputs.spec).data.sha256 == broken.data.sha256
    assert load_inputs().spec == {"toy_seed": toy.DEFAULT_SEED}  # earlier runs' spec


def _max_likelihood_ts(inputs, alternative):
    nll = {}
    for m in ("spl", alternative):
        b = bin_dataset(inputs.data, inputs.simulation, components=component_set("workshop", m))
        f = ProfileFitter(b.templates, resolve_priors("flat", parameter_supports(b.components)))
        nll[m] = f.fit(b.counts, x0={"atmos_norm": 1.0, "astro_norm": 6.0}).neg_log_likelihood
    return 2 * (nll["spl"] - nll[alternative])


def test_the_demonstration_datasets_tell_the_spectra_apart():
    """The broken toy's break is seen (ts > 15 for 3 extra parameters); the default toy's
    single power law is not improved on (ts < 4)."""
    assert _max_likelihood_ts(load_inputs(toy_name="broken"), "broken") > 15
    assert _max_likelihood_ts(load_inputs(), "broken") < 4


# ----------------------------------------------------------------------------- the command


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "spl"], "at least two"),
        (["--models", "spl,powerlaw"], "unknown model 'powerlaw'"),
        (["--likelihood", "say"], "only --likelihood poisson"),
        (["--astro-model", "broken"], "--astro-model does not apply"),
        (["--smc-runs", "1"], "at least 2 runs"),
        (["--toy", "broken", "--data", "x.json", "--sim", "y.json"], "either --toy broken"),
    ],
)
def test_bad_compare_arguments_are_one_line_errors(tmp_path, capsys, args, message):
    code = main(["compare", *args, "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_compare_end_to_end(tmp_path):
    """spl vs logparabola on the default toy with short settings: the run folder verifies;
    the Bayes factor is the difference of the evidences; the LRT's ts is twice the
    difference of the maximum log-likelihoods and its p-value counts the stored toys; the
    LOO table covers the populated bins."""
    from diffuse_fit.io.run_folder import read_run

    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            "--models",
            "spl,logparabola",
            "--draws",
            "200",
            "--tune",
            "300",
            "--smc-runs",
            "2",
            "--smc-draws",
            "200",
            "--lrt-toys",
            "12",
            "--workers",
            "1",
            "--seed",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    read_run(out, "compare")
    table = json.loads((out / "compare.json").read_text())
    assert set(table["models"]) == {"spl", "logparabola"}
    z = {m: table["models"][m]["evidence"]["log_z"] for m in table["models"]}
    (bf,) = table["bayes_factors"]
    assert (bf["model"], bf["versus"]) == ("logparabola", "spl")
    assert bf["log_bf"] == pytest.approx(z["logparabola"] - z["spl"], abs=1e-12)
    (test,) = table["likelihood_ratio_tests"]
    assert test["ts"] == pytest.approx(
        2 * (test["null_neg_log_likelihood"] - test["alternative_neg_log_likelihood"]), abs=1e-9
    )
    ts = np.array(test["toys_ts"])
    assert ts.size == 12 and np.all(ts >= 0)
    assert test["p_value"] == pytest.approx((1 + np.sum(ts >= test["ts"])) / 13)
    b = bin_dataset(toy.generate().data, toy.generate().simulation)
    n_bins = int(np.count_nonzero(b.templates.covered()))
    for m in table["models"].values():
        assert m["loo"]["n_bins"] == n_bins
        assert np.isfinite(m["loo"]["elpd"]) and m["loo"]["se"] > 0
        lo, hi = m["sensitive_energy_range_gev"]
        assert 1e4 < lo < hi < 1e8
    for name in (
        "spectrum.png",
        "corner_spl.png",
        "corner_logparabola.png",
        "lrt.png",
        "posterior_spl.nc",
        "compare.md",
    ):
        assert (out / name).stat().st_size > 0
    ranking = [r["model"] for r in table["loo_ranking"]]
    assert sorted(ranking) == ["logparabola", "spl"]
    # the stored posterior leaves out the point-wise log-likelihood; recomputed, it gives
    # the recorded LOO
    import arviz as az
    import xarray as xr

    stored = xr.open_datatree(out / "posterior_spl.nc", engine="h5netcdf")
    assert "log_likelihood" not in stored.children and "posterior" in stored.children
    job = PreparedFit.prepare(load_inputs(), "default", build=False, say=lambda *a: None)
    bins, loglike = pointwise_log_likelihood(job, stored.posterior)
    stored["log_likelihood"] = xr.Dataset({"counts": (("chain", "draw", "bin"), loglike)})
    assert az.loo(stored, var_name="counts").elpd == pytest.approx(
        table["models"]["spl"]["loo"]["elpd"], rel=1e-10
    )
