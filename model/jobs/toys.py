"""``diffuse-fit toys``: pseudo-experiments at a truth, fitted; pulls and coverage.

Each pseudo-experiment draws Poisson counts per bin at the truth (seeded per experiment,
:func:`diffuse_fit.jobs.many.task_seed`), finds the MAP with its Hessian errors and the 68.27%
profile-likelihood interval of every parameter (:class:`diffuse_fit.fitting.profile.ProfileFitter`),
and with ``nuts`` samples the posterior (nutpie, compiled once per worker).  Experiments are
tasks on Dask, stored as they complete (:mod:`diffuse_fit.jobs.distributed`).

Run folder: ``toys.nc`` (one entry per experiment: seed, MAP, Hessian errors, -ln L,
profile intervals, posterior quantiles), ``coverage.json`` (the fraction of experiments
whose interval contains the truth, per parameter and interval kind, with its binomial
standard error), and the figures ``pulls`` and ``coverage`` (PNG and PDF).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from diffuse_fit.binned.templates import build_templates
from diffuse_fit.binned.variance import build_variance_tables
from diffuse_fit.errors import UsageError
from diffuse_fit.fitting.profile import ProfileFitter
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.io.events import EventTable
from diffuse_fit.io.journal import Journal, journal_folder
from diffuse_fit.io.run_folder import check_output_folder, write_run
from diffuse_fit.io.spectrum_names import FRACTIONS
from diffuse_fit.jobs.distributed import ClusterOptions, run_tasks
from diffuse_fit.jobs.entries import check_toy
from diffuse_fit.jobs.inputs import Inputs
from diffuse_fit.jobs.interrupt import interruptible
from diffuse_fit.jobs.many import (
    QUANTILES,
    FitContext,
    check_inside,
    fitter,
    map_summary,
    parse_assignments,
    poisson_counts,
    posterior_summary,
    task_seed,
)
from diffuse_fit.jobs.prepared import PreparedFit
from diffuse_fit.messages import speaker
from diffuse_fit.physics.components import input_fields, weight_fields
from diffuse_fit.physics.flavour import WILKS_2DOF

NOMINAL = 0.6827
MAX_EXPECTED = 1e18  # most expected events in a bin that Poisson counts are drawn for
MAP_TOYS_PER_TASK = 16  # a MAP pseudo-experiment takes ~30 ms: batched (run_tasks' batch)


def run_toys(
    inputs: Inputs,
    prior_spec,
    out: Path,
    truth: dict | str,
    n: int,
    seed: int,
    nuts: bool = False,
    settings: SamplerSettings | None = None,
    components="workshop",
    cluster: ClusterOptions | None = None,
    say=None,
    progressbar=True,
    likelihood="poisson",
    resample: int = 0,
    astro_model="spl",
    analysis=None,
) -> dict:
    """``n`` pseudo-experiments at ``truth``; writes the run folder ``out``; returns
    ``coverage.json``.  ``resample``: fit each with a fresh simulation of that many events
    drawn from the inputs' (:func:`diffuse_fit.jobs.toys.toy`), 0 for the whole simulation."""
    say = speaker(say)
    out = check_output_folder(out)
    cluster = cluster or ClusterOptions()
    settings = settings or SamplerSettings()
    with interruptible(out):
        prepared = PreparedFit.load(
            inputs, prior_spec, components, say, likelihood, astro_model, analysis=analysis
        )
        given = set(
            parse_assignments(truth, prepared.names, "--truth") if isinstance(truth, str) else truth
        )
        truth = resolve_truth(truth, prepared)
        say(
            "truth: "
            + ", ".join(
                f"{n}={v:g}" + ("" if n in given else " (the inputs' truth)")
                for n, v in truth.items()
            )
        )
        if resample and nuts:
            raise UsageError(
                "--resample-sim cannot be combined with --nuts (one compiled "
                "model per worker, not per pseudo-experiment)"
            )
        n_sim = len(prepared.inputs.simulation)
        if resample and not 1 <= resample < n_sim:
            raise UsageError(
                f"--resample-sim {resample}: must be below the simulation's {n_sim} events"
            )
        sampler = _sampler_dict(settings) if nuts else {}
        extra = {"resample_simulation": resample} if resample else {}
        config = prepared.config(
            kind="toys", truth=truth, seed=seed, nuts=nuts, sampler=sampler, **extra
        )
        journal = Journal(journal_folder(out), config)
        tasks = {
            f"toy-{i:06d}": {
                "index": i,
                "seed": seed,
                "truth": truth,
                "nuts": nuts,
                "resample": resample,
            }
            for i in range(n)
        }
        t0 = time.perf_counter()
        context = prepared.context(config, sampler=sampler, **_resample_context(prepared, resample))
        results = run_tasks(
            toy,
            context,
            tasks,
            journal,
            cluster,
            "toys",
            say,
            progressbar,
            batch=1 if nuts else MAP_TOYS_PER_TASK,
            check=check_toy,
        )
        wall = time.perf_counter() - t0
        rows = [results[k] for k in tasks]
        dataset = to_dataset(rows, prepared.names, truth, nuts)
        coverage = coverage_of(dataset, truth, nuts)
        coverage.update(
            truth=truth,
            seed=seed,
            likelihood=likelihood,
            resample_simulation=resample,
            wall_time_s=wall,
            prior_set=prepared.prior_spec,
            provenance=prepared.provenance(journal=journal.name, sampler=sampler or None),
        )
        dataset.attrs.update(
            truth=json.dumps(truth),
            seed=seed,
            provenance=json.dumps(coverage["provenance"], default=str),
        )
        with write_run(out, "toys") as stage:
            stage.write_netcdf("toys.nc", dataset)
            stage.write_json("coverage.json", coverage)
            _figures(stage, dataset, coverage, truth)
    say(format_coverage(coverage))
    say(f"wrote the run folder {out} (toys.nc, coverage.json, pulls and coverage figures)")
    return coverage


