"""The model's expectations and squared weights as a few batched tensor operations.

Every per-bin quantity of the likelihood is a sum of *terms*

    y_b = sum_j c_j(theta) S_jb R_jb,

one term per flat table, power-law table, nuisance product (:mod:`diffuse_fit.binned.nuisance_tables`)
or SAY pair (:mod:`diffuse_fit.binned.variance`):

* ``S_jb`` a table row: a log-Chebyshev table ``exp(L_jb(x))`` in the sum ``x`` of some
  parameters (:mod:`diffuse_fit.binned.log_tables`), or an exact per-bin vector;
* ``c_j = m_j prod_k (a_jk + b_jk theta_{p_jk}) exp(sum_k l_jk theta_k)`` a scalar
  coefficient (multiplier, affine factors including the norms, the tables' linear terms);
* ``R_jb = exp(sum_c n_jc log R_cb(v))`` the detector responses of the components ``c`` the
  term carries (``n_jc`` = 0, 1 or 2: a SAY pair of one component's terms carries ``R_c^2``),
  ``log R_cb = sum_s log R_csb(v_s)`` (:mod:`diffuse_fit.binned.detector_tables`).

Built one subgraph per table, the graph had ~600 nodes after rewriting (HESE release model,
11 parameters) and numba needed minutes to compile it.  Here the tables evaluated at the same
argument are stacked into one (tables, bins, nodes) array and evaluated with one
matrix-vector product; the detector responses of all components are one product per
systematic with the coefficients of its current piece; the coefficients are one vectorised
expression; the sums over terms are matrix products with constant 0/1 matrices.

:class:`StackedTerms` holds the stacked arrays, with :meth:`StackedTerms.values` (NumPy)
beside :meth:`StackedTerms.values_pt` (pytensor): the NumPy function is the pytensor
expression's twin, line by line; both are checked against the tables' own NumPy twins
(``Templates.component_counts``, ``sum_of_squares``) in ``tests/test_stacked_graph.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

from diffuse_fit.binned import chebyshev
from diffuse_fit.binned.log_tables import LogChebyshevTable
from diffuse_fit.binned.nuisance_tables import LogTable
from diffuse_fit.binned.templates import FlatTemplate, PowerLawTemplate, Templates
from diffuse_fit.binned.variance import FlatPair, SmoothPair
from diffuse_fit.inference.table_pt import table_input

INSIDE = 1.0 - 1e-12
"""A response's ``t`` is scaled by this before ``T_n(t) = cos(n arccos t)``: the pieces meet
at ``t = +-1``, where arccos has an infinite derivative; inside, the gradient is finite and
off by 1e-12 relative at most."""

SQUARES = "sum of squares"
"""The target of the SAY pairs' terms (the components' targets are their names)."""


def _basis(t, k, xp):
    """``[T_0(t), ..., T_{k-1}(t)] = cos(n arccos t)`` along a last axis (``xp``: np or pt).
    With pt, ``k`` is the symbolic length of a shared table's axis: the compiled density then
    does not depend on the number of Chebyshev nodes, and numba's cached functions serve
    another simulation's tables of the same binning (``tests/test_nuts_fitter.py``)."""
    return xp.cos(xp.arange(k, dtype="float64") * xp.arccos(t)[..., None])


@dataclass(frozen=True)
class ChebyshevStack:
    """Log-Chebyshev tables of one argument ``x = sum of params[variables]`` over one
    ``interval``: ``S_jb = mask_jb exp(sum_n log_coeffs[j, b, n] T_n(t))`` (tables, bins);
    coefficients 0 past a table's own nodes and off its active bins, where ``mask`` is 0."""

    variables: tuple[str, ...]
    interval: tuple[float, float]
    log_coeffs: np.ndarray  # (tables, bins, K)
    mask: np.ndarray  # (tables, bins), 1.0 on each table's active bins

    def values(self, params: dict) -> np.ndarray:
        """``S_jb`` at ``params`` (NumPy twin of :meth:`values_pt`)."""
        t = chebyshev.to_unit(sum(params[v] for v in self.variables), self.interval)
        return self.mask * np.exp(self.log_coeffs @ _basis(t, self.log_coeffs.shape[2], np))

    def values_pt(self, params: dict):
        """``S_jb`` at ``params`` as a pytensor (tables, bins) matrix."""
        n, bins, k = self.log_coeffs.shape
        t = chebyshev.to_unit(pt.add(*(params[v] for v in self.variables)), self.interval)
        coeffs = table_input(self.log_coeffs.reshape(n * bins, k))
        log_s = (coeffs @ _basis(t, coeffs.shape[1], pt)).reshape((n, bins))
        return table_input(self.mask) * pt.exp(log_s)


