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
    rows: list[tuple[float, float, float]] = []
    p0, p1, p2 = 1.0, 0.0, 0.0  # T_0 and its derivatives
    c0, c1, c2 = t, 1.0, 0.0  # T_1
    for _ in range(k):
        rows.append((p0, p1, p2))
        p0, p1, p2, c0, c1, c2 = (
            c0,
            c1,
            c2,
            2.0 * t * c0 - p0,
            2.0 * c0 + 2.0 * t * c1 - p1,
            4.0 * c1 + 2.0 * t * c2 - p2,
        )
    return np.array(rows, dtype=np.float64).reshape(k, 3)
