"""The tasks of the many-fit commands, as they run on a Dask worker.

A task gets the shared :class:`FitContext` (shipped to every worker once) and its own
arguments, and returns a small JSON-able dict (stored in the job's journal as soon as it
arrives).  Everything a worker compiles or builds -- the NumPy :class:`ProfileFitter`,
the PyMC model and its nutpie NUTS -- is built once per worker and context
(:func:`fitter`) and reused by every later task there; each result names the worker
process and the fitter it used, so this is checked.

Seeds: task ``i`` of a job with seed ``S`` draws from ``numpy.random.default_rng(s_i)``,
``s_i = SeedSequence([S, i]).generate_state(1)[0]`` (also NUTS's seed), so any single
pseudo-experiment can be redone alone.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from dataclasses import dataclass, field

import numpy as np

from diffuse_fit.binned.templates import Templates, build_templates
from diffuse_fit.binned.variance import build_variance_tables
from diffuse_fit.fitting.profile import Fit, ProfileFitter, covariance_from_hessian
from diffuse_fit.io.events import EventTable
from diffuse_fit.physics.components import weight_fields

QUANTILES = (0.025, 0.16, 0.5, 0.84, 0.975)
_CACHE: dict[tuple, object] = {}  # (context key, kind) -> built once per worker process
_SERIAL = itertools.count()


@dataclass(frozen=True)
class FitContext:
    """What every task of a job shares: tables, observed counts, priors, settings.

    ``counts`` are the observed events per bin of the whole binning (``templates.binning``);
    ``key`` identifies the context (a digest of the job's configuration).  Has the
    ``templates`` and ``counts`` that :func:`diffuse_fit.inference.pymc_model.build_model` reads.
    """

    key: str
    templates: Templates
    counts: np.ndarray
    priors: dict
    start: dict
    likelihood: str = "poisson"  # or "say" (templates.variance needed)
    sampler: dict = field(default_factory=dict)  # SamplerSettings fields, for NUTS tasks
    draws_per_fit: int = 0  # SBC: posterior draws kept per fit (thinned)
    simulation: EventTable | None = None  # toys --resample-sim: the events (fitted fields)
    sim_bin_index: np.ndarray | None = None  # bin of each of those events (-1 outside)
    # compare's likelihood-ratio tests: alternative model -> (templates, priors, start)
    alternatives: dict = field(default_factory=dict)


def task_seed(seed: int, index: int) -> int:
    """The seed of task ``index`` of a job with seed ``seed`` (see the module docstring)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def fitter(context: FitContext, kind: str = "profile"):
    """The ``kind`` ("profile" or "nuts") fitter of ``context`` in this worker, built on
    first use: ``(fitter, id)``; ``id`` is ``"<pid>-<serial>"``, the same for every task
    that reuses it."""
    cache_key = (context.key, kind)
    if cache_key not in _CACHE:
        if kind.startswith("alternative:"):
            templates, priors, _ = context.alternatives[kind.partition(":")[2]]
            built = ProfileFitter(templates, priors, likelihood=context.likelihood)
        elif kind == "profile":
            built = ProfileFitter(context.templates, context.priors, likelihood=context.likelihood)
        else:
            from diffuse_fit.inference.nuts_fitter import NutsFitter
            from diffuse_fit.inference.pymc_model import build_model

            built = NutsFitter(
                build_model(context, context.priors, likelihood=context.likelihood),
                sampler="nutpie",
            )  # cached cfuncs: ~1 s, not ~10 s, per worker
        _CACHE[cache_key] = (built, f"{os.getpid()}-{next(_SERIAL)}")
    return _CACHE[cache_key]


# ----------------------------------------------------------------------------- scans


def scan_points(context: FitContext, key: str, args: dict) -> dict:
    """Profile fits at ``args["points"]`` (each: scanned parameter -> value), warm-started
    along the list from the global best fit; ``log p`` and the fitted values of the other parameters
    at each point."""
    profile, fitter_id = fitter(context)
    counts = context.counts
    start = dict(context.start)
    log_posterior, neg_log_likelihood, fitted, converged = [], [], [], []
    for fixed in args["points"]:
        fit = profile.fit(counts, fixed=fixed, x0=start)
        if not fit.converged:  # warm start led astray: from the global best instead
            retry = profile.fit(counts, fixed=fixed, x0=context.start)
            fit = retry if retry.converged or retry.log_posterior > fit.log_posterior else fit
        start = {**start, **fit.values}
        log_posterior.append(fit.log_posterior)
        neg_log_likelihood.append(fit.neg_log_likelihood)
        fitted.append(fit.values)
        converged.append(fit.converged)
    return {"log_posterior": log_posterior, "neg_log_likelihood": neg_log_likelihood,
            "values": fitted, "converged": converged, "worker_fitter": fitter_id}  # fmt: skip


# ----------------------------------------------------------------------------- pseudo-experiments


def poisson_counts(context: FitContext, truth: dict, rng) -> np.ndarray:
    """Observed events per bin drawn from Poisson(lam_b(truth)) (0 where lam_b = 0)."""
    profile, _ = fitter(context)
    return rng.poisson(profile.expected(truth)).astype(np.float64)


def map_summary(profile: ProfileFitter, counts: np.ndarray, start: dict, intervals: bool) -> dict:
    """MAP, Hessian errors, -ln L and (``intervals``) 68.27% profile intervals of ``counts``."""
    best = profile.fit(counts, x0=start)
    covariance, problems, _ = covariance_from_hessian(profile.names, best.hessian)
    diag = np.diag(covariance)
    errors = {n: float(math.sqrt(d)) if best.converged and np.isfinite(d) and d > 0 else None
              for n, d in zip(profile.names, diag, strict=True)}  # fmt: skip
    out = {"map": best.values, "hessian_error": errors,
           "neg_log_likelihood": best.neg_log_likelihood, "log_posterior": best.log_posterior,
           "converged": best.converged, "problems": problems}  # fmt: skip
    if intervals:
        out["profile_68"] = {
            n: list(profile.interval(counts, best, n)) if best.converged else [None, None]
            for n in profile.names
        }
    return out


def posterior_summary(context: FitContext, counts: np.ndarray, seed: int) -> tuple[dict, object]:
    """NUTS on ``counts`` with the context's sampler settings and ``seed``: quantiles per
    parameter, divergences, R-hat, bulk ESS; and the posterior DataTree."""
    from diffuse_fit.inference.pymc_model import set_counts
    from diffuse_fit.inference.settings import SamplerSettings

    nuts, _ = fitter(context, "nuts")
    set_counts(nuts.model, counts)
    settings = SamplerSettings(**{**context.sampler, "seed": seed})
    idata = nuts.sample(settings)
    posterior = idata.posterior
    names = list(context.priors)
    quantiles = {n: np.quantile(posterior[n].values, QUANTILES).tolist() for n in names}
    import arviz as az

    rhat = az.rhat(idata, var_names=names)
    ess = az.ess(idata, var_names=names, method="bulk")
    summary = {
        "posterior_quantiles": quantiles,
        "divergences": int(idata.sample_stats["diverging"].values.sum()),
        "max_r_hat": float(max(float(rhat[n].values) for n in names)),
        "min_ess_bulk": float(min(float(ess[n].values) for n in names)),
        "nuts_worker_fitter": fitter(context, "nuts")[1],
        "nuts_compilations": nuts.n_compilations,
    }
    return summary, idata


def toy(context: FitContext, key: str, args: dict) -> dict:
    """Pseudo-experiment ``args["index"]`` at ``args["truth"]``: Poisson counts per bin,
    MAP with Hessian errors and profile intervals, and (``args["nuts"]``) posterior
    quantiles.

    With ``args["resample"] = N`` the counts are drawn from the whole simulation's
    expectation at the truth, but fitted with tables of a fresh simulation of ``N`` events
    drawn from it without replacement (weights scaled by ``n_total / N``): the experiment
    then also carries the finite statistics of an ``N``-event simulation.
    """
    seed = task_seed(args["seed"], args["index"])
    rng = np.random.default_rng(seed)
    profile, fitter_id = fitter(context)
    counts = poisson_counts(context, args["truth"], rng)
    out = {"index": args["index"], "seed": seed, "n_observed": float(counts.sum()),
           "worker_fitter": fitter_id}  # fmt: skip
    if args.get("resample"):
        profile = resampled_fitter(context, args["resample"], rng)
        empty = (counts > 0) & ~profile.templates.covered()
        if np.any(empty):  # no expectation where events were seen: no fit is possible
            return {**out, **_impossible(profile.names, int(empty.sum()))}
    out.update(map_summary(profile, counts, context.start, intervals=True))
    if args.get("nuts"):
        out.update(posterior_summary(context, counts, seed)[0])
    return out


def resampled_fitter(context: FitContext, size: int, rng) -> ProfileFitter:
    """A :class:`ProfileFitter` on ``size`` events drawn without replacement from the
    context's simulation, their weights scaled by ``n_total / size``."""
    sim, templates = context.simulation, context.templates
    pick = np.sort(rng.choice(len(sim), size=size, replace=False))
    scale = len(sim) / size
    columns = {name: values[pick] for name, values in sim.columns.items()}
    for name in {f for component in templates.components for f in weight_fields(component)}:
        columns[name] = columns[name] * scale
    sub = EventTable(columns, f"{sim.source} (resampled: {size} events)")
    index = context.sim_bin_index[pick]
    tables = build_templates(sub, templates.binning, templates.components, bin_index=index)
    tables = dataclasses.replace(tables, fixed=templates.fixed)
    if context.likelihood == "say":
        variance = build_variance_tables(sub, index, templates.binning.n_bins, templates.components)
        tables = dataclasses.replace(tables, variance=variance)
    return ProfileFitter(tables, context.priors, likelihood=context.likelihood)


def _impossible(names: list[str], n_bins: int) -> dict:
    """A pseudo-experiment that cannot be fitted (no expected events where some were seen)."""
    none = dict.fromkeys(names)
    return {"map": {n: math.nan for n in names}, "hessian_error": none, "neg_log_likelihood": math.nan,
            "log_posterior": math.nan, "converged": False,
            "problems": [f"observed events in {n_bins} bins where the resampled simulation has none"],
            "profile_68": {n: [None, None] for n in names}}  # fmt: skip


# ----------------------------------------------------------------------------- model comparison


def lrt_toy(context: FitContext, key: str, args: dict) -> dict:
    """Pseudo-experiment ``args["index"]`` under the null model (the context's) at
    ``args["truth"]``: the best fit of the null and of every nesting alternative
    (``context.alternatives``), and the likelihood-ratio statistic of each,
    ``ts = 2 (-ln L_null - (-ln L_alt))``.  Each alternative starts from the better of its
    fit to the data and the null's fit placed inside it
    (:func:`diffuse_fit.physics.spectra.spl_inside`), so that its maximum is not below the null's
    (``ts`` of a few 1e-9 below 0 from the fits' tolerance is set to 0)."""
    seed = task_seed(args["seed"], args["index"])
    rng = np.random.default_rng(seed)
    null, fitter_id = fitter(context)
    counts = poisson_counts(context, args["truth"], rng)
    best = null.fit(counts, x0=context.start)
    out = {"index": args["index"], "seed": seed, "n_observed": float(counts.sum()),
           "null_neg_log_likelihood": best.neg_log_likelihood, "converged": best.converged,
           "ts": {}, "alternative_neg_log_likelihood": {}, "worker_fitter": fitter_id}  # fmt: skip
    for name, (_, _, start) in context.alternatives.items():
        alternative, _ = fitter(context, f"alternative:{name}")
        fit = alternative_fit(alternative, name, counts, best.values, start)
        out["ts"][name] = likelihood_ratio(best, fit)
        out["alternative_neg_log_likelihood"][name] = fit.neg_log_likelihood
        out["converged"] = out["converged"] and fit.converged
    return out


def likelihood_ratio(null: Fit, alternative: Fit) -> float:
    """``ts = 2 (-ln L_null - (-ln L_alt))`` of two best fits; a few 1e-9 below 0 (the fits'
    tolerance) is 0, a larger negative value (a failed fit) is kept."""
    ts = 2.0 * (null.neg_log_likelihood - alternative.neg_log_likelihood)
    return max(ts, 0.0) if ts > -1e-6 else ts


def alternative_fit(alternative: ProfileFitter, name: str, counts, null_values: dict, start: dict):
    """The better (higher log p) of two fits of the nesting model ``name`` to ``counts``:
    from the null's best fit ``null_values`` placed inside it, and from ``start`` (its fit
    to the data: the broken power law's likelihood has several maxima in E_break).  The
    same for the data and for every pseudo-experiment.  Higher log p wins even over a fit
    flagged converged: the broken law's maximum often sits on a kink in E_break, where the
    gradient does not vanish and L-BFGS-B's line search ends "abnormally"."""
    from diffuse_fit.physics.spectra import spl_inside

    fits = [alternative.fit(counts, x0={**start, **spl_inside(name, null_values)}),
            alternative.fit(counts, x0=start)]  # fmt: skip
    return max(fits, key=lambda f: f.log_posterior if math.isfinite(f.log_posterior) else -math.inf)


# ----------------------------------------------------------------------------- calibration


def sbc_fit(context: FitContext, key: str, args: dict) -> dict:
    """One simulation-based calibration fit: parameters drawn from the priors, counts from
    the model at them, NUTS, and the rank of each true value among ``draws_per_fit``
    thinned posterior draws (all chains pooled, every ``total // draws_per_fit``-th draw)."""
    seed = task_seed(args["seed"], args["index"])
    rng = np.random.default_rng(seed)
    truth = {n: float(p.draw(rng)) for n, p in context.priors.items()}
    counts = poisson_counts(context, truth, rng)
    summary, idata = posterior_summary(context, counts, seed)
    ranks = {}
    for name in context.priors:
        draws = idata.posterior[name].values.reshape(-1)  # chain-major
        step = draws.size // context.draws_per_fit
        thinned = draws[::step][: context.draws_per_fit]
        ranks[name] = int(np.sum(thinned < truth[name]))
    return {"index": args["index"], "seed": seed, "truth": truth, "ranks": ranks,
            "n_observed": float(counts.sum()), **summary}  # fmt: skip
