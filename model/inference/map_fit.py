"""The MAP of a PyMC model of :mod:`model.inference.pymc_model` (:class:`MapFitter`): the
NumPy MAP of :mod:`model.inference.map_core` on the model's own tables, priors, likelihood
and current counts; tests check it against ``pm.find_MAP`` and the workshop's scipy fit.
"""

from __future__ import annotations

import numpy as np
import pymc as pm

from model.inference import map_core
from model.inference.map_core import MAP_OPTIONS, X0, MapResult  # noqa: F401 (re-exported)
from model.inference.profile import ProfileFitter
from model.inference.pymc_model import numpy_twin


def free_parameter_names(model: pm.Model) -> list[str]:
    return [rv.name for rv in model.free_RVs]


class MapFitter:
    """The MAP of a model, refitted for every new set of counts without compiling anything.

    Maximises ``log p(theta | k)`` (without the Jacobian of PyMC's transforms, so the mode
    is that of the density in the natural parameters) in PyMC's unconstrained coordinates
    (log for norms, logit for bounded indices): by Newton's method on the exact Hessian
    where it converges (a few steps), else by L-BFGS-B as ``pm.find_MAP``
    (:func:`model.inference.map_core.fit_map`).  The log-density, its gradient and Hessian
    are the model's exact NumPy twin (:class:`model.inference.pymc_model.NumpyTwin`, the
    objective of :class:`model.inference.profile.ProfileFitter`; tests check it equals PyMC's
    compiled ``logp`` and ``dlogp``), so building a fitter costs nothing and, after
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

    def start(self, x0: dict) -> np.ndarray:
        """Unconstrained coordinates of the natural start values ``x0``."""
        return map_core.start(self._objective, x0)

    def natural(self, u: np.ndarray) -> np.ndarray:
        """Natural parameter values of the unconstrained coordinates ``u``."""
        return map_core.natural(self._objective, u)

    def fit(self, x0: dict | None = None) -> MapResult:
        """MAP from ``x0`` (default the workshop's (1, 6, 2.5)) for the model's current counts."""
        return map_core.fit_map(self._objective, self._twin.full_counts(self.model), x0)


def find_map(model: pm.Model, x0: dict | None = None) -> MapResult:
    """MAP of ``model`` from ``x0``, with covariance (reuse a :class:`MapFitter` to fit many
    datasets)."""
    return MapFitter(model).fit(x0)
