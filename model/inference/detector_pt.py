"""Pytensor expressions of the detector response tables (:mod:`diffuse_fit.binned.detector_tables`).

NumPy twin: :meth:`diffuse_fit.binned.detector_tables.ResponseTable.log_values`
(``[model_bins]``); ``tests/test_detector.py`` checks the two agree.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from diffuse_fit.inference.table_pt import table_input


def chebyshev_recurrence(t, k: int):
    """``T_0(t) .. T_{k-1}(t)`` by the three-term recurrence: smooth on the closed interval
    [-1, 1] (the arccos form's gradient is infinite at its ends, where the pieces meet)."""
    terms = [pt.ones_like(t), t]
    while len(terms) < k:
        terms.append(2.0 * t * terms[-1] - terms[-2])
    return pt.stack(terms[:k])


def response_log_pt(table, v, model_bins: np.ndarray):
    """``log R_b(v)`` on the model bins (0 off the table's active bins)."""
    breaks = np.asarray(table.breaks, dtype=np.float64)
    n_pieces = len(breaks) - 1
    inner = breaks[1:-1]
    piece = pt.clip(pt.sum(pt.ge(v, inner)) if inner.size else 0, 0, n_pieces - 1)
    edges = table_input(breaks)
    low, high = edges[piece], edges[piece + 1]
    t = (2.0 * v - low - high) / (high - low)
    coeffs = table_input(table.log_coeffs)[piece]  # (active, K)
    log_r = coeffs @ chebyshev_recurrence(t, table.log_coeffs.shape[2])
    positions = np.searchsorted(model_bins, table.active)
    if positions.size == model_bins.size:
        return log_r
    return pt.zeros(model_bins.size)[table_input(positions)].set(log_r)


def responses_pt(responses, params: dict, model_bins: np.ndarray):
    """``prod_k R_k(params[parameter_k])`` on the model bins, or None without responses."""
    if not responses:
        return None
    return pt.exp(pt.add(*(response_log_pt(r, params[r.parameter], model_bins)
                           for r in responses)))  # fmt: skip
