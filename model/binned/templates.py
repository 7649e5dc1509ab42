"""Precomputed per-bin weight matrices: the expectation in time independent of event count.

For each component the simulation is summed into the bins once:

* a flat component becomes a vector ``A_b`` (expected events per bin at norm 1);
* a power-law component's per-bin sum ``S_b(gamma) = sum_{i in b} w_i exp(-(gamma - g0) x_i)``,
  ``x_i = ln(E_true,i / pivot)``, is a smooth, positive function of gamma alone.
  ``log S_b`` is interpolated on K Chebyshev nodes over the component's index range;
  K is raised until the interpolant matches the exact sum to ``tolerance`` (relative)
  on a dense check grid, and the accuracy reached is recorded.

A :class:`diffuse_fit.physics.spectra.SpectralComponent` (two or three shape parameters) gets a
tensor-product table of the same kind, or the exact per-event sum where no table meets the
tolerance (:mod:`diffuse_fit.binned.spectral_tables`).

Expected events per bin: ``lam_b = sum_c norm_c * T_c,b(shape parameters)``.
:func:`expected_counts` evaluates it from the tables, :func:`expected_counts_exact`
from the events; the PyMC model evaluates the same tables as pytensor expressions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.detector_tables import response_supports, response_values
from diffuse_fit.binned.flavour_tables import FlavourTemplate, build_flavour_template
from diffuse_fit.binned.log_tables import DEFAULT_TOLERANCE, LogChebyshevTable
from diffuse_fit.binned.nuisance_tables import build_nuisance_template
from diffuse_fit.binned.product_engine import without_cache
from diffuse_fit.binned.spectral_tables import build_spectral_template
from diffuse_fit.io.events import EventTable
from diffuse_fit.physics.components import (
    FlatComponent,
    PowerLawComponent,
    event_weights,
    parameter_supports,
)
from diffuse_fit.physics.flavour import FlavourPowerLaw
from diffuse_fit.physics.spectra import SpectralComponent

if TYPE_CHECKING:
    from diffuse_fit.binned.detector_tables import ResponseTable
    from diffuse_fit.binned.joint import JointBinning
    from diffuse_fit.binned.nuisance_tables import NuisanceTemplate, NuisanceVariance
    from diffuse_fit.binned.spectral_tables import SpectralEventSum, SpectralTable
    from diffuse_fit.binned.variance import VarianceTables


@dataclass(frozen=True)
class FlatTemplate:
    """``A_b``: expected events per bin of ``component`` at norm 1, shape (n_bins,)."""

    component: FlatComponent
    per_bin: np.ndarray

    def unit_counts(self, params: dict[str, Any]) -> np.ndarray:
        """Expected events per bin at norm 1 (no shape parameters)."""
        return self.per_bin


@dataclass(frozen=True)
class PowerLawTemplate:
    """A power law's per-bin sums at norm 1, ``S_b(index)``: a :class:`LogChebyshevTable`
    over ``component.index_range`` (``table.active``: the bins with positive weight)."""

    component: PowerLawComponent
    table: LogChebyshevTable

    n_bins = property(lambda self: self.table.n_bins)
    active = property(lambda self: self.table.active)
    log_coeffs = property(lambda self: self.table.log_coeffs)
    max_relative_error = property(lambda self: self.table.max_relative_error)
    n_nodes = property(lambda self: self.table.n_nodes)

    def unit_counts(self, params: dict[str, Any]) -> np.ndarray:
        """``S_b`` at ``params[index]``: expected events per bin at norm 1."""
        return self.table.values(params[self.component.index], self.component.index)

    def unit_counts_derivatives(
        self, params: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``S_b``, ``dS_b/d index`` and ``d2S_b/d index2`` at ``params[index]`` (n_bins each)."""
        return self.table.derivatives(params[self.component.index], self.component.index)


def build_power_law_template(
    component: PowerLawComponent,
    events: EventTable,
    bin_index: np.ndarray,
    n_bins: int,
    tolerance: float = DEFAULT_TOLERANCE,
) -> PowerLawTemplate:
    """Tabulate ``log S_b`` with the fewest Chebyshev nodes (8, 12, 16, ...) meeting ``tolerance``."""
    table = LogChebyshevTable.tabulate(
        bin_index,
        events[component.weight_field],
        component.log_energy(events),
        component.reference_index,
        component.index_range,
        n_bins,
        tolerance,
    )
    return PowerLawTemplate(component, table)


