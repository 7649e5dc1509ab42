"""Profile likelihood in NumPy: fits with some parameters fixed, profile intervals, scans.

The objective is the model's log-density in the natural parameters without the Jacobian
of PyMC's transforms (what :class:`diffuse_fit.inference.map_fit.MapFitter` maximises)::

    log p(theta | k) = ln L(theta) + sum_i log pi_i(theta_i),
    ln L = sum_b k_b ln lam_b - lam_b - lgamma(k_b + 1)      (or SAY's ln L)

with ``lam_b`` from the per-bin tables and ``ln L``, its gradient and Hessian from
:mod:`diffuse_fit.binned.likelihoods` (exact, microseconds), and the priors'
log-densities from :class:`diffuse_fit.inference.priors.Prior` (NumPy twins of PyMC's).  With
flat priors ``log p`` is ``ln L`` up to a constant, the fit is the maximum-likelihood fit
and ``ts = -2 (log p(theta) - log p(best))`` is the profile-likelihood test statistic;
a non-flat prior adds its log-density (a penalised profile).

Parameters are optimised, as PyMC does, in unconstrained coordinates: ``x = lo + e^u``
on ``[lo, inf)``, ``x = lo + (hi - lo) / (1 + e^-u)`` on ``[lo, hi]`` (the prior's
support), by Newton's method on the exact Hessian (L-BFGS-B where it fails).  A maximum on
a bound (a norm at 0) or on a kink (the release's anisotropy tables are linear in their
parameter between knots, one of them at the nominal value) stalls Newton's method, which
crawls towards it; the parameter is then held there, and the fit of the rest kept, if log p
rises into that point (from both sides at a kink: ``tests/test_detector.py`` checks such fits
against SciPy's bounded L-BFGS-B).  Nothing is compiled: a :class:`ProfileFitter` is cheap to build
and to ship to Dask workers (its tables are a few kB per bin).  ``tests/test_profile.py``
checks the fit against :class:`MapFitter` and an independent SciPy fit.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np
import scipy.optimize

from diffuse_fit.binned.likelihoods import LIKELIHOODS
from diffuse_fit.binned.templates import Templates, expected_counts
from diffuse_fit.io.spectrum_names import FRACTIONS
from diffuse_fit.physics.detector import EPSILON_DOM_SPLIT
from diffuse_fit.physics.flavour import dirichlet_terms

if TYPE_CHECKING:

    class _Prior(Protocol):
        """What the fitter uses of a :class:`diffuse_fit.inference.priors.Prior` (a layer
        above this one: not imported)."""

        def support(self) -> tuple[float, float]: ...
        def log_density(self, x: float) -> float: ...
        def log_density_gradient(self, x: float) -> float: ...
        def log_density_curvature(self, x: float) -> float: ...
        def alpha(self) -> tuple[float, ...]: ...

    # (log p, gradient, Hessian) in u and (values, gradient, Hessian, ln L) in the natural
    # parameters: ProfileFitter._fit_once's evaluation
    _Evaluation = tuple[
        float, np.ndarray, np.ndarray, tuple[dict[str, float], np.ndarray, np.ndarray, float]
    ]

OPTIONS = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000}  # L-BFGS-B's, every fit's


def lbfgsb(
    negative: Callable[[np.ndarray], tuple[float, np.ndarray]], u0: np.ndarray
) -> scipy.optimize.OptimizeResult:
    """The one fallback of Newton's method, for profile fits, the NumPy MAP and PyMC's MAP
    alike: L-BFGS-B on ``negative(u) -> (-log p, -gradient)`` in the unconstrained
    coordinates from ``u0``, with :data:`OPTIONS`; its ``OptimizeResult``."""
    return scipy.optimize.minimize(negative, u0, jac=True, method="L-BFGS-B", options=OPTIONS)


GRADIENT_TOLERANCE = 1e-5  # max |d log p / d u| at an accepted optimum (u unconstrained)
CURVATURE_TOLERANCE = 1e-10  # smallest accepted eigenvalue of the scaled -Hessian (diagonal 1)
_U_LIMIT = 700.0  # |u| beyond which exp(u) overflows
# Newton steps of a profile interval's end before bisection only: h' = -2 d log p / dx is the
# profile's slope only where the other parameters' optimum is inside their supports (at the
# simplex's edge, f_mu = 1 - f_e moves with f_e and Newton crawls)
NEWTON_STEPS = 20
# relative distance to a bound or a kink from which a stalled fit holds a parameter there
STALL_PROXIMITY = 1e-5
# Newton's predicted rise of log p below which it is rounding (relative to max(1, |log p|))
FLOAT_RESOLUTION = 1e-13
# halvings of a Newton step without a rise, with the gradient already small, that count as a
# stall (a kink, where the quadratic model fails; the caller then tries holding it there)
KINK_HALVINGS = 8


@dataclass(frozen=True)
class Fit:
    """One fit of the free parameters (the fixed ones held at their values).

    Attributes
    ----------
    values : dict
        Every parameter -> value (natural units), fixed and fitted.
    log_posterior : float
        ``log p(theta | k)`` (log-likelihood plus the priors' log-densities).
    neg_log_likelihood : float
        ``-ln L`` (no prior terms), with ``lgamma(k + 1)``.
    converged : bool
        The gradient in the free parameters vanishes (max ``|d log p / d u|`` below
        ``GRADIENT_TOLERANCE``) or the optimizer reports success.
    message : str
    gradient : ndarray
        ``d log p / d theta`` in the natural parameters (all, in fitter order).
    hessian : ndarray
        ``d2 log p / d theta2`` in the natural parameters (all, in fitter order).
    """

    values: dict[str, float]
    log_posterior: float
    neg_log_likelihood: float
    converged: bool
    message: str
    gradient: np.ndarray = field(repr=False)
    hessian: np.ndarray = field(repr=False)
    method: str = "newton"  # what found it: "newton", or "l-bfgs-b" where Newton failed


class _Transform:
    """Natural <-> unconstrained coordinates of one parameter with support ``[lo, hi]``."""

    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = float(lo), float(hi)

    def to_natural(self, u: float) -> float:
        u = min(max(u, -_U_LIMIT), _U_LIMIT)
        if math.isinf(self.lo) and math.isinf(self.hi):
            return u
        if math.isinf(self.hi):
            return self.lo + math.exp(u)
        if math.isinf(self.lo):
            return self.hi - math.exp(u)
        return self.lo + (self.hi - self.lo) / (1.0 + math.exp(-u))

    def derivative(self, x: float) -> float:
        """``dx/du`` at ``x``."""
        if math.isinf(self.lo) and math.isinf(self.hi):
            return 1.0
        if math.isinf(self.hi):
            return x - self.lo
        if math.isinf(self.lo):
            return -(self.hi - x)
        return (x - self.lo) * (self.hi - x) / (self.hi - self.lo)

    def second_derivative(self, x: float) -> float:
        """``d2x/du2`` at ``x``."""
        if math.isinf(self.lo) and math.isinf(self.hi):
            return 0.0
        if math.isinf(self.hi) or math.isinf(self.lo):
            return self.derivative(x)
        return self.derivative(x) * (self.hi + self.lo - 2.0 * x) / (self.hi - self.lo)

    def to_unconstrained(self, x: float) -> float:
        """``u`` of ``x``; points on a boundary go just inside (float precision)."""
        if math.isinf(self.lo) and math.isinf(self.hi):
            return x
        if math.isinf(self.hi):
            return math.log(max(x - self.lo, 1e-300))
        if math.isinf(self.lo):
            return math.log(max(self.hi - x, 1e-300))
        span = self.hi - self.lo
        p = min(max((x - self.lo) / span, 1e-15), 1.0 - 1e-15)
        return math.log(p) - math.log1p(-p)


class Coordinates:
    """The unconstrained coordinates ``u`` of the parameters ``free``: one :class:`_Transform`
    each, except the flavour fractions (:data:`diffuse_fit.io.spectrum_names.FRACTIONS`),
    whose sum may not exceed 1: those fitted are stick-broken from the mass ``m = 1 - (sum of
    those held fixed)``, ``f_1 = m s(u_1)``, ``f_2 = (m - f_1) s(u_2)`` with ``s`` the logistic
    function (the simplex's interior is all of ``u``-space: no corner to hit), as PyMC's
    transforms of ``f_e ~ Beta``, ``f_mu ~ Uniform(0, 1 - f_e)`` are.

    Parameters
    ----------
    free : list of str
    transforms : dict
        Parameter -> :class:`_Transform` of its support.
    held : dict
        Values of the parameters held fixed (for the fractions' mass).
    """

    def __init__(
        self, free: list[str], transforms: Mapping[str, _Transform], held: Mapping[str, float]
    ) -> None:
        self.free = list(free)
        self.transforms = [transforms[n] for n in free]
        self.stick = [i for i, n in enumerate(free) if n in FRACTIONS]
        rest = [float(held[n]) for n in FRACTIONS if n in held and n not in free]
        self.mass = max(1.0 - sum(rest), 0.0)
        self._unit = _Transform(0.0, 1.0)

    def natural(self, u: np.ndarray) -> np.ndarray:
        """The natural values of ``u`` (free order)."""
        x = np.array([t.to_natural(float(ui)) for t, ui in zip(self.transforms, u, strict=True)])
        rest = self.mass
        for i in self.stick:
            x[i] = rest * self._unit.to_natural(float(u[i]))
            rest = max(rest - x[i], 0.0)
        return x

    def unconstrained(self, x: np.ndarray) -> np.ndarray:
        """``u`` of the natural values ``x`` (points on a boundary go just inside)."""
        u = np.array(
            [t.to_unconstrained(float(v)) for t, v in zip(self.transforms, x, strict=True)]
        )
        rest = self.mass
        for i in self.stick:
            u[i] = self._unit.to_unconstrained(float(x[i]) / rest if rest > 0 else 0.5)
            rest = max(rest - float(x[i]), 0.0)
        return u

    def chain(
        self, x: np.ndarray, gradient: np.ndarray, hessian: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The gradient and (if given) Hessian in ``u`` of a function whose gradient and
        Hessian in the natural parameters at ``x`` are given: ``J^T g`` and ``J^T H J +
        sum_k g_k d2 x_k / du du`` with ``J = dx/du``."""
        n = x.size
        jac = np.zeros((n, n))
        second = np.zeros((n, n))  # sum_k g_k d2 x_k / du du
        for i, (t, xi) in enumerate(zip(self.transforms, x, strict=True)):
            if i not in self.stick:
                jac[i, i] = t.derivative(float(xi))
                second[i, i] = gradient[i] * t.second_derivative(float(xi))
        rest, previous = self.mass, None  # previous: (index, dx/du, d2x/du2) of the first
        for i in self.stick:
            s = float(x[i]) / rest if rest > 0 else 0.5
            ds, dds = s * (1.0 - s), s * (1.0 - s) * (1.0 - 2.0 * s)
            jac[i, i], second[i, i] = rest * ds, gradient[i] * rest * dds
            if previous is not None:  # x_i = (m - x_a) s(u_i)
                a, da, dda = previous
                jac[i, a] = -da * s
                second[a, a] += gradient[i] * -dda * s
                second[a, i] += gradient[i] * -da * ds
                second[i, a] += gradient[i] * -da * ds
            previous = (i, rest * ds, rest * dds)
            rest = max(rest - float(x[i]), 0.0)
        grad_u = jac.T @ gradient
        if hessian is None:
            return grad_u, None
        return grad_u, jac.T @ hessian @ jac + second


class ProfileFitter:
    """Maximise ``log p(theta | k)`` over the free parameters, any of them held fixed.

    Parameters
    ----------
    templates : Templates
        Per-bin tables of the simulation.
    priors : dict
        Parameter -> :class:`diffuse_fit.inference.priors.Prior` (one per parameter, in the
        model's parameter order).
    bins : ndarray of int, optional
        The likelihood's bins (default: every bin some component populates).
    likelihood : "poisson" or "say"
        :data:`diffuse_fit.binned.likelihoods.LIKELIHOODS` (SAY needs ``templates.variance``).
    """

    def __init__(
        self,
        templates: Templates,
        priors: Mapping[str, _Prior],
        bins: np.ndarray | None = None,
        likelihood: str = "poisson",
    ) -> None:
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, not {likelihood!r}")
        self.likelihood = likelihood
        self._loglike = LIKELIHOODS[likelihood]
        self.templates = templates
        self.fixed = dict(templates.fixed)  # held fixed (--fix): no prior, not fitted
        self.priors = {n: p for n, p in priors.items() if n not in self.fixed}
        self.names = list(self.priors)
        self._all = self.names + [n for n in self.fixed if n not in self.priors]
        self.bins = np.flatnonzero(templates.covered()) if bins is None else np.asarray(bins)
        self.transforms = {n: _Transform(*p.support()) for n, p in self.priors.items()}
        # the flavour fractions' Dirichlet: the pair's density, not one per parameter
        fitted = [n for n in FRACTIONS if n in self.priors]
        held = [n for n in FRACTIONS if n in self.fixed]
        self._dirichlet = (
            (
                cast("tuple[float, float, float]", self.priors[fitted[0]].alpha()),
                held[0] if held else None,
            )
            if fitted
            else None
        )

    def coordinates(
        self, free: list[str] | None = None, held: Mapping[str, float] | None = None
    ) -> Coordinates:
        """The unconstrained coordinates of ``free`` (default: every fitted parameter) with
        ``held`` fixed (:class:`Coordinates`)."""
        return Coordinates(
            self.names if free is None else free, self.transforms, {**self.fixed, **(held or {})}
        )

    # -- the objective -------------------------------------------------------------------
    def log_posterior(
        self, counts: np.ndarray, values: dict[str, float], curvature: bool = True
    ) -> tuple[float, np.ndarray, np.ndarray, float]:
        """``(log p, gradient, Hessian, ln L)`` at ``values`` in the natural parameters
        (fitter order); ``counts`` per bin of the whole binning; ``curvature=False``: the
        Hessian may skip costly entries (the broken power law's in E_break), for
        gradient-only searches."""
        values = {**values, **self.fixed}
        loglike, grad, hess = self._loglike(
            self.templates, counts, values, self._all, self.bins, curvature=curvature
        )
        if self.fixed:  # the derivatives in the fitted parameters only
            n = len(self.names)
            grad, hess = grad[:n], hess[:n, :n]
        logp = loglike
        for i, name in enumerate(self.names):
            prior, x = self.priors[name], values[name]
            logp += prior.log_density(x)
            grad[i] += prior.log_density_gradient(x)
            hess[i, i] += prior.log_density_curvature(x)
        if self._dirichlet is not None:
            alpha, held = self._dirichlet
            pair_logp, pair_grad, pair_hess = dirichlet_terms(
                alpha, values[FRACTIONS[0]], values[FRACTIONS[1]], held
            )
            logp += pair_logp
            at = [(k, self.names.index(n)) for k, n in enumerate(FRACTIONS) if n in self.names]
            for k, i in at:
                grad[i] += pair_grad[k]
                for m, j in at:
                    hess[i, j] += pair_hess[k, m]
        return logp, grad, hess, loglike

    def expected(self, values: dict[str, float]) -> np.ndarray:
        """Expected events per bin of the whole binning at ``values``."""
        return expected_counts(self.templates, values)

    # -- fits ------------------------------------------------------------------------------
    def fit(
        self,
        counts: np.ndarray,
        fixed: dict[str, float] | None = None,
        x0: dict[str, float] | None = None,
    ) -> Fit:
        """Best fit of the parameters not in ``fixed`` for ``counts``, from ``x0``
        (natural values; default: the middle of each support, or 1 for a norm).

        With the detector systematic ``epsilon_dom`` free and not given in ``x0``, the fit
        is made twice, as the release's ``HESE_fit.py`` does, because the likelihood can
        be bimodal about epsilon_dom = 0.99: from a start below and from one above (each
        free to cross; the release bounds each to its side), and the better is returned.
        """
        split = EPSILON_DOM_SPLIT
        if (
            "epsilon_dom" in self.names
            and "epsilon_dom" not in (fixed or {})
            and (x0 is None or "epsilon_dom" not in x0)
        ):
            low, high = self.transforms["epsilon_dom"].lo, self.transforms["epsilon_dom"].hi
            starts = (0.5 * (low + split), 0.5 * (split + high))
            fits = [self._fit_once(counts, fixed, {**(x0 or {}), "epsilon_dom": s}) for s in starts]
            return max(fits, key=lambda f: (f.converged, f.log_posterior))
        free_fractions = [n for n in FRACTIONS if n in self.names and n not in (fixed or {})]
        if free_fractions and x0 is not None:
            # a start on the simplex's edge can end on it, where the stick-breaking
            # coordinate saturates and the gradient into the simplex vanishes in u: fit
            # also from the start's fractions moved halfway to the centre; keep the better
            inward = {**x0, **self._towards_centre(x0, fixed or {}, free_fractions)}
            fits = [self._fit_once(counts, fixed, x0), self._fit_once(counts, fixed, inward)]
            return max(fits, key=lambda f: (f.converged, f.log_posterior))
        return self._fit_once(counts, fixed, x0)

    def _towards_centre(
        self, x0: Mapping[str, float], fixed: Mapping[str, float], free: list[str]
    ) -> dict[str, float]:
        """The free fractions of ``x0`` moved halfway to the centre of the simplex left by
        the fixed ones (``1/3`` each with none fixed)."""
        held = {**self.fixed, **fixed}
        mass = max(1.0 - sum(float(held[n]) for n in FRACTIONS if n in held), 0.0)
        centre = mass / (len(free) + 1)  # f_tau takes a share too
        return {n: 0.5 * (float(x0.get(n, centre)) + centre) for n in free}

    def _fit_once(
        self,
        counts: np.ndarray,
        fixed: dict[str, float] | None = None,
        x0: dict[str, float] | None = None,
    ) -> Fit:
        """One fit from ``x0`` (:meth:`fit`).

        Newton's method on the exact Hessian in the unconstrained coordinates (a handful of
        steps, with backtracking and a Levenberg shift where the Hessian is not negative
        definite); where it does not converge, L-BFGS-B as :class:`MapFitter` uses.
        """
        fixed = {k: float(v) for k, v in (fixed or {}).items()}
        unknown = set(fixed) - set(self.names)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)} (known: {self.names})")
        free = [n for n in self.names if n not in fixed]
        index = [self.names.index(n) for n in free]
        coords = self.coordinates(free, fixed)
        start = {**self.default_start(), **(x0 or {})}
        counts = np.asarray(counts, dtype=np.float64)
        held = self._held_in_start(start, free)
        if held:  # a start held on a bound or kink (a previous fit's): try it there first
            kept = self._held_fit(counts, fixed, held, start)
            if kept is not None:
                return kept

        def point(u: np.ndarray) -> dict[str, float]:
            values = dict(fixed)
            values.update(zip(free, map(float, coords.natural(u)), strict=True))
            return values

        memo: dict[bytes, _Evaluation] = {}  # the last full evaluation (Newton's end point)

        def evaluate(u: np.ndarray, curvature: bool = True) -> _Evaluation:
            """``(log p, gradient, Hessian)`` in ``u`` and the natural-parameter results."""
            key = u.tobytes()
            if curvature and key in memo:
                return memo[key]
            result = _evaluate(u, curvature)
            if curvature:
                memo.clear()
                memo[key] = result
            return result

        def _evaluate(u: np.ndarray, curvature: bool) -> _Evaluation:
            values = point(u)
            if not all(math.isfinite(v) for v in values.values()):  # a step to NaN
                nan = np.full(len(self.names), np.nan)
                return (
                    -math.inf,
                    nan[index],
                    np.full((len(free),) * 2, np.nan),
                    (values, nan, np.full((len(self.names),) * 2, np.nan), -math.inf),
                )
            with np.errstate(over="ignore", invalid="ignore"):  # absurd inputs: not converged
                logp, grad, hess, loglike = self.log_posterior(counts, values, curvature)
            x = np.array([values[n] for n in free])
            grad_u, hess_u = coords.chain(x, grad[index], hess[np.ix_(index, index)])
            return logp, grad_u, cast(np.ndarray, hess_u), (values, grad, hess, loglike)

        u = coords.unconstrained(np.array([start[n] for n in free], dtype=np.float64))
        state = evaluate(u)
        converged: tuple[bool, np.ndarray] | bool | None  # Newton's outcome, then the verdict

        def near_kink(at: _Evaluation) -> bool:  # a bound or kink where Newton may crawl
            return bool(self._stall_points(at[3][0], at[3][1], free))

        converged, message = self._newton(evaluate, u, state, near_kink=near_kink)
        if converged is not None and not converged[0]:  # stalled: a bound, or a kink
            stall = converged[1]
            values, natural = point(stall), evaluate(stall)[3][1]
            held = self._stall_points(values, natural, free)
            kept = self._held_fit(counts, fixed, held, values) if held else None
            if kept is not None:
                return kept
            u, converged = stall, None  # polish from there
        if converged is None:  # Newton failed: L-BFGS-B from the start (or the stall)

            def negative(v: np.ndarray) -> tuple[float, np.ndarray]:
                logp, grad_u, _, _ = evaluate(v, curvature=False)
                if not np.isfinite(logp):
                    return 1e300, np.zeros(len(free))
                return -logp, -grad_u

            result = lbfgsb(negative, u)
            u = result.x
            converged, message = bool(result.success), str(result.message).strip()
            method = "l-bfgs-b"
        else:
            method = "newton"
            u = converged[1]
            converged, message = True, message
        logp, grad_u, _, (values, grad, hess, loglike) = evaluate(u)
        max_grad = float(np.max(np.abs(grad_u))) if free else 0.0
        ok = bool(np.isfinite(logp) and (converged or max_grad < GRADIENT_TOLERANCE))
        ordered = {n: values[n] for n in self.names}
        return Fit(
            ordered,
            float(logp),
            -float(loglike),
            ok,
            f"{message} (max |gradient| {max_grad:.1e})",
            grad,
            hess,
            method,
        )

    @functools.cached_property
    def _kinks(self) -> dict[str, np.ndarray]:
        """Parameter -> the values where log p may have a kink: the breaks of the detector
        response tables inside the support (the release's anisotropy tables are linear in
        the parameter between knots, so the responses' slopes jump there; one knot is the
        nominal value, where the prior peaks and the fit often ends)."""
        out: dict[str, list[float]] = {}
        for r in getattr(self.templates, "responses", ()):
            out.setdefault(r.parameter, []).extend(np.asarray(r.breaks)[1:-1].tolist())
        return {n: np.unique(v) for n, v in out.items() if n in self.names}

    def _stall_points(
        self, values: Mapping[str, float], gradient: np.ndarray, free: list[str]
    ) -> dict[str, float]:
        """Where a stalled Newton fit (``values``, natural ``gradient`` in fitter order) may
        have stopped short of a maximum it cannot reach by steps: name -> point, for the
        parameters of ``free`` within :data:`STALL_PROXIMITY` (relative to the point, or to 1
        near 0) of a finite bound of their support with log p rising into it (the maximum's
        unconstrained coordinate is at infinity: Newton crawls a unit of ``u`` a step), or
        of a kink (:attr:`_kinks`: Newton's quadratic model fails there).  The flavour
        fractions (stick-broken, not boxed) are left alone."""
        out = {}
        for n in free:
            if n in FRACTIONS:
                continue
            t, x = self.transforms[n], float(values[n])
            g = float(gradient[self.names.index(n)])
            for point, outwards in ((t.lo, -1.0), (t.hi, 1.0)):
                near = abs(x - point) <= STALL_PROXIMITY * max(1.0, abs(point))
                if (
                    math.isfinite(point)
                    and near
                    and g * outwards > 0
                    and self._defined_at(n, point)
                ):
                    out[n] = point
            kinks = self._kinks.get(n)
            if n not in out and kinks is not None and kinks.size:
                k = float(kinks[np.argmin(np.abs(kinks - x))])
                if abs(x - k) <= STALL_PROXIMITY * max(1.0, abs(k)):
                    out[n] = k
        return out

    def _held_in_start(self, start: Mapping[str, float], free: list[str]) -> dict[str, float]:
        """The parameters of ``free`` that ``start`` puts exactly on a bound of their support
        or on a kink (where a fit that held them left them)."""
        out = {}
        for n in free:
            t, x = self.transforms[n], float(start[n])
            kinks = self._kinks.get(n)
            on_kink = kinks is not None and bool(np.any(kinks == x))
            on_bound = x in (t.lo, t.hi) and self._defined_at(n, x)
            if n not in FRACTIONS and (on_bound or on_kink):
                out[n] = x
        return out

    def _defined_at(self, name: str, x: float) -> bool:
        """Whether ``name``'s prior has a finite log-density and derivatives at ``x`` (a
        LogNormal's at 0 has none: a parameter is not held on such a bound)."""
        prior = self.priors[name]
        try:
            terms = (
                prior.log_density(x),
                prior.log_density_gradient(x),
                prior.log_density_curvature(x),
            )
        except (ValueError, ZeroDivisionError, OverflowError):
            return False
        return all(math.isfinite(v) for v in terms)

    def _held_fit(
        self,
        counts: np.ndarray,
        fixed: dict[str, float],
        held: dict[str, float],
        start: Mapping[str, float],
    ) -> Fit | None:
        """The fit of the rest with ``held`` parameters held at their points, if it is a
        maximum in those too (:meth:`_is_maximum_at`); else None."""
        at_points = self._fit_once(counts, {**fixed, **held}, dict(start))
        if not (
            at_points.converged
            and all(self._is_maximum_at(counts, at_points, n, x) for n, x in held.items())
        ):
            return None
        return dataclasses.replace(
            at_points,
            message=f"{at_points.message}; held where log p peaks: "
            + ", ".join(f"{n}={v:g}" for n, v in held.items()),
            method="newton-held",
        )

    def _is_maximum_at(self, counts: np.ndarray, fit: Fit, name: str, x: float) -> bool:
        """Whether ``fit`` (the others fitted with ``name`` held at ``x``) is a maximum in
        ``name`` too: at a bound, log p rises into it; at a kink, it rises into it from
        both sides (the slopes just below and just above ``x`` have opposite signs)."""
        t, i = self.transforms[name], self.names.index(name)
        if x in (t.lo, t.hi):
            return bool(fit.gradient[i] * (1.0 if x == t.hi else -1.0) > 0)
        delta = 1e-9 * max(1.0, abs(x))
        slopes = []
        for side in (-1.0, 1.0):
            with np.errstate(over="ignore", invalid="ignore"):
                g = self.log_posterior(counts, {**fit.values, name: x + side * delta}, False)[1]
            slopes.append(float(g[i]))
        return slopes[0] >= -GRADIENT_TOLERANCE and slopes[1] <= GRADIENT_TOLERANCE

    @staticmethod
    def _newton(
        evaluate: Callable[[np.ndarray], _Evaluation],
        u: np.ndarray,
        state: _Evaluation,
        max_steps: int = 100,
        stall_steps: int = 5,
        near_kink: Callable[[_Evaluation], bool] = lambda state: False,
    ) -> tuple[tuple[bool, np.ndarray] | None, str]:
        """Damped Newton ascent from ``u``; ``((True, u), message)`` at an optimum (max
        ``|gradient|`` below 1e-9 relative, or no further improvement at float precision
        with a small gradient); ``((False, u), message)`` where ``log p`` has not risen by
        more than 1e-10 relative in ``stall_steps`` steps, or no step of 2^-19 of Newton's
        rises, or after ``max_steps``, but the gradient is not small (the maximum on a kink of the broken power
        law's likelihood in E_break: the caller polishes from ``u``, the best point so far);
        ``(None, message)`` where it gives up."""
        if u.size == 0:
            return (True, u), "nothing to fit"
        logp, grad, hess, _ = state
        if not np.isfinite(logp):
            return None, "not finite at the start"
        stalled = 0
        for step_number in range(max_steps):
            scale = max(1.0, abs(logp))
            if np.max(np.abs(grad)) < 1e-9 * scale:
                return (True, u), f"Newton converged in {step_number} steps"
            if stalled >= stall_steps:
                return (False, u), f"Newton stalled after {step_number} steps"
            shift = 0.0
            for _ in range(30):  # Levenberg shift until -hess + shift is positive definite
                try:
                    chol = np.linalg.cholesky(-hess + shift * np.eye(u.size))
                    break
                except np.linalg.LinAlgError:
                    shift = max(2.0 * shift, 1e-8 * (np.max(np.abs(hess)) + 1.0))
            else:
                return None, "Hessian cannot be regularised"
            step = np.linalg.solve(chol.T, np.linalg.solve(chol, grad))
            small = np.max(np.abs(grad)) < GRADIENT_TOLERANCE
            if small and grad @ step <= FLOAT_RESOLUTION * scale:  # below log p's rounding
                return (True, u), "Newton: optimum at float precision"
            length = 1.0
            for halvings in range(20):  # backtracking until log p increases (Armijo)
                if halvings == KINK_HALVINGS and (small or near_kink(state)):
                    return (False, u), "Newton stalled (a kink?)"  # the caller looks there
                trial = u + length * step
                if np.max(np.abs(trial)) < 40:  # e^40: far beyond any physical norm
                    new = evaluate(trial)
                    if np.isfinite(new[0]) and new[0] >= logp + 1e-4 * length * (grad @ step):
                        break
                length *= 0.5
            else:
                if np.max(np.abs(grad)) < GRADIENT_TOLERANCE:
                    return (True, u), "Newton: optimum at float precision"
                return (False, u), "Newton line search failed"
            stalled = stalled + 1 if new[0] - logp <= 1e-10 * scale else 0
            u = trial
            logp, grad, hess, _ = state = new
        return (False, u), "Newton did not converge"

    def default_start(self) -> dict[str, float]:
        start = {}
        for name, t in self.transforms.items():
            if math.isfinite(t.lo) and math.isfinite(t.hi):
                start[name] = 0.5 * (t.lo + t.hi)
            elif math.isfinite(t.lo):
                start[name] = t.lo + 1.0
            else:
                start[name] = 0.0 if math.isinf(t.hi) else t.hi - 1.0
        for name in FRACTIONS:  # the simplex's centre, not its corner (1/2, 1/2)
            if name in start:
                start[name] = 1.0 / 3.0
        return start

    def covariance(self, best: Fit) -> tuple[np.ndarray, list[str], list[str]]:
        """``(covariance, problems, unconstrained)`` from the Hessian at ``best``
        (:func:`covariance_from_hessian`)."""
        return covariance_from_hessian(self.names, best.hessian)

    def interval(
        self, counts: np.ndarray, best: Fit, name: str, threshold: float = 1.0, xtol: float = 1e-8
    ) -> tuple[float, float]:
        """Profile interval of ``name``: where ``ts(x) = -2 (log p_profile(x) - log p(best))
        <= threshold`` (1.0: 68.27% for one parameter, Wilks).

        Each end is the root of ``h(x) = ts(x) - threshold`` found by Newton's method with
        ``h'(x) = -2 d log p / d x`` at the profiled point (the other parameters at their
        conditional optimum, so their derivatives vanish), safeguarded by bisection inside
        the bracket found so far; to ``|h| < 1e-9`` or a bracket narrower than ``xtol``
        (relative).  An end that reaches the support's boundary with ``ts`` still below the
        threshold is that boundary (``+-inf`` on an unbounded side never reached).
        """
        counts = np.asarray(counts, dtype=np.float64)
        i = self.names.index(name)
        x_best = best.values[name]
        curvature = -best.hessian[i, i]
        # the first step: the width with the others held (within the profile's: small steps
        # keep the walk on the branch of the best fit where the likelihood is multimodal)
        scale = 1.0 / math.sqrt(curvature) if curvature > 0 else 0.1 * (abs(x_best) + 0.1)
        t = self.transforms[name]
        ends = tuple(
            float(
                self._interval_end(counts, best, name, i, direction, bound, scale, threshold, xtol)
            )
            for direction, bound in ((-1.0, t.lo), (1.0, t.hi))
        )
        return cast("tuple[float, float]", ends)  # the lower and the upper end

    def _interval_end(
        self,
        counts: np.ndarray,
        best: Fit,
        name: str,
        i: int,
        direction: float,
        bound: float,
        scale: float,
        threshold: float,
        xtol: float,
    ) -> float:
        """One end of :meth:`interval`: the root search from the best fit outwards, each fit
        from the last one's optimum (a continuation: the profile follows the branch of the
        other parameters' optimum that starts at the best fit).  (A start moved as the last
        fit's Hessian predicts saves a Newton step or two, but was seen to jump to another,
        worse branch where the release's epsilon_dom makes the likelihood bimodal: not
        taken.)"""
        others = {k: v for k, v in best.values.items() if k != name}
        x_best = inside = best.values[name]
        tol = xtol * max(1.0, abs(x_best))
        edge = bound - direction * 1e-12 * max(1.0, abs(bound)) if math.isfinite(bound) else None
        if edge is not None and (inside - edge) * direction >= 0:
            return bound

        def h(x: float) -> tuple[float, float]:
            fit = self.fit(counts, fixed={name: x}, x0=others)
            others.update({k: fit.values[k] for k in others})
            return (
                -2.0 * (fit.log_posterior - best.log_posterior) - threshold,
                -2.0 * fit.gradient[i],
            )

        outside: float | None = None  # h < 0 at inside, h > 0 at outside
        x = inside + direction * scale
        for step in range(200):
            if edge is not None and (x - edge) * direction > 0:
                x = edge
            value, slope = h(x)
            if abs(value) < 1e-9:
                return x
            if value > 0:
                outside = x
            else:
                inside = x
                if edge is not None and x == edge:
                    return bound  # ts stays below the threshold up to the boundary
            if outside is not None and abs(outside - inside) < tol:
                return 0.5 * (inside + outside)
            newton = x - value / slope if slope * direction > 0 else None
            if outside is None:  # still looking for the far side of the root
                far = x + direction * max(abs(x - x_best), scale)  # at least double
                x = newton if newton is not None and (newton - far) * direction <= 0 else far
                x = x if (x - inside) * direction > 0 else far
                if not math.isfinite(x) or abs(x - x_best) > 1e12 * max(1.0, scale):
                    return direction * math.inf
            elif (
                step < NEWTON_STEPS
                and newton is not None
                and min(inside, outside) < newton < max(inside, outside)
            ):
                x = newton
            else:  # bisection: also after NEWTON_STEPS, where h' is not the profile's slope
                x = 0.5 * (inside + outside)
        raise RuntimeError(f"profile interval of {name}: no convergence in 200 steps")


def covariance_from_hessian(
    names: list[str], hessian: np.ndarray
) -> tuple[np.ndarray, list[str], list[str]]:
    """Covariance ``inv(-hessian)``, the problems of the curvature, the unconstrained parameters.

    ``-hessian`` must be positive definite.  A parameter with no (or upward) curvature of
    ``log p`` is unconstrained, and so is any parameter coupled to it by a cross term (the
    Hessian is then indefinite).  The rest of ``-hessian`` is scaled to unit diagonal and an
    eigenvalue below ``CURVATURE_TOLERANCE`` names the parameters of its eigenvector (a
    combination the data and priors do not constrain).  The covariance is the inverse of
    the constrained parameters' block when it is decoupled from the unconstrained ones
    (NaN elsewhere), else all NaN; its diagonal must be finite and positive.
    """
    curvature = -np.asarray(hessian, dtype=np.float64)
    names = list(names)
    problems: list[str] = []
    flagged = np.zeros(len(names), dtype=bool)

    def flag(mask: np.ndarray, text: str) -> None:
        problems.append(text.format(", ".join(_names(names, mask))))
        flagged[mask] = True

    finite = np.all(np.isfinite(curvature), axis=1) & np.all(np.isfinite(curvature), axis=0)
    if not np.all(finite):
        flag(~finite, "the Hessian of log p is not finite in {}")
        return np.full_like(curvature, np.nan), problems, _names(names, flagged)
    diag = np.diag(curvature)
    uncurved = ~(diag > 0)
    if np.any(uncurved):
        flag(
            uncurved,
            "log p has no curvature (or curves upwards) in {}: unconstrained by the "
            "data and priors",
        )
        tiny = 1e-12 * np.max(np.abs(curvature))
        coupled = ~uncurved & np.any(np.abs(curvature[uncurved]) > tiny, axis=0)
        if np.any(coupled):
            flag(
                coupled,
                "the Hessian of log p is indefinite: {} coupled to an unconstrained parameter",
            )
    rest = ~flagged
    if np.any(rest):
        scale = np.sqrt(diag[rest])
        block = curvature[np.ix_(rest, rest)] / np.outer(scale, scale)
        eigenvalues, vectors = np.linalg.eigh(block)
        weak = eigenvalues < CURVATURE_TOLERANCE
        if np.any(weak):
            involved = np.zeros(len(names), dtype=bool)
            involved[rest] = np.max(np.abs(vectors[:, weak]), axis=1) > 0.1
            flag(
                involved,
                "the Hessian of log p is not negative definite (smallest "
                f"eigenvalue of the scaled -Hessian {eigenvalues.min():.1e}): "
                "a combination of {} is unconstrained",
            )
    covariance = np.full_like(curvature, np.nan)
    rest = ~flagged
    if np.any(rest) and not np.any(curvature[np.ix_(rest, flagged)]):
        try:
            covariance[np.ix_(rest, rest)] = np.linalg.inv(curvature[np.ix_(rest, rest)])
        except np.linalg.LinAlgError:
            pass
    bad = rest & ~(np.isfinite(np.diag(covariance)) & (np.diag(covariance) > 0))
    if np.any(bad):
        flag(bad, "the covariance (inverse -Hessian) diagonal is not finite and positive for {}")
    return covariance, problems, _names(names, flagged)


def _names(names: list[str], mask: np.ndarray) -> list[str]:
    return [n for n, m in zip(names, mask, strict=True) if m]