def resolve_truth(truth: dict | str, prepared: PreparedFit) -> dict:
    """Every parameter's true value: given (a dict, or ``NAME=VALUE,...`` text), else the
    inputs' recorded truth (toy data: a partial ``--truth`` is completed from it, and the job
    prints which values came from where); inputs without one need every value."""
    if isinstance(truth, str):
        truth = parse_assignments(truth, prepared.names, "--truth")
    known = prepared.inputs.truth or {}
    full = {n: truth.get(n, known.get(n)) for n in prepared.names}
    missing = [n for n, v in full.items() if v is None]
    if missing:
        raise UsageError(
            f"--truth: no value for {', '.join(missing)} (give NAME=VALUE for every parameter)"
        )
    full = {n: float(v) for n, v in full.items()}
    check_inside(full, prepared.priors, "--truth")
    with np.errstate(over="ignore", invalid="ignore"):
        most = float(np.max(prepared.profile.expected(full), initial=0.0))
    if not most <= MAX_EXPECTED:  # NumPy's Poisson draws stop near 9.2e18 (NaN: also refused)
        given = ", ".join(f"{n}={v:g}" for n, v in full.items())
        raise UsageError(
            f"--truth {given}: the model expects {most:.3g} events in a bin, "
            f"more than can be drawn (at most {MAX_EXPECTED:g}); give smaller "
            "normalizations"
        )
    return full


def _resample_context(prepared: PreparedFit, resample: int) -> dict:
    """The simulation's fitted fields and bins, shipped to the workers for ``--resample-sim``."""
    if not resample:
        return {}
    from diffuse_fit.io.events import EventTable

    sim, b = prepared.inputs.simulation, prepared.binned
    fields = {"energy", "zenith", "topology"}
    for c in b.components:
        fields |= set(input_fields(c))
    columns = {k: sim[k] for k in sim.fields if k in fields}
    return {"simulation": EventTable(columns, sim.source), "sim_bin_index": b.sim_bin_index}


def _sampler_dict(settings: SamplerSettings) -> dict:
    d = settings.to_dict()
    return {k: d[k] for k in ("draws", "tune", "chains", "target_accept")}


def to_dataset(rows: list[dict], names: list[str], truth: dict, nuts: bool):
    """The experiments as an ``xarray.Dataset`` (dims ``toy``, ``parameter``, ``bound``,
    ``quantile``); missing values (no error, no interval) are NaN."""
    import xarray as xr

    def table(key):
        return np.array([[_nan(r[key][n]) for n in names] for r in rows], dtype=np.float64)

    profile = np.array([[[_nan(v) for v in r["profile_68"][n]] for n in names] for r in rows])
    data = {
        "seed": ("toy", np.array([r["seed"] for r in rows], dtype=np.int64)),
        "n_observed": ("toy", np.array([r["n_observed"] for r in rows])),
        "map": (("toy", "parameter"), table("map")),
        "hessian_error": (("toy", "parameter"), table("hessian_error")),
        "profile_68": (("toy", "parameter", "bound"), profile.reshape(len(rows), len(names), 2)),
        "neg_log_likelihood": ("toy", np.array([r["neg_log_likelihood"] for r in rows])),
        "converged": ("toy", np.array([r["converged"] for r in rows], dtype=bool)),
        "truth": ("parameter", np.array([truth[n] for n in names])),
    }
    if any("flavour_ts" in r for r in rows):  # -2 Delta log p at the true (f_e, f_mu)
        data["flavour_ts"] = ("toy", np.array([_nan(r.get("flavour_ts")) for r in rows]))
    coords = {
        "toy": np.array([r["index"] for r in rows]),
        "parameter": names,
        "bound": ["lower", "upper"],
    }
    if nuts:
        data["posterior_quantiles"] = (
            ("toy", "parameter", "quantile"),
            np.array([[r["posterior_quantiles"][n] for n in names] for r in rows]),
        )
        data["divergences"] = ("toy", np.array([r["divergences"] for r in rows]))
        data["max_r_hat"] = ("toy", np.array([r["max_r_hat"] for r in rows]))
        data["min_ess_bulk"] = ("toy", np.array([r["min_ess_bulk"] for r in rows]))
        coords["quantile"] = list(QUANTILES)
    return xr.Dataset(data, coords=coords)


