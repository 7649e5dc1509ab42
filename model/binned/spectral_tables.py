"""Per-bin sums of a spectral component with two or three shape parameters (NumPy).

For a :class:`diffuse_fit.physics.spectra.SpectralComponent` the per-bin sum at norm 1 is

    S_b(s) = sum_{i in b} w_i exp(f(x_i; s)),   x_i = ln(E_true,i / pivot),

a function of the shape parameters ``s`` (d = 2 or 3).  Two ways to evaluate it:

* :class:`SpectralTable`, a tensor-product Chebyshev interpolant of ``log S_b`` over the
  box of allowed shape values (the one-parameter rule of :mod:`diffuse_fit.binned.templates`
  in d dimensions): nodes per axis from 8, raised by 1.5 along every axis whose series
  has not converged (up to 96), until the interpolant matches the exact sum to
  ``tolerance`` (1e-11 relative) on a check grid of 33 equally spaced points per axis;
  the largest error found on that grid is recorded.  Its gradient and Hessian are the exact derivatives
  of the interpolant.
* :class:`SpectralEventSum`, the exact per-event sum (and its exact per-event
  derivatives), used where the table cannot reach the tolerance -- always for the broken
  power law, whose ``S_b`` has a kink in ``E_break`` at every simulated energy (no
  polynomial converges fast there) -- with the reason recorded.  Slower (O(events)
  per evaluation) but exact.

:func:`build_spectral_template` picks the table if it reaches the tolerance, else the
exact sum; by default (``method="auto"``) it takes the exact sum outright for simulations of
up to :data:`EXACT_SUM_EVENTS` events inside the bins, because a table at 1e-11 holds ~1e6
coefficients (measured on the toy simulation: 32 x 96 per bin for ``cutoff``, 72 x 96 for
``logparabola``, over 400 bins) and costs more per evaluation than such a sum.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from diffuse_fit.binned import chebyshev

if TYPE_CHECKING:
    from diffuse_fit.io.events import EventTable
    from diffuse_fit.physics.spectra import SpectralComponent

START_NODES = 8
MAX_NODES = 96
CHECK_POINTS = 33
EXACT_SUM_EVENTS = 500_000  # method 'auto': exact sum up to this many events
BREAK_STEP = 0.01  # log10(E_break/GeV): step of the broken law's curvature in E_break
_CHUNK = 96  # parameter points per exact-sum batch (memory: events x chunk floats)


@dataclass(frozen=True)
class _SortedEvents:
    """The simulated events with positive weight inside the bins, sorted by bin."""

    bins: np.ndarray  # active bins, increasing
    starts: np.ndarray  # first event of each active bin
    event_bin: np.ndarray  # bin of each event
    weight: np.ndarray  # w_i > 0
    log_energy: np.ndarray  # x_i


def _sorted_events(
    bin_index: np.ndarray, weights: np.ndarray, log_energy: np.ndarray
) -> _SortedEvents:
    keep = (bin_index >= 0) & (weights > 0)
    order = np.argsort(bin_index[keep], kind="stable")
    b, w, x = bin_index[keep][order], weights[keep][order], log_energy[keep][order]
    bins, starts = np.unique(b, return_index=True)
    return _SortedEvents(bins, starts, b, w, x)


def exact_log_sums(
    component: SpectralComponent, events: _SortedEvents, points: np.ndarray
) -> np.ndarray:
    """``log S_b`` on the active bins at each of ``points`` (n_points, d): shape
    (n_points, len(events.bins)); per-bin maximum taken out first, so no under- or
    overflow."""
    out = np.empty((len(points), events.bins.size))
    x = events.log_energy[:, None]
    index = _event_rows(events)
    for lo in range(0, len(points), _CHUNK):
        p = points[lo : lo + _CHUNK]
        f = component.log_tilt(x, [p[:, a][None, :] for a in range(p.shape[1])])
        top = np.maximum.reduceat(f, events.starts, axis=0)
        sums = np.add.reduceat(
            events.weight[:, None] * np.exp(f - top[index]), events.starts, axis=0
        )
        out[lo : lo + len(p)] = (top + np.log(sums)).T
    return out


def _event_rows(events: _SortedEvents) -> np.ndarray:
    """Row of each event's bin among the active bins."""
    return np.repeat(np.arange(events.bins.size), np.diff([*events.starts, events.weight.size]))


