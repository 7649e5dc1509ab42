"""Value, Jacobian and Hessian contractions of a sum of products, in a few array operations.

Every expectation and sum of squared weights of the HESE model is a sum over products
(:class:`diffuse_fit.binned.nuisance_tables.Product`)

    y_b(theta) = sum_p F_p(theta) G_pb(u_p),   F_p = m_p prod_k (a_pk + b_pk theta_{i_pk})
                                                       exp(A_p . theta),
    G_pb = S_pb(x_p) prod_r R_rb(v_r),          u_p = (x_p, v_1, ..., v_V) = C_p theta,

``S_p`` a table in the sum ``x_p = c_p . theta`` of its variables (or exact, no variable),
``R_r`` the detector responses of the product (:mod:`diffuse_fit.binned.detector_tables`)
in the systematics ``v``.  With ``g = log G = log S(x) + sum_r log R_r(v_r)`` (so that
``d2 g / du2`` is diagonal):

    dy_b/dtheta = sum_p G_pb dF_p + F_p C_p^T G_pb dg_pb,
    d2y_b/dtheta2 = sum_p G_pb d2F_p + G_pb (dF_p (C_p^T dg_pb)^T + (C_p^T dg_pb) dF_p^T)
                    + F_p G_pb C_p^T (dg_pb dg_pb^T + diag(d2g_pb)) C_p.

:class:`ProductEngine` lays the products out once (for one parameter order and one set of
bins): the Chebyshev tables evaluated at the same argument stacked into one coefficient array
(one matrix product with :func:`diffuse_fit.binned.chebyshev.derivative_basis` per argument),
each detector response evaluated once, the factors' polynomials vectorised.  The likelihoods
need only contractions ``sum_b w_b d2y_b`` (:meth:`ProductSecond.contract`), never a (bins,
n, n) array.  ``tests/test_evaluation_fast.py`` checks it against the per-product reference
(:func:`diffuse_fit.binned.nuisance_tables.products_derivatives`' earlier implementation) and
finite differences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from diffuse_fit.binned import chebyshev

if TYPE_CHECKING:
    from diffuse_fit.binned.detector_tables import ResponseTable

CACHE = "_product_engines"  # an owner's attribute holding its engines (not pickled)
MAX_CACHED = 8  # engines kept per owner (one per parameter order and set of bins)


@dataclass(frozen=True)
class ProductSecond:
    """Second derivatives of :meth:`ProductEngine.derivatives`' ``y_b`` (module doc), times
    ``scale_b`` if given: what :meth:`contract` needs.  ``P`` products, the first ``T`` with a
    table; ``R`` response tables in ``V`` systematics; ``Q`` sets of responses (the products
    with the same responses share ``rho``)."""

    g: np.ndarray  # (P, B): G_pb
    dlog: np.ndarray  # (T, B): d log S / dx
    curve: np.ndarray  # (T, B): d2 log S / dx2 + (d log S / dx)^2, i.e. S'' / S
    arguments: np.ndarray  # (T, n): c_p, dx / dtheta
    f: np.ndarray  # (P,): F_p
    f_grad: np.ndarray  # (P, n)
    f_hess: np.ndarray  # (P, n, n)
    log_slopes: np.ndarray  # (R, B): d log R_r / dv
    counts: np.ndarray  # (P, V, R): times each product has each response (of each systematic)
    systematics: np.ndarray  # (V, n): dv / dtheta
    sums: np.ndarray  # (Q, B): sum_p F_p G_pb over the products with each set of responses
    slopes: np.ndarray  # (Q, V, B): d log rho / dv of each set
    curvatures: np.ndarray  # (Q, V, B): d2 log rho / dv2 of each set
    scale: np.ndarray | None = None  # (B,)

    def contract(self, weights: np.ndarray) -> np.ndarray:
        """``sum_b weights_b d2 y_b / d theta_i d theta_j``, (n, n): the module doc's sum over
        products, with every (products x bins) array reduced over the bins before it meets
        the (n, n) matrices, and the systematics' block summed over the sets of responses."""
        w = weights if self.scale is None else weights * self.scale
        t = len(self.arguments)
        gw = self.g * w  # (P, B)
        hessian = np.tensordot(gw.sum(axis=1), self.f_hess, axes=1)
        along_x = gw[:t] * self.dlog  # (T, B)
        first = np.zeros_like(self.f_grad)  # C_p^T sum_b w G dg, (P, n)
        first[:t] = along_x.sum(axis=1)[:, None] * self.arguments
        curve = (gw[:t] * self.curve).sum(axis=1)  # (T,)
        hessian += self.arguments.T @ ((self.f[:t] * curve)[:, None] * self.arguments)
        if len(self.log_slopes):
            per_product = np.einsum("pvr,pr->pv", self.counts, gw @ self.log_slopes.T)
            first += per_product @ self.systematics
            mixed = np.einsum("pvr,pr->pv", self.counts[:t], along_x @ self.log_slopes.T)
            block = (self.f[:t, None] * self.arguments).T @ (mixed @ self.systematics)
            hessian += block + block.T
            sums = self.sums * w  # (Q, B)
            square = np.einsum("qb,qvb,qub->vu", sums, self.slopes, self.slopes)
            square[np.diag_indices_from(square)] += np.einsum("qb,qvb->v", sums, self.curvatures)
            hessian += self.systematics.T @ square @ self.systematics
        cross = self.f_grad.T @ first
        hessian += cross + cross.T
        return cast(np.ndarray, hessian)

    def scaled(self, factor: np.ndarray) -> ProductSecond:
        """The second derivatives of ``factor_b y_b`` (``factor`` constant in theta)."""
        return replace(self, scale=factor if self.scale is None else self.scale * factor)