def _nan(value):
    return np.nan if value is None else float(value)


def coverage_of(ds, truth: dict, nuts: bool) -> dict:
    """Fraction of experiments whose 68% interval contains the truth, per parameter and
    kind (``hessian_68``: MAP +- Hessian error; ``profile_68``; ``credible_68``: the
    posterior's 16%-84% quantiles), with binomial standard errors.  An experiment without
    an interval (fit not converged, Hessian not invertible) counts as not covering."""
    n = ds.sizes["toy"]
    out = {
        "n": int(n),
        "nominal": NOMINAL,
        "parameters": {},
        "standard_errors": {},
        "n_not_converged": int((~ds["converged"]).sum()),
    }
    for name in ds["parameter"].values.tolist():
        x = ds.sel(parameter=name)
        t = truth[name]
        fractions = {
            "hessian_68": _fraction(np.abs(x["map"] - t) <= x["hessian_error"]),
            "profile_68": _fraction(
                (x["profile_68"].sel(bound="lower") <= t)
                & (t <= x["profile_68"].sel(bound="upper"))
            ),
        }
        if nuts:
            q = x["posterior_quantiles"]
            fractions["credible_68"] = _fraction(
                (q.sel(quantile=0.16) <= t) & (t <= q.sel(quantile=0.84))
            )
        out["parameters"][name] = fractions
        out["standard_errors"][name] = {k: math.sqrt(f * (1 - f) / n) for k, f in fractions.items()}
    if "flavour_ts" in ds:  # the 2-D profile-likelihood regions of (f_e, f_mu), Wilks
        ts = ds["flavour_ts"].values
        out["flavour_regions"] = {
            f"{level:.4f}": {
                "threshold": threshold,
                "coverage": _fraction(ts <= threshold),
                "standard_error": math.sqrt(
                    _fraction(ts <= threshold) * (1 - _fraction(ts <= threshold)) / n
                ),
            }
            for level, threshold in WILKS_2DOF.items()
        }
    return out


def _fraction(mask) -> float:
    return float(np.mean(np.asarray(mask, dtype=bool)))  # NaN comparisons are False


def format_coverage(coverage: dict) -> str:
    kinds = list(next(iter(coverage["parameters"].values())))
    lines = [
        f"coverage of 68.27% intervals in {coverage['n']} pseudo-experiments "
        f"(+- binomial standard error):",
        f"  {'parameter':12s} " + " ".join(f"{k:>16s}" for k in kinds),
    ]
    for name, fractions in coverage["parameters"].items():
        errors = coverage["standard_errors"][name]
        lines.append(
            f"  {name:12s} " + " ".join(f"{fractions[k]:9.3f} +- {errors[k]:.3f}" for k in kinds)
        )
    for level, region in coverage.get("flavour_regions", {}).items():
        lines.append(
            f"  (f_e, f_mu) {float(level):.2%} profile region: {region['coverage']:.3f} +- "
            f"{region['standard_error']:.3f}"
        )
    if coverage["n_not_converged"]:
        lines.append(
            f"  ({coverage['n_not_converged']} fits did not converge; counted as not covering)"
        )
    return "\n".join(lines)


def _figures(stage, ds, coverage: dict, truth: dict) -> None:
    from diffuse_fit.report.figures import save_figure
    from diffuse_fit.report.many_plots import coverage_figure, pull_figure

    pulls = {
        n: ((ds["map"].sel(parameter=n) - truth[n]) / ds["hessian_error"].sel(parameter=n)).values
        for n in ds["parameter"].values.tolist()
    }
    save_figure(stage, pull_figure(pulls), "pulls", dpi=150)
    save_figure(stage, coverage_figure(coverage, coverage["n"]), "coverage", dpi=150)
    if "flavour_ts" in ds:
        from diffuse_fit.report.flavour import region_coverage_figure

        figure = region_coverage_figure(ds["flavour_ts"].values, truth)
        save_figure(stage, figure, "flavour_coverage", dpi=150)


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
    out = {
        "index": args["index"],
        "seed": seed,
        "n_observed": float(counts.sum()),
        "worker_fitter": fitter_id,
    }
    if args.get("resample"):
        profile = resampled_fitter(context, args["resample"], rng)
        empty = (counts > 0) & ~profile.templates.covered()
        if np.any(empty):  # no expectation where events were seen: no fit is possible
            return {**out, **_impossible(profile.names, int(empty.sum()))}
    out.update(map_summary(profile, counts, context.start, intervals=True))
    if set(FRACTIONS) <= set(profile.names) and out["converged"]:  # the flavour region's ts
        held = {n: float(args["truth"][n]) for n in FRACTIONS}
        at_truth = profile.fit(counts, fixed=held, x0={**out["map"], **held})
        out["flavour_ts"] = -2.0 * (at_truth.log_posterior - out["log_posterior"])
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
    return {
        "map": {n: math.nan for n in names},
        "hessian_error": none,
        "neg_log_likelihood": math.nan,
        "log_posterior": math.nan,
        "converged": False,
        "problems": [f"observed events in {n_bins} bins where the resampled simulation has none"],
        "profile_68": {n: [None, None] for n in names},
    }
