"""``diffuse-fit compare``: is the astrophysical spectrum a single power law?

Every model of ``models`` (:data:`diffuse_fit.physics.spectra.ASTRO_MODELS`) is fitted to the
same binned data with the same priors (``prior_spec``), and compared four ways:

* **MAP and -ln L at the best fit** (:func:`diffuse_fit.fitting.map_core.fit_map`);
* **PSIS-LOO over bins** (ArviZ): leave-one-bin-out predictive accuracy from the NUTS
  posterior, with its standard error; the point-wise log-likelihood of bin ``b`` at draw
  ``s`` is ``k_b ln mu_b - mu_b - ln Gamma(k_b + 1)``, computed with the NumPy tables, over the
  bins some component populates; ArviZ's ``compare`` ranks the models;
* **the evidence** ``ln Z`` by SMC (:func:`diffuse_fit.inference.evidence.log_evidence`, several
  independent runs; needs proper priors) and the **Bayes factors** between every pair;
* **likelihood-ratio tests** of every nested pair (``spl`` inside ``logparabola``,
  beta = 0, and inside ``broken``, gamma1 = gamma2): ``ts = 2 (max ln L_alt - max ln
  L_spl)`` with flat priors (maximum likelihood), its p-value from pseudo-experiments
  generated under the single power law at its maximum-likelihood fit
  (:func:`diffuse_fit.jobs.compare.lrt_toy` on Dask, journaled), ``p = (1 + #{ts_toy >= ts}) /
  (1 + n)``; and, for orientation only, the chi-square p-value with the number of extra
  parameters as degrees of freedom (Wilks' theorem does not hold here: the break energy is
  undefined under the null).

Run folder: ``compare.json``, ``compare.md`` (the table), ``posterior_<model>.nc`` (the NUTS
posterior; its point-wise log-likelihood, 13 MB per model on the toy, is not stored:
:func:`pointwise_log_likelihood` recomputes it), the figures ``spectrum`` (E^2 dN/dE band of
every model), ``corner_<model>`` and ``lrt`` (the statistic's distribution under the null).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffuse_fit.errors import RunInterrupted, UsageError
from diffuse_fit.fitting.profile import Fit, ProfileFitter
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.io.analysis import with_sample
from diffuse_fit.io.journal import Journal, journal_folder
from diffuse_fit.io.run_folder import check_output_folder, write_run
from diffuse_fit.jobs.distributed import ClusterOptions, run_tasks
from diffuse_fit.jobs.entries import check_lrt
from diffuse_fit.jobs.inputs import Inputs
from diffuse_fit.jobs.interrupt import interrupted_message, interruptible
from diffuse_fit.jobs.many import FitContext, fitter, poisson_counts, task_seed
from diffuse_fit.jobs.prepared import PreparedFit
from diffuse_fit.jobs.runs import sample
from diffuse_fit.messages import speaker
from diffuse_fit.physics.spectra import NESTS_SPL, astro_models, split_segmented


@dataclass
class ModelResult:
    """One model's fits: the prepared job, its MAP record, NUTS posterior, evidence."""

    name: str
    job: PreparedFit
    map_result: dict
    idata: object
    diagnostics: dict
    evidence: object | None
    evidence_problem: str | None


def check_options(models, likelihood: str, astro_model: str) -> list[str]:
    """Refuse what ``compare`` cannot do (before any input is read); returns the models."""
    if likelihood != "poisson":
        raise UsageError("compare supports only --likelihood poisson (SAY is for spl only)")
    if astro_model != "spl":
        raise UsageError("compare fits the models of --models; --astro-model does not apply")
    return parse_models(models)


def parse_models(text: str | list) -> list[str]:
    """``spl,logparabola`` -> the list; each a known model, once, at least two."""
    names = [m.strip() for m in text.split(",")] if isinstance(text, str) else list(text)
    names = [m for m in names if m]
    try:
        unknown = [m for m in names if split_segmented(m)[0] not in astro_models()]
    except ValueError as exc:
        raise UsageError(f"--models: {exc}") from None
    if unknown:
        raise UsageError(
            f"--models: unknown model {unknown[0]!r} (known: {', '.join(astro_models())})"
        )
    if sum(split_segmented(m)[0] == "segmented" for m in names) > 1:
        raise UsageError("--models: give segmented once (its edges: --segments)")
    if len(set(names)) != len(names) or len(names) < 2:
        raise UsageError(f"--models: give at least two different models, not {','.join(names)!r}")
    return names


