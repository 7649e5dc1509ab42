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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from diffuse_fit.binned import reference_fit
from diffuse_fit.binned.dataset import BinnedDataset, bin_dataset
from diffuse_fit.errors import FitFailed, RunInterrupted, UsageError
from diffuse_fit.inference.map_core import fit_map
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.profile import ProfileFitter
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.io.run_folder import check_output_folder, write_run
from diffuse_fit.jobs.inference_data import complete, posterior_encoding
from diffuse_fit.jobs.inputs import (  # noqa: F401 (COMPONENT_SETS re-exported)
    COMPONENT_SETS,
    Inputs,
    analysis_record,
    component_set,
    sample_binning,
)
from diffuse_fit.jobs.interrupt import interrupted_message, interruptible
from diffuse_fit.jobs.provenance import record
from diffuse_fit.physics.components import parameter_names, parameter_supports
from diffuse_fit.physics.parameters import units


def sample(model, settings: SamplerSettings, progressbar: bool = True):
    """NUTS (:func:`diffuse_fit.inference.sampling.sample`); ArviZ is imported on first use, so
    that ``diffuse-fit map`` does not pay for it."""
    from diffuse_fit.inference.sampling import sample as nuts

    return nuts(model, settings, progressbar=progressbar)


@dataclass
class Job:
    """A prepared fit: inputs binned, priors resolved, the PyMC model built (``model``; None
    for a job that needs only the MAP, which is NumPy: :mod:`diffuse_fit.inference.map_core`)."""

    inputs: Inputs
    binned: BinnedDataset
    priors: dict
    model: object
    prior_spec: str
    components: str
    say: callable
    likelihood: str = "poisson"
    astro_model: str = "spl"
    extension: str = ""  # how a user's model differs from build_model's ("" for none)
    analysis: dict | None = None  # the specification it ran (recorded)

    @classmethod
    def prepare(
        cls, inputs: Inputs, prior_spec="default", components="workshop", say=print,
        likelihood="poisson", astro_model="spl", build=True, analysis=None,
    ) -> Job:  # fmt: skip
        """``analysis``: the specification (:class:`diffuse_fit.io.analysis.AnalysisSpec`)
        the other arguments came from, with the binning of its sample."""
        t0 = time.perf_counter()
        chosen = component_set(components, astro_model, likelihood)
        binning = sample_binning(analysis.samples[0]) if analysis is not None else None
        binned = bin_dataset(inputs.data, inputs.simulation, components=chosen,
                             binning=binning, variance=likelihood == "say")  # fmt: skip
        priors = resolve_priors(prior_spec, parameter_supports(binned.components))
        model = None
        if build:  # PyMC is imported only for jobs that sample
            from diffuse_fit.inference.pymc_model import build_model

            model = build_model(binned, priors, likelihood=likelihood)
        for line in binned.summary_lines():
            say(line)
        say(f"tables{' and model' if build else ''} built in {time.perf_counter() - t0:.2f} s "
            f"(table accuracy {binned.templates.max_relative_error:.1e} relative)")  # fmt: skip
        for line in binned.templates.exact_sum_notes():
            say(line)
        record = analysis_record(analysis, inputs, prior_spec, components, astro_model,
                                 likelihood, binning)  # fmt: skip
        return cls(inputs, binned, priors, model, str(prior_spec), components, say, likelihood,
                   astro_model, analysis=record)  # fmt: skip

    def use_model(self, model) -> None:
        """Fit the user's ``model`` (built from these inputs by ``build_model``, then extended,
        or written by the user) instead of the builder's: the MAP then runs on PyMC's
        log-density of it, and every record says how it differs
        (:func:`diffuse_fit.inference.pymc_model.builder_twin`)."""
        from diffuse_fit.inference.pymc_model import builder_twin

        twin, why = builder_twin(model)
        recorded = getattr(model, "diffuse_fit_twin", None)
        if recorded is not None:
            counts = recorded.full_counts(model)
            if counts.shape != self.binned.counts.shape or not np.array_equal(
                counts, self.binned.counts
            ):
                raise UsageError("the model was built from other inputs than the run's "
                                 "(its observed counts differ)")  # fmt: skip
        vectors = [rv.name for rv in model.free_RVs if rv.ndim != 0]
        if vectors:
            raise UsageError(f"run_sample reports scalar parameters; {', '.join(vectors)} "
                             "are vectors (sample the model with model.sample instead)")  # fmt: skip
        missing = set(parameter_names(self.binned.components)) - {rv.name for rv in model.free_RVs}
        if missing:
            raise UsageError(f"the model lacks the parameters {', '.join(sorted(missing))} "
                             "that the report's expectations need")  # fmt: skip
        self.model = model
        self.extension = "" if twin is not None else why

    def sensitive_range(self, map_result: dict) -> tuple[float, float]:
        """The astrophysical flux's sensitive range of true energy (GeV) at the MAP
        (:func:`diffuse_fit.physics.flux.sensitive_energy_range`)."""
        from diffuse_fit.physics.flux import astrophysical_component, sensitive_energy_range

        b = self.binned
        component = astrophysical_component(b.components)
        best = {n: map_result[n] for n in map_result["parameter_order"]}
        weights = component.event_weights(b.simulation, best)
        energy = b.simulation[component.energy_field]
        return tuple(map(float, sensitive_energy_range(weights, energy, b.sim_bin_index >= 0)))

    @property
    def parameters(self) -> list[str]:
        names = list(parameter_names(self.binned.components))
        if self.extension:  # the user's added variables too
            names += [rv.name for rv in self.model.free_RVs if rv.name not in names]
        return names

    def provenance(self, **extra) -> dict:
        """What was fitted: inputs (files, hashes, how they were read), binning, components,
        parameters, priors, likelihood; with versions and time (:func:`record`)."""
        return record(
            inputs=self.inputs.description,
            input_spec=self.inputs.spec,
            truth=self.inputs.truth,
            priors={k: p.to_dict() for k, p in self.priors.items()},
            prior_set=self.prior_spec,
            components=self.components,
            astro_model=self.astro_model,
            component_definitions=[asdict(c) for c in self.binned.components],
            parameters=self.parameters,
            likelihood=self.likelihood,
            model_extension=self.extension or None,
            analysis=self.analysis,
            **self.binned.provenance(),
            **extra,
        )

    def run_map(self, allow_bound: bool = False) -> dict:
        """MAP + the workshop's scipy fit (a Poisson fit: for the Poisson likelihood only);
        returns the ``map.json`` content.  A fit that is not converged raises
        :class:`FitFailed`, except with ``allow_bound`` (the sample job: the MAP is its
        reference point, and a posterior with its mode on a bound -- a norm at 0 -- is an
        ordinary posterior) one that reached an optimum whose only problems are parameters
        on a bound or left unconstrained: it is recorded with ``converged: false`` and its
        problems, and said on stderr."""
        self.say("finding the MAP ...")
        if self.extension:  # the user's model: PyMC's log-density of it
            from diffuse_fit.inference.map_fit import MapFitter

            result = MapFitter(self.model).fit()
        else:
            profile = ProfileFitter(self.binned.templates, self.priors, likelihood=self.likelihood)
            result = fit_map(profile, self.binned.counts)
        if not (result.converged or (allow_bound and result.optimum)):
            raise FitFailed(
                "the MAP fit failed, nothing was written: " + "; ".join(result.problems)
                + " (check the inputs: weights, energies and counts)"
            )  # fmt: skip
        b = self.binned
        names = list(result.values)
        ref = None
        # the workshop fit knows only its 3 parameters and the Poisson likelihood
        if (
            self.components == "workshop"
            and self.likelihood == "poisson"
            and (self.astro_model == "spl")
            and not self.extension  # the workshop's is the unextended model
        ):
            fit = reference_fit.fit(b.counts, b.simulation, b.sim_bin_index, b.binning.n_bins)
            ref = {**fit.as_dict(), "neg_log_likelihood": fit.neg_log_likelihood,
                   "converged": fit.converged, "message": fit.message}  # fmt: skip
            if not fit.converged:  # loud even with --quiet
                print(f"WARNING: the workshop's scipy fit: {fit.message}", file=sys.stderr)
        out = {
            **result.values,
            "neg_log_likelihood": result.neg_log_likelihood,
            "covariance": result.covariance.tolist(),
            "errors": result.errors,
            "units": result.units,
            "correlation": result.to_dict()["correlation"],
            "converged": result.converged,
            "problems": result.problems,
            "unconstrained": result.unconstrained,
            "at_bound": result.at_bound,
            "optimizer_message": result.message,
            "wall_time_s": result.wall_time_s,
            "reference_fit": ref,
            "parameter_order": names,
            "likelihood": self.likelihood,
            "map_path": result.path,
        }
        self.say(format_map(out))
        for problem in result.problems:  # loud even with --quiet
            print(f"WARNING: MAP: {problem}", file=sys.stderr)
        return out


