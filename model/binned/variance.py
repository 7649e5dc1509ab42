"""Per-bin sums of squared simulated weights, ``s2_b(theta)``, for the SAY likelihood (NumPy).

With each simulated event's weight at the parameters ``w_i = sum_c n_c u_ci`` (``n_c`` the
norm of component ``c``, ``u_ci`` its weight at norm 1: the nominal weight of a flat
component, ``w_ci (E_true,i / pivot)^-(gamma - reference_index)`` of a power law),

    s2_b = sum_{i in b} w_i^2 = sum_{c <= d} f_cd n_c n_d P_cd,b,
    P_cd,b = sum_{i in b} u_ci u_di,   f_cd = 1 (c = d) or 2 (c != d)

(expected events squared).  One table per pair of components: exact per-bin sums when
both are flat, else a smooth positive function of the one spectral index involved, whose
log is tabulated on Chebyshev nodes exactly as the astrophysical sum is
(:func:`diffuse_fit.binned.log_tables.tabulate_log_sums`, same accuracy rule).  For the workshop
components: ``a^2 sum wA^2 + 2 a n sum wA wS f + n^2 sum wS^2 f^2``.  Evaluating costs
O(bins x nodes), independent of the number of simulated events.

Two power laws with *different* spectral-index parameters would need a two-dimensional
table; they are refused (no component set of this package has them).  A power law's
square varies twice as fast in the index as the power law itself, so its table may need
up to ``MAX_NODES`` = 128 nodes (the component tables stop at 64).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from diffuse_fit.binned.log_tables import DEFAULT_TOLERANCE, LogChebyshevTable
from diffuse_fit.io.events import EventTable
from diffuse_fit.physics.components import FlatComponent, PowerLawComponent, event_weights

if TYPE_CHECKING:
    from diffuse_fit.binned.detector_tables import ResponseTable
    from diffuse_fit.binned.nuisance_tables import NuisanceVariance

MAX_NODES = 128

SecondEntry = tuple[int, int, np.ndarray]
"""A second-derivative entry ``(i, j, d2 y_b / d theta_i d theta_j)`` (on the bins asked for)."""
_Unit = (
    tuple[np.ndarray, None, None, None, None]  # flat
    | tuple[np.ndarray, np.ndarray, float, str, tuple[float, float]]  # power law
)


@dataclass(frozen=True)
class FlatPair:
    """``P_cd,b`` of two flat components: exact per-bin sums of ``u_ci u_di``, (n_bins,)."""

    norms: tuple[str, str]
    factor: float
    per_bin: np.ndarray

    def values(self, params: dict[str, Any]) -> np.ndarray:
        return self.per_bin

    def derivatives(self, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``P``, ``dP/d index``, ``d2P/d index2`` (no index: zeros)."""
        zero = np.zeros_like(self.per_bin)
        return self.per_bin, zero, zero


