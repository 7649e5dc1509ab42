"""One kind of table, three uses: ``S_b(x) = exp(L_b(x))`` with ``L_b`` a Chebyshev series in
one variable ``x`` on the bins where ``S_b > 0`` (0 elsewhere).

A power law's per-bin sum ``S_b(gamma) = sum_{i in b} w_i exp(-(gamma - g0) y_i)``
(:class:`diffuse_fit.binned.templates.PowerLawTemplate`), a pair's sum of squared weights for
the SAY likelihood (:class:`diffuse_fit.binned.variance.SmoothPair`) and a nuisance product
(:class:`diffuse_fit.binned.nuisance_tables.LogTable`) are all smooth positive functions of one
variable; each is tabulated by :func:`tabulate_log_sums` (``log S_b`` on K Chebyshev nodes, K
raised until the interpolant matches the exact sum to ``tolerance`` on a dense check grid) and
evaluated with its exact derivatives by :func:`log_table_values` /
:func:`log_table_derivatives`.  Their pytensor expression is
:func:`diffuse_fit.inference.table_pt.log_table_pt` (the NumPy functions here are its twins).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from diffuse_fit.binned import chebyshev

DEFAULT_TOLERANCE = 1e-11
MAX_NODES = 64
CHECK_POINTS = 65


def read_log_table(
    arrays: Mapping[str, Any], prefix: str, n_bins: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(active, log_coeffs)`` of a log table stored as ``<prefix>__active`` and
    ``<prefix>__log_coeffs`` in ``arrays`` (a run's fit record); ``ValueError``
    ("inconsistent <what>") unless the coefficients are (len(active), K) and the bins lie in
    ``0..n_bins-1``, ``KeyError`` if missing."""
    active = np.asarray(arrays[f"{prefix}__active"], dtype=np.int64)
    coeffs = np.asarray(arrays[f"{prefix}__log_coeffs"], dtype=np.float64)
    if (
        coeffs.ndim != 2
        or len(coeffs) != len(active)
        or np.any(active < 0)
        or np.any(active >= n_bins)
    ):
        raise ValueError(f"inconsistent {what}")
    return active, coeffs


def log_table_values(
    log_coeffs: np.ndarray,
    active: np.ndarray,
    n_bins: int,
    interval: tuple[float, float],
    x: float,
    name: str = "index",
) -> np.ndarray:
    """``exp`` of the Chebyshev series ``log_coeffs`` (len(active), K) at ``x`` on the
    ``active`` bins, 0 elsewhere: shape (n_bins,).  ``x`` must lie inside ``interval``
    (``name`` is the parameter's name, for the error)."""
    _check_inside(interval, x, name)
    out = np.zeros(n_bins)
    out[active] = np.exp(chebyshev.evaluate(log_coeffs, x, interval))
    return out


def _check_inside(interval: tuple[float, float], x: float, name: str) -> None:
    low, high = interval
    if not low <= x <= high:
        raise ValueError(f"{name}={x} is outside the tabulated range [{low}, {high}]")


def log_derivative_stack(log_coeffs: np.ndarray, interval: tuple[float, float]) -> np.ndarray:
    """Chebyshev coefficients of ``L``, ``dL/dx`` and ``d2L/dx2``, shape (3, len(active), K),
    for one basis evaluation and one product per point (:func:`log_table_derivatives`)."""
    scale = 2.0 / (interval[1] - interval[0])  # dt / dx
    d1 = np.polynomial.chebyshev.chebder(log_coeffs, m=1, scl=scale, axis=1)
    d2 = np.polynomial.chebyshev.chebder(log_coeffs, m=2, scl=scale, axis=1)
    out = np.zeros((3, *np.shape(log_coeffs)))
    out[0], out[1, :, : d1.shape[1]], out[2, :, : d2.shape[1]] = log_coeffs, d1, d2
    return out


