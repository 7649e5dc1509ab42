"""The one place the PyMC model is built.

    N_atmos, N_astro, gamma ~ priors
    lam_b = N_atmos * A_b + N_astro * S_b(gamma)          (expected events in bin b)
    k_b   ~ Poisson(lam_b)                                 (observed events in bin b)
          or SAY(lam_b, s2_b(theta))                       (likelihood="say")

The Poisson observation is written out, ``k log lam - lam - lgamma(k + 1)`` (the workshop's
log-likelihood; NumPy twin, summed over bins, :func:`diffuse_fit.binned.reference_fit.llh`), as a
``pm.CustomDist`` with Poisson random draws: ``pm.Poisson`` casts observations to
integers, which would silently truncate the non-integer counts of Asimov datasets.
For integer counts the two are identical (tested).

With ``likelihood="say"`` the observation's log-density is instead the SAY likelihood of
Argüelles, Schneider and Yuan (arXiv:1901.04645), which accounts for the simulation's finite
statistics through the per-bin sum of squared weights ``s2_b(theta)`` (tables of
:mod:`diffuse_fit.binned.variance`): :func:`say_logp`, NumPy twin
:func:`diffuse_fit.binned.say.say_loglike`.  Its random draws stay ``Poisson(mu_b)``: given the
expectation, an experiment's counts are Poisson; the SAY density is the likelihood of that
expectation when it is only known from a finite simulation, not a model of new data.

``A_b`` and ``S_b`` are the precomputed tables of :mod:`diffuse_fit.binned.templates`; ``log S_b`` is a
Chebyshev series in gamma (for the spectral models of :mod:`diffuse_fit.physics.spectra` a
tensor-product series in their shape parameters, or the exact per-event segment sum where
no table reaches the accuracy: :mod:`diffuse_fit.binned.spectral_tables`), so a log-density + gradient evaluation costs O(bins x nodes),
independent of the number of simulated events.  :func:`diffuse_fit.binned.templates.expected_counts`
is the NumPy twin of :func:`expected_counts_pt`.  The flat, power-law and nuisance tables,
the SAY squared weights and the detector responses enter as one stacked graph
(:mod:`diffuse_fit.inference.stacked_pt`: tables of one argument evaluated together), which
keeps the graph small and numba's compilation of it short.  Only bins some component can populate
enter the likelihood (the others have k = lam = 0 and contribute exactly 0).  Observed
counts are ``pm.Data``: :func:`set_counts` swaps in a new dataset or pseudo-experiment
without rebuilding the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from diffuse_fit.binned import chebyshev
from diffuse_fit.binned.dataset import BinnedDataset
from diffuse_fit.binned.flavour_tables import FlavourTemplate
from diffuse_fit.binned.likelihoods import LIKELIHOODS  # name -> NumPy twin
from diffuse_fit.binned.spectral_tables import SpectralEventSum, SpectralTable
from diffuse_fit.binned.templates import Templates
from diffuse_fit.errors import DataFormatError
from diffuse_fit.inference.stacked_pt import SQUARES, ResponseStack, StackedTerms, stackable
from diffuse_fit.inference.table_pt import (
    chebyshev_basis,
    log_table_pt,
    table_input,
)
from diffuse_fit.physics.components import (
    parameter_supports,  # noqa: F401 (re-exported)
)


def unit_counts_pt(table, params: dict, model_bins: np.ndarray):
    """Pytensor expression of the expected events per model bin at norm 1 of a component
    :class:`StackedTerms` does not take (flavour and spectral tables).

    NumPy twin: ``table.unit_counts(params)[model_bins]``.
    """
    if isinstance(table, FlavourTemplate):
        return flavour_pt(table, params, model_bins)
    if isinstance(table, SpectralTable):
        return spectral_table_pt(table, params, model_bins)
    if isinstance(table, SpectralEventSum):
        return spectral_event_sum_pt(table, params, model_bins)
    raise TypeError(f"unknown table type {type(table).__name__}")


def flavour_pt(table: FlavourTemplate, params: dict, model_bins: np.ndarray):
    """Pytensor expression of ``3 (f_e T_e + f_mu T_mu + f_tau T_tau)`` on the model bins,
    ``f_tau = 1 - f_e - f_mu`` (:mod:`diffuse_fit.binned.flavour_tables`); NumPy twin
    ``table.unit_counts(params)[model_bins]``."""
    c = table.component
    f_e, f_mu = (params[f] for f in c.fractions)
    e, mu, tau = (log_table_pt(t, params[c.index], model_bins) for t in table.tables)
    return 3.0 * (f_e * e + f_mu * mu + (1.0 - f_e - f_mu) * tau)


def spectral_table_pt(table: SpectralTable, params: dict, model_bins: np.ndarray):
    """Pytensor expression of a tensor-product Chebyshev table of ``log S_b`` over the shape
    parameters, exponentiated, on the model bins; NumPy twin ``table.unit_counts(params)``.

    The coefficients (n, K_1, ..., K_d) are contracted one axis at a time, last first, as
    matrix-vector products of a 2-D view (``(n K_1 ... K_{a-1}, K_a) @ T_a``): their
    gradients are matrix-vector products too, no (n, K_1, ..., K_d) temporaries."""
    c = table.component
    shape = table.log_coeffs.shape
    log_s = table_input(table.log_coeffs.reshape(-1, shape[-1]))
    for a in reversed(range(len(c.shape))):  # contract the last axis first
        t = chebyshev.to_unit(params[c.shape[a]], c.shape_ranges[a])
        log_s = pt.dot(log_s, chebyshev_basis(t, shape[1 + a]))  # (prod(shape[:1 + a]),)
        if a > 0:
            log_s = log_s.reshape((-1, shape[a]))
    positions = np.searchsorted(model_bins, table.active)
    return pt.zeros(model_bins.size)[table_input(positions)].set(pt.exp(log_s))


def spectral_event_sum_pt(table: SpectralEventSum, params: dict, model_bins: np.ndarray):
    """Pytensor expression of the exact per-event sum ``S_b = sum_{i in b} w_i exp(f(x_i))``
    (a segment sum, O(events) per evaluation); NumPy twin ``table.unit_counts(params)``."""
    c = table.component
    # large arrays as shared inputs, not constants (numba cannot cache large globals)
    f = c.log_tilt(pytensor.shared(table.log_energy), [params[name] for name in c.shape], xp=pt)
    weights = pytensor.shared(table.weight) * pt.exp(f)
    positions = np.searchsorted(model_bins, table.event_bin)
    return pt.zeros(model_bins.size)[table_input(positions)].inc(weights)


def expectations_pt(templates: Templates, params: dict, model_bins: np.ndarray, squares: bool):
    """Expected events per model bin of each component (name -> pytensor vector) and, with
    ``squares``, the SAY likelihood's ``s2_b`` (else ``None``).

    The flat, power-law and nuisance tables, the squared-weight tables and the detector
    responses are one :class:`diffuse_fit.inference.stacked_pt.StackedTerms` graph; the
    flavour and spectral tables keep their own expressions (:func:`unit_counts_pt`).
    NumPy twins: ``templates.component_counts(params)``, ``templates.sum_of_squares(params)``
    (``[model_bins]``)."""
    stacked = StackedTerms.of(templates, model_bins, squares)
    values = stacked.values_pt(params) if stacked is not None else None
    responses = (
        stacked.responses
        if stacked is not None
        else ResponseStack.of(templates.responses, model_bins)
    )
    log_r = None
    out = {}
    for t in templates.tables:
        name = t.component.name
        if stackable(t):
            out[name] = values[stacked.targets.index(name)]
            continue
        lam = params[t.component.norm] * unit_counts_pt(t, params, model_bins)
        if templates.responses_of(name):
            log_r = responses.log_values_pt(params) if log_r is None else log_r
            lam = lam * pt.exp(log_r[responses.components.index(name)])
        out[name] = lam
    return out, values[stacked.targets.index(SQUARES)] if squares else None


def expected_counts_pt(templates: Templates, params: dict, model_bins: np.ndarray) -> dict:
    """Expected events per model bin of each component (name -> pytensor vector);
    :func:`expectations_pt` without the squared weights."""
    return expectations_pt(templates, params, model_bins, squares=False)[0]


def say_logp(value, mu, s2):
    """SAY log-density of ``k = value`` given ``mu`` and ``s2`` per bin (arXiv:1901.04645):
    ``alpha ln(beta) + lnGamma(k + alpha) - lnGamma(k + 1) - (k + alpha) ln(1 + beta) -
    lnGamma(alpha)``, ``alpha = mu^2 / s2 + 1``, ``beta = mu / s2``, evaluated as its NumPy
    twin :func:`diffuse_fit.binned.say.say_loglike` does; :func:`poisson_logp` where ``s2 = 0``.

    Both branches are computed with safe arguments so that neither puts NaN into the other's
    gradient."""
    positive = pt.gt(s2, 0)
    safe_s2 = pt.switch(positive, s2, 1.0)
    safe_mu = pt.switch(positive, mu, 1.0)
    alpha = safe_mu**2 / safe_s2 + 1.0
    beta = safe_mu / safe_s2
    say = (
        -alpha * pt.log1p(1.0 / beta)
        - value * pt.log1p(beta)
        + pt.gammaln(value + alpha)
        - pt.gammaln(alpha)
        - pt.gammaln(value + 1.0)
    )
    return pt.switch(positive, say, poisson_logp(value, mu))


def _say_random(mu, s2, rng=None, size=None):
    return rng.poisson(mu, size=size)  # new data given the expectation: Poisson (module doc)


def poisson_logp(value, mu):
    """Poisson log-density ``k log(mu) - mu - lgamma(k + 1)`` for real ``k >= 0`` (0 log 0 = 0)."""
    return pt.switch(pt.gt(value, 0), value * pt.log(mu), 0.0) - mu - pt.gammaln(value + 1.0)


def _poisson_random(mu, rng=None, size=None):
    return rng.poisson(mu, size=size)


def build_model(binned: BinnedDataset, priors: dict, likelihood: str = "poisson") -> pm.Model:
    """The PyMC model of ``binned`` with ``priors`` (parameter -> :class:`diffuse_fit.inference.priors.Prior`).

    Coordinates: ``bin`` (flat indices of the bins in the likelihood), ``component``.
    Variables: one per parameter; ``n_expected`` (expected events per component, summed
    over the likelihood's bins); ``observed`` (observed ``counts``; density Poisson or, with
    ``likelihood="say"``, SAY, which needs the tables of squared weights: built here from
    ``binned``'s simulation unless ``binned.templates.variance`` holds them).
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, not {likelihood!r}")
    if likelihood == "say":
        binned = binned.with_variance()
    templates = binned.templates
    model_bins = np.flatnonzero(templates.covered())
    names = [t.component.name for t in templates.tables]
    with pm.Model(coords={"bin": model_bins, "component": names}) as model:
        counts = pm.Data("counts", binned.counts[model_bins], dims="bin")
        params: dict = {}
        for name in templates.parameter_supports():
            params[name] = (
                pt.constant(np.float64(templates.fixed[name]), name=name)
                if name in templates.fixed
                else priors[name].build(name, built=params, fixed=templates.fixed)
            )
        per_component, s2 = expectations_pt(
            templates, params, model_bins, squares=likelihood == "say"
        )
        pm.Deterministic(
            "n_expected", pt.stack([lam.sum() for lam in per_component.values()]), dims="component"
        )
        expected = pt.add(*per_component.values())
        if likelihood == "say":
            dist_params, logp, random = (expected, s2), say_logp, _say_random
        else:
            dist_params, logp, random = (expected,), poisson_logp, _poisson_random
        pm.CustomDist(
            "observed",
            *dist_params,
            logp=logp,
            random=random,
            observed=counts,
            dims="bin",
            dtype="float64",
        )
    model.diffuse_fit_twin = NumpyTwin(templates, dict(priors), model_bins, likelihood)
    model.diffuse_fit_signature = ModelSignature.of(model)
    return model


def structure_key(model: pm.Model) -> tuple:
    """Identities of what makes up ``model``'s density: its variables, their value
    variables and transforms (a cheap key: unchanged means no variable was added, removed
    or re-transformed since it was taken)."""
    groups = (model.free_RVs, model.observed_RVs, model.potentials, model.deterministics)
    return (
        tuple(tuple(id(v) for v in g) for g in groups),
        tuple(
            (id(rv), id(model.rvs_to_values.get(rv)), id(model.rvs_to_transforms.get(rv)))
            for rv in model.free_RVs
        ),
    )


@dataclass
class ModelSignature:
    """What :func:`build_model` made, to prove later that a model is still exactly it: the
    graph of its log-density (with the transforms' Jacobians, so that priors, potentials,
    observed variables and transforms all enter) and the names of its variables (for the
    message only: the proof compares graphs, not names)."""

    logp: object
    observation: object
    names: dict
    verified: tuple

    @classmethod
    def of(cls, model: pm.Model) -> ModelSignature:
        return cls(
            model.logp(jacobian=True), _observation_logp(model), _names(model), structure_key(model)
        )

    def same_observation(self, model: pm.Model) -> bool:
        """Whether ``model``'s observation (the observed variables' log-density as a graph of
        the parameters) is still the builder's: priors and potentials may differ."""
        from pytensor.graph.basic import equal_computations

        return equal_computations([_observation_logp(model)], [self.observation])

    def differences(self, model: pm.Model) -> str:
        """``""`` where ``model``'s log-density graph equals the builder's, else how it
        differs (one clause)."""
        structure = structure_key(model)
        if structure == self.verified:
            return ""
        from pytensor.graph.basic import equal_computations

        if equal_computations([model.logp(jacobian=True)], [self.logp]):
            self.verified = structure
            return ""
        now = _names(model)
        clauses = []
        for kind, before in self.names.items():
            added = [n for n in now[kind] if n not in before]
            removed = [n for n in before if n not in now[kind]]
            if added:
                clauses.append(f"{kind} added: {', '.join(added)}")
            if removed:
                clauses.append(f"{kind} removed: {', '.join(removed)}")
        return (
            "; ".join(clauses)
            or "its log-density graph differs from build_model's "
            "(a prior, transform or observed variable changed)"
        )


def _observation_logp(model: pm.Model):
    return model.logp(vars=model.observed_RVs, jacobian=False)


def _names(model: pm.Model) -> dict:
    return {
        "free variables": [v.name for v in model.free_RVs],
        "observed variables": [v.name for v in model.observed_RVs],
        "potentials": [v.name for v in model.potentials],
    }


def builder_twin(model: pm.Model) -> tuple[NumpyTwin | None, str]:
    """``(twin, "")`` where ``model`` is provably the model :func:`build_model` made (its
    log-density graph unchanged; new counts by :func:`set_counts` or ``pm.set_data`` are the
    twin's too), else ``(None, why not)``: a fast path on the twin would fit another model."""
    twin, signature = _recorded(model)
    if twin is None:
        return None, "the model was not made by build_model (or was rebuilt, e.g. by pm.do)"
    why = signature.differences(model)
    return (None, why) if why else (twin, "")


def observation_twin(model: pm.Model) -> NumpyTwin | None:
    """The builder's :class:`NumpyTwin` where ``model``'s observation is provably still the
    builder's (its log-density graph unchanged, whatever the user did to the priors or added
    as potentials), else ``None``: the twin then computes the expectations, predictive draws
    and point-wise log-likelihood of ``model``'s posterior exactly."""
    twin, signature = _recorded(model)
    if twin is None:
        return None
    return twin if signature.same_observation(model) else None


def _recorded(model: pm.Model) -> tuple[NumpyTwin | None, ModelSignature | None]:
    """The twin and signature :func:`build_model` kept on ``model`` (``(None, None)`` if
    either is missing)."""
    twin = getattr(model, "diffuse_fit_twin", None)
    signature = getattr(model, "diffuse_fit_signature", None)
    if not isinstance(twin, NumpyTwin) or not isinstance(signature, ModelSignature):
        return None, None
    return twin, signature


@dataclass(frozen=True)
class NumpyTwin:
    """The NumPy twin of a model built by :func:`build_model`: its tables, priors and bins,
    for exact derivatives without compiling (:meth:`curvature`)."""

    templates: Templates
    priors: dict
    bins: np.ndarray
    likelihood: str = "poisson"

    def full_counts(self, model: pm.Model) -> np.ndarray:
        """The model's current observed counts on every bin of the binning (0 outside the
        likelihood's bins)."""
        counts = np.zeros(self.templates.binning.n_bins)
        counts[self.bins] = model["counts"].get_value()
        return counts

    def curvature(self, model: pm.Model, values: dict) -> tuple[float, np.ndarray]:
        """``(ln L, Hessian of log p)`` at ``values`` for the model's current counts: the
        log-likelihood (Poisson or SAY, with lnGamma(k + 1)) and the Hessian of the
        jacobian-free log posterior in the natural parameters (free-variable order), from
        :func:`diffuse_fit.binned.curvature.loglike_derivatives` or
        :func:`diffuse_fit.binned.say.say_loglike_derivatives` and the priors' curvature."""
        names = [rv.name for rv in model.free_RVs]
        counts = self.full_counts(model)
        derivatives = LIKELIHOODS[self.likelihood]
        fixed = list(self.templates.fixed)
        loglike, _, hessian = derivatives(
            self.templates, counts, self.templates.with_fixed(values), names + fixed, self.bins
        )
        hessian = hessian[: len(names), : len(names)]
        for i, name in enumerate(names):
            hessian[i, i] += self.priors[name].log_density_curvature(values[name])
        return loglike, hessian


def numpy_twin(model: pm.Model) -> NumpyTwin:
    """The :class:`NumpyTwin` of a model made by :func:`build_model` (kept on the model
    object: a registry with weak references would run callbacks during garbage collection,
    where a Ctrl-C cannot be handled)."""
    twin = getattr(model, "diffuse_fit_twin", None)
    if not isinstance(twin, NumpyTwin):
        raise ValueError("this model was not made by diffuse_fit.inference.pymc_model.build_model")
    return twin


def set_counts(model: pm.Model, counts: np.ndarray, source: str = "<counts>") -> None:
    """Replace the observed counts (all bins of the binning) without rebuilding the model."""
    model_bins = np.asarray(model.coords["bin"])
    counts = np.asarray(counts, dtype=np.float64)
    outside = np.ones(counts.size, dtype=bool)
    outside[model_bins] = False
    if np.any(counts[outside] > 0):
        b = int(np.flatnonzero(outside & (counts > 0))[0])
        raise DataFormatError(source, f"observed events in bin {b}, where the simulation has none")
    with model:
        pm.set_data({"counts": counts[model_bins]})
