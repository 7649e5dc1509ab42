"""The prepared fit every job starts from (:class:`PreparedFit`): inputs binned, priors
resolved, the specification recorded; the PyMC model, the NumPy fitter, the global best fit
and the MAP on demand.  ``diffuse-fit map``/``sample`` (:mod:`diffuse_fit.jobs.runs`), the
many-fit commands (scan, toys, sbc) and ``compare`` all use it."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, replace
from functools import cached_property

import numpy as np

from diffuse_fit.binned import reference_fit
from diffuse_fit.binned.dataset import BinnedDataset, bin_samples
from diffuse_fit.errors import FitFailed, UsageError
from diffuse_fit.fitting.map_core import X0, fit_map
from diffuse_fit.fitting.profile import Fit, ProfileFitter
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.io.journal import config_digest
from diffuse_fit.jobs.inputs import (
    Inputs,
    analysis_record,
    component_set,
    fixed_parameters,
    sample_binning,
)
from diffuse_fit.jobs.many import FitContext
from diffuse_fit.jobs.provenance import record
from diffuse_fit.jobs.table_cache import binned_inputs
from diffuse_fit.messages import speaker


@dataclass
class PreparedFit:
    """A prepared fit, the one object every job starts from: inputs binned, priors resolved,
    the record of the specification; on demand the PyMC model (``model``, built by
    :meth:`prepare` for jobs that sample; None for the NumPy MAP), the NumPy fitter
    (:attr:`profile`) and the global best fit (:attr:`best`, found by :meth:`load` for the
    many-fit commands)."""

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
    _best: Fit | None = None

    @property
    def names(self) -> list[str]:
        """The builder's parameters (the priors' order)."""
        return list(self.priors)

    @cached_property
    def profile(self) -> ProfileFitter:
        """The NumPy fitter of the tables and priors (profile fits, the MAP)."""
        return ProfileFitter(self.binned.templates, self.priors, likelihood=self.likelihood)

    @property
    def best(self) -> Fit:
        """The global best fit of the data from the workshop's start (computed once)."""
        if self._best is None:
            best = self.profile.fit(self.binned.counts, x0=X0)
            if not best.converged:
                raise FitFailed(f"the best fit of the data failed: {best.message}")
            self._best = best
        return self._best

    @classmethod
    def prepare(
        cls,
        inputs: Inputs,
        prior_spec="default",
        components="workshop",
        say=None,
        likelihood="poisson",
        astro_model="spl",
        build=True,
        analysis=None,
    ) -> PreparedFit:
        """``analysis``: the specification (:class:`diffuse_fit.io.analysis.AnalysisSpec`)
        the other arguments came from, with the binning of its sample."""
        say = speaker(say)
        t0 = time.perf_counter()
        chosen = component_set(components, astro_model, likelihood)
        binning = None  # recorded for runs without a specification (analysis_record)
        if analysis is not None and len(analysis.samples) > 1:  # a joint fit
            if len(inputs.samples) != len(analysis.samples):
                raise UsageError(
                    "a joint analysis needs its samples' inputs "
                    "(diffuse_fit.jobs.inputs.analysis_inputs)"
                )
            renames = check_renames(analysis, chosen)
            binned = bin_samples(
                [
                    (s.name, i.data, i.simulation, sample_binning(s, i))
                    for s, (_, i) in zip(analysis.samples, inputs.samples, strict=True)
                ],
                components=chosen,
                variance=likelihood == "say",
                renames=renames,
            )
        else:  # the tables from the cache if it has them (diffuse_fit.jobs.table_cache)
            binning = sample_binning(analysis.samples[0] if analysis is not None else None, inputs)
            binned = binned_inputs(
                inputs,
                chosen,
                binning,
                likelihood,
                detector=inputs.splines is not None and components == "hese" and not inputs.samples,
                say=say,
            )
        if inputs.splines is not None and (components != "hese" or inputs.samples):
            say(
                "detector-systematics tables found; they enter the fit with --components hese "
                "(one sample)"
            )
        fixed = fixed_parameters(
            binned.templates.parameter_supports(), analysis.fix if analysis is not None else {}
        )
        if fixed:
            binned = replace(binned, templates=replace(binned.templates, fixed=fixed))
        supports = {
            n: s for n, s in binned.templates.parameter_supports().items() if n not in fixed
        }
        priors = _inherited(
            resolve_priors(prior_spec, supports), prior_spec, analysis
        )  # a renamed parameter: the prior of its original
        model = None
        if build:  # PyMC is imported only for jobs that sample
            from diffuse_fit.inference.pymc_model import build_model

            model = build_model(binned, priors, likelihood=likelihood)
        for line in binned.summary_lines():
            say(line)
        say(
            f"tables{' and model' if build else ''} built in {time.perf_counter() - t0:.2f} s "
            f"(table accuracy {binned.templates.max_relative_error:.1e} relative)"
        )
        for line in binned.templates.exact_sum_notes():
            say(line)
        record = analysis_record(
            analysis, inputs, prior_spec, components, astro_model, likelihood, binning
        )
        return cls(
            inputs,
            binned,
            priors,
            model,
            str(prior_spec),
            components,
            say,
            likelihood,
            astro_model,
            analysis=record,
        )

    @classmethod
    def load(
        cls,
        inputs: Inputs,
        prior_spec="flat",
        components="workshop",
        say=None,
        likelihood="poisson",
        astro_model="spl",
        analysis=None,
    ) -> PreparedFit:
        """:meth:`prepare` for the many-fit commands: no PyMC model, the global best fit found
        (and said) at once."""
        say = speaker(say)
        t0 = time.perf_counter()
        silent = lambda *a, **k: None  # noqa: E731 (said below, as these jobs say it)
        prepared = cls.prepare(
            inputs,
            prior_spec,
            components,
            silent,
            likelihood,
            astro_model,
            build=False,
            analysis=analysis,
        )
        prepared.say = say
        b = prepared.binned
        for line in [*b.summary_lines(), *b.templates.exact_sum_notes()]:
            say(line)
        best = prepared.best
        say(
            f"tables built and best fit found in {time.perf_counter() - t0:.2f} s: "
            + ", ".join(f"{k}={v:.4g}" for k, v in best.values.items())
            + f", -lnL={best.neg_log_likelihood:.6f}"
        )
        return prepared

    def config(self, **extra) -> dict:
        """What results depend on (the journal's key): inputs' hashes, binning, components,
        priors, the astrophysical spectrum (named only if not ``spl``, so that journals of
        earlier single-power-law runs still resume), and ``extra``."""
        spectrum = {} if self.astro_model == "spl" else {"astro_model": self.astro_model}
        return {
            **spectrum,
            "data_sha256": self.inputs.data.sha256,
            "simulation_sha256": self.inputs.simulation.sha256,
            "binning": self.binned.binning.to_dict(),
            "components": [asdict(c) for c in self.binned.components],
            "priors": {k: p.to_dict() for k, p in self.priors.items()},
            "likelihood": self.likelihood,
            **extra,
        }

    def context(self, config: dict, **extra) -> FitContext:
        return FitContext(
            key=config_digest(config),
            templates=self.binned.templates,
            counts=np.asarray(self.binned.counts, dtype=np.float64),
            priors=self.priors,
            start=dict(self.best.values),
            likelihood=self.likelihood,
            **extra,
        )

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
                raise UsageError(
                    "the model was built from other inputs than the run's "
                    "(its observed counts differ)"
                )
        vectors = [rv.name for rv in model.free_RVs if rv.ndim != 0]
        if vectors:
            raise UsageError(
                f"run_sample reports scalar parameters; {', '.join(vectors)} "
                "are vectors (sample the model with model.sample instead)"
            )
        missing = set(self.names) - {rv.name for rv in model.free_RVs}
        if missing:
            raise UsageError(
                f"the model lacks the parameters {', '.join(sorted(missing))} "
                "that the report's expectations need"
            )
        self.model = model
        self.extension = "" if twin is not None else why

    def sensitive_range(self, map_result: dict) -> tuple[float, float]:
        """The astrophysical flux's sensitive range of true energy (GeV) at the MAP
        (:func:`diffuse_fit.physics.flux.sensitive_energy_range`)."""
        from diffuse_fit.physics.flux import astrophysical_components, sensitive_energy_range

        b = self.binned
        components = astrophysical_components(b.components)  # one, or the segments
        best = b.templates.with_fixed({n: map_result[n] for n in map_result["parameter_order"]})
        weights = sum(c.event_weights(b.simulation, best) for c in components)
        energy = b.simulation[components[0].energy_field]
        return tuple(map(float, sensitive_energy_range(weights, energy, b.sim_bin_index >= 0)))

    @property
    def parameters(self) -> list[str]:
        names = list(self.names)  # the fitted ones (not those held fixed)
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
            fixed=dict(self.binned.templates.fixed) or None,
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
            result = fit_map(self.profile, self.binned.counts)
        if not (result.converged or (allow_bound and result.optimum)):
            raise FitFailed(
                "the MAP fit failed, nothing was written: "
                + "; ".join(result.problems)
                + " (check the inputs: weights, energies and counts)"
            )
        b = self.binned
        names = list(result.values)
        ref = None
        # the workshop fit knows only its 3 parameters and the Poisson likelihood
        if (
            self.components == "workshop"
            and self.likelihood == "poisson"
            and (self.astro_model == "spl")
            and not self.extension  # the workshop's is the unextended model
            and not self.binned.templates.fixed  # and fits all three parameters
            and set(names) == set(reference_fit.PARAMETERS)  # (no per-sample parameters)
        ):
            fit = reference_fit.fit(b.counts, b.simulation, b.sim_bin_index, b.binning.n_bins)
            ref = {
                **fit.as_dict(),
                "neg_log_likelihood": fit.neg_log_likelihood,
                "converged": fit.converged,
                "message": fit.message,
            }
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
            "fixed": dict(self.binned.templates.fixed),
        }
        self.say(format_map(out))
        for problem in result.problems:  # loud even with --quiet
            print(f"WARNING: MAP: {problem}", file=sys.stderr)
        return out


