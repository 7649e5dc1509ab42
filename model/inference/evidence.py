"""Bayesian evidence (log marginal likelihood) of a model by PyMC's sequential Monte Carlo.

``log Z = log integral L(k | theta) pi(theta) dtheta``, in natural-log units, where ``L`` is
the model's full observation density: for the Poisson likelihood
``sum_b k_b ln mu_b - mu_b - lnGamma(k_b + 1)`` *with* the ``-lnGamma(k_b + 1)`` terms
(:func:`diffuse_fit.inference.pymc_model.poisson_logp`; the SAY likelihood likewise keeps its
constants), and ``pi`` the priors the model was built with, normalised as PyMC's
log-densities.  Evidences of models of the *same* counts can therefore be compared directly:
``ln B = log Z_a - log Z_b`` (:func:`bayes_factor`).  The priors must be proper (an improper
prior makes ``Z`` arbitrary): ``HalfFlat`` priors are refused.

``pm.sample_smc`` runs ``runs`` independent SMC populations of ``draws`` particles each
(PyMC's "chains"), tempering from the prior (beta = 0) to the posterior (beta = 1); each
population's product of the stages' mean importance weights is an unbiased estimate of ``Z``
and its log is one entry of :attr:`Evidence.log_z_runs`.  PyMC 6.4 stores these in
``sample_stats["log_marginal_likelihood"]`` per chain *and stage*: an object array
(chain, stage) that is NaN at every stage but the last (beta = 1), or, when the populations
needed different numbers of stages, one list per chain; with one chain a float vector whose
stage axis is labelled ``chain``.  :func:`final_stage_values` reads the last finite value of
each chain from any of these.

The runs are sampled one after the other in this process (``cores=1``): on two cores
PyMC's worker processes were no faster, and the result is the same either way for a seed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
from scipy.special import logsumexp

from diffuse_fit.errors import FitFailed, UsageError
from diffuse_fit.inference.exact_float import exact_float
from diffuse_fit.inference.notices import ignore_object_mode_notice
from diffuse_fit.inference.pymc_model import numpy_twin


@dataclass(frozen=True)
class Evidence:
    """The evidence of a model from independent SMC runs (natural-log units).

    Attributes
    ----------
    log_z_runs : tuple of float
        ``log Z`` of each run (its final-stage estimate).
    log_z : float
        ``log`` of the mean of the runs' ``Z`` (``logsumexp(log_z_runs) - log(runs)``): each
        run's ``Z`` is unbiased, so is their mean (the mean of the logs would be biased low by
        about ``spread**2 / 2``; the two differ by much less than ``standard_error`` when
        ``spread`` is well below 1, and a larger spread means more ``draws`` are needed).
    spread : float
        Standard deviation of ``log_z_runs`` (ddof=1).
    standard_error : float
        ``spread / sqrt(runs)``: the standard error of ``log_z``.
    draws, runs, seed : int
        Particles per run, number of runs, the seed of :func:`log_evidence`.
    posterior : DataTree or None
        The SMC posterior (``runs`` chains of ``draws``); not part of :meth:`to_dict`.
    """

    log_z_runs: tuple
    log_z: float
    spread: float
    standard_error: float
    draws: int
    runs: int
    seed: int
    posterior: object = field(default=None, repr=False, compare=False)

    @classmethod
    def from_runs(cls, log_z_runs, *, draws: int, seed: int, posterior=None) -> Evidence:
        """The :class:`Evidence` of two or more runs' ``log Z`` values."""
        values = np.asarray(log_z_runs, dtype=np.float64)
        runs = values.size
        if runs < 2:
            raise UsageError(f"the evidence needs at least 2 runs for its spread, not {runs}")
        spread = float(np.std(values, ddof=1))
        return cls(
            log_z_runs=tuple(float(v) for v in values),
            log_z=float(logsumexp(values) - math.log(runs)),
            spread=spread,
            standard_error=spread / math.sqrt(runs),
            draws=int(draws),
            runs=runs,
            seed=int(seed),
            posterior=posterior,
        )

    def to_dict(self) -> dict:
        """JSON-able summary (without the posterior)."""
        return {
            "log_z": self.log_z,
            "standard_error": self.standard_error,
            "spread": self.spread,
            "log_z_runs": list(self.log_z_runs),
            "runs": self.runs,
            "draws": self.draws,
            "seed": self.seed,
            "estimator": "log of the mean of the runs' Z (SMC)",
        }