@dataclass(frozen=True)
class Templates:
    """Per-bin tables of every component, for one simulation and binning.

    ``variance``: the per-bin sums of squared weights
    (:class:`diffuse_fit.binned.variance.VarianceTables`) that the SAY likelihood needs, or
    ``None`` (the Poisson likelihood does without; see
    :meth:`diffuse_fit.binned.dataset.BinnedDataset.with_variance`).
    """

    binning: Binning | JointBinning
    components: tuple[Any, ...]
    tables: tuple[
        Any, ...
    ]  # one FlatTemplate / PowerLawTemplate / SpectralTable / SpectralEventSum each
    variance: VarianceTables | NuisanceVariance | None = None
    fixed: dict[str, float] = field(default_factory=dict)  # parameter -> value held fixed (--fix)
    responses: tuple[
        ResponseTable, ...
    ] = ()  # detector responses (diffuse_fit.binned.detector_tables.ResponseTable)

    def responses_of(self, component: str) -> tuple[ResponseTable, ...]:
        """The detector responses multiplying ``component``'s expectation (empty: none)."""
        return tuple(r for r in self.responses if r.component == component)

    def parameter_supports(self) -> dict[str, tuple[float, float]]:
        """Every parameter of the expectation and its allowed range: the components' and the
        detector systematics' (:mod:`diffuse_fit.binned.detector_tables`)."""
        return {**parameter_supports(self.components), **response_supports(self.responses)}

    def with_fixed(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with the fixed parameters' values added (a value given in ``params``
        for a fixed parameter is replaced by the fixed one)."""
        return {**params, **self.fixed} if self.fixed else params

    def component_counts(self, params: dict[str, Any]) -> dict[str, np.ndarray]:
        """Expected events per bin of each component at ``params`` (name -> (n_bins,));
        fixed parameters (:attr:`fixed`) need not be given."""
        params = self.with_fixed(params)
        return {
            t.component.name: params[t.component.norm]
            * t.unit_counts(params)
            * response_values(self.responses_of(t.component.name), params)
            for t in self.tables
        }

    def sum_of_squares(self, params: dict[str, Any]) -> np.ndarray:
        """The SAY likelihood's per-bin sums of squared weights at ``params`` (needs
        :attr:`variance`); fixed parameters need not be given."""
        # no tables (None): an AttributeError on the next line
        variance = cast("VarianceTables | NuisanceVariance", self.variance)
        return variance.sum_of_squares(self.with_fixed(params))

    def covered(self) -> np.ndarray:
        """Bins (bool mask) where some component has positive expectation for some parameters."""
        mask = np.zeros(self.binning.n_bins, dtype=bool)
        for t in self.tables:
            if isinstance(t, FlatTemplate):
                mask |= t.per_bin > 0
            else:
                mask[t.active] = True
        return mask

    def exact_sum_notes(self) -> list[str]:
        """One line per component evaluated by the exact per-event sum instead of a table,
        with the reason (:class:`diffuse_fit.binned.spectral_tables.SpectralEventSum`)."""
        return [
            f"{t.component.name}: exact per-event sum, no table ({t.reason})"
            for t in self.tables
            if hasattr(t, "reason")
        ]

    @property
    def max_relative_error(self) -> float:
        """Worst interpolation error of the tables (0 for exact flat tables)."""
        return max((getattr(t, "max_relative_error", 0.0) for t in self.tables), default=0.0)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the likelihood's cached engines
        (:func:`diffuse_fit.binned.product_engine.cached_engine`; rebuilt on use)."""
        return without_cache(self.__dict__)


def build_templates(
    simulation: EventTable,
    binning: Binning | JointBinning,
    components: Sequence[Any],
    tolerance: float = DEFAULT_TOLERANCE,
    bin_index: np.ndarray | None = None,
    spectral_method: str = "auto",
) -> Templates:
    """Sum the simulation into per-bin tables, one per component (``spectral_method``:
    "auto", "table" or "exact", for spectral components only:
    :func:`diffuse_fit.binned.spectral_tables.build_spectral_template`)."""
    if bin_index is None:
        bin_index = binning.bin_events(simulation)
    tables: list[
        FlatTemplate
        | PowerLawTemplate
        | FlavourTemplate
        | NuisanceTemplate
        | SpectralTable
        | SpectralEventSum
    ] = []
    for c in components:
        if isinstance(c, FlatComponent):
            tables.append(FlatTemplate(c, binning.histogram(bin_index, c.unit_weights(simulation))))
        elif isinstance(c, PowerLawComponent):
            tables.append(
                build_power_law_template(c, simulation, bin_index, binning.n_bins, tolerance)
            )
        elif isinstance(c, FlavourPowerLaw):
            tables.append(
                build_flavour_template(c, simulation, bin_index, binning.n_bins, tolerance)
            )
        elif hasattr(c, "terms"):  # with nuisance parameters (diffuse_fit.physics.nuisance)
            tables.append(
                build_nuisance_template(c, simulation, bin_index, binning.n_bins, tolerance)
            )
        elif isinstance(c, SpectralComponent):
            tables.append(
                build_spectral_template(
                    c, simulation, bin_index, binning.n_bins, tolerance, spectral_method
                )
            )
        else:
            raise TypeError(f"unknown component type {type(c).__name__}")
    return Templates(binning, tuple(components), tuple(tables))


def expected_counts(templates: Templates, params: dict[str, Any]) -> np.ndarray:
    """Expected events per bin from the tables: ``sum_c norm_c * T_c,b``."""
    return cast(np.ndarray, sum(templates.component_counts(params).values()))  # >= 1 component


def expected_counts_exact(
    simulation: EventTable,
    bin_index: np.ndarray,
    n_bins: int,
    components: Iterable[Any],
    params: dict[str, Any],
) -> np.ndarray:
    """Expected events per bin by the exact per-event sum (the reference for the tables)."""
    inside = bin_index >= 0
    weights = event_weights(simulation, components, params)
    return np.bincount(bin_index[inside], weights=weights[inside], minlength=n_bins)