def check_renames(analysis, components) -> list[dict]:
    """Each sample's ``parameters`` (renamed per sample) checked against ``components``:
    :class:`UsageError` naming the key for an unknown or astrophysical parameter."""
    from diffuse_fit.physics.components import parameter_names
    from diffuse_fit.physics.flux import astrophysical_components

    known = set(parameter_names(components))
    astro = {p for c in astrophysical_components(components) for p in c.parameters}
    renames = []
    for s in analysis.samples:
        for name, new in s.parameters.items():
            where = f"samples.{s.name}.parameters.{name}"
            if name not in known:
                raise UsageError(
                    f"{where}: unknown parameter {name!r} (known: {', '.join(sorted(known))})"
                )
            if name in astro:
                raise UsageError(
                    f"{where}: the astrophysical parameters are shared by every "
                    "sample (rename nuisance parameters only)"
                )
            if new in known and new != name:
                raise UsageError(f"{where} = {new!r}: already a parameter of the model")
        renames.append(dict(s.parameters))
    if any(s.parameters for s in analysis.samples) and any(hasattr(c, "terms") for c in components):
        raise UsageError("per-sample parameters with --components hese are not implemented")
    return renames


def _inherited(priors: dict, prior_spec, analysis) -> dict:
    """A named prior set's prior of a parameter for the names samples give it (a parameter
    a set does not name has a flat prior: its renamed copies get the original's instead)."""
    from diffuse_fit.inference.priors import PRIOR_SETS

    if analysis is None or not isinstance(prior_spec, str) or prior_spec not in PRIOR_SETS:
        return priors
    out = dict(priors)
    for s in analysis.samples:
        for name, new in s.parameters.items():
            if new in out and name in PRIOR_SETS[prior_spec]:
                out[new] = PRIOR_SETS[prior_spec][name]
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
    for name, value in (m.get("fixed") or {}).items():
        lines.append(f"  {name:12s} = {value:10.4f} (fixed)")
    which = {"say": " (SAY)"}.get(m.get("likelihood"), "")
    lines.append(f"  -LLH{which} = {m['neg_log_likelihood']:.6f}{workshop('neg_log_likelihood')}")
    return "\n".join(lines)
