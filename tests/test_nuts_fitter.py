"""The compile-once NUTS fitter: same posterior as pm.sample, refits without compiling."""

from dataclasses import replace

import numpy as np
import nutpie
import pytest

from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.inference import nuts_fitter
from diffuse_fit.inference.map_fit import MapFitter
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import build_model, parameter_supports, set_counts
from diffuse_fit.inference.sampling import sample
from diffuse_fit.inference.settings import SamplerSettings

NAMES = ["atmos_norm", "astro_norm", "astro_gamma"]
SETTINGS = SamplerSettings(draws=200, tune=200, chains=2, seed=7, sampler="nutpie")


def posterior(idata):
    return {n: np.asarray(idata.posterior[n]) for n in NAMES}


@pytest.mark.slow
def test_refit_equals_fresh_fit_and_does_not_compile(binned, monkeypatch):
    priors = resolve_priors("default", parameter_supports(binned.components))
    model = build_model(binned, priors)
    fitter = nuts_fitter.NutsFitter(model)
    first = posterior(fitter.sample(SETTINGS))
    # the same run as pm.sample's nutpie path, bit for bit
    reference = posterior(sample(model, SETTINGS, progressbar=False))
    for name in NAMES:
        np.testing.assert_array_equal(first[name], reference[name])

    compilations = []
    real = nutpie.compile_pymc_model
    monkeypatch.setattr(
        nutpie, "compile_pymc_model", lambda *a, **k: compilations.append(1) or real(*a, **k)
    )

    asimov = expected_counts(
        binned.templates, {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0}
    )
    set_counts(model, asimov)
    refit = posterior(fitter.sample(SETTINGS))
    assert compilations == [] and fitter.n_compilations == 1  # no compilation on refit
    fresh_model = build_model(binned, priors)
    set_counts(fresh_model, asimov)
    fresh = posterior(nuts_fitter.NutsFitter(fresh_model).sample(SETTINGS))
    assert compilations == [1]
    for name in NAMES:
        np.testing.assert_array_equal(refit[name], fresh[name])
        assert not np.array_equal(refit[name], first[name])  # the new counts were used


def test_map_refit_equals_fresh_map(binned):
    """MapFitter: a refit after set_counts gives the MAP of a fresh fitter on those counts."""
    priors = resolve_priors("flat", parameter_supports(binned.components))
    model = build_model(binned, priors)
    fitter = MapFitter(model)
    fitter.fit()
    asimov = expected_counts(
        binned.templates, {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0}
    )
    set_counts(model, asimov)
    refit = fitter.fit()
    fresh_model = build_model(binned, priors)
    set_counts(fresh_model, asimov)
    fresh = MapFitter(fresh_model).fit()
    for name in NAMES:
        assert refit.values[name] == pytest.approx(fresh.values[name], rel=1e-10)
    np.testing.assert_allclose(refit.covariance, fresh.covariance, rtol=1e-10)


# ------------------------------------------------- the cached compilation (sampler "nutpie")


def cfunc_logp(compiled, x):
    """``(logp, gradient, status)`` from the compiled model's logp cfunc, called as nuts-rs
    calls it (pointers to the point, the outputs and the user-data record)."""
    import ctypes

    n = compiled.n_dim
    x = np.ascontiguousarray(x, dtype=np.float64)
    grad, logp = np.zeros(n), np.zeros(())
    as_ptr = ctypes.POINTER(ctypes.c_double)
    status = compiled.compiled_logp_func.ctypes(
        n,
        x.ctypes.data_as(as_ptr),
        grad.ctypes.data_as(as_ptr),
        logp.ctypes.data_as(as_ptr),
        ctypes.c_void_p(compiled.user_data.ctypes.data),
    )
    return float(logp), grad, status


def reference_logp(model, compiled, x):
    """The model's log density (with the transforms' jacobians) and gradient at the
    unconstrained point ``x``, by pytensor's Python backend (no numba, no cache)."""
    names, slices, shapes = compiled.shape_info
    point = {
        n: x[s].reshape(shape)
        for n, s, shape in zip(names, slices, shapes, strict=False)
        if n in {v.name for v in model.value_vars}
    }
    logp = model.compile_logp(mode="FAST_COMPILE")(point)
    grad = model.compile_dlogp(mode="FAST_COMPILE")(point)
    return logp, grad


