"""Chebyshev interpolation on an interval, NumPy only.

Used to tabulate smooth per-bin functions of one parameter (log of the per-bin
astrophysical sum as a function of the spectral index) so that evaluating them
costs O(K) per bin, independent of the number of simulated events.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt


def nodes(k: int, interval: tuple[float, float]) -> np.ndarray:
    """The ``k`` Chebyshev points of the first kind mapped to ``interval``, increasing."""
    a, b = interval
    t = np.cos(np.pi * (np.arange(k)[::-1] + 0.5) / k)
    return 0.5 * (a + b) + 0.5 * (b - a) * t


def to_unit(x: Any, interval: tuple[float, float]) -> Any:
    """Map ``x`` in ``interval`` to [-1, 1] (works on NumPy and pytensor values)."""
    a, b = np.asarray(interval, dtype=np.float64)  # float64 constants also in pytensor graphs
    return (2.0 * x - (a + b)) / (b - a)


def fit(values: np.ndarray, interval: tuple[float, float]) -> np.ndarray:
    """Coefficients (..., k) of the interpolant through ``values`` (..., k) at :func:`nodes`."""
    k = values.shape[-1]
    x = to_unit(nodes(k, interval), interval)
    basis = np.polynomial.chebyshev.chebvander(x, k - 1)  # (k nodes, k terms)
    return np.linalg.solve(basis, np.moveaxis(values, -1, 0)).T.reshape(values.shape)


def basis(t: Any, k: int) -> np.ndarray:
    """[T_0(t), ..., T_{k-1}(t)] by the three-term recurrence (NumPy)."""
    if np.ndim(t) == 0:  # the common case (a fit): plain floats, no array per term
        t = float(t)
        out = np.empty(k)
        previous, current = 1.0, t
        for n in range(k):
            out[n] = previous
            previous, current = current, 2.0 * t * current - previous
        return out
    terms = [np.ones_like(t), t]
    for _ in range(2, k):
        terms.append(2.0 * t * terms[-1] - terms[-2])
    return np.stack(terms[:k], axis=-1)


def evaluate(coeffs: np.ndarray, x: npt.ArrayLike, interval: tuple[float, float]) -> np.ndarray:
    """Value of the interpolants ``coeffs`` (..., n, k) at scalar ``x``: shape (..., n)."""
    t = to_unit(np.asarray(x, dtype=np.float64), interval)
    return cast(np.ndarray, coeffs @ basis(t, coeffs.shape[-1]))


def derivative_basis(t: float, k: int) -> np.ndarray:
    """``[T_n(t), T_n'(t), T_n''(t)]`` for ``n = 0 .. k-1`` at scalar ``t``: shape (k, 3).

    By the recurrences ``T_{n+1} = 2 t T_n - T_{n-1}``, ``T_{n+1}' = 2 T_n + 2 t T_n' -
    T_{n-1}'`` and ``T_{n+1}'' = 4 T_n' + 2 t T_n'' - T_{n-1}''`` (derivatives in ``t``): a
    series' value and first two derivatives are then one product ``coeffs @ basis`` (no
    differentiated coefficient arrays)."""
    t = float(t)
    tt = 2.0 * t
    value, slope, curve = [0.0] * k, [0.0] * k, [0.0] * k
    if k > 0:
        value[0] = 1.0
    if k > 1:
        value[1], slope[1] = t, 1.0
    for n in range(2, k):
        value[n] = tt * value[n - 1] - value[n - 2]
        slope[n] = 2.0 * value[n - 1] + tt * slope[n - 1] - slope[n - 2]
        curve[n] = 4.0 * slope[n - 1] + tt * curve[n - 1] - curve[n - 2]
    return np.array([value, slope, curve], dtype=np.float64).reshape(3, k).T
