"""Per-bin detector responses: the release's detector systematics as tables (NumPy).

The release corrects each simulated event's weight by ``D_i(v)``
(:mod:`diffuse_fit.physics.detector`), so that a component's expectation in bin ``b`` is
``sum_{i in b} w_i(theta) D_i(v)``: a function of the flux parameters ``theta`` and the
three systematics ``v`` together, which no set of one-dimensional tables represents exactly.
Here, as in IceCube's binned fits, each component's correction is a per-bin response
factor, one per systematic:

    lam_cb(theta, v) = lam_cb(theta) prod_s R_csb(v_s),
    R_csb(v) = sum_{i in b} w0_i D_si(v) / sum_{i in b} w0_i,

``w0`` the component's weights at its reference parameters (astrophysical gamma 2.5,
atmospheric nuisances nominal).  This equals the per-event sum exactly at the nominal
systematics (every ``R = 1``), and wherever only one systematic is away from nominal and the
flux parameters are at the reference; elsewhere it neglects how a systematic's effect
varies with the spectrum inside one bin and how the systematics' effects correlate within it
(``tests/test_detector.py`` measures both against the per-event formula).  ``log R_csb``
is a Chebyshev series in ``v_s`` over the fitted range (as the other tables,
:class:`diffuse_fit.binned.log_tables.LogChebyshevTable`), so that a likelihood evaluation
does not touch events.  The SAY likelihood's squared weights get ``R_c R_c'``.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from diffuse_fit.binned import chebyshev
from diffuse_fit.physics.detector import (
    DETECTOR_SYSTEMATICS,
    FLUX_TABLES,
    check_support,
    event_log_corrections,
)

if TYPE_CHECKING:
    from diffuse_fit.io.events import EventTable
    from diffuse_fit.io.hese_splines import SplineTable
    from diffuse_fit.physics.detector import DetectorSystematic, EventLogCorrections

RESPONSE_TOLERANCE = 1e-11  # relative, of R against the per-bin sum at the check points
NODES = (6, 8, 10, 12, 16)  # Chebyshev nodes per piece tried
CHECK_PER_PIECE = 4
BLOCK_ELEMENTS = 1 << 19  # events x values per block of build_response_tables' evaluation


@dataclass(frozen=True, eq=False)
class ResponseTable:
    """``R_b(v) = exp(L_b(v))`` of one component and systematic on the ``active`` bins
    (``R_b = 1`` elsewhere): ``L_b`` piecewise, one Chebyshev series on each interval
    between consecutive ``breaks`` (the spline tables' knots in ``v`` inside the fitted
    range), where the tables are polynomials in ``v`` and ``L_b`` is smooth."""

    component: str
    parameter: str
    n_bins: int
    active: np.ndarray
    breaks: np.ndarray  # (P + 1,), increasing
    log_coeffs: np.ndarray  # (P, len(active), K)
    max_relative_error: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.component}__{self.parameter}"

    @property
    def interval(self) -> tuple[float, float]:
        return float(self.breaks[0]), float(self.breaks[-1])

    @functools.cached_property
    def break_list(self) -> list[float]:
        """:attr:`breaks` as floats (for :func:`bisect.bisect_right`)."""
        return [float(b) for b in self.breaks]

    def piece(self, v: float) -> int:
        """The interval holding ``v`` (the upper one at a break)."""
        found = bisect.bisect_right(self.break_list, v) - 1
        return min(max(found, 0), len(self.breaks) - 2)

    def log_values(self, v: float) -> np.ndarray:
        """``log R_b(v)``, (n_bins,)."""
        return self.log_derivatives(v)[0]

    def values(self, v: float) -> np.ndarray:
        """``R_b(v)``, (n_bins,)."""
        return np.exp(self.log_values(v))

    def active_log_derivatives(self, v: float) -> np.ndarray:
        """``L_b``, ``dL_b/dv``, ``d2L_b/dv2`` at ``v`` on the active bins: (3, len(active)),
        exact for the series (:func:`diffuse_fit.binned.chebyshev.derivative_basis`).  The
        last result is kept (a fit's evaluation asks for it several times at one ``v``): do
        not modify it."""
        last = self.__dict__.get("_last")
        if last is not None and last[0] == v:
            return cast(np.ndarray, last[1])
        low, high = self.interval
        if not low <= v <= high:
            raise ValueError(f"{self.parameter}={v} is outside the tabulated range [{low}, {high}]")
        p = self.piece(v)
        piece = (self.break_list[p], self.break_list[p + 1])
        coeffs = self.log_coeffs[p]
        t = (2.0 * v - (piece[0] + piece[1])) / (piece[1] - piece[0])  # chebyshev.to_unit
        basis = chebyshev.derivative_basis(t, coeffs.shape[-1])
        scale = 2.0 / (piece[1] - piece[0])
        basis[:, 1] *= scale
        basis[:, 2] *= scale * scale
        found = basis.T @ coeffs.T
        object.__setattr__(self, "_last", (v, found))
        return cast(np.ndarray, found)

    def log_derivatives(self, v: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``L_b``, ``dL_b/dv``, ``d2L_b/dv2`` at ``v`` (n_bins each; 0 off the active bins)."""
        out = np.zeros((3, self.n_bins))
        out[:, self.active] = self.active_log_derivatives(v)
        return out[0], out[1], out[2]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("break_list", "_last")}

    def record(self) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """The table as record variables ``name -> (dims, array)``."""
        prefix = f"response_{self.key}"
        dims = (f"{prefix}__piece", f"{prefix}__active_bin", f"{prefix}__node")
        return {
            f"{prefix}__active": (dims[1:2], np.asarray(self.active, dtype=np.int64)),
            f"{prefix}__breaks": ((f"{prefix}__break",), self.breaks),
            f"{prefix}__log_coeffs": (dims, self.log_coeffs),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "parameter": self.parameter,
            "max_relative_error": self.max_relative_error,
        }

    @classmethod
    def read(
        cls, described: Mapping[str, Any], arrays: Mapping[str, Any], n_bins: int
    ) -> ResponseTable:
        """Inverse of :meth:`record` and :meth:`describe`; ``KeyError``/``ValueError`` if
        damaged."""
        component, parameter = str(described["component"]), str(described["parameter"])
        prefix = f"response_{component}__{parameter}"
        active = np.asarray(arrays[f"{prefix}__active"], dtype=np.int64)
        breaks = np.asarray(arrays[f"{prefix}__breaks"], dtype=np.float64)
        coeffs = np.asarray(arrays[f"{prefix}__log_coeffs"], dtype=np.float64)
        if (
            coeffs.ndim != 3
            or coeffs.shape[:2] != (len(breaks) - 1, len(active))
            or np.any(np.diff(breaks) <= 0)
            or np.any(active < 0)
            or np.any(active >= n_bins)
        ):
            raise ValueError(f"inconsistent response table {component}/{parameter}")
        return cls(
            component,
            parameter,
            n_bins,
            active,
            breaks,
            coeffs,
            float(described["max_relative_error"]),
        )


