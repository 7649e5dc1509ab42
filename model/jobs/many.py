"""What the many-fit commands (scan, toys, sbc) share: tables, priors, context, best fit."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from diffuse_fit.binned.dataset import BinnedDataset, bin_dataset
from diffuse_fit.errors import FitFailed, UsageError
from diffuse_fit.inference.map_core import X0
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.profile import Fit, ProfileFitter
from diffuse_fit.io.journal import config_digest
from diffuse_fit.jobs.inputs import Inputs, analysis_record, component_set, sample_binning
from diffuse_fit.jobs.provenance import record
from diffuse_fit.jobs.tasks import FitContext
from diffuse_fit.physics.components import parameter_supports


@dataclass
class Prepared:
    """Inputs binned, priors resolved, the NumPy fitter and the global best fit."""

    inputs: Inputs
    binned: BinnedDataset
    priors: dict
    prior_spec: str
    components: str
    profile: ProfileFitter
    best: Fit
    likelihood: str = "poisson"
    astro_model: str = "spl"
    analysis: dict | None = None  # the specification it ran (recorded)

    @property
    def names(self) -> list[str]:
        return list(self.priors)

    @classmethod
    def load(cls, inputs: Inputs, prior_spec="flat", components="workshop", say=print,
             likelihood="poisson", astro_model="spl", analysis=None):  # fmt: skip
        """``analysis``: the specification the other arguments came from (its binning)."""
        t0 = time.perf_counter()
        chosen = component_set(components, astro_model, likelihood)
        binning = sample_binning(analysis.samples[0]) if analysis is not None else None
        binned = bin_dataset(inputs.data, inputs.simulation, components=chosen,
                             binning=binning, variance=likelihood == "say")  # fmt: skip
        priors = resolve_priors(prior_spec, parameter_supports(binned.components))
        for line in [*binned.summary_lines(), *binned.templates.exact_sum_notes()]:
            say(line)
        profile = ProfileFitter(binned.templates, priors, likelihood=likelihood)
        best = profile.fit(binned.counts, x0=X0)  # the workshop's start
        if not best.converged:
            raise FitFailed(f"the best fit of the data failed: {best.message}")
        say(f"tables built and best fit found in {time.perf_counter() - t0:.2f} s: "
            + ", ".join(f"{k}={v:.4g}" for k, v in best.values.items())
            + f", -lnL={best.neg_log_likelihood:.6f}")  # fmt: skip
        record = analysis_record(analysis, inputs, prior_spec, components, astro_model,
                                 likelihood, binning)  # fmt: skip
        return cls(inputs, binned, priors, str(prior_spec), components, profile, best, likelihood,
                   astro_model, record)  # fmt: skip

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
        return FitContext(key=config_digest(config), templates=self.binned.templates,
                          counts=np.asarray(self.binned.counts, dtype=np.float64),
                          priors=self.priors, start=dict(self.best.values),
                          likelihood=self.likelihood, **extra)  # fmt: skip

    def provenance(self, **extra) -> dict:
        return record(
            inputs=self.inputs.description, input_spec=self.inputs.spec,
            truth=self.inputs.truth, priors={k: p.to_dict() for k, p in self.priors.items()},
            prior_set=self.prior_spec, components=self.components, astro_model=self.astro_model,
            parameters=self.names,
            likelihood=self.likelihood, analysis=self.analysis,
            **self.binned.provenance(), **extra,
        )  # fmt: skip


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
            raise UsageError(f"{what}: {name}={value:g} is outside its prior's support "
                             f"[{lo:g}, {hi:g}] ({priors[name]})")  # fmt: skip