@dataclass(frozen=True)
class SmoothPair:
    """``P_cd,b(index)``: a :class:`LogChebyshevTable` in the spectral index ``index``."""

    norms: tuple[str, str]
    factor: float
    index: str
    table: LogChebyshevTable

    n_bins = property(lambda self: self.table.n_bins)
    active = property(lambda self: self.table.active)
    log_coeffs = property(lambda self: self.table.log_coeffs)
    index_range = property(lambda self: self.table.interval)
    max_relative_error = property(lambda self: self.table.max_relative_error)

    def values(self, params: dict[str, Any]) -> np.ndarray:
        return self.table.values(params[self.index], self.index)

    def derivatives(self, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``P``, ``dP/d index``, ``d2P/d index2`` (n_bins each), exact for the table."""
        return self.table.derivatives(params[self.index], self.index)


@dataclass(frozen=True)
class VarianceTables:
    """Every pair's table (:class:`FlatPair` / :class:`SmoothPair`); ``s2_b`` at parameters."""

    pairs: tuple[FlatPair | SmoothPair, ...]

    @property
    def max_relative_error(self) -> float:
        """Worst interpolation error of the smooth tables (0 if all are exact)."""
        return max((getattr(p, "max_relative_error", 0.0) for p in self.pairs), default=0.0)

    def sum_of_squares(self, params: dict[str, Any]) -> np.ndarray:
        """``s2_b = sum_{i in b} w_i(params)^2`` (expected events squared), (n_bins,)."""
        return cast(
            np.ndarray,
            sum(
                p.factor * params[p.norms[0]] * params[p.norms[1]] * p.values(params)
                for p in self.pairs
            ),
        )

    def derivatives(
        self, params: dict[str, Any], position: dict[str, int], bins: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[SecondEntry]]:
        """``s2_b`` (len(bins),), its Jacobian (len(bins), n) and its non-zero second
        derivatives as ``(i, j, d2 s2_b / d theta_i d theta_j)`` entries (both orders of each
        off-diagonal pair); ``position``: parameter name -> i."""
        s2 = np.zeros(bins.size)
        jac = np.zeros((bins.size, len(position)))
        second: list[SecondEntry] = []
        for p in self.pairs:
            value, d1, d2 = (a[bins] for a in p.derivatives(params))
            f, (c, d) = p.factor, p.norms
            nc, nd = params[c], params[d]
            ic, id_ = position[c], position[d]
            s2 += f * nc * nd * value
            jac[:, ic] += f * nd * value
            jac[:, id_] += f * nc * value
            second += [(ic, id_, f * value), (id_, ic, f * value)]
            if isinstance(p, SmoothPair):
                ig = position[p.index]
                jac[:, ig] += f * nc * nd * d1
                second += [
                    (ic, ig, f * nd * d1),
                    (ig, ic, f * nd * d1),
                    (id_, ig, f * nc * d1),
                    (ig, id_, f * nc * d1),
                    (ig, ig, f * nc * nd * d2),
                ]
        return s2, jac, second


def _unit_weights(component: Any, events: EventTable) -> _Unit:
    """``(w, y, reference, index, range)``: nominal weights and, for a power law, ln(E/pivot)."""
    if isinstance(component, FlatComponent):  # a segment's unit weights included
        return np.asarray(component.unit_weights(events), dtype=np.float64), None, None, None, None
    w = np.asarray(events[component.weight_field], dtype=np.float64)
    if isinstance(component, PowerLawComponent):
        return (
            w,
            component.log_energy(events),
            component.reference_index,
            component.index,
            cast("tuple[float, float]", tuple(map(float, component.index_range))),
        )
    raise TypeError(f"unknown component type {type(component).__name__}")


def build_variance_tables(
    simulation: EventTable,
    bin_index: np.ndarray,
    n_bins: int,
    components: Sequence[Any],
    tolerance: float = DEFAULT_TOLERANCE,
    responses: tuple[ResponseTable, ...] = (),
) -> VarianceTables | NuisanceVariance:
    """The table of every pair ``c <= d`` of ``components`` (order as given); for components
    with nuisance parameters or detector ``responses``
    :func:`diffuse_fit.binned.nuisance_tables.build_nuisance_variance`."""
    if responses or any(hasattr(c, "terms") for c in components):
        from diffuse_fit.binned.nuisance_tables import build_nuisance_variance

        return build_nuisance_variance(
            simulation, bin_index, n_bins, components, tolerance, responses
        )
    for c in components:
        if not isinstance(c, FlatComponent | PowerLawComponent):
            raise ValueError(
                f"the SAY likelihood supports only the single power law (--astro-model spl), "
                f"not the '{getattr(c, 'model', type(c).__name__)}' spectrum of '{c.name}'"
            )
    # Any: which entries are None goes with the component's kind, beyond what mypy follows
    units: list[tuple[np.ndarray, Any, Any, Any, Any]] = [
        _unit_weights(c, simulation) for c in components
    ]
    inside = bin_index >= 0
    pairs: list[FlatPair | SmoothPair] = []
    for i, ci in enumerate(components):
        for j in range(i, len(components)):
            cj = components[j]
            norms, factor = (ci.norm, cj.norm), 1.0 if i == j else 2.0
            (wi, yi, ri, gi, rangei), (wj, yj, rj, gj, rangej) = units[i], units[j]
            if yi is None and yj is None:
                per_bin = np.bincount(
                    bin_index[inside], weights=(wi * wj)[inside], minlength=n_bins
                )
                pairs.append(FlatPair(norms, factor, per_bin))
                continue
            if yi is None or yj is None:  # flat x power law: the power law's tilt alone
                _, y, ref, index, interval = units[j] if yi is None else units[i]
                weights = wi * wj
            elif gi == gj and rangei == rangej:
                # exp(-(g - ri) yi - (g - rj) yj) = exp(-(ri - rj) yj) exp(-(g - ri)(yi + yj))
                weights, y = wi * wj * np.exp(-(ri - rj) * yj), yi + yj
                ref, index, interval = ri, gi, rangei
            else:
                raise ValueError(
                    f"the SAY likelihood's tables for power laws '{ci.name}' and '{cj.name}' "
                    "with different spectral indices (or index ranges) are not implemented"
                )
            table = LogChebyshevTable.tabulate(
                bin_index, weights, y, ref, interval, n_bins, tolerance, MAX_NODES
            )
            pairs.append(SmoothPair(norms, factor, index, table))
    return VarianceTables(tuple(pairs))


def sum_of_squares_exact(
    simulation: EventTable,
    bin_index: np.ndarray,
    n_bins: int,
    components: Iterable[Any],
    params: dict[str, Any],
) -> np.ndarray:
    """``s2_b`` by the exact per-event sum (the reference for the tables)."""
    inside = bin_index >= 0
    w = event_weights(simulation, components, params)[inside]
    return np.bincount(bin_index[inside], weights=w * w, minlength=n_bins)