@dataclass(frozen=True)
class _TableGroup:
    """Tables evaluated at the same argument ``x = c . theta`` over the same interval."""

    name: str  # the variables, for the out-of-range error
    argument: np.ndarray  # (n,): c
    interval: tuple[float, float]
    coeffs: np.ndarray  # (K, T * B): log S's Chebyshev coefficients on the bins (0 off)
    size: int  # T


@dataclass(frozen=True)
class _Response:
    """A response table's place among the engine's bins."""

    table: ResponseTable
    at: np.ndarray  # positions in the engine's bins of the table's active bins there
    rows: np.ndarray  # the matching rows of the table's active bins


class ProductEngine:
    """The layout of ``products`` (:class:`diffuse_fit.binned.nuisance_tables.Product` s, with
    their responses) for the parameters ``position`` (name -> index) and ``bins``; built once,
    then :meth:`derivatives` at any parameters."""

    def __init__(
        self, products: Sequence[Any], position: Mapping[str, int], bins: np.ndarray
    ) -> None:
        bins = np.asarray(bins, dtype=np.int64)
        n, size = len(position), bins.size
        self.n, self.n_bins = n, size
        used = {v for p in products for v in p.table.variables}
        used |= {name for p in products for name, _ in p.table.linear}
        used |= {f[0] for p in products for f in p.factors}
        used |= {r.parameter for p in products for r in p.responses}
        self.used = [(name, position[name]) for name in sorted(used)]
        # products with a table, grouped by (argument, interval); then the exact ones
        groups: dict[tuple[Any, ...], list[Any]] = {}
        exact: list[Any] = []
        for p in products:
            if p.table.per_bin is not None:
                exact.append(p)
                continue
            c = np.zeros(n)
            for v in p.table.variables:
                c[position[v]] += 1.0
            groups.setdefault((tuple(c), p.table.interval), []).append(p)
        ordered = [p for members in groups.values() for p in members] + exact
        self.n_products, self.n_tables = len(ordered), len(ordered) - len(exact)
        self.groups = [self._group(m, position, bins) for m in groups.values()]
        self.arguments = np.array(
            [g.argument for g in self.groups for _ in range(g.size)], dtype=np.float64
        ).reshape(self.n_tables, n)
        self.masks = np.zeros((self.n_tables, size))
        for k, p in enumerate(ordered[: self.n_tables]):
            table = p.table.table
            assert table is not None  # grouped: a table
            self.masks[k] = _on_bins(np.ones(table.active.size), table.active, p.table.n_bins, bins)
        self.exact = np.array([np.asarray(p.table.per_bin)[bins] for p in exact]).reshape(
            len(exact), size
        )
        self._responses(ordered, position, bins)
        # the factors' polynomials and the linear exponents
        width = max([len(p.factors) for p in ordered] + [1])
        self.multiplier = np.array([p.multiplier for p in ordered], dtype=np.float64)
        self.factor_index = np.zeros((self.n_products, width), dtype=np.int64)
        self.factor_a = np.ones((self.n_products, width))
        self.factor_b = np.zeros((self.n_products, width))
        self.one_hot = np.zeros((self.n_products, width, n))
        self.linear = np.zeros((self.n_products, n))
        for k, p in enumerate(ordered):
            for m, (name, a, b) in enumerate(p.factors):
                i = position[name]
                self.factor_index[k, m], self.factor_a[k, m], self.factor_b[k, m] = i, a, b
                self.one_hot[k, m, i] = 1.0
            for name, a in p.table.linear:
                self.linear[k, position[name]] += a
        same = np.arange(width)
        self.leave_one = same[:, None] == same[None, :]  # (k, q): q == k
        self.leave_two = self.leave_one[:, None, :] | self.leave_one[None, :, :]  # q in {k, m}
        self.distinct_pair = (~self.leave_one).astype(np.float64)

    def _responses(self, ordered: list[Any], position: Mapping[str, int], bins: np.ndarray) -> None:
        """The detector responses' layout: each distinct table once, the products' counts of
        each, and the distinct sets of responses (``log rho = counts @ log R`` per set)."""
        distinct: dict[int, ResponseTable] = {}
        for p in ordered:
            for r in p.responses:
                distinct.setdefault(id(r), r)
        tables = list(distinct.values())
        number = {key: k for k, key in enumerate(distinct)}
        systematics = list(dict.fromkeys(r.parameter for r in tables))
        self.responses = [_place(r, bins) for r in tables]
        # flat positions in log_r (3, R, B) of the tables' stacked active bins among the bins
        # (rows: those bins' columns in the stack; None: all of them)
        offsets = np.cumsum([0] + [r.active.size for r in tables])
        at = np.concatenate([k * self.n_bins + r.at for k, r in enumerate(self.responses)] + [[]])
        rows = np.concatenate([offsets[k] + r.rows for k, r in enumerate(self.responses)] + [[]])
        rows = rows.astype(np.int64)
        self.response_rows = None if np.array_equal(rows, np.arange(offsets[-1])) else rows
        planes = len(tables) * self.n_bins * np.arange(3)[:, None]
        self.response_at = (planes + at.astype(np.int64)[None, :]).reshape(-1)
        self.systematics = np.zeros((len(systematics), self.n))
        for s, name in enumerate(systematics):
            self.systematics[s, position[name]] = 1.0
        counts = np.zeros((self.n_products, len(tables)))
        for k, p in enumerate(ordered):
            for r in p.responses:
                counts[k, number[id(r)]] += 1.0
        of_systematic = np.array(
            [[r.parameter == s for r in tables] for s in systematics], dtype=np.float64
        ).reshape(len(systematics), len(tables))
        self.counts = counts[:, None, :] * of_systematic[None]  # (P, V, R)
        sets, self.set_of = np.unique(counts, axis=0, return_inverse=True)
        self.set_of = self.set_of.reshape(-1)
        self.set_counts = sets  # (Q, R)
        self.set_systematic = (sets[:, None, :] * of_systematic[None]).reshape(
            len(sets) * len(systematics), len(tables)
        )  # (Q * V, R)
        self.in_set = (self.set_of[None, :] == np.arange(len(sets))[:, None]).astype(np.float64)

    @staticmethod
    def _group(members: list[Any], position: Mapping[str, int], bins: np.ndarray) -> _TableGroup:
        tables = [p.table.table for p in members]
        assert all(t is not None for t in tables)  # grouped: tables
        k = max(t.log_coeffs.shape[1] for t in tables if t is not None)
        coeffs = np.zeros((k, len(members), bins.size))
        for j, t in enumerate(tables):
            assert t is not None
            padded = np.zeros((t.active.size, k))
            padded[:, : t.log_coeffs.shape[1]] = t.log_coeffs
            coeffs[:, j] = _on_bins(padded, t.active, t.n_bins, bins).T
        c = np.zeros(len(position))
        for v in members[0].table.variables:
            c[position[v]] += 1.0
        first = members[0].table
        interval = (float(first.interval[0]), float(first.interval[1]))
        return _TableGroup(
            "+".join(first.variables), c, interval, coeffs.reshape(k, -1), len(members)
        )

    def _factors(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``F_p``, its gradients (P, n) and Hessians (P, n, n)."""
        values = self.factor_a + self.factor_b * theta[self.factor_index]  # (P, W)
        f = values.prod(axis=1)
        but_one = np.where(self.leave_one, 1.0, values[:, None, :]).prod(axis=2)  # (P, W)
        but_two = np.where(self.leave_two, 1.0, values[:, None, None, :]).prod(axis=3)
        grad = np.einsum("pk,pkn->pn", self.factor_b * but_one, self.one_hot)
        pair = self.factor_b[:, :, None] * self.factor_b[:, None, :] * but_two * self.distinct_pair
        hess = np.matmul(self.one_hot.transpose(0, 2, 1), np.matmul(pair, self.one_hot))
        scale = self.multiplier * np.exp(self.linear @ theta)  # m e
        a = self.linear
        ag = a[:, :, None] * grad[:, None, :]
        f_grad = scale[:, None] * (grad + f[:, None] * a)
        f_hess = scale[:, None, None] * (
            hess + ag + ag.transpose(0, 2, 1) + f[:, None, None] * a[:, :, None] * a[:, None, :]
        )
        return scale * f, f_grad, f_hess

    def _logs(self, theta: np.ndarray) -> np.ndarray:
        """The tables' ``log S``, its first and second derivatives in ``x``: (3, T, B)."""
        logs = np.empty((3, self.n_tables, self.n_bins))
        start = 0
        for g in self.groups:
            x = float(g.argument @ theta)
            low, high = g.interval
            if not low <= x <= high:
                raise ValueError(f"{g.name}={x} is outside the tabulated range [{low}, {high}]")
            scale = 2.0 / (high - low)
            t = (2.0 * x - (low + high)) / (high - low)  # chebyshev.to_unit, in floats
            basis = chebyshev.derivative_basis(t, len(g.coeffs))
            basis[:, 1] *= scale
            basis[:, 2] *= scale * scale
            logs[:, start : start + g.size] = (basis.T @ g.coeffs).reshape(3, g.size, self.n_bins)
            start += g.size
        return logs

    def derivatives(
        self, params: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, ProductSecond | None]:
        """Value (B,), Jacobian (B, n) and second derivatives (None without products) of
        ``y_b`` at ``params``."""
        size, n, t = self.n_bins, self.n, self.n_tables
        if not self.n_products:
            return np.zeros(size), np.zeros((size, n)), None
        theta = np.zeros(n)
        for name, i in self.used:
            theta[i] = params[name]
        f, f_grad, f_hess = self._factors(theta)
        logs = self._logs(theta)
        g = np.empty((self.n_products, size))
        np.multiply(np.exp(logs[0]), self.masks, out=g[:t])
        g[t:] = self.exact
        v = len(self.systematics)
        log_r = np.zeros((3, len(self.responses), size))
        if self.responses:  # every table's active bins into its row of log_r at once
            found = np.concatenate(
                [
                    r.table.active_log_derivatives(float(params[r.table.parameter]))
                    for r in self.responses
                ],
                axis=1,
            )
            if self.response_rows is not None:
                found = found[:, self.response_rows]
            log_r.reshape(-1)[self.response_at] = found.reshape(-1)
        q = len(self.set_counts)
        if self.responses:
            g *= np.exp(self.set_counts @ log_r[0])[self.set_of]
        slopes = (self.set_systematic @ log_r[1]).reshape(q, v, size)
        curvatures = (self.set_systematic @ log_r[2]).reshape(q, v, size)
        fg = f[:, None] * g  # F_p G_pb
        sums = self.in_set @ fg  # (Q, B)
        value = fg.sum(axis=0)
        jac = g.T @ f_grad + (fg[:t] * logs[1]).T @ self.arguments
        if self.responses:
            jac += np.einsum("qb,qvb->bv", sums, slopes) @ self.systematics
        second = ProductSecond(
            g,
            logs[1],
            logs[2] + logs[1] * logs[1],
            self.arguments,
            f,
            f_grad,
            f_hess,
            log_r[1],
            self.counts,
            self.systematics,
            sums,
            slopes,
            curvatures,
        )
        return value, jac, second


def _on_bins(rows: np.ndarray, active: np.ndarray, n_bins: int, bins: np.ndarray) -> np.ndarray:
    """``rows`` (len(active), ...) of the active bins laid out on ``bins`` (0 elsewhere)."""
    where = np.full(n_bins, -1, dtype=np.int64)
    where[active] = np.arange(active.size)
    at = where[bins]
    out = np.zeros((bins.size, *rows.shape[1:]))
    out[at >= 0] = rows[at[at >= 0]]
    return out


def _place(table: ResponseTable, bins: np.ndarray) -> _Response:
    where = np.full(table.n_bins, -1, dtype=np.int64)
    where[table.active] = np.arange(table.active.size)
    at = where[bins]
    return _Response(table, np.flatnonzero(at >= 0), at[at >= 0])


def cached_engine[T](
    owner: Any, position: Mapping[str, int], bins: np.ndarray, build: Callable[[], T]
) -> T:
    """``build()`` once per ``owner``, parameter order and ``bins``: kept in the owner's
    ``__dict__`` under :data:`CACHE` (the owner's ``__getstate__`` leaves it out)."""
    cache: dict[tuple[Any, ...], Any] | None = owner.__dict__.get(CACHE)
    if cache is None:
        cache = {}
        object.__setattr__(owner, CACHE, cache)  # frozen dataclasses too
    key = (tuple(position.items()), np.asarray(bins, dtype=np.int64).tobytes())
    found = cache.get(key)
    if found is None:
        if len(cache) >= MAX_CACHED:
            cache.clear()
        found = cache[key] = build()
    return cast(T, found)


def without_cache(state: dict[str, Any]) -> dict[str, Any]:
    """An owner's ``__dict__`` for pickling: without its engines."""
    return {k: v for k, v in state.items() if k != CACHE}
