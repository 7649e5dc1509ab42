"""The jobs behind the command line: MAP fit and posterior sampling, written to a run folder.

A run folder is written as one consistent set of files (:mod:`diffuse_fit.io.run_folder`: staged,
then swapped in; ``run.json`` lists every file with its SHA-256).  Files:

* ``map.json`` -- MAP values, ``neg_log_likelihood`` (-ln L with lgamma(k+1): the workshop's
  Poisson -LLH, or with ``likelihood="say"`` -sum_b ln L_b of the SAY likelihood),
  ``covariance`` (inverse Hessian, parameter order as the keys), errors, the workshop
  scipy fit on the same data (Poisson, so recorded for the Poisson likelihood only; null
  with SAY), priors, provenance (with ``likelihood``);
* ``posterior.nc`` -- the NUTS posterior (ArviZ DataTree, NetCDF);
* ``summary.json`` -- per parameter mean, sd, hdi_3%, hdi_97%, r_hat, ess_bulk, ess_tail;
  divergences and the convergence verdict; MAP; priors; sampler settings; provenance;
* ``summary.txt`` -- the ArviZ summary table as text;
* with a report (``report=True`` or ``diffuse-fit report``): figures, ``ppc.json``, ``report.md``.

Ctrl-C (SIGINT) stops a run promptly and raises :class:`diffuse_fit.errors.RunInterrupted`; the
folder keeps its previous run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from diffuse_fit.errors import RunInterrupted
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.io.run_folder import check_output_folder, write_run
from diffuse_fit.jobs.inputs import COMPONENT_SETS, Inputs, component_set  # noqa: F401 (re-exported)
from diffuse_fit.jobs.interrupt import interrupted_message, interruptible
from diffuse_fit.jobs.prepared import PreparedFit, format_map  # noqa: F401 (re-exported)
from diffuse_fit.messages import speaker
from diffuse_fit.physics.parameters import units


def sample(model, settings: SamplerSettings, progressbar: bool = True):
    """NUTS (:func:`diffuse_fit.inference.sampling.sample`); ArviZ is imported on first use, so
    that ``diffuse-fit map`` does not pay for it."""
    from diffuse_fit.inference.sampling import sample as nuts

    return nuts(model, settings, progressbar=progressbar)


def run_map(
    inputs: Inputs,
    prior_spec,
    out: Path,
    components="workshop",
    say=None,
    likelihood="poisson",
    astro_model="spl",
    analysis=None,
) -> dict:
    """``diffuse-fit map``: write the run folder ``out`` (``map.json``, ``run.json``);
    ``likelihood``: "poisson" or "say"; ``astro_model``: the astrophysical spectrum
    (:data:`diffuse_fit.physics.spectra.ASTRO_MODELS`)."""
    say = speaker(say)
    out = check_output_folder(out)
    with interruptible(out):
        job = PreparedFit.prepare(
            inputs,
            prior_spec,
            components,
            say,
            likelihood,
            astro_model,
            build=False,
            analysis=analysis,
        )
        result = job.run_map()
        result["provenance"] = job.provenance()
        with write_run(out, "map") as stage:
            stage.write_json("map.json", result)
    say(f"wrote {out / 'map.json'}")
    return result


# summary.json's names of ArviZ's summary columns (summary.txt uses the same)
SUMMARY_COLUMNS = {
    "mean": "mean",
    "sd": "sd",
    "hdi94_lb": "hdi_3%",
    "hdi94_ub": "hdi_97%",
    "r_hat": "r_hat",
    "ess_bulk": "ess_bulk",
    "ess_tail": "ess_tail",
    "mcse_mean": "mcse_mean",
}


def _summary_dict(table, names) -> dict:
    keep = SUMMARY_COLUMNS
    unit = units(names)
    return {
        n: {**{new: float(table.loc[n, old]) for old, new in keep.items()}, "unit": unit[n]}
        for n in names
    }


def run_sample(
    inputs: Inputs,
    prior_spec,
    out: Path,
    settings: SamplerSettings,
    components="workshop",
    progressbar=True,
    say=None,
    report=False,
    likelihood="poisson",
    astro_model="spl",
    groups: dict | None = None,
    model=None,
    analysis=None,
) -> dict:
    """``diffuse-fit sample``: MAP, then NUTS; write the run folder ``out`` (map.json,
    posterior.nc with the fit record, summary.json/.txt; with ``report``, the report too);
    ``likelihood``: "poisson" or "say"; ``astro_model``: the astrophysical spectrum;
    ``groups``: which of ``posterior_predictive`` (default True), ``log_likelihood``,
    ``prior_predictive`` (default False) the posterior gets
    (:func:`diffuse_fit.jobs.inference_data.complete`); ``model``: a user's PyMC model of these
    inputs (extended), fitted instead of the builder's (:meth:`PreparedFit.use_model`)."""
    say = speaker(say)
    out = check_output_folder(out)
    with interruptible(out) as interrupts:
        job = PreparedFit.prepare(
            inputs,
            prior_spec,
            components,
            say,
            likelihood,
            astro_model,
            build=model is None,
            analysis=analysis,
        )
        if model is not None:
            job.use_model(model)
        map_result = job.run_map(allow_bound=True)
        sampler = settings.resolved_sampler()
        say(
            f"sampling: {settings.chains} chains x ({settings.tune} tune + {settings.draws} "
            f"draws), NUTS by {sampler}, seed {settings.seed} ..."
        )
        t0 = time.perf_counter()
        idata = sample(job.model, settings, progressbar=progressbar)
        sampling_s = time.perf_counter() - t0
        if interrupts or idata.posterior.sizes["draw"] < settings.draws:  # partial draws
            raise RunInterrupted(interrupted_message(out))
        from diffuse_fit.jobs.inference_data import complete, posterior_encoding  # xarray

        complete(idata, job.model, seed=settings.seed, **(groups or {}))
        summary, text = _summarise(job, idata, map_result, settings, sampling_s)
        with write_run(out, "sample") as stage:
            stage.write_json("map.json", map_result)
            stage.write_netcdf("posterior.nc", idata, encoding=posterior_encoding(idata))
            stage.write_text("summary.txt", text + "\n")
            stage.write_json("summary.json", summary)
            if report:
                from diffuse_fit.report.document import write_report

                write_report(stage, map_result, summary, idata, job.binned)
    diag = summary["diagnostics"]
    say(text)
    say(
        f"sampling took {sampling_s:.1f} s; divergences {diag['divergences']}, "
        f"max R-hat {diag['max_r_hat']:.4f}, min bulk ESS {diag['min_ess_bulk']:.0f}"
    )
    if not diag["passed"]:  # loud even with --quiet
        print(
            "!" * 78
            + "\nWARNING: CONVERGENCE REQUIREMENTS NOT MET: "
            + "; ".join(diag["problems"])
            + "\nDo not trust these posteriors; rerun with more "
            "tuning or a higher --target-accept.\n" + "!" * 78,
            file=sys.stderr,
        )
    say(
        f"wrote the run folder {out} (map.json, posterior.nc, summary.json, summary.txt"
        f"{', report.md and figures' if report else ''})"
    )
    return summary


