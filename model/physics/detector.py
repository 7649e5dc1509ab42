"""The HESE release's detector systematics, per simulated event (NumPy, the reference).

The release (``det_sys_weights.py``; PRD 104, 022002, eqs. E13/E14) multiplies the weight of
each simulated neutrino of flux component ``c`` (astrophysical per flavour, conventional,
prompt; muons are not corrected) and reconstructed morphology ``m`` by

    D_i(v) = prod_s 10^(S_{s,c,m}(x_i, v_s) - S_{s,c,m}(x_i, nominal_s))

for the three systematics ``s`` (:data:`DETECTOR_SYSTEMATICS`): ``S`` a tensor-product
B-spline table (:mod:`diffuse_fit.io.hese_splines`) of the event's reconstructed coordinates
``x_i`` (:func:`coordinates`) and the parameter.  An event whose coordinates at the nominal
value lie outside a table's extents is left uncorrected by it (the double cascades'
anisotropy table is cut at log10 L <= 2.3, as in the release).

The spline in the parameter is evaluated through its tensor-product structure: ``S(x, v) =
sum_j B_j(v) a_j(x)`` with ``B_j`` the B-spline basis of the parameter's knots and ``a_j(x)``
the table with its last axis fixed at ``j`` (:func:`parameter_coefficients`), so that a
correction at many values costs one small matrix product per value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt

from diffuse_fit.errors import DataFormatError
from diffuse_fit.physics.detector_parameters import (  # noqa: F401 (re-exported)
    DETECTOR_SYSTEMATICS,
    DOUBLE_CASCADE_ANISOTROPY_MAX_LOG10_L,
    EPSILON_DOM_SPLIT,
    FLAVOURS,
    FLUX_TABLES,
    MORPHOLOGIES,
    SYSTEMATIC_BY_PARAMETER,
    DetectorSystematic,
)

if TYPE_CHECKING:
    from diffuse_fit.io.events import EventTable
    from diffuse_fit.io.hese_splines import SplineTable

__all__ = [
    "DETECTOR_SYSTEMATICS",
    "DOUBLE_CASCADE_ANISOTROPY_MAX_LOG10_L",
    "EPSILON_DOM_SPLIT",
    "FLAVOURS",
    "FLUX_TABLES",
    "MORPHOLOGIES",
    "SYSTEMATIC_BY_PARAMETER",
    "DetectorSystematic",
    "EventLogCorrections",
    "check_support",
    "coordinates",
    "event_log_corrections",
    "parameter_basis",
    "parameter_coefficients",
    "spline_values",
]


def coordinates(
    systematic: DetectorSystematic,
    morphology: int,
    energy: npt.ArrayLike,
    zenith: npt.ArrayLike,
    length: npt.ArrayLike,
) -> np.ndarray:
    """The table coordinates (without the parameter) of events of one morphology, ``(n, d)``:
    ``(log10 E, cos zenith)``, double cascades' hole ice ``(log10 E, log10 L)``, anisotropy
    ``(log10 E)`` or for double cascades ``(log10 L)``.  E: reconstructed deposited energy,
    GeV; zenith rad; L: reconstructed length, m."""
    log_e = np.log10(np.asarray(energy, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_l = np.log10(np.asarray(length, dtype=np.float64))
    if systematic.parameter == "anisotropy_scale":
        return (log_l if morphology == 2 else log_e)[:, None]
    if systematic.parameter == "epsilon_head_on" and morphology == 2:
        return np.column_stack([log_e, log_l])
    return np.column_stack([log_e, np.cos(np.asarray(zenith, dtype=np.float64))])


def parameter_coefficients(table: SplineTable, points: np.ndarray) -> np.ndarray:
    """``a_j(x)`` of ``S(x, v) = sum_j B_j(v) a_j(x)`` at ``points`` ``(n, d)``, shape
    ``(n, n_coefficients of the parameter axis)``."""
    from scipy.interpolate import BSpline

    design = [
        BSpline.design_matrix(points[:, d], table.knots[d], table.degrees[d])
        for d in range(table.ndim - 1)
    ]
    c = table.coefficients
    n = len(points)
    widths = [table.degrees[d] + 1 for d in range(table.ndim - 1)]
    if n and all(m.nnz == n * w for m, w in zip(design, widths, strict=True)):
        # each row of a design matrix holds its degree + 1 basis functions: gather those
        # coefficients per event instead of the product with whole axes (n x axis x rest)
        rows = [
            (m.indices.reshape(n, w), m.data.reshape(n, w))
            for m, w in zip(design, widths, strict=True)
        ]
        if table.ndim == 2:
            ((i0, w0),) = rows
            return cast(np.ndarray, np.einsum("na,naj->nj", w0, c[i0]))
        if table.ndim == 3:
            (i0, w0), (i1, w1) = rows
            block = c[i0[:, :, None], i1[:, None, :]]  # (n, degree0 + 1, degree1 + 1, j)
            return cast(np.ndarray, np.einsum("na,nb,nabj->nj", w0, w1, block))
    first = design[0] @ c.reshape(c.shape[0], -1)  # (n, rest of the axes)
    if table.ndim == 2:
        return np.asarray(first)
    if table.ndim != 3:
        raise ValueError(f"{table.source}: tables of {table.ndim} dimensions are not supported")
    first = np.asarray(first).reshape(len(points), c.shape[1], c.shape[2])
    return cast(np.ndarray, np.einsum("nk,nkj->nj", design[1].toarray(), first))


def parameter_basis(table: SplineTable, values: npt.ArrayLike) -> np.ndarray:
    """``B_j(v)`` of the parameter axis at ``values``, ``(len(values), n_coefficients)``."""
    from scipy.interpolate import BSpline

    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    design = BSpline.design_matrix(values, table.knots[-1], table.degrees[-1])
    return cast(np.ndarray, design.toarray())


@dataclass(frozen=True)
class EventLogCorrections:
    """``log10 D_i(v) = (B(v) - B(nominal)) . a_i`` of one systematic on the events
    ``rows`` (those inside the tables' extents; the others are uncorrected)."""

    rows: np.ndarray
    # one (SplineTable, positions in rows, coefficients a_j(x_i) as (j, i), S(x_i, nominal))
    # per table used
    tables: tuple[tuple[SplineTable, np.ndarray, np.ndarray, np.ndarray], ...]
    n_events: int

    def log10(self, value: float) -> np.ndarray:
        """``log10 D_i(value)`` of every event (0 where uncorrected)."""
        return self.log10_many([value])[:, 0]

    def log10_many(self, values: npt.ArrayLike) -> np.ndarray:
        """``log10 D_i(v)`` at each of ``values``: (n_events, len(values))."""
        out = np.zeros((self.n_events, np.size(values)))
        out[self.rows] = self.log10_rows(values)
        return out

    def restricted(self, keep: np.ndarray) -> EventLogCorrections:
        """The corrections of the rows ``rows[keep]`` only (``keep``: a mask over ``rows``)."""
        keep = np.asarray(keep, dtype=bool)
        new_position = np.cumsum(keep) - 1
        parts = []
        for table, where, coefficients, at_nominal in self.tables:
            kept = keep[where]
            if np.any(kept):
                coefficients = np.ascontiguousarray(coefficients[:, kept])
                parts.append((table, new_position[where[kept]], coefficients, at_nominal[kept]))
        return EventLogCorrections(self.rows[keep], tuple(parts), self.n_events)

    def log10_rows(self, values: npt.ArrayLike) -> np.ndarray:
        """``log10 D_i(v)`` of the corrected events ``rows`` only: (len(rows), len(values))."""
        values = np.atleast_1d(np.asarray(values, dtype=np.float64))
        out = np.empty((self.rows.size, values.size))
        for table, where, coefficients, at_nominal in self.tables:
            out[where] = spline_values(table, coefficients, values) - at_nominal[:, None]
        return out


def spline_values(table: SplineTable, coefficients: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``S(x_i, v) = sum_j B_j(v) a_j(x_i)`` at each of ``values``: (events, len(values)),
    with ``coefficients`` the ``a_j(x_i)`` of :func:`parameter_coefficients` transposed, (j, i)
    and C-contiguous (as the sparse product reads them: no copy per call).
    ``B(v)`` has ``degree + 1`` nonzero entries: a sparse product, whose sum for one value
    does not depend on the other values (so ``S(x, nominal)`` computed alone or among other
    values is the same float, and a correction at the nominal value is exactly 1)."""
    from scipy.interpolate import BSpline

    basis = BSpline.design_matrix(values, table.knots[-1], table.degrees[-1])
    return np.asarray(basis @ coefficients).T


def event_log_corrections(
    systematic: DetectorSystematic,
    component: str,
    simulation: EventTable | Mapping[str, np.ndarray],
    splines: Mapping[str, SplineTable],
) -> EventLogCorrections:
    """The per-event corrections of ``systematic`` for the events of ``component``
    (conventional, prompt or astrophysical) of a simulation in the workshop columns of a
    converted release (``energy``, ``zenith``, ``length``, ``topology`` = the release's
    morphology, ``primaryType``); ``splines``: table path -> SplineTable."""
    topology = np.asarray(simulation["topology"])
    code = np.asarray(simulation["primaryType"])
    energy, zenith, length = (np.asarray(simulation[f]) for f in ("energy", "zenith", "length"))
    groups = []
    for morphology in MORPHOLOGIES:
        for flavour in FLAVOURS if component == "astrophysical" else (None,):
            mask = topology == morphology
            mask &= np.abs(code) == flavour if flavour else np.abs(code) != 13
            if np.any(mask):
                groups.append((morphology, flavour, np.flatnonzero(mask)))
    rows: list[np.ndarray] = []
    parts, start = [], 0
    for morphology, flavour, where in groups:
        path = systematic.table_path(component, morphology, flavour)
        if path not in splines:
            raise DataFormatError(path, "spline table missing from the release's resources/splines")
        table = splines[path]
        points = coordinates(systematic, morphology, energy[where], zenith[where], length[where])
        extents = table.extents.copy()
        if systematic.parameter == "anisotropy_scale" and morphology == 2:
            extents[0, 1] = DOUBLE_CASCADE_ANISOTROPY_MAX_LOG10_L
        at_nominal = np.column_stack([points, np.full(len(points), systematic.nominal)])
        inside = np.all((at_nominal >= extents[:, 0]) & (at_nominal <= extents[:, 1]), axis=1)
        where, points = where[inside], points[inside]
        if where.size == 0:
            continue
        coefficients = np.ascontiguousarray(parameter_coefficients(table, points).T)
        at_nominal = spline_values(table, coefficients, np.array([systematic.nominal]))[:, 0]
        positions = np.arange(start, start + where.size)
        parts.append((table, positions, coefficients, at_nominal))
        rows.append(where)
        start += where.size
    corrected = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return EventLogCorrections(corrected, tuple(parts), len(topology))


def check_support(systematic: DetectorSystematic, splines: Mapping[str, SplineTable]) -> None:
    """:class:`DataFormatError` unless every table of ``systematic`` in ``splines`` covers
    its fitted range (:attr:`DetectorSystematic.support`) in the parameter."""
    low, high = systematic.support
    for path, table in splines.items():
        if path.startswith(systematic.folder + "/"):
            t_low, t_high = table.extents[-1]
            if not (t_low <= low and high <= t_high):
                raise DataFormatError(
                    path,
                    f"covers {systematic.parameter} on [{t_low:g}, "
                    f"{t_high:g}], not the fitted range [{low:g}, {high:g}]",
                )