def format_map(m: dict) -> str:
    """The MAP block as text."""
    ref = m["reference_fit"] or {}

    def workshop(key):
        if not ref:
            return ""
        failed = "" if ref.get("converged", True) else ", did not converge"
        return f"   (workshop scipy fit {ref[key]:.{6 if key.startswith('neg') else 4}f}{failed})"

    def error(name):
        value = m["errors"][name]
        return "(unconstrained)" if value is None else f"+- {value:.4f}"

    lines = ["MAP (errors: sqrt of the inverse-Hessian diagonal):"]
    for name in m["parameter_order"]:
        lines.append(f"  {name:12s} = {m[name]:10.4f} {error(name)}{workshop(name)}")
    which = {"say": " (SAY)"}.get(m.get("likelihood"), "")
    lines.append(f"  -LLH{which} = {m['neg_log_likelihood']:.6f}{workshop('neg_log_likelihood')}")
    return "\n".join(lines)


def run_map(
    inputs: Inputs,
    prior_spec,
    out: Path,
    components="workshop",
    say=print,
    likelihood="poisson",
    astro_model="spl",
    analysis=None,
) -> dict:
    """``diffuse-fit map``: write the run folder ``out`` (``map.json``, ``run.json``);
    ``likelihood``: "poisson" or "say"; ``astro_model``: the astrophysical spectrum
    (:data:`diffuse_fit.physics.spectra.ASTRO_MODELS`)."""
    out = check_output_folder(out)
    with interruptible(out):
        job = Job.prepare(inputs, prior_spec, components, say, likelihood, astro_model,
                          build=False, analysis=analysis)  # fmt: skip
        result = job.run_map()
        result["provenance"] = job.provenance()
        with write_run(out, "map") as stage:
            stage.write_json("map.json", result)
    say(f"wrote {out / 'map.json'}")
    return result


