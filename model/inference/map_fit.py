"""The MAP of the model of :mod:`model.inference.pymc_model`, with its covariance.

The MAP is found as ``pm.find_MAP`` finds it (L-BFGS-B in PyMC's unconstrained space,
without the Jacobian, so the mode is that of the posterior density in the natural
parameters), started at the workshop's x0 = (1, 6, 2.5), by :class:`MapFitter`, which
compiles nothing (the model's exact NumPy twin) and refits new counts in milliseconds (tests check it against
``pm.find_MAP`` and the workshop's scipy fit).  Its uncertainties are the inverse
Hessian of ``-log p`` in the natural parameters (as the workshop's ``hess_inv``).
A fit that did not move from the start, stopped away from an optimum, or whose Hessian
leaves parameters unconstrained says so in :attr:`MapResult.problems` (and gives no
errors for the parameters concerned) instead of passing for a converged fit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import scipy.optimize

from model.binned import reference_fit
from model.inference.profile import GRADIENT_TOLERANCE, ProfileFitter
from model.inference.profile import covariance_from_hessian as _covariance
from model.inference.pymc_model import numpy_twin

X0 = dict(zip(reference_fit.PARAMETERS, reference_fit.X0, strict=True))  # the workshop's start
MAP_OPTIONS = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000}


@dataclass(frozen=True)
class MapResult:
    """MAP point, its curvature, and what is wrong with it (if anything).

    Attributes
    ----------
    values : dict
        Parameter -> MAP value (natural units: norms dimensionless, gamma).
    neg_log_likelihood : float
        ``-sum_b [k_b log lam_b - lam_b - lgamma(k_b + 1)]`` at the MAP (no prior terms).
    covariance : ndarray (n, n)
        Inverse Hessian of ``-log p(theta | data)`` in the natural parameters (NaN where
        the Hessian cannot be inverted).
    converged : bool
        The optimizer moved from the start and stopped where the gradient vanishes
        (max ``|d log p / d u|`` below ``GRADIENT_TOLERANCE``, u unconstrained).
    message : str
        The optimizer's stopping message and the largest gradient component.
    wall_time_s : float
        Seconds for the optimisation and the Hessian.
    problems : list of str
        What is wrong, one sentence each: no convergence, no move from the start, a
        Hessian that is not negative definite, a covariance diagonal that is not finite
        and positive.  Empty for a usable fit.
    unconstrained : list of str
        Parameters the curvature leaves unconstrained (named in ``problems``).
    """

    values: dict
    neg_log_likelihood: float
    covariance: np.ndarray
    converged: bool
    message: str
    wall_time_s: float
    problems: list[str] = field(default_factory=list)
    unconstrained: list[str] = field(default_factory=list)

    @property
    def errors(self) -> dict:
        """One-sigma errors, sqrt of the covariance diagonal (units of each parameter).

        ``None`` (JSON null), never NaN, for a parameter in ``unconstrained``, one whose
        covariance diagonal is not finite and positive, and for every parameter when the
        fit did not converge (the curvature away from an optimum is no error).
        """
        diag = np.diag(self.covariance)
        return {
            k: float(np.sqrt(d))
            if self.converged and k not in self.unconstrained and np.isfinite(d) and d > 0
            else None
            for k, d in zip(self.values, diag, strict=True)
        }


def free_parameter_names(model: pm.Model) -> list[str]:
    return [rv.name for rv in model.free_RVs]


class MapFitter:
    """The MAP of a model, refitted for every new set of counts without compiling anything.

    Maximises ``log p(theta | k)`` (without the Jacobian of PyMC's transforms, so the mode
    is that of the density in the natural parameters) in PyMC's unconstrained coordinates
    (log for norms, logit for bounded indices): by Newton's method on the exact Hessian
    where it converges (a few steps), else by L-BFGS-B as ``pm.find_MAP``.  The
    log-density, its gradient and the natural-parameter Hessian are the model's exact NumPy
    twin (:class:`model.inference.pymc_model.NumpyTwin`, the objective of
    :class:`model.inference.profile.ProfileFitter`; tests check it equals PyMC's compiled
    ``logp`` and ``dlogp``), so building a fitter costs nothing and, after
    :func:`model.inference.pymc_model.set_counts`, a new dataset or pseudo-experiment costs
    one optimisation (milliseconds).
    """

    def __init__(self, model: pm.Model):
        self.model = model
        self.names = free_parameter_names(model)
        self._twin = numpy_twin(model)
        priors = {n: self._twin.priors[n] for n in self.names}
        self._objective = ProfileFitter(self._twin.templates, priors, self._twin.bins,
                                        likelihood=self._twin.likelihood)  # fmt: skip
        self._transforms = [self._objective.transforms[n] for n in self.names]

    def start(self, x0: dict) -> np.ndarray:
        """Unconstrained coordinates of the natural start values ``x0`` (parameters it does
        not name start at the middle of their prior's support, or 1 for a norm)."""
        values = {**self._objective.default_start(), **x0}
        return np.array([t.to_unconstrained(float(values[n]))
                         for n, t in zip(self.names, self._transforms, strict=True)])  # fmt: skip

    def natural(self, u: np.ndarray) -> np.ndarray:
        """Natural parameter values of the unconstrained coordinates ``u``."""
        return np.array([t.to_natural(float(x)) for t, x in zip(self._transforms, u, strict=True)])

    def _newton(self, counts: np.ndarray, x0: dict):
        """The optimum by Newton's method on the exact Hessian (milliseconds), as an
        ``OptimizeResult``; ``None`` where Newton does not converge (L-BFGS-B then, as
        ``pm.find_MAP``)."""
        with np.errstate(over="ignore", invalid="ignore"):
            best = self._objective.fit(counts, x0=x0)
        if best.method != "newton" or not best.converged:
            return None
        u = np.array([t.to_unconstrained(best.values[n])
                      for n, t in zip(self.names, self._transforms, strict=True)])  # fmt: skip
        return scipy.optimize.OptimizeResult(x=u, success=True, message=best.message.split(" (")[0])

    def _logp_grad_natural(self, u: np.ndarray, counts: np.ndarray):
        """``log p``, its gradient in ``u`` and the natural values at ``u``."""
        natural = self.natural(u)
        if not np.all(np.isfinite(natural)):  # a step to NaN: as a compiled graph gives it
            return np.nan, np.full(natural.size, np.nan), natural
        values = dict(zip(self.names, natural, strict=True))
        logp, grad, _, _ = self._objective.log_posterior(counts, values)
        derivative = [t.derivative(x) for t, x in zip(self._transforms, natural, strict=True)]
        return logp, grad * np.asarray(derivative), natural

    def fit(self, x0: dict | None = None) -> MapResult:
        """MAP from ``x0`` (default the workshop's (1, 6, 2.5)) for the model's current counts."""
        t0 = time.perf_counter()
        counts = self._twin.full_counts(self.model)

        def negative(u):
            with np.errstate(over="ignore", invalid="ignore"):  # absurd inputs: reported below
                logp, grad, _ = self._logp_grad_natural(u, counts)
            return -float(logp), -np.asarray(grad)

        u0 = self.start(x0 or X0)
        newton = self._newton(counts, x0 or X0)
        result = newton or scipy.optimize.minimize(
            negative, u0, jac=True, method="L-BFGS-B", options=MAP_OPTIONS
        )
        with np.errstate(over="ignore", invalid="ignore"):
            _, grad, natural = self._logp_grad_natural(result.x, counts)
        values = dict(zip(self.names, map(float, natural), strict=True))
        # L-BFGS-B may stop "ABNORMAL" at the float precision floor of tight tolerances:
        # an optimum is where the gradient vanishes
        max_grad = float(np.max(np.abs(grad)))
        small_gradient = bool(np.isfinite(max_grad) and max_grad < GRADIENT_TOLERANCE)
        moved = bool(np.max(np.abs(result.x - u0)) > 1e-12)
        problems = []
        if not moved:
            problems.append(
                "the optimizer did not move from the start values "
                + ", ".join(f"{n}={v:g}" for n, v in values.items())
            )
        if not (result.success or small_gradient):
            problems.append(
                f"the optimizer stopped away from an optimum (max |gradient| {max_grad:.1e} "
                f">= {GRADIENT_TOLERANCE:g}): {result.message.strip()}"
            )
        loglike, hessian = self._twin.curvature(self.model, values)
        covariance, curvature_problems, unconstrained = _covariance(self.names, hessian)
        problems += curvature_problems
        return MapResult(
            values=values,
            neg_log_likelihood=-float(loglike),
            covariance=covariance,
            converged=moved and (bool(result.success) or small_gradient),
            message=(
                f"{result.message} (max |gradient| {max_grad:.1e})"
                if result.success or not small_gradient
                else f"optimum reached at float precision (max |gradient| {max_grad:.1e}; "
                f"L-BFGS-B line search stopped: {result.message.strip()})"
            ),
            wall_time_s=time.perf_counter() - t0,
            problems=problems,
            unconstrained=unconstrained,
        )


def find_map(model: pm.Model, x0: dict | None = None) -> MapResult:
    """MAP of ``model`` from ``x0``, with covariance (compiles; reuse a :class:`MapFitter`
    to fit many datasets)."""
    return MapFitter(model).fit(x0)