def exact_log_sums_grid(
    component: SpectralComponent, events: _SortedEvents, axes: list[np.ndarray]
) -> np.ndarray:
    """``log S_b`` on the active bins over the tensor grid of the per-axis values ``axes``
    (d arrays): shape (len(events.bins), len(axes[0]), ..., len(axes[-1])).

    Two shape parameters whose ``f`` separates, ``f = f_0(x; s_0) + f_1(x; s_1)``
    (:meth:`SpectralComponent.log_tilt_factor`), take one matrix product per bin; with
    each factor's per-bin maximum taken out, the sums cannot underflow to 0.  Otherwise
    :func:`exact_log_sums` point by point."""
    if len(axes) != 2 or not component.separable:
        flat = exact_log_sums(component, events, _grid(axes))
        return flat.T.reshape(events.bins.size, *(len(v) for v in axes))
    rows = _event_rows(events)
    x = events.log_energy[:, None]
    scaled, tops = [], []
    for a, values in enumerate(axes):
        f = component.log_tilt_factor(x, a, np.asarray(values)[None, :])
        top = np.maximum.reduceat(f, events.starts, axis=0)
        scaled.append(np.exp(f - top[rows]))
        tops.append(top)
    left = events.weight[:, None] * scaled[0]
    ends = [*events.starts[1:], events.weight.size]
    sums = np.stack(
        [left[s:e].T @ scaled[1][s:e] for s, e in zip(events.starts, ends, strict=True)]
    )
    with np.errstate(divide="ignore"):
        return tops[0][:, :, None] + tops[1][:, None, :] + np.log(sums)


def _interpolate_grid(
    coeffs: np.ndarray, axes: list[np.ndarray], ranges: Sequence[tuple[float, float]]
) -> np.ndarray:
    """The table ``coeffs`` over the tensor grid ``axes``: (n, len(axes[0]), ...)."""
    out = coeffs
    for a, (values, interval) in enumerate(zip(axes, ranges, strict=True)):
        basis = chebyshev.basis(
            chebyshev.to_unit(np.asarray(values, dtype=np.float64), interval), coeffs.shape[1 + a]
        )  # (len(values), K_a)
        out = np.moveaxis(np.tensordot(out, basis, axes=([1 + a], [1])), -1, 1 + a)
    return out


def _grid(axes: list[np.ndarray]) -> np.ndarray:
    """Every combination of the per-axis values, first axis slowest: (prod, d)."""
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))


def _fit_tensor(values: np.ndarray, ranges: Sequence[tuple[float, float]]) -> np.ndarray:
    """Tensor-product Chebyshev coefficients of ``values`` (n, K_1, ..., K_d) at the nodes."""
    coeffs = values
    for a, interval in enumerate(ranges):
        moved = np.moveaxis(coeffs, 1 + a, -1)
        fitted = chebyshev.fit(moved.reshape(-1, moved.shape[-1]), interval).reshape(moved.shape)
        coeffs = np.moveaxis(fitted, -1, 1 + a)
    return coeffs


def _contract(coeffs: np.ndarray, vectors: Sequence[np.ndarray]) -> np.ndarray:
    """``sum_{k_1..k_d} C[n, k_1, ..., k_d] v_1[k_1] ... v_d[k_d]``: shape (n,)."""
    out = coeffs
    for v in reversed(vectors):
        out = out @ v
    return out