def spectral_binned(toy_dataset, astro_model, likelihood="poisson", method=None):
    from diffuse_fit.binned.dataset import bin_dataset
    from diffuse_fit.jobs.inputs import component_set

    return bin_dataset(
        toy_dataset.data,
        toy_dataset.simulation,
        variance=likelihood == "say",
        components=component_set("workshop", astro_model, likelihood),
        **({"spectral_method": method} if method else {}),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("astro_model", "likelihood", "method"),
    [
        ("spl", "poisson", None),
        ("spl", "say", None),
        ("cutoff", "poisson", None),
        ("logparabola", "poisson", "table"),
    ],
)
def test_cached_cfunc_is_the_model_density(toy_dataset, astro_model, likelihood, method):
    """The cached logp cfunc returns the model's log density and gradient, for models with
    one shared input (counts), several (the exact per-event sum) or a 2-D one (a tensor
    table), and reads new counts through ``with_data``; a second compilation of the same
    model loads both cfuncs from the cache."""
    from diffuse_fit.inference import nutpie_cached

    binned = spectral_binned(toy_dataset, astro_model, likelihood, method)
    priors = resolve_priors("default", parameter_supports(binned.components))
    model = build_model(binned, priors, likelihood=likelihood)
    compiled = nutpie_cached.compile_cached(model)
    rng = np.random.default_rng(3)
    for counts in (None, rng.poisson(model["counts"].get_value() + 1.0)):
        if counts is not None:
            compiled = compiled.with_data(counts=counts.astype(np.float64))
            model["counts"].set_value(counts.astype(np.float64))
        for x in (compiled.initial_point_func(1), compiled.initial_point_func(2)):
            logp, grad, status = cfunc_logp(compiled, x)
            want_logp, want_grad = reference_logp(model, compiled, x)
            assert status == 0
            assert logp == pytest.approx(want_logp, rel=1e-9, abs=1e-9)
            np.testing.assert_allclose(grad, want_grad, rtol=1e-8, atol=1e-8)
    again = nutpie_cached.compile_cached(model)
    assert again.compiled_logp_func.cache_hits == 1
    assert again.compiled_expand_func.cache_hits == 1


@pytest.mark.slow
def test_cached_route_draws_equal_nutpie_numba(binned):
    """Sampler "nutpie" (cached cfuncs) and "nutpie-numba" (nutpie.compile_pymc_model): the
    same draws and sampler statistics for the same seed; another seed gives posterior means
    within 4 Monte Carlo standard errors; a rerun with the same seed is bit-identical."""
    from diffuse_fit.inference.sampling import summary_table

    model = build_model(binned, resolve_priors("default", parameter_supports(binned.components)))
    settings = SamplerSettings(draws=500, tune=500, chains=2, seed=11, sampler="nutpie")
    new = sample(model, settings, progressbar=False)
    old = sample(model, replace(settings, sampler="nutpie-numba"), progressbar=False)
    again = sample(model, settings, progressbar=False)
    for name in [*NAMES, "n_expected"]:
        np.testing.assert_array_equal(new.posterior[name], old.posterior[name])
        np.testing.assert_array_equal(new.posterior[name], again.posterior[name])
    assert set(new.sample_stats.data_vars) == set(old.sample_stats.data_vars)
    for stat in ("diverging", "n_steps", "step_size", "logp", "energy"):
        np.testing.assert_array_equal(new.sample_stats[stat], old.sample_stats[stat])
    other = sample(model, replace(settings, seed=12), progressbar=False)
    a, b = summary_table(new, NAMES), summary_table(other, NAMES)
    for name in NAMES:
        assert not np.array_equal(new.posterior[name], other.posterior[name])
        mcse = np.hypot(a.loc[name, "mcse_mean"], b.loc[name, "mcse_mean"])
        assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < 4 * mcse, (a, b)


@pytest.mark.slow
def test_cached_refit_does_not_compile(binned, monkeypatch):
    """NutsFitter with sampler "nutpie": compiled once (cached cfuncs, never
    nutpie.compile_pymc_model); a refit after set_counts equals a fresh fitter's fit."""
    from diffuse_fit.inference import nutpie_cached

    compilations = []
    real_cached = nutpie_cached.compile_cached
    monkeypatch.setattr(
        nutpie_cached,
        "compile_cached",
        lambda *a, **k: compilations.append("cached") or real_cached(*a, **k),
    )
    monkeypatch.setattr(
        nutpie,
        "compile_pymc_model",
        lambda *a, **k: pytest.fail("nutpie.compile_pymc_model was called"),
    )
    priors = resolve_priors("default", parameter_supports(binned.components))
    model = build_model(binned, priors)
    fitter = nuts_fitter.NutsFitter(model, sampler="nutpie")
    first = posterior(fitter.sample(SETTINGS))
    asimov = expected_counts(
        binned.templates, {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0}
    )
    set_counts(model, asimov)
    refit = posterior(fitter.sample(SETTINGS))
    assert compilations == ["cached"] and fitter.n_compilations == 1
    fresh_model = build_model(binned, priors)
    set_counts(fresh_model, asimov)
    fresh = posterior(nuts_fitter.NutsFitter(fresh_model, sampler="nutpie").sample(SETTINGS))
    assert compilations == ["cached", "cached"]
    for name in NAMES:
        np.testing.assert_array_equal(refit[name], fresh[name])
        assert not np.array_equal(refit[name], first[name])


