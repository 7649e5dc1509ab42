"""What the many-fit commands (scan, toys, sbc, compare's likelihood-ratio tests) share: the
context every task gets, the per-worker fitters, seeds, the MAP and posterior summaries of a
pseudo-experiment, and the parsing of parameter assignments.  Each command's own task lives in
its module (:func:`diffuse_fit.jobs.scan.scan_points`, :func:`diffuse_fit.jobs.toys.toy`,
:func:`diffuse_fit.jobs.sbc.sbc_fit`, :func:`diffuse_fit.jobs.compare.lrt_toy`) and runs on
the shared skeleton :func:`diffuse_fit.jobs.distributed.run_tasks` (Dask, journaled).

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

import itertools
import math
import os
from dataclasses import dataclass, field

import numpy as np

from diffuse_fit.binned.templates import Templates
from diffuse_fit.errors import UsageError
from diffuse_fit.fitting.profile import ProfileFitter, covariance_from_hessian
from diffuse_fit.io.events import EventTable

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


def poisson_counts(context: FitContext, truth: dict, rng) -> np.ndarray:
    """Observed events per bin drawn from Poisson(lam_b(truth)) (0 where lam_b = 0)."""
    profile, _ = fitter(context)
    return rng.poisson(profile.expected(truth)).astype(np.float64)


def map_summary(profile: ProfileFitter, counts: np.ndarray, start: dict, intervals: bool) -> dict:
    """MAP, Hessian errors, -ln L and (``intervals``) 68.27% profile intervals of ``counts``."""
    best = profile.fit(counts, x0=start)
    covariance, problems, _ = covariance_from_hessian(profile.names, best.hessian)
    diag = np.diag(covariance)
    errors = {
        n: float(math.sqrt(d)) if best.converged and np.isfinite(d) and d > 0 else None
        for n, d in zip(profile.names, diag, strict=True)
    }
    out = {
        "map": best.values,
        "hessian_error": errors,
        "neg_log_likelihood": best.neg_log_likelihood,
        "log_posterior": best.log_posterior,
        "converged": best.converged,
        "problems": problems,
    }
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


def parse_assignments(text: str, names: list[str], what: str) -> dict:
    """``NAME=VALUE,NAME=VALUE`` -> dict, every name known and every value finite."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise UsageError(f"{what}: {part!r} is not NAME=VALUE")
        if name not in names:
            raise UsageError(f"{what}: unknown parameter {name!r} (known: {', '.join(names)})")
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"{what}: {name}={value!r} is not a number") from None
        if not np.isfinite(number):
            raise UsageError(f"{what}: {name}={value} is not finite")
        out[name] = number
    return out


def check_inside(values: dict, priors: dict, what: str) -> None:
    """Refuse values outside their prior's support (one line, naming the parameter)."""
    for name, value in values.items():
        lo, hi = priors[name].support()
        if not lo <= value <= hi:
            raise UsageError(
                f"{what}: {name}={value:g} is outside its prior's support "
                f"[{lo:g}, {hi:g}] ({priors[name]})"
            )
