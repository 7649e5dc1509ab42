"""Per-bin tables of components with nuisance parameters, and of their squared weights (NumPy).

A component of :mod:`diffuse_fit.physics.nuisance` is a sum of terms, each
``c_t(theta) * u_ti * exp(-(x_t - x0_t) y_ti)`` (``c_t`` a product of affine factors of
linear parameters such as ``kpi_ratio`` and ``nunubar_ratio``, ``x_t`` a spectral parameter
such as ``cr_delta_gamma``, ``y_ti = ln(E_i / pivot_t)``).  Its per-bin sum is therefore

    lam_b = sum_t c_t(theta) S_tb(x_t),   S_tb(x) = sum_{i in b} u_ti exp(-(x - x0_t) y_ti):

a *separable* form -- one-dimensional tables in the spectral parameter, combined with
polynomials in the linear ones -- rather than a 2-D table: the linear parameters enter each
event's weight linearly, so their dependence factors out of the sum exactly.  ``log S_tb`` is a
Chebyshev series exactly as the astrophysical table (:func:`diffuse_fit.binned.log_tables.tabulate_log_sums`).

The SAY likelihood's ``s2_b = sum_i w_i^2`` is the double sum over pairs of terms
(all components', the plain flat and power-law ones included as one-term components):

    s2_b = sum_{t <= t'} f_tt' c_t c_t' P_tt',b,   P_tt',b = sum_{i in b} u_ti u_t'i
           exp(-(x_t - x0_t) y_ti - (x_t' - x0_t') y_t'i),

``f`` = 1 (t = t') or 2.  When both terms are tilted and use the same true energy
(``y_t'i = y_ti + delta``, ``delta = ln(pivot_t / pivot_t')``) the exponent is
``-(x_t + x_t' - x0_t - x0_t') y_ti - (x_t' - x0_t') delta``: a 1-D table in the SUM
``x_t + x_t'`` (e.g. ``astro_gamma + cr_delta_gamma``) times ``exp(-delta x_t')``.  So also the
pairs of two different spectral parameters need no 2-D table.  Pairs whose events never
overlap (neutrinos x antineutrinos, muons x neutrinos) are left out.  Every table costs
O(bins x nodes) per evaluation, independent of the number of simulated events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from diffuse_fit.binned.detector_tables import response_values
from diffuse_fit.binned.log_tables import DEFAULT_TOLERANCE, LogChebyshevTable
from diffuse_fit.binned.product_engine import (
    ProductEngine,
    ProductSecond,
    cached_engine,
    without_cache,
)
from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.events import EventTable
from diffuse_fit.physics.components import FlatComponent, PowerLawComponent, SegmentComponent
from diffuse_fit.physics.nuisance import SIGN_FIELD, NuisanceComponent, Term

if TYPE_CHECKING:
    from diffuse_fit.binned.detector_tables import ResponseTable
    from diffuse_fit.physics.nuisance import Factor

MAX_NODES = 128  # as the squared-weight tables of diffuse_fit.binned.variance


@dataclass(frozen=True)
class LogTable:
    """``P_b(theta) = exp(sum_k a_k theta_k) S_b(sum of params[variables])``.

    ``S_b`` is exact (``per_bin``) when there are no variables, else a
    :class:`LogChebyshevTable` (``table``) over the interval of the variables' sum.
    """

    variables: tuple[str, ...]
    linear: tuple[tuple[str, float], ...]  # ((name, a), ...)
    n_bins: int
    per_bin: np.ndarray | None = None
    table: LogChebyshevTable | None = None

    interval = property(lambda self: self.table.interval)
    active = property(lambda self: self.table.active)
    log_coeffs = property(lambda self: self.table.log_coeffs)

    @property
    def max_relative_error(self) -> float:
        return 0.0 if self.table is None else self.table.max_relative_error

    @property
    def covered(self) -> np.ndarray:
        """Bins where the table is positive (bool mask)."""
        if self.per_bin is not None:
            return self.per_bin > 0
        assert self.table is not None  # no per_bin: a table (a LogTable has one)
        mask = np.zeros(self.n_bins, dtype=bool)
        mask[self.table.active] = True
        return mask

    def _argument(self, params: dict[str, Any]) -> float:
        return float(sum(params[v] for v in self.variables))

    def _prefactor(self, params: dict[str, Any]) -> float:
        return math.exp(sum(a * params[name] for name, a in self.linear))

    def values(self, params: dict[str, Any]) -> np.ndarray:
        """``P_b`` at ``params``, (n_bins,)."""
        if self.per_bin is not None:
            return self._prefactor(params) * self.per_bin
        assert self.table is not None  # no per_bin: a table
        s = self.table.values(self._argument(params), "+".join(self.variables))
        return self._prefactor(params) * s


@dataclass(frozen=True)
class Product:
    """``multiplier * prod_k (a_k + b_k params[p_k]) * table * prod_r R_r`` (``responses``:
    detector response tables, :mod:`diffuse_fit.binned.detector_tables`)."""

    multiplier: float
    factors: tuple[Factor, ...]
    table: LogTable
    responses: tuple[ResponseTable, ...] = ()


def products_values(products: Iterable[Product], params: dict[str, Any]) -> np.ndarray:
    """``sum_p multiplier_p f_p(theta) P_p(theta)`` per bin."""
    return cast(
        np.ndarray,
        sum(
            p.multiplier
            * math.prod(a + b * params[n] for n, a, b in p.factors)
            * p.table.values(params)
            * response_values(p.responses, params)
            for p in products
        ),
    )


@dataclass(frozen=True)
class LowRankSecond:
    """Second derivatives of a per-bin quantity ``y_b`` as a sum of rank-one terms:
    ``d2 y_b / d theta_i d theta_j = sum_r vectors[r, b] matrices[r, i, j]``.

    A consumer needs only contractions ``sum_b w_b d2 y_b / d theta_i d theta_j``
    (:meth:`contract`): ``O(R (bins + n^2))`` instead of forming ``(bins, n, n)``."""

    vectors: np.ndarray  # (R, len(bins))
    matrices: np.ndarray  # (R, n, n)

    def contract(self, weights: np.ndarray) -> np.ndarray:
        """``sum_b weights_b d2 y_b``, (n, n)."""
        return np.tensordot(self.vectors @ weights, self.matrices, axes=1)

    def scaled(self, factor: np.ndarray) -> LowRankSecond:
        """The second derivatives of ``factor_b y_b`` (``factor`` constant in theta)."""
        return replace(self, vectors=self.vectors * factor)


Second = list[tuple[int, int, np.ndarray] | LowRankSecond | ProductSecond]
"""Second-derivative entries: ``(i, j, d2 y_b / d theta_i d theta_j)``, :class:`LowRankSecond`
or :class:`diffuse_fit.binned.product_engine.ProductSecond` (those two: with ``contract``)."""


def add_second(
    hessian: np.ndarray,
    second: Iterable[tuple[int, int, np.ndarray] | LowRankSecond | ProductSecond],
    weights: np.ndarray,
) -> None:
    """``hessian += sum_b weights_b d2 y_b`` for ``second``: entries ``(i, j, d2 y_b)`` or
    contractible ones (:class:`LowRankSecond`, :class:`ProductSecond`)."""
    for entry in second:
        if isinstance(entry, tuple):
            i, j, d2 = entry
            hessian[i, j] += weights @ d2
        else:
            hessian += entry.contract(weights)


def products_derivatives(
    products: Sequence[Product],
    params: dict[str, Any],
    position: dict[str, int],
    bins: np.ndarray,
    engine: ProductEngine | None = None,
) -> tuple[np.ndarray, np.ndarray, Second]:
    """Value (len(bins),), Jacobian (len(bins), n) and second derivatives (one contractible
    entry, none without products) of :func:`products_values`, with the products' detector
    responses.

    A product ``m f(theta) e(theta) S(x) rho(v)``, with ``f = prod_k (a_k + b_k
    theta_{p_k})``, ``e = exp(a . theta)`` (the table's linear terms), ``S`` its table in
    ``x = c . theta`` (the sum of its variables) and ``rho`` its responses' product, has the
    derivatives of :mod:`diffuse_fit.binned.product_engine` (exact for the tables), never a
    (bins, n, n) array.  ``engine``: the :class:`ProductEngine` of ``products``, ``position``
    and ``bins`` if built already (the owners of products keep theirs,
    :func:`diffuse_fit.binned.product_engine.cached_engine`)."""
    if engine is None:
        engine = ProductEngine(products, position, bins)
    value, jac, second = engine.derivatives(params)
    return value, jac, [] if second is None else [second]


# ----------------------------------------------------------------------------- components


@dataclass(frozen=True)
class NuisanceTemplate:
    """Per-bin tables of a :class:`NuisanceComponent` at norm 1 (``products``: one per term)."""

    component: NuisanceComponent
    n_bins: int
    products: tuple[Product, ...]

    @property
    def active(self) -> np.ndarray:
        mask = np.zeros(self.n_bins, dtype=bool)
        for p in self.products:
            mask |= p.table.covered
        return np.flatnonzero(mask)

    @property
    def max_relative_error(self) -> float:
        return max((p.table.max_relative_error for p in self.products), default=0.0)

    def unit_counts(self, params: dict[str, Any]) -> np.ndarray:
        """Expected events per bin at norm 1."""
        return products_values(self.products, params) if self.products else np.zeros(self.n_bins)

    def expectation_derivatives(
        self, params: dict[str, Any], position: dict[str, int], bins: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, Second]:
        """``norm * unit_counts``: value, Jacobian, second-derivative entries on ``bins``."""
        norm = ((self.component.norm, 0.0, 1.0),)
        full = [Product(p.multiplier, norm + p.factors, p.table) for p in self.products]
        engine = cached_engine(self, position, bins, lambda: ProductEngine(full, position, bins))
        return products_derivatives(full, params, position, bins, engine)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the cached engines (rebuilt on use)."""
        return without_cache(self.__dict__)


def component_terms(component: Any) -> tuple[Term, ...]:
    """The terms of any component, each with the component's norm as its first factor."""
    norm = ((component.norm, 0.0, 1.0),)
    if isinstance(component, NuisanceComponent):
        return tuple(
            Term(
                t.weight_field,
                norm + t.factors,
                t.sign,
                t.index,
                t.energy_field,
                t.pivot,
                t.reference_index,
                cast("tuple[float, float]", tuple(t.index_range)),
            )
            for t in component.terms
        )
    if isinstance(component, SegmentComponent):
        raise ValueError(
            "the segmented spectrum with the HESE nuisance components is not "
            "implemented (use --components workshop or split)"
        )
    if isinstance(component, FlatComponent):
        return (Term(component.weight_field, norm),)
    if isinstance(component, PowerLawComponent):
        return (
            Term(
                component.weight_field,
                norm,
                0,
                component.index,
                component.energy_field,
                component.pivot,
                component.reference_index,
                cast("tuple[float, float]", tuple(map(float, component.index_range))),
            ),
        )
    raise TypeError(f"unknown component type {type(component).__name__}")


def check_fields(simulation: EventTable, components: Iterable[Any]) -> None:
    """Every field the nuisance components read is present, and no event they weight has
    ``primaryType`` 0 (neither neutrino nor antineutrino); :class:`DataFormatError` if not."""
    for c in components:
        if not isinstance(c, NuisanceComponent):
            continue
        for name in c.input_fields:
            if name not in simulation:
                raise DataFormatError(
                    simulation.source,
                    f"component '{c.name}' needs this field (have {sorted(simulation.fields)})",
                    field=name,
                )
        code = np.asarray(simulation[SIGN_FIELD]) if SIGN_FIELD in c.input_fields else None
        for t in c.terms:
            if t.sign and np.any((code == 0) & (simulation[t.weight_field] != 0)):
                row = int(np.flatnonzero((code == 0) & (simulation[t.weight_field] != 0))[0])
                raise DataFormatError(
                    simulation.source,
                    f"primaryType 0 (neither neutrino nor antineutrino) for an event with "
                    f"{t.weight_field} > 0; the nu/nubar ratio cannot weight it",
                    field=SIGN_FIELD,
                    row=row,
                )


def _table(
    bin_index: np.ndarray,
    weights: np.ndarray,
    terms: Sequence[_Prepared],
    n_bins: int,
    tolerance: float,
    max_nodes: int,
) -> LogTable | None:
    """The :class:`LogTable` of ``sum_{i in b} weights_i * tilts of terms`` (one or two terms
    of the same events), or None if it is 0 in every bin."""
    inside = bin_index >= 0
    if not np.any(weights[inside] != 0):
        return None
    tilted = [t for t in terms if t.index is not None]
    if not tilted:
        per_bin = np.bincount(bin_index[inside], weights=weights[inside], minlength=n_bins)
        return LogTable((), (), n_bins, per_bin=per_bin)
    first = tilted[0]
    y, reference, (low, high) = (
        cast(np.ndarray, first.log_energy_of),  # a tilted term's: not None
        first.reference_index,
        first.index_range,
    )
    linear: tuple[tuple[str, float], ...] = ()
    if len(tilted) == 2:
        second = tilted[1]
        if second.energy_field != first.energy_field:
            raise ValueError(
                f"tilts in different energy fields ({first.energy_field}, "
                f"{second.energy_field}) cannot share a table"
            )
        delta = math.log(first.pivot / second.pivot)
        weights = weights * math.exp(second.reference_index * delta)
        reference += second.reference_index
        low, high = low + second.index_range[0], high + second.index_range[1]
        linear = ((second.index, -delta),) if delta != 0.0 else ()
    table = LogChebyshevTable.tabulate(
        bin_index, weights, y, reference, (low, high), n_bins, tolerance, max_nodes
    )
    return LogTable(tuple(t.index for t in tilted), linear, n_bins, table=table)


@dataclass(frozen=True)
class _Prepared:
    """A term with its unit weights and log energies on the simulation."""

    term: Term
    weights: np.ndarray
    log_energy_of: np.ndarray | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.term, name)


