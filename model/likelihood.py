"""The binned Poisson log-likelihood, NumPy reference."""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, xlogy


def poisson_log_likelihood(counts, expected) -> float:
    """``sum_b k_b log(lam_b) - lam_b - lgamma(k_b + 1)``, the workshop's log-likelihood.

    A bin with k = lam = 0 contributes 0; a bin with k > 0 and lam = 0 gives -inf.
    """
    counts = np.asarray(counts, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.sum(xlogy(counts, expected) - expected - gammaln(counts + 1.0)))
