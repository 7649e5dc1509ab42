"""Pytensor expressions of the detector response tables (:mod:`diffuse_fit.binned.detector_tables`).

NumPy twin: :meth:`diffuse_fit.binned.detector_tables.ResponseTable.log_values`
(``[model_bins]``); ``tests/test_detector.py`` checks the two agree.
"""

from __future__ import annotations

import weakref

import numpy as np
import pytensor.tensor as pt

from diffuse_fit.inference.table_pt import chebyshev_basis, table_input

INSIDE = 1.0 - 1e-12
"""``t`` is scaled by this before ``T_n(t) = cos(n arccos t)``: the pieces meet at ``t = +-1``,
where arccos has an infinite derivative; inside, the gradient is finite and off by 1e-12
relative at most."""


_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def response_log_pt(table, v, model_bins: np.ndarray):
    """``log R_b(v)`` on the model bins (0 off the table's active bins); built once per
    table, parameter variable and bins, so that the expectation and the SAY squared weights
    share one subgraph (and one shared input) per table."""
    key = (v, model_bins.tobytes())
    built = _BUILT.setdefault(table, {})
    if key not in built:
        built[key] = _response_log_pt(table, v, model_bins)
    return built[key]


def _response_log_pt(table, v, model_bins: np.ndarray):
    breaks = np.asarray(table.breaks, dtype=np.float64)
    n_pieces = len(breaks) - 1
    inner = breaks[1:-1]
    piece = pt.clip(pt.sum(pt.ge(v, inner)) if inner.size else 0, 0, n_pieces - 1)
    edges = table_input(breaks)
    low, high = edges[piece], edges[piece + 1]
    t = (2.0 * v - low - high) / (high - low)
    coeffs = table_input(table.log_coeffs)[piece]  # (active, K)
    log_r = coeffs @ chebyshev_basis(t * INSIDE, table.log_coeffs.shape[2])
    positions = np.searchsorted(model_bins, table.active)
    if positions.size == model_bins.size:
        return log_r
    return pt.zeros(model_bins.size)[table_input(positions)].set(log_r)


def component_log_response_pt(responses, params: dict, model_bins: np.ndarray):
    """``sum_k log R_k(params[parameter_k])`` of one component's tables on the model bins,
    built once per set of tables, parameters and bins."""
    key = (tuple(responses), tuple(params[r.parameter] for r in responses), model_bins.tobytes())
    built = _BUILT.setdefault(responses[0], {})  # kept while its first table lives
    if key not in built:
        built[key] = pt.add(
            *(response_log_pt(r, params[r.parameter], model_bins) for r in responses)
        )
    return built[key]


def responses_pt(responses, params: dict, model_bins: np.ndarray):
    """``prod_k R_k(params[parameter_k])`` on the model bins, or None without responses."""
    if not responses:
        return None
    return pt.exp(component_log_response_pt(tuple(responses), params, model_bins))