def _prepare(terms: Iterable[Term], simulation: EventTable) -> list[_Prepared]:
    return [
        _Prepared(t, t.unit_weights(simulation), t.log_energy(simulation) if t.index else None)
        for t in terms
    ]


def build_nuisance_template(
    component: NuisanceComponent,
    simulation: EventTable,
    bin_index: np.ndarray,
    n_bins: int,
    tolerance: float = DEFAULT_TOLERANCE,
) -> NuisanceTemplate:
    """One table per term of ``component`` (terms without events in the bins left out)."""
    check_fields(simulation, (component,))
    products = []
    for p in _prepare(component.terms, simulation):
        table = _table(bin_index, p.weights, [p], n_bins, tolerance, MAX_NODES)
        if table is not None:
            products.append(Product(1.0, p.term.factors, table))
    return NuisanceTemplate(component, n_bins, tuple(products))


@dataclass(frozen=True)
class NuisanceVariance:
    """``s2_b(theta)`` as a sum of :class:`Product` s over pairs of terms (module doc)."""

    products: tuple[Product, ...]

    @property
    def max_relative_error(self) -> float:
        return max((p.table.max_relative_error for p in self.products), default=0.0)

    def sum_of_squares(self, params: dict[str, Any]) -> np.ndarray:
        """``s2_b = sum_{i in b} w_i(params)^2`` (expected events squared), (n_bins,)."""
        return products_values(self.products, params)

    def derivatives(
        self, params: dict[str, Any], position: dict[str, int], bins: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, Second]:
        """As :meth:`diffuse_fit.binned.variance.VarianceTables.derivatives`."""
        engine = cached_engine(
            self, position, bins, lambda: ProductEngine(self.products, position, bins)
        )
        return products_derivatives(self.products, params, position, bins, engine)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the cached engines (rebuilt on use)."""
        return without_cache(self.__dict__)


def build_nuisance_variance(
    simulation: EventTable,
    bin_index: np.ndarray,
    n_bins: int,
    components: Sequence[Any],
    tolerance: float = DEFAULT_TOLERANCE,
    responses: tuple[ResponseTable, ...] = (),
) -> NuisanceVariance:
    """The tables of every pair of terms of ``components`` whose events overlap; a pair of
    terms of components ``c``, ``c'`` carries their detector responses ``R_c R_c'``
    (``responses``: :class:`diffuse_fit.binned.detector_tables.ResponseTable` s)."""
    check_fields(simulation, components)
    owned = [(c.name, t) for c in components for t in component_terms(c)]
    prepared = _prepare([t for _, t in owned], simulation)
    of = [tuple(r for r in responses if r.component == name) for name, _ in owned]
    products = []
    for i, p in enumerate(prepared):
        for j in range(i, len(prepared)):
            q = prepared[j]
            table = _table(bin_index, p.weights * q.weights, [p, q], n_bins, tolerance, MAX_NODES)
            if table is not None:
                multiplier = 1.0 if q is p else 2.0
                products.append(
                    Product(multiplier, p.term.factors + q.term.factors, table, of[i] + of[j])
                )
    return NuisanceVariance(tuple(products))


# ----------------------------------------------------------------------------- records


def products_to_record(
    prefix: str, products: Iterable[Product], n_bins: int
) -> tuple[dict[str, tuple[tuple[str, ...], np.ndarray]], list[dict[str, Any]]]:
    """Arrays ``name -> (dims, array)`` and a JSON-able description of ``products``
    (inverse: :func:`products_from_record`), for a run's fit record."""
    variables: dict[str, tuple[tuple[str, ...], np.ndarray]]
    described: list[dict[str, Any]]
    variables, described = {}, []
    for j, p in enumerate(products):
        t, name = p.table, f"{prefix}{j}"
        entry: dict[str, Any] = {
            "multiplier": p.multiplier,
            "factors": [list(f) for f in p.factors],
            "variables": list(t.variables),
            "linear": [list(a) for a in t.linear],
            "responses": [r.key for r in p.responses],
        }
        if t.per_bin is not None:
            variables[f"{name}__per_bin"] = (("all_bin",), t.per_bin)
        else:
            entry |= {"interval": list(t.interval), "max_relative_error": t.max_relative_error}
            variables |= cast(LogChebyshevTable, t.table).record(name)  # no per_bin: a table
        described.append(entry)
    return variables, described


