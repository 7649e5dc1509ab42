"""Exact log-likelihood, gradient and Hessian of the binned Poisson model (NumPy).

For bins ``b`` (the model's bins: where some component predicts events),
``lam_b = sum_c n_c U_cb(index_c)`` with ``U`` the per-bin tables at norm 1, and
``ln L = sum_b k_b ln lam_b - lam_b - lgamma(k_b + 1)``:

    d ln L / d theta_i        = sum_b (k_b / lam_b - 1) d lam_b / d theta_i
    d2 ln L / d theta_i theta_j = sum_b (k_b / lam_b - 1) d2 lam_b / d theta_i theta_j
                                 - k_b / lam_b^2 (d lam_b / d theta_i)(d lam_b / d theta_j)

with ``d lam / d n_c = U_c``, ``d lam / d index_c = n_c U_c'``, ``d2 lam / d n_c d index_c
= U_c'``, ``d2 lam / d index_c^2 = n_c U_c''`` (exact derivatives of the tables,
:meth:`diffuse_fit.binned.templates.PowerLawTemplate.unit_counts_derivatives`); the same with
a gradient and Hessian in the shape parameters for the spectral models
(:mod:`diffuse_fit.binned.spectral_tables`: exact for the tables, and per event for the exact
sums; for the broken power law almost everywhere).  This replaces
a symbolic pytensor Hessian (seconds of graph compilation per process) by microseconds of
NumPy; ``tests/test_curvature.py`` checks it against that symbolic Hessian and against
finite differences.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from scipy.special import gammaln, xlogy

from diffuse_fit.binned.detector_tables import apply_responses
from diffuse_fit.binned.nuisance_tables import (
    LogTable,
    NuisanceTemplate,
    Product,
    Second,
    add_second,
)
from diffuse_fit.binned.product_engine import ProductEngine, cached_engine
from diffuse_fit.binned.templates import FlatTemplate, PowerLawTemplate, Templates


def loglike_derivatives(
    templates: Templates,
    counts: np.ndarray,
    params: dict[str, float],
    names: list[str],
    bins: np.ndarray,
    curvature: bool = True,
) -> tuple[float, np.ndarray, np.ndarray]:
    """``(ln L, gradient, Hessian)`` in the parameters ``names`` (that order) at ``params``.

    Parameters
    ----------
    templates : Templates
    counts : ndarray, (n_bins,)
        Observed events per bin of the whole binning.
    params : dict
        Parameter -> value (norms dimensionless, spectral indices).
    names : list of str
        Parameter order of the gradient and Hessian.
    bins : ndarray of int
        The likelihood's bins (where some component predicts events).
    curvature : bool
        False: the broken power law's smoothed curvature in E_break is not computed (the
        Hessian's entry is then not meaningful; for gradient-only optimisers).
    """
    position = {name: i for i, name in enumerate(names)}
    k = np.asarray(counts, dtype=np.float64)[bins]
    lam, jac, second = expectation_derivatives(templates, params, position, bins, curvature)
    # absurd inputs (weights ~1e300) overflow to inf/NaN here: the MAP reports that Hessian
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(lam > 0, k / lam, np.where(k > 0, np.inf, 0.0))
        weight = np.where(lam > 0, k / lam**2, np.where(k > 0, np.inf, 0.0))
        loglike = float(np.sum(xlogy(k, lam) - lam - gammaln(k + 1.0)))
        residual = ratio - 1.0
        gradient = jac.T @ residual
        hessian = -(jac.T * weight) @ jac
        add_second(hessian, second, residual)
    return loglike, gradient, hessian


def expectation_derivatives(
    templates: Templates,
    params: dict[str, float],
    position: dict[str, int],
    bins: np.ndarray,
    curvature: bool = True,
) -> tuple[np.ndarray, np.ndarray, Second]:
    """Expected events per bin ``lam_b`` (len(bins),), its Jacobian ``d lam_b / d theta_i``
    (len(bins), n) and its non-zero second derivatives as ``(i, j, d2 lam_b / d theta_i
    d theta_j)`` entries (both orders of each off-diagonal pair) or contractible ones
    (:func:`diffuse_fit.binned.nuisance_tables.add_second`), at ``params``; ``position``:
    parameter name -> i.

    The flat, power-law and nuisance components (with their detector responses) are one
    :class:`diffuse_fit.binned.product_engine.ProductEngine`, built once per ``templates``,
    ``position`` and ``bins``; the others (spectral, flavour) are evaluated table by table."""
    engine, others = cached_engine(
        templates, position, bins, lambda: _split(templates, position, bins)
    )
    lam, jac, found = engine.derivatives(params)
    second: Second = [] if found is None else [found]
    for table in others:
        value, d1, d2 = _table_derivatives(table, params, position, bins, curvature)
        responses = templates.responses_of(table.component.name)
        value, d1, d2 = apply_responses(value, d1, d2, responses, params, position, bins)
        lam, jac, second = lam + value, jac + d1, second + d2
    return lam, jac, second


def _split(
    templates: Templates, position: dict[str, int], bins: np.ndarray
) -> tuple[ProductEngine, list[Any]]:
    """The engine of the tables that are products (flat, power law, nuisance: each with its
    component's norm and responses) and the other tables."""
    products: list[Product] = []
    others = []
    for table in templates.tables:
        c = table.component
        norm = ((c.norm, 0.0, 1.0),)
        responses = templates.responses_of(c.name)
        n_bins = templates.binning.n_bins
        if isinstance(table, FlatTemplate):
            plain = LogTable((), (), n_bins, per_bin=np.asarray(table.per_bin, dtype=np.float64))
            products.append(Product(1.0, norm, plain, responses))
        elif isinstance(table, PowerLawTemplate):
            tilted = LogTable((c.index,), (), n_bins, table=table.table)
            products.append(Product(1.0, norm, tilted, responses))
        elif isinstance(table, NuisanceTemplate):
            products += [
                Product(p.multiplier, norm + p.factors, p.table, responses) for p in table.products
            ]
        else:
            others.append(table)
    return ProductEngine(products, position, bins), others


def _table_derivatives(
    table: Any,
    params: dict[str, float],
    position: dict[str, int],
    bins: np.ndarray,
    curvature: bool,
) -> tuple[np.ndarray, np.ndarray, Second]:
    """One component's expectation on ``bins``: value, Jacobian, second-derivative entries."""
    if hasattr(table, "expectation_derivatives"):  # diffuse_fit.binned.nuisance_tables
        found = table.expectation_derivatives(params, position, bins)
        return cast(tuple[np.ndarray, np.ndarray, Second], found)
    jac = np.zeros((bins.size, len(position)))
    second: Second = []
    c = table.component
    norm = params[c.norm]
    if isinstance(table, FlatTemplate):
        unit = table.per_bin[bins]
        jac[:, position[c.norm]] += unit
    elif isinstance(table, PowerLawTemplate):
        unit, d1, d2 = (a[bins] for a in table.unit_counts_derivatives(params))
        i, j = position[c.norm], position[c.index]
        jac[:, i] += unit
        jac[:, j] += norm * d1
        second += [(i, j, d1), (j, i, d1), (j, j, norm * d2)]
    else:  # SpectralTable / SpectralEventSum: shape parameters s_a
        unit, d1, d2 = table.unit_counts_derivatives(params, curvature=curvature)
        unit, d1, d2 = unit[bins], d1[..., bins], d2[..., bins]
        i, shape = position[c.norm], [position[name] for name in c.shape]
        jac[:, i] += unit
        for a, j in enumerate(shape):
            jac[:, j] += norm * d1[a]
            second += [(i, j, d1[a]), (j, i, d1[a])]
            second += [(j, k, norm * d2[a, b]) for b, k in enumerate(shape)]
    return norm * unit, jac, second