def log_table_derivatives(
    log_coeffs: np.ndarray,
    active: np.ndarray,
    n_bins: int,
    interval: tuple[float, float],
    x: float,
    name: str = "index",
    stack: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``S``, ``dS/dx`` and ``d2S/dx2`` (n_bins each) of ``S = exp(L)``, ``L`` the Chebyshev
    series of :func:`log_table_values`.

    Exact derivatives of the tabulated interpolant: with ``L`` a Chebyshev series in
    ``t = (2 x - (a + b)) / (b - a)``, ``S' = S L'`` and ``S'' = S (L'' + L'^2)``, ``L'`` and
    ``L''`` from the differentiated series (``stack``: :func:`log_derivative_stack` of
    ``log_coeffs``, computed here if not given).
    """
    _check_inside(interval, x, name)
    stack = log_derivative_stack(log_coeffs, interval) if stack is None else stack
    log_s, dlog_a, d2log_a = chebyshev.evaluate(stack, x, interval)
    s, dlog, d2log = np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins)
    s[active], dlog[active], d2log[active] = np.exp(log_s), dlog_a, d2log_a
    return s, s * dlog, s * (d2log + dlog**2)


def _exact_power_law_sums(
    idx: np.ndarray,
    w: np.ndarray,
    x: np.ndarray,
    gammas: np.ndarray,
    reference_index: float,
    n_bins: int,
) -> np.ndarray:
    """Exact ``S_b(gamma)`` for each gamma: array (len(gammas), n_bins), from the events
    inside the bins (``idx >= 0``): bins ``idx``, weights ``w``, log-energies ``x``."""
    out = np.empty((len(gammas), n_bins))
    term = np.empty_like(x)  # w * exp(-(g - x0) x), computed in place: no temporaries
    for row, g in zip(out, gammas, strict=True):
        np.multiply(x, -(g - reference_index), out=term)
        np.exp(term, out=term)
        np.multiply(w, term, out=term)
        row[:] = np.bincount(idx, weights=term, minlength=n_bins)
    return out


def tabulate_log_sums(
    bin_index: np.ndarray,
    weights: np.ndarray,
    log_energy: np.ndarray,
    reference_index: float,
    interval: tuple[float, float],
    n_bins: int,
    tolerance: float = DEFAULT_TOLERANCE,
    max_nodes: int = MAX_NODES,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Chebyshev table of ``log S_b(x)``, ``S_b(x) = sum_{i in b} w_i exp(-(x - x0) y_i)``.

    Parameters
    ----------
    bin_index : ndarray of int, (n_events,)
        Bin of each event (-1 outside).
    weights : ndarray, (n_events,)
        ``w_i >= 0`` (expected events, or products of them).
    log_energy : ndarray, (n_events,)
        ``y_i`` (for a power law ``ln(E_true / pivot)``, dimensionless).
    reference_index : float
        ``x0``, where the weights hold as given.
    interval : (float, float)
        Range of ``x`` tabulated.

    max_nodes : int
        Most nodes tried.

    Returns
    -------
    active, log_coeffs, max_relative_error
        Bins with ``S_b > 0``; the coefficients (len(active), K) with the fewest nodes
        K = 8, 12, ..., ``max_nodes`` meeting ``tolerance`` (relative, on a dense check grid); the error reached.
    """
    inside = bin_index >= 0  # the events in the bins, selected once for every sum below
    args = (bin_index[inside], weights[inside], log_energy[inside])
    active = np.flatnonzero(np.bincount(args[0], weights=args[1], minlength=n_bins) > 0)
    check = np.linspace(*interval, CHECK_POINTS)
    exact_check = _exact_power_law_sums(*args, check, reference_index, n_bins)[:, active]
    for k in range(8, max_nodes + 1, 4):
        at_nodes = _exact_power_law_sums(
            *args, chebyshev.nodes(k, interval), reference_index, n_bins
        )
        coeffs = chebyshev.fit(np.log(at_nodes[:, active].T), interval)
        interp = np.exp(np.stack([chebyshev.evaluate(coeffs, g, interval) for g in check]))
        error = float(np.max(np.abs(interp / exact_check - 1.0), initial=0.0))
        if error <= tolerance:
            break
    return active, coeffs, error


@dataclass(frozen=True)
class LogChebyshevTable:
    """``S_b(x) = exp(L_b(x))`` on the ``active`` bins (0 elsewhere), ``L_b`` a Chebyshev
    series over ``interval`` of ``x``: the one table type of the power laws, the SAY pairs and
    the nuisance products (module docstring).  Its protocol: :meth:`values`,
    :meth:`derivatives` and, in pytensor, :func:`diffuse_fit.inference.table_pt.log_table_pt`.

    Attributes
    ----------
    active : ndarray of int
        Bins with ``S_b > 0``.
    log_coeffs : ndarray, (len(active), K)
        Chebyshev coefficients of ``log S_b`` over ``interval``.
    max_relative_error : float
        Largest ``|S_table / S_exact - 1|`` found on the check grid.
    """

    n_bins: int
    active: np.ndarray
    log_coeffs: np.ndarray
    interval: tuple[float, float]
    max_relative_error: float = 0.0

    @property
    def n_nodes(self) -> int:
        return cast(int, self.log_coeffs.shape[1])

    def values(self, x: float, name: str = "x") -> np.ndarray:
        """``S_b(x)``, (n_bins,); ``name``: the variable's, for the out-of-range error."""
        return log_table_values(self.log_coeffs, self.active, self.n_bins, self.interval, x, name)

    def derivatives(self, x: float, name: str = "x") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``S_b``, ``dS_b/dx``, ``d2S_b/dx2`` at ``x`` (n_bins each), exact for the table."""
        return log_table_derivatives(
            self.log_coeffs, self.active, self.n_bins, self.interval, x, name, self.derivative_stack
        )

    @functools.cached_property
    def derivative_stack(self) -> np.ndarray:
        """:func:`log_derivative_stack` of the table (computed once: a fit evaluates the
        derivatives thousands of times)."""
        return log_derivative_stack(self.log_coeffs, self.interval)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the cached :attr:`derivative_stack` (rebuilt on use)."""
        return {k: v for k, v in self.__dict__.items() if k != "derivative_stack"}

    @classmethod
    def tabulate(
        cls,
        bin_index: np.ndarray,
        weights: np.ndarray,
        log_energy: np.ndarray,
        reference_index: float,
        interval: tuple[float, float],
        n_bins: int,
        tolerance: float = DEFAULT_TOLERANCE,
        max_nodes: int = MAX_NODES,
    ) -> LogChebyshevTable:
        """The table of ``S_b(x) = sum_{i in b} w_i exp(-(x - x0) y_i)``
        (:func:`tabulate_log_sums`)."""
        active, coeffs, error = tabulate_log_sums(
            bin_index, weights, log_energy, reference_index, interval, n_bins, tolerance, max_nodes
        )
        pair = cast("tuple[float, float]", tuple(map(float, interval)))
        return cls(n_bins, active, coeffs, pair, float(error))

    def record(self, prefix: str) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """The table as a run's record variables ``<prefix>__active``, ``<prefix>__log_coeffs``
        (``name -> (dims, array)``; the interval and error are the caller's to describe)."""
        dims = (f"{prefix}__active_bin", f"{prefix}__node")
        return {
            f"{prefix}__active": (dims[:1], np.asarray(self.active, dtype=np.int64)),
            f"{prefix}__log_coeffs": (dims, self.log_coeffs),
        }

    @classmethod
    def read(
        cls,
        arrays: Mapping[str, Any],
        prefix: str,
        n_bins: int,
        interval: Iterable[float],
        error: float,
        what: str,
    ) -> LogChebyshevTable:
        """Inverse of :meth:`record` (:func:`read_log_table`'s checks)."""
        active, coeffs = read_log_table(arrays, prefix, n_bins, what)
        pair = cast("tuple[float, float]", tuple(map(float, interval)))
        return cls(n_bins, active, coeffs, pair, float(error))