def products_from_record(
    prefix: str,
    described: Sequence[Mapping[str, Any]],
    arrays: Mapping[str, Any],
    n_bins: int,
    responses: tuple[ResponseTable, ...] = (),
) -> tuple[Product, ...]:
    """Inverse of :func:`products_to_record` (``responses``: the record's detector response
    tables); ``KeyError``/``ValueError`` if damaged."""
    by_key = {r.key: r for r in responses}
    products = []
    for j, d in enumerate(described):
        name = f"{prefix}{j}"
        common = (tuple(d["variables"]), tuple((str(n), float(a)) for n, a in d["linear"]), n_bins)
        if "interval" in d:
            chebyshev_table = LogChebyshevTable.read(
                arrays, name, n_bins, d["interval"], d["max_relative_error"], f"table {name}"
            )
            table = LogTable(*common, table=chebyshev_table)
        else:
            per_bin = np.asarray(arrays[f"{name}__per_bin"], dtype=np.float64)
            if per_bin.shape != (n_bins,):
                raise ValueError(f"inconsistent table {name}")
            table = LogTable(*common, per_bin=per_bin)
        factors = tuple((str(p), float(a), float(b)) for p, a, b in d["factors"])
        linked = tuple(by_key[k] for k in d.get("responses", []))
        products.append(Product(float(d["multiplier"]), factors, table, linked))
    return tuple(products)


def component_from_dict(d: Mapping[str, Any]) -> NuisanceComponent:
    """A :class:`NuisanceComponent` from its ``dataclasses.asdict``."""
    terms = tuple(
        Term(
            **{
                **t,
                "factors": tuple(tuple(f) for f in t["factors"]),
                "index_range": tuple(t["index_range"]),
            }
        )
        for t in d["terms"]
    )
    supports = tuple((n, tuple(r)) for n, r in d["linear_supports"])
    return NuisanceComponent(d["name"], d["norm"], terms, supports)
