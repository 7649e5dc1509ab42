"""Per-bin tables of the single power law with free flavour fractions (NumPy, exact derivatives).

For :class:`diffuse_fit.physics.flavour.FlavourPowerLaw` the expectation per bin is linear in
the fractions (``f_tau = 1 - f_e - f_mu``):

    lam_b = n * U_b,   U_b = 3 (f_e T_e,b(g) + f_mu T_mu,b(g) + f_tau T_tau,b(g)),

``n`` the norm, ``g`` the spectral index and ``T_a,b`` the power law's per-bin sum of flavour
``a``'s simulated events at norm 1: one :class:`LogChebyshevTable` each (the table of the
single power law, :mod:`diffuse_fit.binned.log_tables`, restricted to one flavour).  At
``f_a = 1/3`` it is the single power law's table of all events, summed.  Derivatives, with
``D_a = T_a - T_tau`` (a = e, mu) and primes for ``d/dg``:

    d lam / dn = U,    d lam / dg = n U',    d lam / df_a = 3 n D_a,
    d2 lam / dn dg = U',   d2 lam / dn df_a = 3 D_a,   d2 lam / dg2 = n U'',
    d2 lam / dg df_a = 3 n D_a',   d2 lam / df_a df_b = 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from diffuse_fit.binned.log_tables import DEFAULT_TOLERANCE, LogChebyshevTable
from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.events import EventTable
from diffuse_fit.physics.flavour import FLAVOURS, FlavourPowerLaw

Second = list[tuple[int, int, np.ndarray]]


@dataclass(frozen=True)
class FlavourTemplate:
    """The tables ``T_e``, ``T_mu``, ``T_tau`` of ``component`` (module doc), in
    :data:`diffuse_fit.physics.flavour.FLAVOURS` order."""

    component: FlavourPowerLaw
    tables: tuple[LogChebyshevTable, LogChebyshevTable, LogChebyshevTable]

    @property
    def n_bins(self) -> int:
        return self.tables[0].n_bins

    @property
    def active(self) -> np.ndarray:
        """Bins where some flavour has simulated events."""
        return np.unique(np.concatenate([t.active for t in self.tables]))

    @property
    def max_relative_error(self) -> float:
        return max(t.max_relative_error for t in self.tables)

    def shares(self, params: Mapping[str, Any]) -> tuple[float, float, float]:
        """``(3 f_e, 3 f_mu, 3 f_tau)`` at ``params``."""
        f_e, f_mu = (float(params[f]) for f in self.component.fractions)
        return 3.0 * f_e, 3.0 * f_mu, 3.0 * (1.0 - f_e - f_mu)

    def flavour_counts(self, params: Mapping[str, Any]) -> np.ndarray:
        """``T_a,b`` at the index of ``params``: (3, n_bins), expected events at norm 1 and
        equal fractions of each flavour's events."""
        c = self.component
        return np.stack([t.values(params[c.index], c.index) for t in self.tables])

    def unit_counts(self, params: Mapping[str, Any]) -> np.ndarray:
        """``U_b``: expected events per bin at norm 1 and the fractions of ``params``."""
        return cast(np.ndarray, np.asarray(self.shares(params)) @ self.flavour_counts(params))

    def expectation_derivatives(
        self, params: Mapping[str, float], position: Mapping[str, int], bins: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, Second]:
        """``lam`` on ``bins``, its Jacobian (len(bins), len(position)) and its non-zero
        second derivatives as ``(i, j, d2 lam / d theta_i d theta_j)`` entries (module doc)."""
        c = self.component
        norm = float(params[c.norm])
        found = [t.derivatives(params[c.index], c.index) for t in self.tables]
        value, d1, d2 = (np.stack([f[k][bins] for f in found]) for k in range(3))  # (3, n)
        share = np.asarray(self.shares(params))
        unit, unit_1, unit_2 = share @ value, share @ d1, share @ d2
        n, g = position[c.norm], position[c.index]
        jac = np.zeros((bins.size, len(position)))
        jac[:, n] = unit
        jac[:, g] = norm * unit_1
        second: Second = [(n, g, unit_1), (g, n, unit_1), (g, g, norm * unit_2)]
        for a, name in enumerate(c.fractions):
            i = position[name]
            diff, diff_1 = 3.0 * (value[a] - value[2]), 3.0 * (d1[a] - d1[2])
            jac[:, i] = norm * diff
            second += [(n, i, diff), (i, n, diff), (g, i, norm * diff_1), (i, g, norm * diff_1)]
        return norm * unit, jac, second


def build_flavour_template(
    component: FlavourPowerLaw,
    events: EventTable,
    bin_index: np.ndarray,
    n_bins: int,
    tolerance: float = DEFAULT_TOLERANCE,
) -> FlavourTemplate:
    """Tabulate each flavour's ``log T_a,b`` as the single power law's table
    (:meth:`LogChebyshevTable.tabulate`) of that flavour's events."""
    try:
        flavour = component.flavours(events)
    except ValueError as exc:  # a code that is not a neutrino's
        raise DataFormatError(
            events.source, str(exc).split(": ", 1)[-1], field=component.flavour_field
        ) from None
    weights = np.asarray(events[component.weight_field], dtype=np.float64)
    log_energy = component.log_energy(events)
    tables = tuple(
        LogChebyshevTable.tabulate(
            bin_index,
            np.where(flavour == a, weights, 0.0),
            log_energy,
            component.reference_index,
            component.index_range,
            n_bins,
            tolerance,
        )
        for a in range(len(FLAVOURS))
    )
    return FlavourTemplate(
        component, cast("tuple[LogChebyshevTable, LogChebyshevTable, LogChebyshevTable]", tables)
    )