@dataclass(frozen=True)
class ResponseStack:
    """``log R_cb = sum_s log R_csb(v_s)`` of the response components ``c`` (components,
    bins), ``log R_csb`` piecewise Chebyshev series in ``v_s`` (one per systematic ``s``, all
    components on the same pieces).  The pieces of every systematic are stacked:
    ``log_coeffs[first[s] + i]`` is piece ``i`` of systematic ``s``, (K, components * bins)."""

    components: tuple[str, ...]
    parameters: tuple[str, ...]  # one per systematic
    first: np.ndarray  # (S,) index of each systematic's first piece
    inner: np.ndarray  # (S, max inner breaks), padded with +inf
    low: np.ndarray  # (pieces,) lower end of each piece
    high: np.ndarray  # (pieces,) upper end of each piece
    log_coeffs: np.ndarray  # (pieces, K, components * bins), 0 off the active bins

    def log_values(self, params: dict) -> np.ndarray:
        """``log R_cb`` at ``params`` (NumPy twin of :meth:`log_values_pt`)."""
        v = np.array([params[p] for p in self.parameters], dtype=np.float64)
        piece = self.first + np.sum(v[:, None] >= self.inner, axis=1)
        low, high = self.low[piece], self.high[piece]
        t = (2.0 * v - low - high) / (high - low)
        basis = _basis(t * INSIDE, self.log_coeffs.shape[1], np)  # (S, K)
        flat = basis.reshape(-1) @ self.log_coeffs[piece].reshape(-1, self.log_coeffs.shape[2])
        return flat.reshape(len(self.components), -1)

    def log_values_pt(self, params: dict):
        """``log R_cb`` at ``params`` as a pytensor (components, bins) matrix."""
        v = pt.stack([params[p] for p in self.parameters])
        piece = table_input(self.first) + pt.sum(pt.ge(v[:, None], table_input(self.inner)), axis=1)
        low, high = table_input(self.low)[piece], table_input(self.high)[piece]
        t = (2.0 * v - low - high) / (high - low)
        coeffs = table_input(self.log_coeffs)
        basis = _basis(t * INSIDE, coeffs.shape[1], pt)  # (S, K)
        # each systematic's piece a view (K, components * bins), not a gathered copy
        flat = pt.add(*(basis[s] @ coeffs[piece[s]] for s in range(len(self.parameters))))
        return flat.reshape((len(self.components), -1))

    @classmethod
    def of(cls, responses, model_bins: np.ndarray) -> ResponseStack | None:
        """The stack of ``responses`` (:class:`diffuse_fit.binned.detector_tables.ResponseTable` s)
        on ``model_bins``; ``None`` without responses."""
        if not responses:
            return None
        components = tuple(dict.fromkeys(r.component for r in responses))
        parameters = tuple(dict.fromkeys(r.parameter for r in responses))
        k = max(r.log_coeffs.shape[2] for r in responses)
        breaks = {}
        for r in responses:
            if not np.array_equal(breaks.setdefault(r.parameter, r.breaks), r.breaks):
                raise ValueError(f"the response tables of {r.parameter} have different pieces")
        n_pieces = [len(breaks[p]) - 1 for p in parameters]
        first = np.concatenate([[0], np.cumsum(n_pieces)[:-1]]).astype(np.int64)
        inner = np.full((len(parameters), max(n_pieces) - 1), np.inf)
        for s, p in enumerate(parameters):
            inner[s, : n_pieces[s] - 1] = breaks[p][1:-1]
        low = np.concatenate([breaks[p][:-1] for p in parameters])
        high = np.concatenate([breaks[p][1:] for p in parameters])
        coeffs = np.zeros((sum(n_pieces), k, len(components), model_bins.size))
        for r in responses:
            s, c = parameters.index(r.parameter), components.index(r.component)
            rows, positions = _on_model_bins(r.active, model_bins)
            block = r.log_coeffs[:, rows, :]  # (P, active on the model bins, K_r)
            pieces = slice(first[s], first[s] + n_pieces[s])
            coeffs[pieces, : block.shape[2], c, positions] = block.transpose(0, 2, 1)
        return cls(
            components,
            parameters,
            first,
            inner,
            low,
            high,
            coeffs.reshape(sum(n_pieces), k, -1),
        )