def bayes_factor(a: Evidence, b: Evidence) -> dict:
    """``ln B_ab = log Z_a - log Z_b`` (natural log; > 0 favours ``a``) and its standard error
    ``sqrt(se_a^2 + se_b^2)`` (independent runs)."""
    return {
        "log_bf": a.log_z - b.log_z,
        "standard_error": math.hypot(a.standard_error, b.standard_error),
    }


def check_proper(model: pm.Model) -> None:
    """:class:`UsageError` (one line) naming the free parameters of ``model`` (built by
    :func:`diffuse_fit.inference.pymc_model.build_model`) whose prior is improper."""
    priors = numpy_twin(model).priors
    improper = [
        f"{rv.name} ({priors[rv.name]})" for rv in model.free_RVs if not priors[rv.name].proper
    ]
    if improper:
        raise UsageError(
            f"the evidence needs proper priors; improper: {', '.join(improper)} "
            "(use --prior default or a file)"
        )


def log_evidence(
    model: pm.Model, *, runs: int = 4, draws: int = 2000, seed: int, progressbar: bool = False
) -> Evidence:
    """The evidence ``log Z`` of ``model`` (made by
    :func:`diffuse_fit.inference.pymc_model.build_model`, for its current counts) from ``runs``
    independent SMC runs of ``draws`` particles, seeded (the same seed gives the same runs).

    The priors are the ones the model was built with (kept on the model); improper ones are
    refused (:class:`UsageError`), as are ``runs < 2`` and ``draws < 10``.
    :class:`FitFailed` if a run ends without a finite estimate.
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 2:
        raise UsageError(f"the evidence needs at least 2 runs for its spread, not {runs!r}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 10:
        raise UsageError(f"the evidence needs at least 10 draws per run, not {draws!r}")
    check_proper(model)
    with _quiet_smc(), exact_float():
        idata = pm.sample_smc(
            draws=draws,
            chains=runs,
            cores=1,
            random_seed=seed,
            model=model,
            progressbar=progressbar,
            compute_convergence_checks=False,
        )
    values = final_stage_values(idata.sample_stats["log_marginal_likelihood"].values, runs)
    if not np.all(np.isfinite(values)):
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        raise FitFailed(f"SMC run(s) {bad} ended without a finite log marginal likelihood")
    return Evidence.from_runs(values, draws=draws, seed=seed, posterior=idata)


def final_stage_values(stored, runs: int) -> np.ndarray:
    """The last finite stage value of each of ``runs`` chains in PyMC's
    ``sample_stats["log_marginal_likelihood"]`` (module doc: (chain, stage) objects, one
    list per chain, or with one chain the stages alone); NaN for a chain without one."""
    stored = np.asarray(stored, dtype=object)
    per_chain = [stored] if runs == 1 else list(stored)
    if len(per_chain) != runs:
        raise ValueError(f"expected {runs} chains of stage values, got {len(per_chain)}")
    out = np.full(runs, np.nan)
    for i, stages in enumerate(per_chain):
        stages = np.asarray(stages, dtype=np.float64).ravel()
        finite = stages[np.isfinite(stages)]
        if finite.size:
            out[i] = finite[-1]
    return out


@contextlib.contextmanager
def _quiet_smc():
    """Silence SMC's log notices ("Initializing SMC sampler...", "Sampling 4 chains
    sequentially") and pytensor's object-mode notice; numerical warnings stay visible (the
    results are also checked for finiteness)."""
    logger = logging.getLogger("pymc.smc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            ignore_object_mode_notice()
            yield
    finally:
        logger.setLevel(level)