def file_key(model: str) -> str:
    """A model's name in file names: ``segmented`` for the segmented spectrum whatever its
    edges (a comparison has it once; its edges are in ``compare.json``)."""
    return split_segmented(model)[0]


def nested_pairs(models: list[str]) -> list[tuple[str, str]]:
    """(null, alternative) pairs of ``models`` where the null is a special case."""
    return [("spl", m) for m in models if m in NESTS_SPL and "spl" in models]


def run_compare(
    inputs: Inputs,
    prior_spec,
    out: Path,
    models,
    *,
    seed: int = 1,
    settings: SamplerSettings | None = None,
    components="workshop",
    smc_runs: int = 4,
    smc_draws: int = 2000,
    lrt_toys: int = 500,
    cluster: ClusterOptions | None = None,
    say=None,
    progressbar=True,
    analysis=None,
) -> dict:
    """Fit and compare ``models``; write the run folder ``out``; return ``compare.json``.

    ``settings``: NUTS settings (its seed is replaced by ``seed``); ``smc_runs`` x
    ``smc_draws``: the SMC evidence runs (``smc_runs = 0``: no evidence); ``lrt_toys``:
    pseudo-experiments per likelihood-ratio test (0: none); ``analysis``: the specification
    the other arguments came from (its sample's binning).
    """
    say = speaker(say)
    models = parse_models(models)
    out = check_output_folder(out)
    settings = SamplerSettings(**{**(settings or SamplerSettings()).to_dict(), "seed": seed})
    if smc_runs == 1:
        raise UsageError("--smc-runs: give at least 2 runs (their spread is the error), or 0")
    t0 = time.perf_counter()
    with interruptible(out) as interrupts:
        results = []
        for i, name in enumerate(models):
            say(f"--- model {name} ---")
            results.append(
                _fit_model(
                    inputs,
                    prior_spec,
                    components,
                    name,
                    settings,
                    smc_runs,
                    smc_draws,
                    task_seed(seed, i),
                    say,
                    progressbar,
                    analysis,
                )
            )
            if interrupts:
                raise RunInterrupted(interrupted_message(out))
        loo = _loo(results)
        lrt = _likelihood_ratio_tests(
            inputs,
            components,
            models,
            lrt_toys,
            seed,
            out,
            cluster or ClusterOptions(),
            say,
            progressbar,
            analysis,
        )
        table = _assemble(results, loo, lrt, prior_spec, settings, smc_runs, smc_draws, seed)
        table["wall_time_s"] = time.perf_counter() - t0
        bands, ranges = _spectra(results)
        for r in results:
            table["models"][r.name]["sensitive_energy_range_gev"] = list(ranges[r.name])
        with write_run(out, "compare") as stage:
            stage.write_json("compare.json", table)
            stage.write_text("compare.md", format_table(table) + "\n")
            for r in results:  # without the point-wise log-likelihood (13 MB per model)
                posterior = r.idata.drop_nodes("log_likelihood")
                stage.write_netcdf(f"posterior_{file_key(r.name)}.nc", posterior)
            _figures(stage, results, bands, ranges, lrt, inputs.truth)
    say(format_table(table))
    say(f"wrote the run folder {out} (compare.json, compare.md, posteriors, figures)")
    return table


# ----------------------------------------------------------------------------- per model


def _fit_model(
    inputs,
    prior_spec,
    components,
    name,
    settings,
    smc_runs,
    smc_draws,
    seed,
    say,
    progressbar,
    analysis=None,
) -> ModelResult:
    from diffuse_fit.inference.sampling import diagnostics

    if analysis is not None:
        analysis = with_sample(analysis, astro_model=name)
    job = PreparedFit.prepare(
        inputs, prior_spec, components, say, "poisson", name, analysis=analysis
    )
    map_result = job.run_map()
    say(
        f"sampling {name}: {settings.chains} chains x ({settings.tune} + {settings.draws}), "
        f"seed {settings.seed} ..."
    )
    idata = sample(job.model, settings, progressbar=progressbar)
    diag = diagnostics(idata, job.parameters)
    _attach_log_likelihood(idata, job)
    evidence, problem = None, None
    if smc_runs:
        from diffuse_fit.inference.evidence import check_proper, log_evidence

        try:
            check_proper(job.model)
        except UsageError as exc:
            problem = str(exc)
            say(f"no evidence for {name}: {problem}")
        else:
            say(f"SMC evidence of {name}: {smc_runs} runs x {smc_draws} draws, seed {seed} ...")
            evidence = log_evidence(
                job.model, runs=smc_runs, draws=smc_draws, seed=seed, progressbar=progressbar
            )
    return ModelResult(name, job, map_result, idata, diag, evidence, problem)


