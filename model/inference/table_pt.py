"""Pytensor expressions of the one-variable log-Chebyshev tables
(:mod:`diffuse_fit.binned.log_tables`) and how tables enter the compiled functions."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt

from diffuse_fit.binned import chebyshev


def chebyshev_basis(t, k: int):
    """Pytensor twin of :func:`diffuse_fit.binned.chebyshev.basis` for a scalar ``t`` in [-1, 1]: ``T_n(t) = cos(n arccos t)``.

    One elementwise expression instead of a k-step recurrence keeps the graph (and its
    gradient and Hessian) small; the gradient is finite for |t| < 1, which the model's
    interval transform guarantees.  ``k`` may be symbolic (a table input's length), so that
    the compiled graph does not depend on the number of terms.
    """
    n = np.arange(k, dtype=np.float64) if isinstance(k, int) else pt.arange(k, dtype="float64")
    return pt.cos(n * pt.arccos(t))


def table_input(values: np.ndarray):
    """A table as a shared input of the compiled functions, not a constant folded into them.

    The compiled log-density then depends on the tables' shapes, not their values: numba's
    on-disk cache of it (:mod:`diffuse_fit.inference.nutpie_cached`) serves every simulation with
    the same binning and model, instead of compiling afresh (5-20 s on a 2-core machine) for
    each new simulation file."""
    return pytensor.shared(np.ascontiguousarray(values))


def log_table_pt(table, x, model_bins: np.ndarray):
    """Pytensor expression of a :class:`diffuse_fit.binned.log_tables.LogChebyshevTable` at
    ``x`` on the model bins (0 off the table's ``active`` bins); NumPy twin
    ``table.values(x)[model_bins]``."""
    t = chebyshev.to_unit(x, table.interval)
    coeffs = table_input(table.log_coeffs)
    log_s = coeffs @ chebyshev_basis(t, coeffs.shape[1])  # any number of terms: one graph
    positions = np.searchsorted(model_bins, table.active)
    if positions.size == model_bins.size:
        return pt.exp(log_s)
    return pt.zeros(model_bins.size)[table_input(positions)].set(pt.exp(log_s))
