"""The MAP in NumPy: the optimisation, its covariance and what is wrong with it.

The MAP is the maximum of ``log p(theta | k)`` without the Jacobian of PyMC's transforms
(the mode of the posterior density in the natural parameters, as ``pm.find_MAP`` finds
it), in PyMC's unconstrained coordinates: Newton's method on the exact Hessian of the tables
where it converges, else L-BFGS-B, started at the workshop's x0 = (1, 6, 2.5).  The objective
is :class:`diffuse_fit.fitting.profile.ProfileFitter`'s (the NumPy twin of the PyMC model's
log-density, tested equal to it), so nothing is compiled and PyMC is not imported:
``diffuse-fit map`` runs on this alone, and :class:`diffuse_fit.inference.map_fit.MapFitter`
wraps it for a PyMC model.  The uncertainties are the inverse Hessian of ``-log p`` in the
natural parameters (as the workshop's ``hess_inv``).  A fit that did not move from the
start, stopped away from an optimum, or whose Hessian leaves parameters unconstrained says
so in :attr:`MapResult.problems` (and gives no errors for the parameters concerned).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import scipy.optimize

from diffuse_fit.binned import reference_fit
from diffuse_fit.fitting.profile import GRADIENT_TOLERANCE, OPTIONS, ProfileFitter, lbfgsb
from diffuse_fit.fitting.profile import covariance_from_hessian as _covariance
from diffuse_fit.physics.parameters import units as parameter_units

X0 = dict(zip(reference_fit.PARAMETERS, reference_fit.X0, strict=True))  # the workshop's start
MAP_OPTIONS = OPTIONS  # the one optimiser's (diffuse_fit.fitting.profile.lbfgsb)
BOUND_TOLERANCE = 1e-9  # relative distance to a support's bound that counts as on it
RUNAWAY = 1e100  # |value| beyond which a parameter has run away (no finite maximum)


def boundary_problems(
    values: Mapping[str, float], supports: Mapping[str, tuple[float, float]]
) -> list[str]:
    """One sentence per parameter of ``values`` that is not finite, beyond :data:`RUNAWAY`,
    or within :data:`BOUND_TOLERANCE` (relative to the bound, or to 1 near 0) of a finite
    bound of its support (``supports``: name -> (low, high); names not in it get only the
    first two checks).  A maximum on a bound is no optimum with a usable curvature: the
    fit is not converged."""
    problems = []
    for name, value in values.items():
        low, high = supports.get(name, (-np.inf, np.inf))
        if not np.isfinite(value) or abs(value) >= RUNAWAY:
            problems.append(
                f"{name} = {value:g} has run away (no finite maximum: check the "
                "inputs' weights and the priors)"
            )
            continue
        for bound in (low, high):
            if np.isfinite(bound) and abs(value - bound) <= BOUND_TOLERANCE * max(1.0, abs(bound)):
                problems.append(
                    f"{name} = {value:g} is on the bound {bound:g} of its prior's "
                    f"support [{low:g}, {high:g}]"
                )
                break
    return problems


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
        The optimizer moved from the start, stopped where the gradient vanishes (max
        ``|d log p / d u|`` below ``GRADIENT_TOLERANCE``, u unconstrained), and nothing is
        wrong with the result: ``problems`` is empty (no parameter on a bound of its
        prior's support or running away, a negative-definite Hessian).
    message : str
        The optimizer's stopping message and the largest gradient component.
    wall_time_s : float
        Seconds for the optimisation and the Hessian.
    problems : list of str
        What is wrong, one sentence each: no convergence, no move from the start, a
        parameter on a bound of its prior's support or beyond :data:`RUNAWAY`
        (:func:`boundary_problems`), a Hessian that is not negative definite, a covariance
        diagonal that is not finite and positive.  Empty for a usable fit.
    unconstrained : list of str
        Parameters the curvature leaves unconstrained (named in ``problems``).
    path : str
        How the MAP was computed: ``"numpy"`` (the exact NumPy twin of the model
        :func:`diffuse_fit.inference.pymc_model.build_model` made, proven identical to it) or
        ``"pymc"`` (PyMC's compiled log-density of the model as the user holds it:
        :mod:`diffuse_fit.inference.map_pymc`).
    path_reason : str
        Why that path (for ``"pymc"``: how the model differs from the builder's).
    optimum : bool or None
        The optimizer's own verdict (moved, gradient vanishes), whatever ``problems`` says;
        ``None``: the same as ``converged``.
    at_bound : list of str
        Parameters on a bound of their prior's support or run away (named in ``problems``).
    """

    values: dict[str, float]
    neg_log_likelihood: float
    covariance: np.ndarray
    converged: bool
    message: str
    wall_time_s: float
    problems: list[str] = field(default_factory=list)
    unconstrained: list[str] = field(default_factory=list)
    path: str = "numpy"
    path_reason: str = ""
    optimum: bool | None = None
    at_bound: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Parameter names, in the order of ``covariance``'s rows."""
        return list(self.values)

    @property
    def units(self) -> dict[str, str]:
        """Parameter -> unit (:mod:`diffuse_fit.physics.parameters`; "" where unknown)."""
        return parameter_units(self.values)

    @property
    def correlation(self) -> np.ndarray:
        """Correlation matrix ``cov_ij / sqrt(cov_ii cov_jj)`` (NaN where undefined)."""
        d = np.sqrt(np.diag(self.covariance))
        with np.errstate(divide="ignore", invalid="ignore"):
            return cast(np.ndarray, self.covariance / np.outer(d, d))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able content: values, errors, units, covariance, correlation, -ln L,
        convergence, path, problems."""
        finite: Callable[[np.ndarray], list[list[float | None]]] = lambda m: [  # noqa: E731
            [float(x) if np.isfinite(x) else None for x in row] for row in m
        ]
        return {
            "values": dict(self.values),
            "errors": self.errors,
            "units": self.units,
            "covariance": finite(self.covariance),
            "correlation": finite(self.correlation),
            "neg_log_likelihood": self.neg_log_likelihood,
            "converged": self.converged,
            "path": self.path,
            "path_reason": self.path_reason,
            "problems": list(self.problems),
            "message": self.message,
        }

    def __str__(self) -> str:
        """A table as iminuit prints one: value, error, unit; then -ln L, path, problems."""
        errors = self.errors
        width = max(len(n) for n in self.values) if self.values else 4
        lines = [
            f"MAP ({'converged' if self.converged else 'NOT converged'}; "
            f"path: {self.path}{f' -- {self.path_reason}' if self.path_reason else ''})"
        ]
        for name, value in self.values.items():
            error = errors[name]
            shown = "(unconstrained)" if error is None else f"+- {error:.4g}"
            lines.append(f"  {name:{width}s} = {value:12.6g} {shown:>16s}  {self.units[name]}")
        lines.append(f"  -ln L = {self.neg_log_likelihood:.6f}")
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython / Jupyter
        printer.text(str(self))

    @property
    def errors(self) -> dict[str, float | None]:
        """One-sigma errors, sqrt of the covariance diagonal (units of each parameter).

        ``None`` (JSON null), never NaN, for a parameter in ``unconstrained`` or
        ``at_bound``, one whose covariance diagonal is not finite and positive, and for every
        parameter when the optimizer stopped away from an optimum (the curvature there is
        no error).
        """
        diag = np.diag(self.covariance)
        optimum = self.converged if self.optimum is None else self.optimum
        bad = set(self.unconstrained) | set(self.at_bound)
        return {
            k: float(np.sqrt(d)) if optimum and k not in bad and np.isfinite(d) and d > 0 else None
            for k, d in zip(self.values, diag, strict=True)
        }


def start(profile: ProfileFitter, x0: Mapping[str, float]) -> np.ndarray:
    """Unconstrained coordinates of the natural start values ``x0`` (parameters it does
    not name start at the middle of their prior's support, or 1 for a norm)."""
    values = {**profile.default_start(), **x0}
    natural_values = np.array([float(values[n]) for n in profile.names])
    return profile.coordinates().unconstrained(natural_values)


def natural(profile: ProfileFitter, u: np.ndarray) -> np.ndarray:
    """Natural parameter values of the unconstrained coordinates ``u``."""
    return profile.coordinates().natural(u)


def _logp_grad_natural(
    profile: ProfileFitter, u: np.ndarray, counts: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """``log p``, its gradient in ``u`` and the natural values at ``u``."""
    x = natural(profile, u)
    if not np.all(np.isfinite(x)):  # a step to NaN: as a compiled graph gives it
        return np.nan, np.full(x.size, np.nan), x
    values = dict(zip(profile.names, x, strict=True))
    logp, grad, _, _ = profile.log_posterior(counts, values, curvature=False)
    grad_u, _ = profile.coordinates().chain(x, grad)
    return logp, grad_u, x


def _newton(
    profile: ProfileFitter, counts: np.ndarray, x0: dict[str, float]
) -> scipy.optimize.OptimizeResult | None:
    """The optimum by Newton's method on the exact Hessian (milliseconds), as an
    ``OptimizeResult``; ``None`` where Newton does not converge (L-BFGS-B then, as
    ``pm.find_MAP``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        best = profile.fit(counts, x0=x0)
    if best.method != "newton" or not best.converged:
        return None
    u = profile.coordinates().unconstrained(np.array([best.values[n] for n in profile.names]))
    return scipy.optimize.OptimizeResult(x=u, success=True, message=best.message.split(" (")[0])


def search_problems(
    values: Mapping[str, float], moved: bool, result: scipy.optimize.OptimizeResult, max_grad: float
) -> tuple[list[str], bool]:
    """What is wrong with an optimizer's end point (``result``: its ``success`` and
    ``message``; ``max_grad``: the largest ``|d log p / d u|`` there), and whether the gradient
    is small.  L-BFGS-B may stop "ABNORMAL" at the float precision floor of tight tolerances:
    an optimum is where the gradient vanishes.  Shared by the NumPy and the PyMC paths."""
    small_gradient = bool(np.isfinite(max_grad) and max_grad < GRADIENT_TOLERANCE)
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
    return problems, small_gradient


def fit_map(
    profile: ProfileFitter, counts: np.ndarray, x0: dict[str, float] | None = None
) -> MapResult:
    """MAP from ``x0`` (default the workshop's (1, 6, 2.5)) of ``counts`` (observed events per
    bin of the whole binning) under ``profile``'s tables, priors and likelihood."""
    t0 = time.perf_counter()
    counts = np.asarray(counts, dtype=np.float64)

    def negative(u: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore"):  # absurd inputs: reported below
            logp, grad, _ = _logp_grad_natural(profile, u, counts)
        return -float(logp), -np.asarray(grad)

    u0 = start(profile, x0 or X0)
    newton = _newton(profile, counts, x0 or X0)
    result = newton or lbfgsb(negative, u0)  # Newton's fallback, from the start
    with np.errstate(over="ignore", invalid="ignore"):
        _, grad, x = _logp_grad_natural(profile, result.x, counts)
    values = dict(zip(profile.names, map(float, x), strict=True))
    max_grad = float(np.max(np.abs(grad)))
    moved = bool(np.max(np.abs(result.x - u0)) > 1e-12)
    problems, small_gradient = search_problems(values, moved, result, max_grad)
    on_bound = boundary_problems(values, {n: p.support() for n, p in profile.priors.items()})
    problems += on_bound
    with np.errstate(over="ignore", invalid="ignore"):
        _, _, hessian, loglike = profile.log_posterior(counts, values)
    covariance, curvature_problems, unconstrained = _covariance(profile.names, hessian)
    problems += curvature_problems
    return MapResult(
        values=values,
        neg_log_likelihood=-float(loglike),
        covariance=covariance,
        converged=moved and (bool(result.success) or small_gradient) and not problems,
        optimum=moved and (bool(result.success) or small_gradient),
        message=(
            f"{result.message} (max |gradient| {max_grad:.1e})"
            if result.success or not small_gradient
            else f"optimum reached at float precision (max |gradient| {max_grad:.1e}; "
            f"L-BFGS-B line search stopped: {result.message.strip()})"
        ),
        wall_time_s=time.perf_counter() - t0,
        problems=problems,
        unconstrained=unconstrained,
        at_bound=[n for n in values if any(p.startswith(f"{n} = ") for p in on_bound)],
    )
