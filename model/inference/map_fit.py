"""The MAP of the model of :mod:`model.inference.pymc_model`, compiled once, with its covariance.

The MAP is found as ``pm.find_MAP`` finds it (L-BFGS-B in PyMC's unconstrained space,
without the Jacobian, so the mode is that of the posterior density in the natural
parameters), started at the workshop's x0 = (1, 6, 2.5), by :class:`MapFitter`, which
compiles once and refits new counts in milliseconds (tests check it against
``pm.find_MAP`` and the workshop's scipy fit).  Its uncertainties are the inverse
Hessian of ``-log p`` in the natural parameters (as the workshop's ``hess_inv``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import scipy.optimize
from pymc.initial_point import make_initial_point_fn
from pytensor.graph.replace import graph_replace

from model.binned import reference_fit

X0 = dict(zip(reference_fit.PARAMETERS, reference_fit.X0, strict=True))  # the workshop's start
MAP_OPTIONS = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000}
GRADIENT_TOLERANCE = 1e-5  # max |d log p / d u| at an accepted optimum (u unconstrained)


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


class MapFitter:
    """The MAP of a model, compiled once and refitted for every new set of counts.

    Optimises ``log p(theta | k)`` (without the Jacobian of PyMC's transforms, so the mode
    is that of the density in the natural parameters) by L-BFGS-B in PyMC's unconstrained
    space, as ``pm.find_MAP`` does, but the log-density, its gradient, the back-transform
    and the natural-parameter Hessian are compiled in ``__init__`` only: after
    :func:`model.pymc_model.set_counts` a new dataset or pseudo-experiment costs one
    optimisation (milliseconds), not a recompilation (seconds).
    """

    def __init__(self, model: pm.Model):
        self.model = model
        self.names = free_parameter_names(model)
        u = pt.vector("u")
        unconstrained = {v: u[i] for i, v in enumerate(model.value_vars)}
        logp = graph_replace(model.logp(jacobian=False), unconstrained, strict=False)
        natural = pt.stack(model.replace_rvs_by_values(model.free_RVs))
        natural = graph_replace(natural, unconstrained, strict=False)
        self._logp_grad_natural = pytensor.function([u], [logp, pytensor.grad(logp, u), natural])
        self._curvature = _natural_logp_functions(model)

    def start(self, x0: dict) -> np.ndarray:
        """Unconstrained coordinates of the natural start values ``x0``."""
        overrides = {k: np.float64(v) for k, v in x0.items() if k in self.names}
        point = make_initial_point_fn(model=self.model, overrides=overrides, jitter_rvs=set())(0)
        return np.array([point[v.name] for v in self.model.value_vars], dtype=np.float64)

    def fit(self, x0: dict | None = None) -> MapResult:
        """MAP from ``x0`` (default the workshop's (1, 6, 2.5)) for the model's current counts."""
        t0 = time.perf_counter()

        def negative(u):
            logp, grad, _ = self._logp_grad_natural(u)
            return -float(logp), -np.asarray(grad)

        result = scipy.optimize.minimize(
            negative, self.start(x0 or X0), jac=True, method="L-BFGS-B", options=MAP_OPTIONS
        )
        _, grad, natural = self._logp_grad_natural(result.x)
        values = dict(zip(self.names, map(float, natural), strict=True))
        # L-BFGS-B may stop "ABNORMAL" at the float precision floor of tight tolerances:
        # an optimum is where the gradient vanishes
        max_grad = float(np.max(np.abs(grad)))
        _, hessian, loglike = self._curvature(np.array([values[n] for n in self.names]))
        try:
            covariance = np.linalg.inv(-hessian)
        except np.linalg.LinAlgError:
            covariance = np.full_like(hessian, np.nan)
        return MapResult(
            values=values,
            neg_log_likelihood=-float(loglike),
            covariance=covariance,
            converged=bool(result.success) or max_grad < GRADIENT_TOLERANCE,
            message=(
                f"{result.message} (max |gradient| {max_grad:.1e})"
                if result.success or max_grad >= GRADIENT_TOLERANCE
                else f"optimum reached at float precision (max |gradient| {max_grad:.1e}; "
                f"L-BFGS-B line search stopped: {result.message.strip()})"
            ),
            wall_time_s=time.perf_counter() - t0,
        )


def _natural_logp_functions(model: pm.Model):
    """Compiled ``log p`` (jacobian-free), its Hessian, and ``log L``, of a vector of
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
    """MAP of ``model`` from ``x0``, with covariance (compiles; reuse a :class:`MapFitter`
    to fit many datasets)."""
    return MapFitter(model).fit(x0)