def pointwise_log_likelihood(job: PreparedFit, posterior) -> tuple[np.ndarray, np.ndarray]:
    """``(bins, log L)``: the bins some component populates and the Poisson log-likelihood
    of each at every posterior draw, shape (chain, draw, bin) (NumPy tables;
    :func:`diffuse_fit.jobs.inference_data.pointwise_log_likelihood` on those bins)."""
    from diffuse_fit.jobs.inference_data import pointwise_log_likelihood as per_bin

    templates = job.binned.templates
    bins = np.flatnonzero(templates.covered())
    loglike = per_bin(templates, job.binned.counts, posterior, job.parameters)
    return bins, loglike[..., bins]


def _attach_log_likelihood(idata, job: PreparedFit) -> None:
    import xarray as xr

    bins, loglike = pointwise_log_likelihood(job, idata.posterior)
    idata["log_likelihood"] = xr.Dataset(
        {"counts": (("chain", "draw", "bin"), loglike)},
        coords={
            "chain": idata.posterior["chain"].values,
            "draw": idata.posterior["draw"].values,
            "bin": bins,
        },
    )


def _loo(results: list[ModelResult]) -> dict:
    import warnings

    import arviz as az

    per_model = {}
    with warnings.catch_warnings():
        # ArviZ's Pareto-k notice: the k values are recorded below (max, number above 0.7)
        warnings.filterwarnings(
            "ignore",
            message="Estimated shape parameter of Pareto distribution",
            category=UserWarning,
            module=r"arviz_stats\.",
        )
        for r in results:
            loo = az.loo(r.idata, var_name="counts")
            k = np.asarray(loo.pareto_k).reshape(-1)
            per_model[r.name] = {
                "elpd": float(loo.elpd),
                "se": float(loo.se),
                "p_loo": float(loo.p),
                "n_bins": int(loo.n_data_points),
                "max_pareto_k": float(np.max(k)),
                "n_pareto_k_above_0.7": int(np.sum(k > 0.7)),
            }
        ranked = az.compare({r.name: r.idata for r in results}, var_name="counts")
    comparison = [
        {
            "model": str(m),
            "rank": int(row["rank"]),
            "elpd_diff": float(row["elpd_diff"]),
            "dse": float(row["dse"]),
            "weight": float(row["weight"]),
        }
        for m, row in ranked.iterrows()
    ]
    return {"models": per_model, "ranking": comparison}


# ----------------------------------------------------------------------------- LRT