def _on_model_bins(active: np.ndarray, model_bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, positions)``: the rows of a table's ``active`` bins that are model bins, and
    their positions among ``model_bins`` (the others never enter the likelihood)."""
    rows = np.flatnonzero(np.isin(active, model_bins))
    return rows, np.searchsorted(model_bins, active[rows])


@dataclass(frozen=True)
class StackedTerms:
    """Every term of the expectations (one target per component) and of the SAY squared
    weights (target :data:`SQUARES`) on the model bins, stacked (module doc).

    ``stacks`` and ``constants`` make the table rows (stack rows first, in order, then the
    constant rows), one per term, in the terms' order; ``parameters`` orders ``theta``; ``factor_index``/``factor_a``/``factor_b``
    (terms, F) hold each term's affine factors (padding: a = 1, b = 0); ``linear``
    (terms, parameters); ``groups`` (G, terms) sends each term to its group of one target
    and one set of responses, ``group_responses`` (G, components) those responses,
    ``group_targets`` (targets, G) each group to its target."""

    targets: tuple[str, ...]
    stacks: tuple[ChebyshevStack, ...]
    constants: np.ndarray  # (rows, bins)
    parameters: tuple[str, ...]
    multipliers: np.ndarray  # (terms,)
    factor_index: np.ndarray  # (terms, F) int
    factor_a: np.ndarray  # (terms, F)
    factor_b: np.ndarray  # (terms, F)
    linear: np.ndarray  # (terms, parameters)
    groups: np.ndarray  # (G, terms) 0/1
    group_responses: np.ndarray  # (G, response components)
    group_targets: np.ndarray  # (targets, G) 0/1
    responses: ResponseStack | None

    # ------------------------------------------------------------------ NumPy twin
    def values(self, params: dict) -> np.ndarray:
        """``y_b`` of every target at ``params``, (targets, bins) (NumPy twin of
        :meth:`values_pt`)."""
        theta = np.array([params[p] for p in self.parameters], dtype=np.float64)
        factors = self.factor_a + self.factor_b * theta[self.factor_index]
        c = self.multipliers * np.prod(factors, axis=1) * np.exp(self.linear @ theta)
        tables = np.concatenate([s.values(params) for s in self.stacks] + [self.constants])
        per_group = (self.groups * c) @ tables  # (G, bins)
        if self.responses is not None:
            per_group = per_group * np.exp(self.group_responses @ self.responses.log_values(params))
        return self.group_targets @ per_group

    # ------------------------------------------------------------------ pytensor
    def values_pt(self, params: dict):
        """``y_b`` of every target at ``params``: a pytensor (targets, bins) matrix."""
        theta = pt.stack([params[p] for p in self.parameters])
        factors = (
            table_input(self.factor_a)
            + table_input(self.factor_b) * theta[table_input(self.factor_index)]
        )
        # no factor is 0 inside the supports: the product's gradient is prod / factor
        c = (
            table_input(self.multipliers)
            * pt.prod(factors, axis=1, no_zeros_in_input=True)
            * pt.exp(table_input(self.linear) @ theta)
        )
        tables = pt.concatenate(
            [s.values_pt(params) for s in self.stacks] + [table_input(self.constants)]
        )
        per_group = (table_input(self.groups) * c) @ tables  # (G, bins)
        if self.responses is not None:
            log_r = table_input(self.group_responses) @ self.responses.log_values_pt(params)
            per_group = per_group * pt.exp(log_r)
        return table_input(self.group_targets) @ per_group

    # ------------------------------------------------------------------ building
    @classmethod
    def of(cls, templates: Templates, model_bins: np.ndarray, squares: bool) -> StackedTerms:
        """The terms of ``templates``' tables that are flat, power-law or nuisance tables
        (one target per such component, in ``templates.tables`` order) and, with
        ``squares``, of its SAY squared weights (``templates.variance``)."""
        builder = _Builder(templates, model_bins)
        for t in templates.tables:
            if stackable(t):
                builder.add_component(t)
        if squares:
            builder.add_squares(templates.variance)
        return builder.build()


def stackable(table) -> bool:
    """Whether :class:`StackedTerms` takes the component table ``table`` (flat, power law,
    nuisance products; the flavour and spectral tables keep their own expressions)."""
    return isinstance(table, FlatTemplate | PowerLawTemplate) or hasattr(table, "products")


class _Builder:
    """Collects the terms, stacks the tables by argument (:meth:`StackedTerms.of`)."""

    def __init__(self, templates: Templates, model_bins: np.ndarray):
        self.templates = templates
        self.bins = model_bins
        self.response_components = tuple(dict.fromkeys(r.component for r in templates.responses))
        self.chebyshev: dict[tuple, list[LogChebyshevTable]] = {}
        self.constants: list[np.ndarray] = []
        self.pending: list[tuple[str, tuple[str, int], float, tuple, tuple, tuple]] = []
        self.targets: list[str] = []

    def _row(self, table: LogTable | LogChebyshevTable | np.ndarray, variables=()) -> tuple:
        """A table's row, as (kind, index) until the stacks are known."""
        if isinstance(table, np.ndarray):
            self.constants.append(table[self.bins])
            return ("constant", len(self.constants) - 1)
        if isinstance(table, LogTable):
            if table.per_bin is not None:
                return self._row(table.per_bin)
            return self._row(table.table, table.variables)
        key = (tuple(variables), tuple(map(float, table.interval)))
        self.chebyshev.setdefault(key, []).append(table)
        return (key, len(self.chebyshev[key]) - 1)

    def _add(self, target, row, multiplier, factors, linear=(), responses=()):
        self.pending.append((target, row, multiplier, tuple(factors), tuple(linear), responses))

    def add_component(self, t) -> None:
        c = t.component
        self.targets.append(c.name)
        norm = ((c.norm, 0.0, 1.0),)
        has_responses = self._responses_of(self.templates.responses_of(c.name))
        if isinstance(t, FlatTemplate):
            self._add(c.name, self._row(t.per_bin), 1.0, norm, (), has_responses)
        elif isinstance(t, PowerLawTemplate):
            self._add(c.name, self._row(t.table, (c.index,)), 1.0, norm, (), has_responses)
        else:  # nuisance products; their own responses, if any, with the component's
            for p in t.products:
                responses = self._responses_of(p.responses + self.templates.responses_of(c.name))
                linear = p.table.linear
                self._add(
                    c.name, self._row(p.table), p.multiplier, norm + p.factors, linear, responses
                )

    def add_squares(self, variance) -> None:
        self.targets.append(SQUARES)
        if hasattr(variance, "products"):  # diffuse_fit.binned.nuisance_tables.NuisanceVariance
            for p in variance.products:  # a pair of terms carries its components' R_c R_c'
                responses = self._responses_of(p.responses)
                self._add(
                    SQUARES, self._row(p.table), p.multiplier, p.factors, p.table.linear, responses
                )
            return
        for pair in variance.pairs:
            norms = tuple((n, 0.0, 1.0) for n in pair.norms)
            if isinstance(pair, SmoothPair):
                row = self._row(pair.table, (pair.index,))
            elif isinstance(pair, FlatPair):
                row = self._row(pair.per_bin)
            else:
                raise TypeError(f"unknown pair type {type(pair).__name__}")
            self._add(SQUARES, row, pair.factor, norms)

    def _responses_of(self, responses) -> tuple[int, ...]:
        """How often each response component's ``R_c`` multiplies a term carrying the tables
        ``responses`` (each of a component's tables the same number of times, all of them:
        ``ValueError`` otherwise, which :class:`ResponseStack` cannot represent)."""
        counts = []
        for c in self.response_components:
            mine = [r for r in responses if r.component == c]
            tables = self.templates.responses_of(c)
            n = len(mine) // len(tables)
            if any(mine.count(r) != n for r in tables) or len(mine) != n * len(tables):
                raise ValueError(f"a term carries only some of the response tables of {c}")
            counts.append(n)
        return tuple(counts)

    def build(self) -> StackedTerms | None:
        """The :class:`StackedTerms` of the terms added (``None`` if there are none)."""
        if not self.pending:
            return None
        stacks, offsets, start = [], {}, 0
        for (variables, interval), tables in self.chebyshev.items():
            k = max(t.log_coeffs.shape[1] for t in tables)
            coeffs = np.zeros((len(tables), self.bins.size, k))
            mask = np.zeros((len(tables), self.bins.size))
            for j, t in enumerate(tables):
                rows, positions = _on_model_bins(t.active, self.bins)
                coeffs[j, positions, : t.log_coeffs.shape[1]] = t.log_coeffs[rows]
                mask[j, positions] = 1.0
            stacks.append(ChebyshevStack(variables, interval, coeffs, mask))
            offsets[(variables, interval)] = start
            start += len(tables)
        offsets["constant"] = start
        parameters = tuple(
            dict.fromkeys(
                [f[0] for *_, factors, _, _ in self.pending for f in factors]
                + [name for *_, linear, _ in self.pending for name, _ in linear]
            )
        )
        # one row per term: the terms in row order, so that row j is term j's table
        rows = [offsets[kind] + i for _, (kind, i), *_ in self.pending]
        pending = [self.pending[j] for j in np.argsort(rows)]
        assert sorted(rows) == list(range(len(rows)))
        n_terms, n_factors = len(pending), max(len(p[3]) for p in pending)
        index = np.zeros((n_terms, n_factors), dtype=np.int64)
        a, b = np.ones((n_terms, n_factors)), np.zeros((n_terms, n_factors))
        linear = np.zeros((n_terms, len(parameters)))
        groups: dict[tuple, int] = {}
        membership = []
        for j, (target, _, _, factors, lin, responses) in enumerate(pending):
            for f, (name, fa, fb) in enumerate(factors):
                index[j, f], a[j, f], b[j, f] = parameters.index(name), fa, fb
            for name, coef in lin:
                linear[j, parameters.index(name)] += coef
            membership.append(groups.setdefault((target, responses), len(groups)))
        group_of = np.zeros((len(groups), n_terms))
        group_of[membership, np.arange(n_terms)] = 1.0
        group_responses = np.zeros((len(groups), len(self.response_components)))
        group_targets = np.zeros((len(self.targets), len(groups)))
        for (target, responses), g in groups.items():
            group_responses[g, : len(responses)] = responses
            group_targets[self.targets.index(target), g] = 1.0
        constants = np.array(self.constants) if self.constants else np.zeros((0, self.bins.size))
        return StackedTerms(
            targets=tuple(self.targets),
            stacks=tuple(stacks),
            constants=constants,
            parameters=parameters,
            multipliers=np.array([p[2] for p in pending], dtype=np.float64),
            factor_index=index,
            factor_a=a,
            factor_b=b,
            linear=linear,
            groups=group_of,
            group_responses=group_responses,
            group_targets=group_targets,
            responses=ResponseStack.of(self.templates.responses, self.bins),
        )
