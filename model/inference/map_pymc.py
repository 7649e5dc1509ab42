"""The MAP of any PyMC model, by PyMC's own compiled log-density and gradient.

This is the path :class:`diffuse_fit.inference.map_fit.MapFitter` takes for a model that is not
exactly the one :func:`diffuse_fit.inference.pymc_model.build_model` made (a ``pm.Potential``
added, a random variable added, a prior changed or rebuilt): the NumPy twin of the builder's
model would fit another model, so it is not used.

Like the NumPy path it maximises ``log p(theta | k)`` without the Jacobian of PyMC's
transforms (``model.logp(jacobian=False)``, the density ``pm.find_MAP`` maximises), in
PyMC's unconstrained coordinates ``u`` (the model's value variables): L-BFGS-B with the
compiled gradient, then Newton steps on the Hessian from central differences of that
gradient, kept only while they raise ``log p``.  The covariance in the natural parameters is
``J inv(-H_u) J^T`` with ``J = d theta / d u`` (central differences of PyMC's own
back-transform): at an optimum, where the gradient vanishes, this equals ``inv(-H_theta)``.

Parameters are named as the model's free random variables; an element of a vector variable
``x`` is ``x[i]`` (flattened, C order).  Only the log-density and its gradient are compiled
with the natural values of the free variables and ``ln L`` as extra outputs of the same
function: one compilation, which pytensor caches on disk.
"""

from __future__ import annotations

import time

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.blocking import DictToArrayBijection, RaveledVars
from pymc.initial_point import make_initial_point_fn

from diffuse_fit.fitting.map_core import MapResult, boundary_problems, search_problems
from diffuse_fit.fitting.profile import GRADIENT_TOLERANCE, covariance_from_hessian, lbfgsb
from diffuse_fit.inference.exact_float import exact_float

PATH = "pymc"  # MapResult.path of this route
_NEWTON_STEPS = 8
_STEP = 1e-5  # relative central-difference step in u