def reference_weights(component: Any, simulation: EventTable) -> np.ndarray:
    """The component's per-event weights at its reference parameters (norm 1, spectral
    indices at their reference, other nuisances 1)."""
    params = {p: 1.0 for p in component.parameters}
    for t in getattr(component, "terms", (component,)):
        if getattr(t, "index", None):
            params[t.index] = t.reference_index
    return np.asarray(component.event_weights(simulation, params), dtype=np.float64)


def corrected_components(components: Iterable[Any]) -> list[Any]:
    """The components the release corrects (by name: conventional, prompt, astrophysical)."""
    return [c for c in components if c.name in FLUX_TABLES]


def response_breaks(
    systematic: DetectorSystematic, splines: Mapping[str, SplineTable]
) -> np.ndarray:
    """The knots in the parameter of every table of ``systematic``, inside its fitted range,
    with the range's ends."""
    low, high = systematic.support
    knots = [t.knots[-1] for path, t in splines.items() if path.startswith(systematic.folder + "/")]
    inner = np.unique(np.concatenate(knots)) if knots else np.zeros(0)
    inner = inner[(inner > low + 1e-9) & (inner < high - 1e-9)]
    return np.concatenate([[low], inner, [high]])


def build_response_tables(
    simulation: EventTable,
    bin_index: np.ndarray,
    n_bins: int,
    components: Iterable[Any],
    splines: Mapping[str, SplineTable],
    tolerance: float = RESPONSE_TOLERANCE,
) -> tuple[ResponseTable, ...]:
    """One :class:`ResponseTable` per corrected component and systematic (module doc);
    ``splines``: table path -> :class:`diffuse_fit.io.hese_splines.SplineTable`."""
    from scipy.sparse import csr_matrix

    out: list[ResponseTable] = []
    for systematic in DETECTOR_SYSTEMATICS:
        check_support(systematic, splines)
    inside = bin_index >= 0
    for component in corrected_components(components):
        w0 = reference_weights(component, simulation)
        total = np.bincount(bin_index[inside], weights=w0[inside], minlength=n_bins)
        active = np.flatnonzero(total > 0)
        for systematic in DETECTOR_SYSTEMATICS:
            corrections = event_log_corrections(systematic, component.name, simulation, splines)
            rows = corrections.rows
            used = inside[rows] & (w0[rows] != 0)  # corrected events in the bins
            events = rows[used]
            share = w0[events] / total[bin_index[events]]
            corrected = np.bincount(bin_index[events], weights=share, minlength=n_bins)
            summing = csr_matrix(
                (share, (np.searchsorted(active, bin_index[events]), np.arange(events.size))),
                shape=(active.size, events.size),
            )
            uncorrected = 1.0 - corrected[active]  # the share of events left as they are
            in_bins = corrections.restricted(used)

            def responses(
                values: np.ndarray,
                corrections: EventLogCorrections = in_bins,
                summing: csr_matrix = summing,
                uncorrected: np.ndarray = uncorrected,
            ) -> np.ndarray:
                """``R_b`` at each value: (len(values), len(active)); the events' factors
                computed a block of values at a time (events x block of BLOCK_ELEMENTS at
                most: memory traffic, not arithmetic, is the cost of the whole array)."""
                out = np.empty((values.size, uncorrected.size))
                step = max(1, BLOCK_ELEMENTS // max(corrections.rows.size, 1))
                for start in range(0, values.size, step):
                    factors = corrections.log10_rows(values[start : start + step])
                    np.exp(np.multiply(factors, math.log(10.0), out=factors), out=factors)
                    block = uncorrected[:, None] + summing @ factors
                    out[start : start + step] = block.T
                return out

            breaks = response_breaks(systematic, splines)
            pieces = list(zip(breaks[:-1], breaks[1:], strict=True))
            checks = [np.linspace(a, b, CHECK_PER_PIECE) for a, b in pieces]
            exact = np.split(responses(np.concatenate(checks)), len(pieces))
            coeffs: list[np.ndarray | None] = [None] * len(pieces)
            errors = [np.inf] * len(pieces)
            todo = list(range(len(pieces)))
            for k in NODES:  # every piece still short of the tolerance, in one batch
                at = responses(np.concatenate([chebyshev.nodes(k, pieces[p]) for p in todo]))
                for p, values in zip(todo, np.split(at, len(todo)), strict=True):
                    c = chebyshev.fit(np.log(values.T), pieces[p])
                    approx = np.exp(
                        np.stack([chebyshev.evaluate(c, v, pieces[p]) for v in checks[p]])
                    )
                    coeffs[p] = np.pad(c, ((0, 0), (0, NODES[-1] - k)))
                    errors[p] = float(np.max(np.abs(approx / exact[p] - 1.0), initial=0.0))
                todo = [p for p in todo if errors[p] > tolerance]
                if not todo:
                    break
            worst = max(errors)
            out.append(
                ResponseTable(
                    component.name,
                    systematic.parameter,
                    n_bins,
                    active,
                    breaks,
                    # C order (a fit of a transposed array is F-ordered per piece): the same
                    # memory layout, hence the same BLAS path and last bits, as read back
                    np.ascontiguousarray(np.stack(cast("list[np.ndarray]", coeffs))),
                    worst,
                )
            )
    return tuple(out)


def response_supports(responses: Iterable[ResponseTable]) -> dict[str, tuple[float, float]]:
    """The systematics' parameters and their fitted ranges."""
    return {r.parameter: r.interval for r in responses}


def response_values(
    responses: Sequence[ResponseTable], params: dict[str, Any]
) -> np.ndarray | float:
    """``prod_k R_k(params[parameter_k])`` per bin (1.0 if no responses)."""
    if not responses:
        return 1.0
    return np.exp(sum(r.log_values(params[r.parameter]) for r in responses))


def apply_responses(
    value: np.ndarray,
    jac: np.ndarray,
    second: list[Any],  # (i, j, d2) entries, LowRankSecond or ProductSecond (hasattr)
    responses: Sequence[ResponseTable],
    params: dict[str, Any],
    position: dict[str, int],
    bins: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Value, Jacobian and second-derivative entries of ``rho * h`` from those of ``h``
    (``rho = prod_k R_k``, of parameters ``h`` does not depend on):

    ``d(rho h) = rho dh + h rho grad(g)``, ``g = log rho``;
    ``d2(rho h) = rho d2h + rho (dh grad(g)^T + grad(g) dh^T) + h rho (grad(g) grad(g)^T
    + hess(g))``, ``hess(g)`` diagonal in the systematics.
    """
    if not responses:
        return value, jac, second
    g = np.zeros(bins.size)
    grad: dict[int, np.ndarray] = {}
    curv: dict[int, np.ndarray] = {}
    for r in responses:
        lv, d1, d2 = (a[bins] for a in r.log_derivatives(params[r.parameter]))
        g += lv
        i = position[r.parameter]
        grad[i] = grad.get(i, 0.0) + d1
        curv[i] = curv.get(i, 0.0) + d2
    rho = np.exp(g)
    scaled = []
    for entry in second:
        if hasattr(entry, "scaled"):  # LowRankSecond, ProductSecond
            scaled.append(entry.scaled(rho))
        else:
            i, j, d2 = entry
            scaled.append((i, j, rho * d2))
    new_jac = jac * rho[:, None]
    h_rho = value * rho
    for i, gi in grad.items():
        new_jac[:, i] += h_rho * gi
        for j in np.flatnonzero(np.any(jac != 0.0, axis=0)):
            cross = rho * jac[:, j] * gi
            scaled += [(int(j), i, cross), (i, int(j), cross)]
        for k, gk in grad.items():
            scaled.append((i, k, h_rho * (gi * gk + (curv[i] if i == k else 0.0))))
    return h_rho, new_jac, scaled