def _summarise(job: PreparedFit, idata, map_result: dict, settings, sampling_s: float):
    """``summary.json`` content and the summary table as text; stores the provenance in
    ``map_result`` and the fit record in ``idata``."""
    from diffuse_fit.inference.sampling import diagnostics, summary_table
    from diffuse_fit.physics.flux import astrophysical_components, is_segmented

    names = job.parameters
    table = summary_table(idata, names)
    diag = diagnostics(idata, names, table=table)  # the summary is computed once
    provenance = job.provenance(sampler=settings.to_dict())
    idata.attrs.update(
        {
            "diffuse_fit_seed": settings.seed,
            "data_sha256": str(job.inputs.data.sha256),
            "simulation_sha256": str(job.inputs.simulation.sha256),
            "prior_set": job.prior_spec,
        }
    )
    summary = {
        "parameters": _summary_dict(table, names),
        "divergences": diag["divergences"],
        "diagnostics": diag,
        "map": {
            k: map_result[k]
            for k in [*names, "neg_log_likelihood", "covariance", "errors", "problems"]
        },
        "units": units(names),
        "sensitive_energy_range_GeV": list(job.sensitive_range(map_result)),
        "reference_fit": map_result["reference_fit"],
        "wall_times_s": {"map": map_result["wall_time_s"], "sampling": sampling_s},
        "ess_bulk_per_second": float(diag["min_ess_bulk"] / sampling_s),
        "provenance": provenance,
    }
    components = job.binned.components
    if is_segmented(components):  # the differential flux, as the report draws it
        from diffuse_fit.report.predictive import parameter_draws
        from diffuse_fit.report.spectrum import UPPER_LIMIT_RULE, segment_summary

        segments = astrophysical_components(components)
        draws = parameter_draws(
            idata.posterior, [c.norm for c in segments], job.binned.templates.fixed
        )
        summary["segments"] = segment_summary(segments, draws)
        summary["segments_rule"] = UPPER_LIMIT_RULE
        from diffuse_fit.jobs.segments import power_law_band, segment_profiles
        from diffuse_fit.report.spectrum import ENERGIES_GEV

        profiles = segment_profiles(job, segments)
        for s in summary["segments"]:
            if s["norm"] in profiles:
                profile = profiles[s["norm"]]
                s.update(profile_map=profile["map"], profile_68=profile["profile_68"])
        summary["power_law_band"] = power_law_band(job, ENERGIES_GEV, settings.seed)
    map_result["provenance"] = provenance
    text = table.rename(columns=SUMMARY_COLUMNS).to_string(float_format=lambda v: f"{v:.4g}")
    return summary, text
