"""MAP and NUTS on the model of :mod:`model.pymc_model`, with diagnostics.

The MAP is ``pm.find_MAP`` (L-BFGS-B in PyMC's unconstrained space, without the
Jacobian, so the mode is that of the posterior density in the natural parameters),
started at the workshop's x0 = (1, 6, 2.5).  Its uncertainties are the inverse
Hessian of ``-log p`` in the natural parameters (as the workshop's ``hess_inv``).
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass

import arviz as az
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import graph_replace

X0 = {"atmos_norm": 1.0, "astro_norm": 6.0, "astro_gamma": 2.5}
MAP_OPTIONS = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000}

# Convergence requirements of a run (the acceptance criteria)
MAX_RHAT = 1.01
MIN_ESS_BULK = 400
MAX_DIVERGENCES = 0


@dataclass(frozen=True)
class MapResult:
    """MAP point and its curvature.

    Attributes
    ----------
    values : dict
        Parameter -> MAP value (natural units: norms dimensionless, gamma).
    neg_log_likelihood : float
        ``-sum_b [k_b log lam_b - lam_b - lgamma(k_b + 1)]`` at the MAP (no prior terms).
    covariance : ndarray (n, n)
        Inverse Hessian of ``-log p(theta | data)`` in the natural parameters.
    converged : bool
    message : str
    wall_time_s : float
    """

    values: dict
    neg_log_likelihood: float
    covariance: np.ndarray
    converged: bool
    message: str
    wall_time_s: float

    @property
    def errors(self) -> dict:
        """One-sigma errors from the covariance diagonal (NaN where it is not positive)."""
        diag = np.diag(self.covariance)
        return {
            k: float(np.sqrt(d)) if d > 0 else float("nan")
            for k, d in zip(self.values, diag, strict=True)
        }


def free_parameter_names(model: pm.Model) -> list[str]:
    return [rv.name for rv in model.free_RVs]


def _natural_logp_functions(model: pm.Model):
    """Compiled ``log p`` (jacobian-free) and its Hessian, and ``log L``, of a vector of
    natural parameter values (the free variables in model order)."""
    theta = pt.vector("theta")
    replacements = {}
    for i, rv in enumerate(model.free_RVs):
        value = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms.get(rv)
        natural = theta[i]
        replacements[value] = (
            transform.forward(natural, *rv.owner.inputs) if transform is not None else natural
        )
    logp = graph_replace(model.logp(jacobian=False), replacements, strict=False)
    loglike = graph_replace(model.logp(vars=model.observed_RVs), replacements, strict=False)
    gradient = pytensor.grad(logp, theta)
    n = len(model.free_RVs)
    hessian = pt.stack([pytensor.grad(gradient[i], theta) for i in range(n)])  # small n: no scan
    return pytensor.function([theta], [logp, hessian, loglike])


def find_map(model: pm.Model, x0: dict | None = None) -> MapResult:
    """MAP of ``model`` from ``x0`` (default the workshop's (1, 6, 2.5)), with covariance."""
    names = free_parameter_names(model)
    start = {k: v for k, v in (x0 or X0).items() if k in names}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # progressbar=False still warns when the output is not a terminal; nothing to act on
        warnings.simplefilter("ignore", UserWarning)
        result = pm.find_MAP(
            initvals=start, return_inferencedata=True, jitter=False, progressbar=False,
            model=model, options=MAP_OPTIONS,
        )  # fmt: skip
    optimizer = result["optimizer_result"]
    values = {n: float(result.posterior[n].values.squeeze()) for n in names}
    fn = _natural_logp_functions(model)
    _, hessian, loglike = fn(np.array([values[n] for n in names]))
    try:
        covariance = np.linalg.inv(-hessian)
    except np.linalg.LinAlgError:
        covariance = np.full_like(hessian, np.nan)
    return MapResult(
        values=values,
        neg_log_likelihood=-float(loglike),
        covariance=covariance,
        converged=bool(optimizer["success"].values),
        message=str(optimizer["message"].values),
        wall_time_s=time.perf_counter() - t0,
    )


def nutpie_available() -> bool:
    return importlib.util.find_spec("nutpie") is not None


@dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings: ``sampler`` "auto" takes nutpie when installed, else PyMC's NUTS."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = 1
    target_accept: float = 0.95
    sampler: str = "auto"

    def resolved_sampler(self) -> str:
        if self.sampler == "auto":
            return "nutpie" if nutpie_available() else "pymc"
        return self.sampler

    def to_dict(self) -> dict:
        return {
            "draws": self.draws, "tune": self.tune, "chains": self.chains, "seed": self.seed,
            "target_accept": self.target_accept, "sampler": self.resolved_sampler(),
        }  # fmt: skip


def sample(model: pm.Model, settings: SamplerSettings, progressbar: bool = True):
    """NUTS posterior of ``model`` as an ArviZ DataTree (seeded: reruns are identical)."""
    sampler = settings.resolved_sampler()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fork()/terminal notices, not results
        warnings.simplefilter("ignore", RuntimeWarning)
        return pm.sample(
            draws=settings.draws, tune=settings.tune, chains=settings.chains,
            random_seed=settings.seed, nuts_sampler=sampler, progressbar=progressbar,
            nuts={"target_accept": settings.target_accept}, model=model,
            compute_convergence_checks=False,
        )  # fmt: skip


def summary_table(idata, var_names):
    """ArviZ summary (mean, sd, 94% HDI, MCSE, ESS, R-hat) as a pandas DataFrame."""
    return az.summary(idata, var_names=var_names, ci_kind="hdi", ci_prob=0.94, round_to="none")


def diagnostics(idata, var_names) -> dict:
    """Divergences, worst R-hat and bulk ESS, and whether the run meets the requirements."""
    table = summary_table(idata, var_names)
    divergences = int(idata.sample_stats["diverging"].sum())
    worst_rhat = float(table["r_hat"].max())
    min_ess = float(table["ess_bulk"].min())
    problems = []
    if divergences > MAX_DIVERGENCES:
        problems.append(f"{divergences} divergent transitions (required: 0)")
    if not worst_rhat <= MAX_RHAT:
        problems.append(f"max R-hat {worst_rhat:.4f} > {MAX_RHAT}")
    if not min_ess >= MIN_ESS_BULK:
        problems.append(f"min bulk ESS {min_ess:.0f} < {MIN_ESS_BULK}")
    return {
        "divergences": divergences,
        "max_r_hat": worst_rhat,
        "min_ess_bulk": min_ess,
        "passed": not problems,
        "problems": problems,
    }