class PymcMap:
    """The compiled pieces of ``model`` for its MAP: ``log p`` and gradient in ``u``, the
    natural values of the free variables, and ``ln L`` (the observed variables' log-density)."""

    def __init__(self, model: pm.Model):
        self.model = model
        self.value_vars = list(model.value_vars)
        logp = model.logp(jacobian=False)
        grad = pt.concatenate([g.ravel() for g in pytensor.grad(logp, self.value_vars)])
        loglike = pt.sum(
            [pt.sum(t) for t in model.logp(vars=model.observed_RVs, sum=False, jacobian=False)]
        )
        natural = [model.replace_rvs_by_values([rv])[0] for rv in model.free_RVs]
        # one compiled function (one numba compilation, cached on disk by pytensor)
        with exact_float():
            self._fn = model.compile_fn(
                [logp, grad, loglike, *natural],
                inputs=self.value_vars,
                point_fn=False,
                on_unused_input="ignore",
            )
        self.names = []
        for rv, value in zip(
            model.free_RVs, self._natural_values(model.initial_point()), strict=True
        ):
            n = np.asarray(value).size
            if np.ndim(value) == 0:
                self.names.append(rv.name)
            else:
                self.names += [f"{rv.name}[{i}]" for i in range(n)]

    # -- coordinates ------------------------------------------------------------------------
    def start(self, x0: dict) -> RaveledVars:
        """Unconstrained start: ``x0``'s natural values for the free variables it names (the
        others at the model's initial values), transformed by PyMC's own forward transforms."""
        by_name = {rv.name: rv for rv in self.model.free_RVs}
        overrides = {
            by_name[k]: np.asarray(v, dtype=np.float64) for k, v in x0.items() if k in by_name
        }
        point = make_initial_point_fn(
            model=self.model, overrides=overrides, jitter_rvs=set(), return_transformed=True
        )(None)
        return DictToArrayBijection.map({v.name: point[v.name] for v in self.value_vars})

    def _arrays(self, u: np.ndarray, info) -> list[np.ndarray]:
        point = DictToArrayBijection.rmap(RaveledVars(np.asarray(u, dtype=np.float64), info))
        return [np.asarray(point[v.name], dtype=v.type.dtype) for v in self.value_vars]

    def _natural_values(self, point: dict) -> list:
        return self._fn(*[point[v.name] for v in self.value_vars])[3:]

    def natural(self, u: np.ndarray, info) -> np.ndarray:
        """Natural values (flattened, ``names`` order) at ``u``."""
        values = self._fn(*self._arrays(u, info))[3:]
        return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in values])

    # -- objective --------------------------------------------------------------------------
    def logp_grad(self, u: np.ndarray, info) -> tuple[float, np.ndarray]:
        logp, grad = self._fn(*self._arrays(u, info))[:2]
        return float(logp), np.array(grad, dtype=np.float64)

    def loglike(self, u: np.ndarray, info) -> float:
        return float(self._fn(*self._arrays(u, info))[2])

    def hessian_u(self, u: np.ndarray, info) -> np.ndarray:
        """Hessian of ``log p`` in ``u``: central differences of the compiled gradient."""
        n = u.size
        h = _STEP * np.maximum(1.0, np.abs(u))
        hessian = np.empty((n, n))
        for j in range(n):
            e = np.zeros(n)
            e[j] = h[j]
            hessian[:, j] = (self.logp_grad(u + e, info)[1] - self.logp_grad(u - e, info)[1]) / (
                2 * h[j]
            )
        return 0.5 * (hessian + hessian.T)

    def jacobian(self, u: np.ndarray, info) -> np.ndarray:
        """``d theta / d u`` (natural over unconstrained): central differences of PyMC's
        back-transform."""
        n = u.size
        h = _STEP * np.maximum(1.0, np.abs(u))
        columns = []
        for j in range(n):
            e = np.zeros(n)
            e[j] = h[j]
            columns.append((self.natural(u + e, info) - self.natural(u - e, info)) / (2 * h[j]))
        return np.array(columns).T

    # -- the fit ----------------------------------------------------------------------------
    def fit(self, x0: dict, reason: str = "") -> MapResult:
        """MAP from the natural start values ``x0`` (see the module's docstring)."""
        t0 = time.perf_counter()
        start = self.start(x0)
        info = start.point_map_info
        u0 = start.data.astype(np.float64)

        def negative(u):
            with np.errstate(all="ignore"):
                logp, grad = self.logp_grad(u, info)
            if not np.isfinite(logp):
                return np.inf, np.zeros_like(u)
            return -logp, -grad

        result = lbfgsb(negative, u0)
        u = np.asarray(result.x, dtype=np.float64)
        logp, grad = self.logp_grad(u, info)
        for _ in range(_NEWTON_STEPS):  # polish: Newton on the differenced Hessian
            if np.max(np.abs(grad)) < 1e-3 * GRADIENT_TOLERANCE:
                break
            hessian = self.hessian_u(u, info)
            try:
                step = -np.linalg.solve(hessian, grad)
            except np.linalg.LinAlgError:
                break
            new_logp, new_grad = self.logp_grad(u + step, info)
            if not (np.isfinite(new_logp) and new_logp >= logp):
                break
            u, logp, grad = u + step, new_logp, new_grad
        max_grad = float(np.max(np.abs(grad))) if grad.size else 0.0
        moved = bool(np.max(np.abs(u - u0), initial=0.0) > 1e-12)
        x = self.natural(u, info)
        values = dict(zip(self.names, map(float, x), strict=True))
        problems, small_gradient = search_problems(values, moved, result, max_grad)
        on_bound = boundary_problems(values, {})  # supports unknown here: run away only
        problems += on_bound
        # the natural-parameter Hessian J^-T H_u J^-1 (exact at an optimum)
        hessian_u = self.hessian_u(u, info)
        jac = self.jacobian(u, info)
        if jac.shape[0] == jac.shape[1] and np.all(np.isfinite(jac)):
            try:
                jinv = np.linalg.inv(jac)
                hessian = jinv.T @ hessian_u @ jinv
            except np.linalg.LinAlgError:
                hessian = np.full_like(hessian_u, np.nan)
        else:  # a transform that changes the dimension: no natural-parameter Hessian
            hessian = np.full((len(self.names), len(self.names)), np.nan)
        covariance, curvature_problems, unconstrained = covariance_from_hessian(
            self.names, 0.5 * (hessian + hessian.T)
        )
        problems += curvature_problems
        return MapResult(
            values=values,
            neg_log_likelihood=-self.loglike(u, info),
            covariance=covariance,
            converged=moved and (bool(result.success) or small_gradient) and not problems,
            optimum=moved and (bool(result.success) or small_gradient),
            at_bound=[n for n in values if any(p.startswith(f"{n} = ") for p in on_bound)],
            message=f"{result.message} (max |gradient| {max_grad:.1e})",
            wall_time_s=time.perf_counter() - t0,
            problems=problems,
            unconstrained=unconstrained,
            path=PATH,
            path_reason=reason,
        )
