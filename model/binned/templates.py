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

import functools
from dataclasses import dataclass, field

import numpy as np

from diffuse_fit.binned import chebyshev
from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.spectral_tables import build_spectral_template
from diffuse_fit.io.events import EventTable
from diffuse_fit.physics.components import FlatComponent, PowerLawComponent, event_weights
from diffuse_fit.physics.spectra import SpectralComponent

DEFAULT_TOLERANCE = 1e-11
MAX_NODES = 64
CHECK_POINTS = 65


@dataclass(frozen=True)
class FlatTemplate:
    """``A_b``: expected events per bin of ``component`` at norm 1, shape (n_bins,)."""

    component: FlatComponent
    per_bin: np.ndarray

    def unit_counts(self, params: dict) -> np.ndarray:
        """Expected events per bin at norm 1 (no shape parameters)."""
        return self.per_bin


@dataclass(frozen=True)
class PowerLawTemplate:
    """Chebyshev table of ``log S_b(index)`` for the bins where ``S_b > 0``.

    Attributes
    ----------
    active : ndarray of int
        Bins with positive weight; ``S_b = 0`` identically elsewhere.
    log_coeffs : ndarray, shape (len(active), K)
        Chebyshev coefficients of ``log S_b`` over ``component.index_range``.
    max_relative_error : float
        Largest ``|S_interp / S_exact - 1|`` found on the check grid.
    """

    component: PowerLawComponent
    n_bins: int
    active: np.ndarray
    log_coeffs: np.ndarray
    max_relative_error: float

    @property
    def n_nodes(self) -> int:
        return self.log_coeffs.shape[1]

    def unit_counts(self, params: dict) -> np.ndarray:
        """``S_b`` at ``params[index]``: expected events per bin at norm 1."""
        c = self.component
        return log_table_values(self.log_coeffs, self.active, self.n_bins, c.index_range,
                                params[c.index], c.index)  # fmt: skip

    def unit_counts_derivatives(self, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``S_b``, ``dS_b/d index`` and ``d2S_b/d index2`` at ``params[index]`` (n_bins each);
        :func:`log_table_derivatives`."""
        c = self.component
        return log_table_derivatives(self.log_coeffs, self.active, self.n_bins, c.index_range,
                                     params[c.index], c.index, self.derivative_stack)  # fmt: skip

    @functools.cached_property
    def derivative_stack(self) -> np.ndarray:
        """:func:`log_derivative_stack` of the table (computed once: a fit evaluates the
        derivatives thousands of times)."""
        return log_derivative_stack(self.log_coeffs, self.component.index_range)

    def __getstate__(self) -> dict:
        """Pickle without the cached :attr:`derivative_stack` (rebuilt on use)."""
        return {k: v for k, v in self.__dict__.items() if k != "derivative_stack"}


def read_log_table(arrays: dict, prefix: str, n_bins: int, what: str) -> tuple:
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


def log_table_values(log_coeffs, active, n_bins, interval, x, name="index") -> np.ndarray:
    """``exp`` of the Chebyshev series ``log_coeffs`` (len(active), K) at ``x`` on the
    ``active`` bins, 0 elsewhere: shape (n_bins,).  ``x`` must lie inside ``interval``
    (``name`` is the parameter's name, for the error)."""
    _check_inside(interval, x, name)
    out = np.zeros(n_bins)
    out[active] = np.exp(chebyshev.evaluate(log_coeffs, x, interval))
    return out


def _check_inside(interval, x, name) -> None:
    low, high = interval
    if not low <= x <= high:
        raise ValueError(f"{name}={x} is outside the tabulated range [{low}, {high}]")


def log_derivative_stack(log_coeffs, interval) -> np.ndarray:
    """Chebyshev coefficients of ``L``, ``dL/dx`` and ``d2L/dx2``, shape (3, len(active), K),
    for one basis evaluation and one product per point (:func:`log_table_derivatives`)."""
    scale = 2.0 / (interval[1] - interval[0])  # dt / dx
    d1 = np.polynomial.chebyshev.chebder(log_coeffs, m=1, scl=scale, axis=1)
    d2 = np.polynomial.chebyshev.chebder(log_coeffs, m=2, scl=scale, axis=1)
    out = np.zeros((3, *np.shape(log_coeffs)))
    out[0], out[1, :, : d1.shape[1]], out[2, :, : d2.shape[1]] = log_coeffs, d1, d2
    return out


def log_table_derivatives(log_coeffs, active, n_bins, interval, x, name="index", stack=None):
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


def _exact_power_law_sums(idx, w, x, gammas, reference_index, n_bins):
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


def tabulate_log_sums(bin_index, weights, log_energy, reference_index, interval, n_bins,
                      tolerance=DEFAULT_TOLERANCE, max_nodes=MAX_NODES):  # fmt: skip
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
        at_nodes = _exact_power_law_sums(*args, chebyshev.nodes(k, interval), reference_index,
                                         n_bins)  # fmt: skip
        coeffs = chebyshev.fit(np.log(at_nodes[:, active].T), interval)
        interp = np.exp(np.stack([chebyshev.evaluate(coeffs, g, interval) for g in check]))
        error = float(np.max(np.abs(interp / exact_check - 1.0), initial=0.0))
        if error <= tolerance:
            break
    return active, coeffs, error


def build_power_law_template(
    component: PowerLawComponent,
    events: EventTable,
    bin_index: np.ndarray,
    n_bins: int,
    tolerance: float = DEFAULT_TOLERANCE,
) -> PowerLawTemplate:
    """Tabulate ``log S_b`` with the fewest Chebyshev nodes (8, 12, 16, ...) meeting ``tolerance``."""
    active, coeffs, error = tabulate_log_sums(
        bin_index, events[component.weight_field], component.log_energy(events),
        component.reference_index, component.index_range, n_bins, tolerance,
    )  # fmt: skip
    return PowerLawTemplate(component, n_bins, active, coeffs, error)


@dataclass(frozen=True)
class Templates:
    """Per-bin tables of every component, for one simulation and binning.

    ``variance``: the per-bin sums of squared weights
    (:class:`diffuse_fit.binned.variance.VarianceTables`) that the SAY likelihood needs, or
    ``None`` (the Poisson likelihood does without; see
    :meth:`diffuse_fit.binned.dataset.BinnedDataset.with_variance`).
    """

    binning: Binning
    components: tuple
    tables: tuple  # one FlatTemplate / PowerLawTemplate / SpectralTable / SpectralEventSum each
    variance: object = None  # VarianceTables | None
    fixed: dict = field(default_factory=dict)  # parameter -> value held fixed (--fix)

    def with_fixed(self, params: dict) -> dict:
        """``params`` with the fixed parameters' values added (a value given in ``params``
        for a fixed parameter is replaced by the fixed one)."""
        return {**params, **self.fixed} if self.fixed else params

    def component_counts(self, params: dict) -> dict[str, np.ndarray]:
        """Expected events per bin of each component at ``params`` (name -> (n_bins,));
        fixed parameters (:attr:`fixed`) need not be given."""
        params = self.with_fixed(params)
        return {
            t.component.name: params[t.component.norm] * t.unit_counts(params) for t in self.tables
        }

    def sum_of_squares(self, params: dict) -> np.ndarray:
        """The SAY likelihood's per-bin sums of squared weights at ``params`` (needs
        :attr:`variance`); fixed parameters need not be given."""
        return self.variance.sum_of_squares(self.with_fixed(params))

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
        return [f"{t.component.name}: exact per-event sum, no table ({t.reason})"
                for t in self.tables if hasattr(t, "reason")]  # fmt: skip

    @property
    def max_relative_error(self) -> float:
        """Worst interpolation error of the tables (0 for exact flat tables)."""
        return max((getattr(t, "max_relative_error", 0.0) for t in self.tables), default=0.0)


def build_templates(
    simulation: EventTable,
    binning: Binning,
    components,
    tolerance: float = DEFAULT_TOLERANCE,
    bin_index: np.ndarray | None = None,
    spectral_method: str = "auto",
) -> Templates:
    """Sum the simulation into per-bin tables, one per component (``spectral_method``:
    "auto", "table" or "exact", for spectral components only:
    :func:`diffuse_fit.binned.spectral_tables.build_spectral_template`)."""
    if bin_index is None:
        bin_index = binning.bin_events(simulation)
    tables = []
    for c in components:
        if isinstance(c, FlatComponent):
            tables.append(FlatTemplate(c, binning.histogram(bin_index, simulation[c.weight_field])))
        elif isinstance(c, PowerLawComponent):
            tables.append(
                build_power_law_template(c, simulation, bin_index, binning.n_bins, tolerance)
            )
        elif hasattr(c, "terms"):  # with nuisance parameters (diffuse_fit.physics.nuisance)
            from diffuse_fit.binned.nuisance_tables import build_nuisance_template

            tables.append(
                build_nuisance_template(c, simulation, bin_index, binning.n_bins, tolerance)
            )
        elif isinstance(c, SpectralComponent):
            tables.append(
                build_spectral_template(
                    c, simulation, bin_index, binning.n_bins, tolerance, spectral_method
                )  # fmt: skip
            )
        else:
            raise TypeError(f"unknown component type {type(c).__name__}")
    return Templates(binning, tuple(components), tuple(tables))


def expected_counts(templates: Templates, params: dict) -> np.ndarray:
    """Expected events per bin from the tables: ``sum_c norm_c * T_c,b``."""
    return sum(templates.component_counts(params).values())


def expected_counts_exact(
    simulation: EventTable, bin_index: np.ndarray, n_bins: int, components, params: dict
) -> np.ndarray:
    """Expected events per bin by the exact per-event sum (the reference for the tables)."""
    inside = bin_index >= 0
    weights = event_weights(simulation, components, params)
    return np.bincount(bin_index[inside], weights=weights[inside], minlength=n_bins)
