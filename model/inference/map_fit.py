"""The MAP of a PyMC model (:class:`MapFitter`).

For the model :func:`diffuse_fit.inference.pymc_model.build_model` made, proven unchanged (its
log-density graph compared with the builder's: :func:`diffuse_fit.inference.pymc_model.builder_twin`),
the NumPy MAP of :mod:`diffuse_fit.fitting.map_core` on the model's own tables, priors,
likelihood and current counts (milliseconds; tests check it against ``pm.find_MAP`` and the
workshop's scipy fit).  For any other model -- one a user extended with a ``pm.Potential``,
a random variable, a changed prior -- PyMC's compiled log-density of that model
(:mod:`diffuse_fit.inference.map_pymc`).  Never the fast path on a different model; the path
taken is logged in one line and recorded in :attr:`MapResult.path`.
"""

from __future__ import annotations

import logging

import numpy as np
import pymc as pm

from diffuse_fit.fitting import map_core
from diffuse_fit.fitting.map_core import MAP_OPTIONS, X0, MapResult  # noqa: F401 (re-exported)
from diffuse_fit.fitting.profile import ProfileFitter
from diffuse_fit.inference.pymc_model import builder_twin, structure_key

logger = logging.getLogger(__name__)


def free_parameter_names(model: pm.Model) -> list[str]:
    return [rv.name for rv in model.free_RVs]


class MapFitter:
    """The MAP of a model, refitted for every new set of counts without compiling anything.

    Maximises ``log p(theta | k)`` (without the Jacobian of PyMC's transforms, so the mode
    is that of the density in the natural parameters) in PyMC's unconstrained coordinates
    (log for norms, logit for bounded indices): by Newton's method on the exact Hessian
    where it converges (a few steps), else by L-BFGS-B as ``pm.find_MAP``
    (:func:`diffuse_fit.fitting.map_core.fit_map`).  The log-density, its gradient and Hessian
    are the model's exact NumPy twin (:class:`diffuse_fit.inference.pymc_model.NumpyTwin`, the
    objective of :class:`diffuse_fit.fitting.profile.ProfileFitter`; tests check it equals PyMC's
    compiled ``logp`` and ``dlogp``), so building a fitter costs nothing and, after
    :func:`diffuse_fit.inference.pymc_model.set_counts`, a new dataset or pseudo-experiment costs
    one optimisation (milliseconds).
    """

    def __init__(self, model: pm.Model):
        self.model = model
        self.names = free_parameter_names(model)
        self._verify()

    def _verify(self) -> None:
        """Choose the path: the NumPy twin only for the builder's own model, unchanged."""
        self._structure = structure_key(self.model)
        self._twin, self.reason = builder_twin(self.model)
        if self._twin is not None:
            priors = {n: self._twin.priors[n] for n in self.names}
            self._objective = ProfileFitter(
                self._twin.templates, priors, self._twin.bins, likelihood=self._twin.likelihood
            )
            self._pymc = None
            self.path = "numpy"
        else:
            from diffuse_fit.inference.map_pymc import PymcMap

            self._objective = None
            self._pymc = PymcMap(self.model)
            self.path = "pymc"

    def start(self, x0: dict) -> np.ndarray:
        """Unconstrained coordinates of the natural start values ``x0`` (NumPy path)."""
        return map_core.start(self._require_twin(), x0)

    def natural(self, u: np.ndarray) -> np.ndarray:
        """Natural parameter values of the unconstrained coordinates ``u`` (NumPy path)."""
        return map_core.natural(self._require_twin(), u)

    def _require_twin(self) -> ProfileFitter:
        if self._objective is None:
            raise ValueError(f"this model is fitted by PyMC's log-density: {self.reason}")
        return self._objective

    def fit(self, x0: dict | None = None) -> MapResult:
        """MAP from ``x0`` (default the workshop's (1, 6, 2.5)) for the model's current counts.

        The model is checked again (cheaply, by the identities of its variables) before
        every fit: one extended since this fitter was made is fitted by PyMC's path."""
        if structure_key(self.model) != self._structure:
            self._verify()
        if self._pymc is not None:
            logger.info("MAP by PyMC's compiled log-density of this model (%s)", self.reason)
            return self._pymc.fit({**X0, **(x0 or {})}, reason=self.reason)
        logger.info("MAP by the exact NumPy twin (the model is build_model's, unchanged)")
        return map_core.fit_map(self._objective, self._twin.full_counts(self.model), x0)


def find_map(model: pm.Model, x0: dict | None = None) -> MapResult:
    """MAP of ``model`` from ``x0``, with covariance (reuse a :class:`MapFitter` to fit many
    datasets)."""
    return MapFitter(model).fit(x0)
