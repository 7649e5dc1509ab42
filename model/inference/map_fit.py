"""The MAP of the model of :mod:`model.inference.pymc_model`, compiled once, with its covariance.

The MAP is found as ``pm.find_MAP`` finds it (L-BFGS-B in PyMC's unconstrained space,
without the Jacobian, so the mode is that of the posterior density in the natural
parameters), started at the workshop's x0 = (1, 6, 2.5), by :class:`MapFitter`, which
compiles once and refits new counts in milliseconds (tests check it against
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
import pytensor
import pytensor.tensor as pt
import scipy.optimize
from pymc.initial_point import make_initial_point_fn
from pytensor.graph.replace import graph_replace

from model.binned import reference_fit
from model.inference.profile import GRADIENT_TOLERANCE
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
    """The MAP of a model, compiled once and refitted for every new set of counts.

    Optimises ``log p(theta | k)`` (without the Jacobian of PyMC's transforms, so the mode
    is that of the density in the natural parameters) by L-BFGS-B in PyMC's unconstrained
    space, as ``pm.find_MAP`` does, but the log-density, its gradient and the back-transform
    are compiled in ``__init__`` only, and the natural-parameter Hessian is the model's exact
    NumPy twin (:class:`model.inference.pymc_model.NumpyTwin`, no compilation): after
    :func:`model.inference.pymc_model.set_counts` a new dataset or pseudo-experiment costs one
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
        self._twin = numpy_twin(model)  # exact Hessian in NumPy: nothing more to compile
        self._starts: dict[tuple, np.ndarray] = {}

    def start(self, x0: dict) -> np.ndarray:
        """Unconstrained coordinates of the natural start values ``x0`` (computed once per
        ``x0``: PyMC builds a function for it, which would cost more than a refit)."""
        overrides = {k: float(v) for k, v in x0.items() if k in self.names}
        key = tuple(sorted(overrides.items()))
        if key not in self._starts:
            point = make_initial_point_fn(
                model=self.model, overrides={k: np.float64(v) for k, v in key}, jitter_rvs=set()
            )(0)
            self._starts[key] = np.array(
                [point[v.name] for v in self.model.value_vars], dtype=np.float64
            )
        return self._starts[key].copy()

    def fit(self, x0: dict | None = None) -> MapResult:
        """MAP from ``x0`` (default the workshop's (1, 6, 2.5)) for the model's current counts."""
        t0 = time.perf_counter()

        def negative(u):
            logp, grad, _ = self._logp_grad_natural(u)
            return -float(logp), -np.asarray(grad)

        u0 = self.start(x0 or X0)
        result = scipy.optimize.minimize(
            negative, u0, jac=True, method="L-BFGS-B", options=MAP_OPTIONS
        )
        _, grad, natural = self._logp_grad_natural(result.x)
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