def test_nuts_fitter_refuses_unknown_sampler(binned):
    model = build_model(binned, resolve_priors("flat", parameter_supports(binned.components)))
    with pytest.raises(ValueError, match="sampler must be one of"):
        nuts_fitter.NutsFitter(model, sampler="pymc")


@pytest.mark.parametrize("broken", ["internals", "signature"])
def test_cached_compile_falls_back_to_nutpie(binned, monkeypatch, broken):
    """A nutpie without the internals the cached compilation uses, or whose cfuncs take
    other arguments, compiles by nutpie.compile_pymc_model (with a warning), never with
    cfuncs nuts-rs would call wrongly."""
    from diffuse_fit.inference import nutpie_cached

    if broken == "internals":
        monkeypatch.setattr(nutpie_cached, "cached_compile_available", lambda: False)
    else:
        real = nutpie_cached._signature
        monkeypatch.setattr(
            nutpie_cached,
            "_signature",
            lambda name: real("expand_cfunc" if name == "logp_cfunc" else name),
        )
    monkeypatch.setattr(nutpie, "compile_pymc_model", lambda model, backend: ("nutpie", backend))
    model = build_model(binned, resolve_priors("flat", parameter_supports(binned.components)))
    with pytest.warns(RuntimeWarning, match="nutpie.compile_pymc_model compiles instead"):
        assert nutpie_cached.compile_cached(model) == ("nutpie", "numba")


@pytest.mark.slow
def test_cache_serves_other_tables_with_the_same_binning(binned):
    """The tables are inputs of the compiled density, not constants folded into it: a model
    of other tables (other values, another Chebyshev order, as another simulation of the
    same binning gives) loads both cfuncs that the first model left in the cache, and they
    evaluate that model's own density."""
    from diffuse_fit.binned.templates import FlatTemplate, PowerLawTemplate
    from diffuse_fit.inference import nutpie_cached

    def other(table):
        if isinstance(table, FlatTemplate):
            return replace(table, per_bin=table.per_bin * 1.3)
        assert isinstance(table, PowerLawTemplate) and table.log_coeffs.shape[1] > 20
        coeffs = table.log_coeffs[:, :-4].copy()  # four terms fewer
        coeffs[:, 0] += 0.2
        return replace(table, table=replace(table.table, log_coeffs=coeffs))

    templates = replace(binned.templates, tables=tuple(map(other, binned.templates.tables)))
    priors = resolve_priors("default", parameter_supports(binned.components))
    first_model = build_model(binned, priors)
    other_model = build_model(replace(binned, templates=templates), priors)
    first = nutpie_cached.compile_cached(first_model)
    compiled = nutpie_cached.compile_cached(other_model)
    assert compiled.compiled_logp_func.cache_hits == 1
    assert compiled.compiled_expand_func.cache_hits == 1
    for seed in (1, 2):
        x = compiled.initial_point_func(seed)
        logp, grad, status = cfunc_logp(compiled, x)
        want_logp, want_grad = reference_logp(other_model, compiled, x)
        assert status == 0
        assert logp == pytest.approx(want_logp, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-8, atol=1e-8)
        assert abs(logp - cfunc_logp(first, x)[0]) > 1.0  # not the first model's density


def test_cached_cfunc_takes_more_shared_inputs_than_a_python_call_can(toy_dataset, monkeypatch):
    """A model with more shared inputs (tables) than one call may take: the cached cfunc
    passes them in chunks of ``MAX_CALL_ITEMS`` (a call of more than 30 arguments compiles
    through a list, which numba refuses; the HESE release's SAY model has 55) and returns
    the model's density.  Here the chunk size is lowered to 2 on the toy's SAY model, so
    that its shared inputs go in several chunks, through the same code as the release's
    (which test_nuisance.py's test_cli_sample_and_report_with_nuisances samples) without
    its three minutes of graph rewriting."""
    from diffuse_fit.inference import nutpie_cached

    monkeypatch.setattr(nutpie_cached, "MAX_CALL_ITEMS", 2)
    binned = spectral_binned(toy_dataset, "spl", "say")
    priors = resolve_priors("default", parameter_supports(binned.components))
    model = build_model(binned, priors, likelihood="say")
    compiled = nutpie_cached.compile_cached(model)
    n_shared = len(compiled.logp_func.get_shared())
    assert n_shared > 2 * nutpie_cached.MAX_CALL_ITEMS  # at least three chunks
    names = [f"a{i}" for i in range(n_shared)]
    assert nutpie_cached._call_arguments(names).startswith("*((a0, a1,) + (a2, a3,) + ")
    for seed in (1, 2):
        x = compiled.initial_point_func(seed)
        logp, grad, status = cfunc_logp(compiled, x)
        want_logp, want_grad = reference_logp(model, compiled, x)
        assert status == 0
        assert logp == pytest.approx(want_logp, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-8, atol=1e-8)