@functools.lru_cache(maxsize=64)
def _derivative_matrices(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Matrices mapping Chebyshev coefficients (k) to those of the first (k-1) and second
    (k-2) derivative in ``t``."""
    eye = np.eye(k)
    return (
        np.polynomial.chebyshev.chebder(eye, m=1, axis=0),
        np.polynomial.chebyshev.chebder(eye, m=2, axis=0),
    )


def _basis_derivatives(
    x: float, interval: tuple[float, float], k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``T_j``, ``dT_j/dx``, ``d2T_j/dx2`` (j < k) at ``x`` (natural units)."""
    t = chebyshev.to_unit(np.float64(x), interval)
    scale = 2.0 / (interval[1] - interval[0])
    d1, d2 = _derivative_matrices(k)
    return (
        chebyshev.basis(t, k),
        scale * d1.T @ chebyshev.basis(t, k - 1),
        scale**2 * d2.T @ chebyshev.basis(t, k - 2),
    )


def _check_inside(component: SpectralComponent, values: Sequence[float]) -> None:
    for name, x, (low, high) in zip(component.shape, values, component.shape_ranges, strict=True):
        if not low <= x <= high:
            raise ValueError(f"{name}={x} is outside the tabulated range [{low}, {high}]")


@dataclass(frozen=True)
class SpectralTable:
    """Tensor-product Chebyshev table of ``log S_b(s)`` on the ``active`` bins.

    Attributes
    ----------
    log_coeffs : ndarray, (len(active), K, ..., K)
        Coefficients over ``component.shape_ranges`` (axis ``1 + a``: shape parameter a).
    max_relative_error : float
        Largest ``|S_table / S_exact - 1|`` found on the check grid.
    """

    component: SpectralComponent
    n_bins: int
    active: np.ndarray
    log_coeffs: np.ndarray
    max_relative_error: float

    def _values(self, params: dict[str, Any]) -> list[float]:
        values = [float(params[s]) for s in self.component.shape]
        _check_inside(self.component, values)
        return values

    def unit_counts(self, params: dict[str, Any]) -> np.ndarray:
        """``S_b`` (n_bins,) at the shape parameters in ``params``: events per bin at norm 1."""
        values = self._values(params)
        k = self.log_coeffs.shape[1:]
        vectors = [
            chebyshev.basis(chebyshev.to_unit(np.float64(v), r), n)
            for v, r, n in zip(values, self.component.shape_ranges, k, strict=True)
        ]
        out = np.zeros(self.n_bins)
        out[self.active] = np.exp(_contract(self.log_coeffs, vectors))
        return out

    def unit_counts_derivatives(
        self, params: dict[str, Any], curvature: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``S_b`` (n_bins,), ``dS_b/ds_a`` (d, n_bins), ``d2S_b/ds_a ds_c`` (d, d, n_bins):
        exact derivatives of the interpolant (``S' = S L'``, ``S'' = S (L'' + L' L'^T)``);
        ``curvature`` is for :class:`SpectralEventSum`'s signature (always exact here)."""
        values = self._values(params)
        d = len(values)
        bases = [
            _basis_derivatives(v, r, n)
            for v, r, n in zip(
                values, self.component.shape_ranges, self.log_coeffs.shape[1:], strict=True
            )
        ]

        def partial(orders: dict[int, int]) -> np.ndarray:
            return _contract(self.log_coeffs, [bases[a][orders.get(a, 0)] for a in range(d)])

        log_s = partial({})
        grad = np.stack([partial({a: 1}) for a in range(d)])
        hess = np.empty((d, d, log_s.size))
        for a in range(d):
            hess[a, a] = partial({a: 2})
            for c in range(a + 1, d):
                hess[a, c] = hess[c, a] = partial({a: 1, c: 1})
        s = np.exp(log_s)
        out = (np.zeros(self.n_bins), np.zeros((d, self.n_bins)), np.zeros((d, d, self.n_bins)))
        out[0][self.active] = s
        out[1][:, self.active] = s * grad
        out[2][:, :, self.active] = s * (hess + grad[:, None] * grad[None, :])
        return out


@dataclass(frozen=True)
class SpectralEventSum:
    """The exact per-event sum ``S_b(s)`` (and its derivatives) on the ``active`` bins.

    ``event_bin``, ``weight``, ``log_energy``: bin, nominal weight and ``ln(E / pivot)`` of
    every simulated event with positive weight inside the bins; ``reason``: why no table
    is used (recorded in the provenance).
    """

    component: SpectralComponent
    n_bins: int
    active: np.ndarray
    event_bin: np.ndarray
    weight: np.ndarray
    log_energy: np.ndarray
    reason: str
    max_relative_error: float = 0.0

    def unit_counts(self, params: dict[str, Any]) -> np.ndarray:
        """``S_b`` (n_bins,): events per bin at norm 1 (exact)."""
        values = [float(params[s]) for s in self.component.shape]
        _check_inside(self.component, values)
        v = self.weight * np.exp(self.component.log_tilt(self.log_energy, values))
        return np.bincount(self.event_bin, weights=v, minlength=self.n_bins)

    def unit_counts_derivatives(
        self, params: dict[str, Any], curvature: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``S_b``, ``dS_b/ds_a`` (d, n_bins), ``d2S_b/ds_a ds_c`` (d, d, n_bins) from the
        exact per-event derivatives (:meth:`SpectralComponent.log_tilt_derivatives`).

        ``broken``: ``dS_b/d log10 E_break`` is exact but steps wherever ``E_break`` crosses
        a simulated energy, so its derivative (a sum of delta functions) is replaced by the
        central difference of that exact gradient over +-:data:`BREAK_STEP` in
        log10(E_break/GeV) (one-sided at the range's ends): the curvature averaged over
        the events near the break, what a Gaussian approximation of the likelihood needs.
        Every other entry is exact.  ``curvature=False`` skips that difference (two more
        passes over the events) and leaves ``d2S_b/d log10 E_break^2`` at its value almost
        everywhere, 0: for callers that use only ``S_b`` and the gradient (L-BFGS-B)."""
        values = [float(params[s]) for s in self.component.shape]
        _check_inside(self.component, values)
        s, grad, hess = self._derivatives(values)
        if curvature and not self.component.smooth:
            low, high = self.component.shape_ranges[-1]
            up = min(values[-1] + BREAK_STEP, high)
            down = max(values[-1] - BREAK_STEP, low)
            g_up = self._derivatives([*values[:-1], up])[1][-1]
            g_down = self._derivatives([*values[:-1], down])[1][-1]
            hess[-1, -1] = (g_up - g_down) / (up - down)
        return s, grad, hess

    def _derivatives(self, values: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f, d1, d2 = self.component.log_tilt_derivatives(self.log_energy, values)
        v = self.weight * np.exp(f)
        d = len(values)
        pairs = [(a, c) for a in range(d) for c in range(a, d)]
        rows = np.empty((1 + d + len(pairs), self.event_bin.size))  # per event
        rows[0] = v
        rows[1 : 1 + d] = v * d1
        for m, (a, c) in enumerate(pairs, start=1 + d):
            rows[m] = v * (d2[a, c] + d1[a] * d1[c])
        sums = self._per_bin(rows)  # (1 + d + pairs, n_bins): one pass over the events
        hess = np.empty((d, d, self.n_bins))
        for m, (a, c) in enumerate(pairs, start=1 + d):
            hess[a, c] = hess[c, a] = sums[m]
        return sums[0], sums[1 : 1 + d], hess

    @functools.cached_property
    def _segment_starts(self) -> np.ndarray | None:
        """First event of each bin's run if the events are sorted by bin
        (:func:`_sorted_events`), else None; found once, not at every evaluation."""
        b = self.event_bin
        if b.size == 0 or not np.all(b[1:] >= b[:-1]):
            return None
        return np.flatnonzero(np.r_[True, b[1:] != b[:-1]])

    def _per_bin(self, rows: np.ndarray) -> np.ndarray:
        """Per-bin sums (m, n_bins) of per-event ``rows`` (m, n_events): ``np.add.reduceat``
        along the events where they are sorted by bin; ``np.bincount`` per row if not."""
        b = self.event_bin
        out = np.zeros((rows.shape[0], self.n_bins))
        starts = self._segment_starts
        if starts is not None:
            out[:, b[starts]] = np.add.reduceat(rows, starts, axis=1)
            return out
        for m in range(rows.shape[0]):
            out[m] = np.bincount(b, weights=rows[m], minlength=self.n_bins)
        return out


def _next_nodes(coeffs: np.ndarray, k: tuple[int, ...], tolerance: float) -> tuple[int, ...]:
    """Nodes per axis for the next try: every axis whose last two coefficients (the
    truncation error of ``log S_b`` along it) exceed ``tolerance / 10`` gets 1.5 times as
    many (a multiple of 4, at most :data:`MAX_NODES`)."""
    out: list[int] = []
    for a, n in enumerate(k):
        tail = np.max(np.abs(np.take(coeffs, [n - 2, n - 1], axis=1 + a)), initial=0.0)
        grown = min(MAX_NODES, 4 * int(np.ceil(1.5 * n / 4)))
        out.append(grown if tail > tolerance / 10 else n)
    return tuple(out)


def tabulate_spectral(
    component: SpectralComponent, events: _SortedEvents, n_bins: int, tolerance: float
) -> tuple[SpectralTable | None, float, tuple[int, ...]]:
    """``(table or None, error reached, nodes per axis)``: a :class:`SpectralTable`
    meeting ``tolerance`` on the check grid, nodes per axis raised from 8 (by 1.5 where the
    series along that axis has not converged, :func:`_next_nodes`) up to :data:`MAX_NODES`;
    ``None`` and the smallest error found if none does."""
    ranges = component.shape_ranges
    check = [np.linspace(*r, CHECK_POINTS) for r in ranges]
    exact = exact_log_sums_grid(component, events, check)
    best, k = np.inf, (START_NODES,) * len(ranges)
    while True:
        nodes = [chebyshev.nodes(n, r) for n, r in zip(k, ranges, strict=True)]
        coeffs = _fit_tensor(exact_log_sums_grid(component, events, nodes), ranges)
        error = float(
            np.max(np.abs(np.expm1(_interpolate_grid(coeffs, check, ranges) - exact)), initial=0.0)
        )
        best = min(best, error)
        if error <= tolerance:
            return SpectralTable(component, n_bins, events.bins, coeffs, error), error, k
        grown = _next_nodes(coeffs, k, tolerance)
        if grown == k:  # every axis converged or at MAX_NODES, still not accurate
            grown = tuple(min(MAX_NODES, 4 * int(np.ceil(1.5 * n / 4))) for n in k)
        if grown == k:
            return None, best, k
        k = grown


def build_spectral_template(
    component: SpectralComponent,
    events_table: EventTable,
    bin_index: npt.ArrayLike,
    n_bins: int,
    tolerance: float,
    method: str = "auto",
) -> SpectralTable | SpectralEventSum:
    """How ``component``'s per-bin sums are evaluated (``method``):

    * ``"table"``: the :class:`SpectralTable` if one meets ``tolerance``, else the exact
      :class:`SpectralEventSum` with the reason (always for a non-smooth model);
    * ``"exact"``: the exact sum;
    * ``"auto"``: the exact sum for up to :data:`EXACT_SUM_EVENTS` simulated events inside
      the bins, else as ``"table"``.  A two-parameter table at 1e-11 holds ~1e6
      coefficients (toy: 1.2e6 cutoff, 2.8e6 logparabola), and an evaluation with its
      gradient reads them twice: it only pays off against more events than that."""
    if method not in ("auto", "table", "exact"):
        raise ValueError(f"method must be 'auto', 'table' or 'exact', not {method!r}")
    events = _sorted_events(
        np.asarray(bin_index),
        np.asarray(events_table[component.weight_field], dtype=np.float64),
        component.log_energy(events_table),
    )
    n_events = events.weight.size
    if not component.smooth:
        reason = (
            "S_b is not smooth in the break energy (a kink at every simulated energy): "
            "no polynomial table reaches the tolerance"
        )
    elif method == "exact":
        reason = "chosen"
    elif method == "auto" and n_events <= EXACT_SUM_EVENTS:
        reason = (
            f"{n_events} simulated events cost less per evaluation than a table of "
            f"~1e6 coefficients (tables are used above {EXACT_SUM_EVENTS} events)"
        )
    else:
        table, error, k = tabulate_spectral(component, events, n_bins, tolerance)
        if table is not None:
            return table
        reason = (
            f"the Chebyshev table of log S_b reached only {error:.1e} relative with "
            f"{k} nodes per axis (tolerance {tolerance:.0e})"
        )
    return SpectralEventSum(
        component, n_bins, events.bins, events.event_bin, events.weight, events.log_energy, reason
    )