# summary.json's names of ArviZ's summary columns (summary.txt uses the same)
SUMMARY_COLUMNS = {"mean": "mean", "sd": "sd", "hdi94_lb": "hdi_3%", "hdi94_ub": "hdi_97%",
                   "r_hat": "r_hat", "ess_bulk": "ess_bulk", "ess_tail": "ess_tail",
                   "mcse_mean": "mcse_mean"}  # fmt: skip


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
    say=print,
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
    inputs (extended), fitted instead of the builder's (:meth:`Job.use_model`)."""
    out = check_output_folder(out)
    with interruptible(out) as interrupts:
        job = Job.prepare(inputs, prior_spec, components, say, likelihood, astro_model,
                          build=model is None, analysis=analysis)  # fmt: skip
        if model is not None:
            job.use_model(model)
        map_result = job.run_map(allow_bound=True)
        sampler = settings.resolved_sampler()
        say(f"sampling: {settings.chains} chains x ({settings.tune} tune + {settings.draws} "
            f"draws), NUTS by {sampler}, seed {settings.seed} ...")  # fmt: skip
        t0 = time.perf_counter()
        idata = sample(job.model, settings, progressbar=progressbar)
        sampling_s = time.perf_counter() - t0
        if interrupts or idata.posterior.sizes["draw"] < settings.draws:  # partial draws
            raise RunInterrupted(interrupted_message(out))
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
    say(f"sampling took {sampling_s:.1f} s; divergences {diag['divergences']}, "
        f"max R-hat {diag['max_r_hat']:.4f}, min bulk ESS {diag['min_ess_bulk']:.0f}")  # fmt: skip
    if not diag["passed"]:  # loud even with --quiet
        print("!" * 78 + "\nWARNING: CONVERGENCE REQUIREMENTS NOT MET: "
              + "; ".join(diag["problems"]) + "\nDo not trust these posteriors; rerun with more "
              "tuning or a higher --target-accept.\n" + "!" * 78, file=sys.stderr)  # fmt: skip
    say(f"wrote the run folder {out} (map.json, posterior.nc, summary.json, summary.txt"
        f"{', report.md and figures' if report else ''})")  # fmt: skip
    return summary


def _summarise(job: Job, idata, map_result: dict, settings, sampling_s: float):
    """``summary.json`` content and the summary table as text; stores the provenance in
    ``map_result`` and the fit record in ``idata``."""
    from diffuse_fit.inference.sampling import diagnostics, summary_table

    names = job.parameters
    table = summary_table(idata, names)
    diag = diagnostics(idata, names, table=table)  # the summary is computed once
    provenance = job.provenance(sampler=settings.to_dict())
    idata.attrs.update({"diffuse_fit_seed": settings.seed,
                        "data_sha256": str(job.inputs.data.sha256),
                        "simulation_sha256": str(job.inputs.simulation.sha256),
                        "prior_set": job.prior_spec})  # fmt: skip
    summary = {
        "parameters": _summary_dict(table, names),
        "divergences": diag["divergences"],
        "diagnostics": diag,
        "map": {
            k: map_result[k]
            for k in [*names, "neg_log_likelihood", "covariance", "errors", "problems"]
        },  # fmt: skip
        "units": units(names),
        "sensitive_energy_range_GeV": list(job.sensitive_range(map_result)),
        "reference_fit": map_result["reference_fit"],
        "wall_times_s": {"map": map_result["wall_time_s"], "sampling": sampling_s},
        "ess_bulk_per_second": float(diag["min_ess_bulk"] / sampling_s),
        "provenance": provenance,
    }
    map_result["provenance"] = provenance
    text = table.rename(columns=SUMMARY_COLUMNS).to_string(float_format=lambda v: f"{v:.4g}")
    return summary, text