def _likelihood_ratio_tests(
    inputs, components, models, n_toys, seed, out, cluster, say, progressbar, analysis=None
) -> list[dict]:
    pairs = nested_pairs(models)
    if not pairs:
        return []
    silent = lambda *a, **k: None  # noqa: E731 (the tables were described above)
    specs = {
        m: with_sample(analysis, astro_model=m) if analysis is not None else None
        for m in ["spl", *(alt for _, alt in pairs)]
    }
    null = PreparedFit.load(
        inputs, "flat", components, silent, "poisson", "spl", analysis=specs["spl"]
    )
    alternatives = {
        alt: PreparedFit.load(
            inputs, "flat", components, silent, "poisson", alt, analysis=specs[alt]
        )
        for _, alt in pairs
    }
    fits = {
        alt: alternative_fit(
            p.profile, alt, null.binned.counts, null.best.values, dict(p.best.values)
        )
        for alt, p in alternatives.items()
    }
    observed = {alt: likelihood_ratio(null.best, f) for alt, f in fits.items()}
    truth = dict(null.best.values)
    rows = {alt: [] for alt in alternatives}
    if n_toys:
        config = null.config(
            kind="compare-lrt",
            truth=truth,
            seed=seed,
            alternatives={a: p.config() for a, p in alternatives.items()},
        )
        journal = Journal(journal_folder(out), config)
        context = null.context(
            config,
            alternatives={
                a: (p.binned.templates, p.priors, dict(p.best.values))
                for a, p in alternatives.items()
            },
        )
        tasks = {f"lrt-{i:06d}": {"index": i, "seed": seed, "truth": truth} for i in range(n_toys)}
        say(
            f"likelihood-ratio tests of spl against {', '.join(alternatives)}: {n_toys} "
            "pseudo-experiments under spl at its maximum-likelihood fit"
        )
        done = run_tasks(
            lrt_toy, context, tasks, journal, cluster, "lrt", say, progressbar, check=check_lrt
        )
        for k in tasks:
            for alt in alternatives:
                rows[alt].append(done[k]["ts"][alt])
        journal_name = journal.name
    else:
        journal_name = None
    tests = []
    for alt, p in alternatives.items():
        ts = np.asarray(rows[alt], dtype=np.float64)
        extra = len(p.names) - len(null.names)
        test = {
            "null": "spl",
            "alternative": alt,
            "ts": observed[alt],
            "null_max_likelihood": truth,
            "alternative_max_likelihood": dict(fits[alt].values),
            "null_neg_log_likelihood": null.best.neg_log_likelihood,
            "alternative_neg_log_likelihood": fits[alt].neg_log_likelihood,
            "extra_parameters": extra,
            "p_value_chi2": _chi2_sf(observed[alt], extra),
            "n_toys": int(ts.size),
            "toys_ts": ts.tolist(),
            "journal": journal_name,
        }
        if ts.size:
            valid = ts[np.isfinite(ts) & (ts >= 0)]
            at_least = int(np.sum(valid >= observed[alt]))
            test.update(
                n_failed=int(ts.size - valid.size),
                n_at_least=at_least,
                p_value=(1 + at_least) / (1 + valid.size),
                p_value_is_bound=at_least == 0,
            )
        else:
            test.update(n_failed=0, n_at_least=None, p_value=None, p_value_is_bound=False)
        tests.append(test)
    return tests


def _chi2_sf(ts: float, dof: int) -> float:
    from scipy.stats import chi2

    return float(chi2.sf(ts, dof))


def p_to_sigma(p: float) -> float:
    """One-sided Gaussian significance of a p-value."""
    from scipy.stats import norm

    return float(norm.isf(p))


# ----------------------------------------------------------------------------- assembly


def _assemble(results, loo, lrt, prior_spec, settings, smc_runs, smc_draws, seed) -> dict:
    from diffuse_fit.inference.evidence import bayes_factor

    models = {}
    for r in results:
        m = r.map_result
        names = m["parameter_order"]
        models[r.name] = {
            "parameters": names,
            "map": {n: m[n] for n in names},
            "map_errors": m["errors"],
            "neg_log_likelihood": m["neg_log_likelihood"],
            "map_problems": m["problems"],
            "posterior": {n: _quantiles(r.idata.posterior[n].values) for n in names},
            "nuts": r.diagnostics,
            "loo": loo["models"][r.name],
            "evidence": r.evidence.to_dict() if r.evidence is not None else None,
            "evidence_problem": r.evidence_problem,
        }
    factors = []
    with_z = [r for r in results if r.evidence is not None]
    for i, a in enumerate(with_z):
        for b in with_z[i + 1 :]:
            factors.append(
                {"model": b.name, "versus": a.name, **bayes_factor(b.evidence, a.evidence)}
            )
    first = results[0]
    return {
        "models": models,
        "loo_ranking": loo["ranking"],
        "bayes_factors": factors,
        "likelihood_ratio_tests": lrt,
        "settings": {
            "prior_set": str(prior_spec),
            "seed": seed,
            "nuts": settings.to_dict(),
            "smc_runs": smc_runs,
            "smc_draws": smc_draws,
        },
        "provenance": {
            **first.job.provenance(sampler=settings.to_dict()),
            "astro_model": [r.name for r in results],  # every model, not only the first's
        },
    }


def _quantiles(values) -> dict:
    q = np.quantile(np.asarray(values).reshape(-1), [0.025, 0.16, 0.5, 0.84, 0.975])
    return dict(zip(("q2.5", "q16", "q50", "q84", "q97.5"), map(float, q), strict=True))


def format_table(table: dict) -> str:
    """The comparison as a Markdown table (and the tests below it)."""
    lines = [
        "| model | parameters (MAP) | -ln L | elpd LOO (se) | ln Z (spread) | NUTS |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in table["models"].items():
        values = ", ".join(f"{k}={v:.3g}" for k, v in m["map"].items())
        loo = m["loo"]
        z = m["evidence"]
        evidence = f"{z['log_z']:.2f} ({z['spread']:.2f})" if z else "n/a (improper prior)"
        nuts = m["nuts"]
        ok = "ok" if nuts["passed"] else "NOT CONVERGED"
        lines.append(
            f"| {name} | {values} | {m['neg_log_likelihood']:.3f} | "
            f"{loo['elpd']:.2f} ({loo['se']:.2f}) | {evidence} | "
            f"{ok}, {nuts['divergences']} div. |"
        )
    lines += [
        "",
        "LOO ranking (ArviZ compare): "
        + "; ".join(
            f"{r['model']} {r['elpd_diff']:+.2f} +- {r['dse']:.2f}" for r in table["loo_ranking"]
        ),
    ]
    for f in table["bayes_factors"]:
        lines.append(
            f"Bayes factor {f['model']} vs {f['versus']}: ln B = {f['log_bf']:+.2f} "
            f"+- {f['standard_error']:.2f} (B = {math.exp(min(f['log_bf'], 700)):.3g})"
        )
    for t in table["likelihood_ratio_tests"]:
        if t["p_value"] is None:
            p = "no pseudo-experiments"
        else:
            bound = "<" if t["p_value_is_bound"] else "="
            sigma = p_to_sigma(t["p_value"])
            more = " or more" if bound == "<" else ""
            p = f"p {bound} {t['p_value']:.3g} from {t['n_toys']} pseudo-experiments" + (
                f" ({sigma:.1f} sigma{more})" if sigma > 0 else ""
            )
        lines.append(
            f"LRT spl vs {t['alternative']}: ts = {t['ts']:.2f}, {p}; "
            f"chi2({t['extra_parameters']}) would say p = {t['p_value_chi2']:.2g}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures


def _spectra(results) -> tuple[dict, dict]:
    from diffuse_fit.physics.flux import (
        astrophysical_component,
        astrophysical_components,
        is_segmented,
    )
    from diffuse_fit.report.predictive import parameter_draws
    from diffuse_fit.report.spectrum import ENERGIES_GEV, flux_band, segmented_band

    bands, ranges = {}, {}
    for r in results:
        components = r.job.binned.components
        fixed = r.job.binned.templates.fixed
        if is_segmented(components):
            segments = astrophysical_components(components)
            draws = parameter_draws(r.idata.posterior, [c.norm for c in segments], fixed)
            bands[r.name] = segmented_band(segments, draws, ENERGIES_GEV)
        else:
            component = astrophysical_component(components)
            draws = parameter_draws(r.idata.posterior, component.parameters, fixed)
            bands[r.name] = flux_band(component, draws, ENERGIES_GEV)
        ranges[r.name] = r.job.sensitive_range(r.map_result)
    return bands, ranges


def _figures(stage, results, bands, ranges, lrt, truth) -> None:
    from diffuse_fit.report.figures import save_figure
    from diffuse_fit.report.many_plots import lrt_figure
    from diffuse_fit.report.plots import corner_plot
    from diffuse_fit.report.spectrum import spectrum_figure

    save_figure(stage, spectrum_figure(bands, ranges), "spectrum", dpi=150)
    for r in results:
        names = r.job.parameters
        points = {"map": {n: r.map_result[n] for n in names}}
        if truth and all(n in truth for n in names):
            points["truth"] = truth
        save_figure(
            stage,
            corner_plot(r.idata.posterior, names, points),
            f"corner_{file_key(r.name)}",
            dpi=110,
        )
    tested = [t for t in lrt if t["n_toys"]]
    if tested:
        save_figure(stage, lrt_figure(tested), "lrt", dpi=150)


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
    out = {
        "index": args["index"],
        "seed": seed,
        "n_observed": float(counts.sum()),
        "null_neg_log_likelihood": best.neg_log_likelihood,
        "converged": best.converged,
        "ts": {},
        "alternative_neg_log_likelihood": {},
        "worker_fitter": fitter_id,
    }
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

    fits = [
        alternative.fit(counts, x0={**start, **spl_inside(name, null_values)}),
        alternative.fit(counts, x0=start),
    ]
    return max(fits, key=lambda f: f.log_posterior if math.isfinite(f.log_posterior) else -math.inf)
