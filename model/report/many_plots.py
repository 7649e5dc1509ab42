"""Figures of the many-fit commands: likelihood scans, pulls, coverage, simulation-based calibration.

Every function returns a :class:`matplotlib.figure.Figure` (Agg backend, nothing shown); the
caller saves it.  Inputs are plain dicts of lists / NumPy arrays, as read from the JSON and
``.npz`` records of the jobs; nothing here fits or samples.
"""

from __future__ import annotations

import corner
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import stats

from diffuse_fit.report.plots import LABELS, SHORT

LEVELS = (0.6827, 0.9545)  # probability content of the "1 sigma" and "2 sigma" regions
LEVEL_NAMES = ("68.3%", "95.4%")
WILKS_COLOUR = "tab:blue"
POSTERIOR_COLOUR = "tab:orange"
INTERVAL_LABELS = {  # coverage key prefix -> (legend label, colour, marker)
    "hessian": ("Hessian (MAP $\\pm\\sigma$)", "tab:green", "s"),
    "profile": ("profile likelihood (Wilks)", WILKS_COLOUR, "o"),
    "credible": ("posterior credible (central)", POSTERIOR_COLOUR, "D"),
}
SBC_BAND = 0.95  # probability of the simultaneous band of the SBC ECDF difference
SBC_SIMULATIONS = 1000
SBC_SEED = 20220  # the band is simulated: fixed seed, identical figures on reruns


def _label(name: str) -> str:
    return LABELS.get(name, name)


def _short(name: str) -> str:
    return SHORT.get(name, name)


def _as_float_array(nested) -> np.ndarray:
    """Nested lists with ``None`` for failed points -> float array with NaN."""
    if isinstance(nested, np.ndarray):
        return nested.astype(np.float64)
    if isinstance(nested, list | tuple):
        return np.array([_as_float_array(v) for v in nested], dtype=np.float64)
    return np.float64(np.nan if nested is None else nested)


# --------------------------------------------------------------------------------------------
# Profile-likelihood scans
# --------------------------------------------------------------------------------------------


def scan_figure(scan: dict, posterior: dict[str, np.ndarray] | None = None) -> plt.Figure:
    """Profile-likelihood scan in one or two parameters, optionally against the posterior.

    Parameters
    ----------
    scan : dict
        Content of ``scan.json``: ``parameters`` (1 or 2 names), ``grid`` (name -> values,
        natural units), ``ts`` (``-2 Delta ln L``, dimensionless; nested lists ``[i]`` or
        ``[i][j]``, ``i`` along ``parameters[0]``; ``None``/NaN for failed points are left
        out), ``best`` (name -> best-fit value) and optionally ``profiled`` (its keys, the
        parameters fitted at every grid point, go into the title).
    posterior : dict, optional
        Parameter name -> posterior draws (any shape, flattened).

    Returns
    -------
    Figure
        2-D: Wilks contours ``ts = chi2.ppf(p, 2)`` for ``p`` in ``LEVELS`` (solid 68.3%,
        dashed 95.4%), the best fit, and with ``posterior`` the 68.3% / 95.4% highest-density
        regions of the 2-D posterior histogram (``corner.hist2d``, smoothed by 1 bin).
        1-D: the ts curve, lines at ``chi2.ppf(p, 1)`` (1.0 and 4.0), the best fit, and with
        ``posterior`` the central 68.3% / 95.4% credible intervals shaded.
    """
    names = list(scan["parameters"])
    grids = [np.asarray(scan["grid"][n], dtype=np.float64) for n in names]
    ts = _as_float_array(scan["ts"])
    expected = tuple(len(g) for g in grids)
    if len(names) not in (1, 2):
        raise ValueError(f"a scan has 1 or 2 parameters, not {len(names)}: {names}")
    if ts.shape != expected:
        raise ValueError(
            f"ts has shape {ts.shape}, the grid {dict(zip(names, expected, strict=True))}"
        )
    if posterior is not None:
        missing = [n for n in names if n not in posterior]
        if missing:
            raise ValueError(f"posterior has no draws of {missing}")
    profiled = list(scan.get("profiled") or [])
    title = "Profile likelihood" + (
        f" (profiled: {', '.join(map(_short, profiled))})" if profiled else ""
    )
    if len(names) == 1:
        fig = _scan_1d(names[0], grids[0], ts, scan["best"], posterior)
    else:
        fig = _scan_2d(names, grids, ts, scan["best"], posterior)
    fig.suptitle(title, fontsize=11)
    return fig


def _scan_1d(name, grid, ts, best, posterior) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    handles = []
    if posterior is not None:
        draws = np.asarray(posterior[name], dtype=np.float64).reshape(-1)
        draws = draws[np.isfinite(draws)]
        for p, text, alpha in zip(LEVELS[::-1], LEVEL_NAMES[::-1], (0.2, 0.4), strict=True):
            lo, hi = np.quantile(draws, [(1 - p) / 2, (1 + p) / 2])
            ax.axvspan(lo, hi, color=POSTERIOR_COLOUR, alpha=alpha, lw=0)
            handles.append(
                Patch(
                    color=POSTERIOR_COLOUR,
                    alpha=alpha,
                    label=f"posterior credible {text} (central)",
                )
            )
    good = np.isfinite(ts)
    ax.plot(grid, ts, color="k", lw=1.5)  # NaN points break the line
    ax.plot(grid[good], ts[good], "o", color="k", ms=3)
    handles.insert(
        0, Line2D([], [], color="k", marker="o", ms=3, label=r"$-2\,\Delta\ln L$ (profile)")
    )
    if (~good).any():
        ax.plot(grid[~good], np.zeros((~good).sum()), "x", color="tab:red", ms=6)
        handles.append(
            Line2D(
                [], [], color="tab:red", marker="x", ls="", label=f"failed points ({(~good).sum()})"
            )
        )
    for p, text, ls in zip(LEVELS, LEVEL_NAMES, ("-", "--"), strict=True):
        level = stats.chi2.ppf(p, 1)
        ax.axhline(level, color=WILKS_COLOUR, ls=ls, lw=1)
        handles.append(
            Line2D(
                [],
                [],
                color=WILKS_COLOUR,
                ls=ls,
                label=f"profile likelihood (Wilks) {text}: ts = {level:.2f}",
            )
        )
    ax.axvline(best[name], color=WILKS_COLOUR, ls=":", lw=1.2)
    handles.append(Line2D([], [], color=WILKS_COLOUR, ls=":", label="best fit"))
    top = stats.chi2.ppf(LEVELS[1], 1)
    finite = ts[good]
    ax.set_ylim(0, min(max(1.6 * top, finite.max() * 1.05 if finite.size else 0), 3 * top))
    if grid.max() > grid.min():  # one point (NUM 1): matplotlib's own margins
        ax.set_xlim(grid.min(), grid.max())
    ax.set_xlabel(_label(name), fontsize=12)
    ax.set_ylabel(r"$-2\,\Delta\ln L$", fontsize=12)
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=2, frameon=False)
    return fig


def _scan_2d(names, grids, ts, best, posterior) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.5, 6.5), layout="constrained")
    (nx, ny), (gx, gy) = names, grids
    xlim, ylim = [gx.min(), gx.max()], [gy.min(), gy.max()]
    handles = []
    if posterior is not None:
        x = np.asarray(posterior[nx], dtype=np.float64).reshape(-1)
        y = np.asarray(posterior[ny], dtype=np.float64).reshape(-1)
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        # no_fill_contours: corner's white "base fill" would hide the Wilks contours
        corner.hist2d(
            x,
            y,
            ax=ax,
            levels=LEVELS,
            smooth=1.0,
            color=POSTERIOR_COLOUR,
            plot_datapoints=False,
            plot_density=False,
            fill_contours=True,
            no_fill_contours=True,
            new_fig=True,
            quiet=True,
            contour_kwargs={"linewidths": 1.0},
        )
        xlim = [min(xlim[0], x.min()), max(xlim[1], x.max())]
        ylim = [min(ylim[0], y.min()), max(ylim[1], y.max())]
        handles.append(
            Patch(
                facecolor=POSTERIOR_COLOUR,
                alpha=0.5,
                edgecolor=POSTERIOR_COLOUR,
                label="posterior credible 68.3% / 95.4% (HDR)",
            )
        )
    good = np.isfinite(ts)
    levels = [stats.chi2.ppf(p, 2) for p in LEVELS]
    drawn = [lv for lv in levels if good.any() and ts[good].min() < lv < ts[good].max()]
    drawn = drawn if min(ts.shape) >= 2 else []  # a contour needs 2 x 2 points
    if drawn:
        # contour wants z[row = y, column = x]; NaN points are masked out
        ax.contour(
            gx,
            gy,
            np.ma.masked_invalid(ts).T,
            levels=drawn,
            colors=WILKS_COLOUR,
            linestyles=["-" if lv == levels[0] else "--" for lv in drawn],
            linewidths=1.8,
            zorder=3,
        )
    handles.insert(
        0, Line2D([], [], color=WILKS_COLOUR, lw=1.8, label="profile likelihood (Wilks) 68.3%")
    )
    handles.insert(
        1,
        Line2D(
            [], [], color=WILKS_COLOUR, lw=1.8, ls="--", label="profile likelihood (Wilks) 95.4%"
        ),
    )
    if (~good).any():
        ix, iy = np.nonzero(~good)
        ax.plot(gx[ix], gy[iy], "x", color="tab:red", ms=4, zorder=4)
        handles.append(
            Line2D(
                [], [], color="tab:red", marker="x", ls="", label=f"failed points ({(~good).sum()})"
            )
        )
    ax.plot(best[nx], best[ny], "+", color=WILKS_COLOUR, ms=14, mew=2, zorder=5)
    handles.append(
        Line2D([], [], color=WILKS_COLOUR, marker="+", ms=10, mew=2, ls="", label="best fit")
    )
    for set_lim, lim in ((ax.set_xlim, xlim), (ax.set_ylim, ylim)):
        if lim[1] > lim[0]:  # one point along an axis (NUM 1): matplotlib's own margins
            set_lim(lim)
    ax.set_xlabel(_label(nx), fontsize=12)
    ax.set_ylabel(_label(ny), fontsize=12)
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=2, frameon=False)
    return fig


# --------------------------------------------------------------------------------------------
# Pulls and coverage
# --------------------------------------------------------------------------------------------


def _grid(n: int, width: float = 4.0, height: float = 3.4):
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), layout="constrained", squeeze=False
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def pull_figure(pulls: dict[str, np.ndarray]) -> plt.Figure:
    """Histogram of the pulls ``(MAP - truth) / error`` per parameter against N(0, 1).

    Non-finite pulls (failed fits or errors) are dropped and counted in the panel title; the
    legend gives the mean (with its standard error) and the standard deviation of the rest.
    """
    if not pulls:
        raise ValueError("no parameters to plot")
    fig, axes = _grid(len(pulls))
    for ax, (name, values) in zip(axes, pulls.items(), strict=True):
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        finite = values[np.isfinite(values)]
        dropped = values.size - finite.size
        ax.set_title(
            f"{_short(name)}: {finite.size} fits, {dropped} non-finite dropped", fontsize=10
        )
        ax.set_xlabel("pull = (MAP - truth) / error")
        lim = max(4.0, float(np.ceil(np.abs(finite).max()))) if finite.size else 4.0
        x = np.linspace(-lim, lim, 400)
        ax.plot(x, stats.norm.pdf(x), color="k", lw=1.2, label="N(0, 1)")
        if finite.size:
            n_bins = int(np.clip(2 * np.sqrt(finite.size), 6, 40) * lim / 4)
            mean, sd = finite.mean(), finite.std(ddof=1) if finite.size > 1 else np.nan
            ax.hist(
                finite,
                bins=np.linspace(-lim, lim, n_bins + 1),
                density=True,
                color="tab:blue",
                alpha=0.6,
                label=f"pulls: mean {mean:.2f} $\\pm$ {sd / np.sqrt(finite.size):.2f}, sd {sd:.2f}",
            )
        else:
            ax.text(0.5, 0.6, "no finite pulls", ha="center", transform=ax.transAxes)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # room for the legend
        ax.set_ylabel("density")
        ax.legend(fontsize=8, loc="upper right", frameon=False)
    return fig


def binomial_interval(k, n: int, prob: float = LEVELS[0]) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson (exact) central ``prob`` interval of a success fraction ``k / n``."""
    k = np.asarray(k, dtype=np.float64)
    a = (1 - prob) / 2
    with np.errstate(invalid="ignore"):
        lower = np.where(k > 0, stats.beta.ppf(a, np.maximum(k, 1e-300), n - k + 1), 0.0)
        upper = np.where(k < n, stats.beta.ppf(1 - a, k + 1, np.maximum(n - k, 1e-300)), 1.0)
    return lower, upper


def coverage_figure(coverage: dict, n: int, nominal: float = LEVELS[0]) -> plt.Figure:
    """Coverage of each interval type per parameter, with binomial 68.3% error bars.

    Parameters
    ----------
    coverage : dict
        ``{"parameters": {name: {"hessian_68": f, "profile_68": f, "credible_68": f}}}``, ``f``
        the fraction of the ``n`` fits whose interval contains the truth; missing, ``None`` or
        NaN entries are skipped.  Keys other than the three are drawn with their own name.
    n : int
        Number of fits each fraction is taken over (``k = round(f n)`` successes).
    nominal : float
        Nominal coverage: the horizontal line; the grey band is the central 68.3% range of
        ``k / n`` for intervals with exactly nominal coverage (Binomial(n, nominal)).

    Error bars are Clopper-Pearson 68.3% intervals of ``k / n``.
    """
    if n < 1:
        raise ValueError(f"n must be positive, not {n}")
    params = coverage["parameters"]
    names = list(params)
    kinds = list(dict.fromkeys(key for entry in params.values() for key in entry))
    order = {k: i for i, k in enumerate(INTERVAL_LABELS)}
    kinds.sort(key=lambda key: order.get(key.split("_")[0], len(order)))
    fig, ax = plt.subplots(figsize=(max(5.5, 1.6 * len(names) + 2.5), 4.5), layout="constrained")
    lo, hi = stats.binom.ppf([(1 - LEVELS[0]) / 2, (1 + LEVELS[0]) / 2], n, nominal) / n
    ax.axhspan(lo, hi, color="0.88", lw=0, label=f"expected spread for {n} fits (68.3%)")
    ax.axhline(nominal, color="k", lw=1, ls="--", label=f"nominal {nominal:.2%}")
    width = 0.6 / max(len(kinds), 1)
    for j, kind in enumerate(kinds):
        label, colour, marker = INTERVAL_LABELS.get(kind.split("_")[0], (kind, None, "o"))
        xs, fs = [], []
        for i, name in enumerate(names):
            f = params[name].get(kind)
            if f is not None and np.isfinite(f):
                xs.append(i + (j - (len(kinds) - 1) / 2) * width)
                fs.append(float(f))
        if not xs:
            continue
        fs = np.array(fs)
        lower, upper = binomial_interval(np.round(fs * n), n)
        ax.errorbar(
            xs,
            fs,
            yerr=[np.maximum(fs - lower, 0), np.maximum(upper - fs, 0)],
            fmt=marker,
            color=colour,
            ms=6,
            capsize=3,
            label=label,
        )
    ax.set_xticks(range(len(names)), [_short(n_) for n_ in names], fontsize=11)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("coverage (fraction of fits)", fontsize=11)
    ax.set_title(f"Interval coverage over {n} simulated fits", fontsize=11)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    return fig


# --------------------------------------------------------------------------------------------
# Simulation-based calibration
# --------------------------------------------------------------------------------------------


def _clean_ranks(ranks, draws_per_fit: int) -> np.ndarray:
    ranks = np.asarray(ranks, dtype=np.float64).reshape(-1)
    ranks = ranks[np.isfinite(ranks)]
    if ranks.size and (ranks.min() < 0 or ranks.max() > draws_per_fit or np.any(ranks % 1)):
        raise ValueError(f"ranks must be integers in 0..{draws_per_fit}")
    return ranks.astype(np.int64)


def rank_bins(n_ranks: int, draws_per_fit: int) -> int:
    """Number of equal-width rank bins: about 10 expected ranks per bin, 2 to 50 bins, at most
    one bin per possible rank value."""
    return int(min(draws_per_fit + 1, 50, max(2, n_ranks // 10)))


def _binned(ranks: np.ndarray, draws_per_fit: int, n_bins: int):
    """Counts per bin, the probability of each bin under uniform ranks and the bin edges
    (half-integers): bins of the integer ranks ``r`` with equal ``floor(r n_bins / (L + 1))``,
    ``L = draws_per_fit``."""
    L1 = draws_per_fit + 1
    cell = np.arange(L1) * n_bins // L1
    counts = np.bincount(cell[ranks], minlength=n_bins)
    prob = np.bincount(cell, minlength=n_bins) / L1
    edges = np.r_[0, np.flatnonzero(np.diff(cell)) + 1, L1] - 0.5
    return counts, prob, edges


def uniformity_p(ranks: np.ndarray, draws_per_fit: int) -> float:
    """p-value of the SBC ranks being uniform on ``0..draws_per_fit``.

    Pearson's chi-square test on ``rank_bins(N, draws_per_fit)`` equal-width bins of the
    ``N`` finite ranks (expected counts from the number of rank values in each bin, so bins
    need not hold equally many values), ``n_bins - 1`` degrees of freedom.  The chi-square
    approximation needs about 5 expected ranks per bin, i.e. ``N >= 10``.  (arviz-stats'
    ``uniformity_test`` is not used: it is built for continuous PIT values, and these ranks
    are discrete with ties.)
    """
    ranks = _clean_ranks(ranks, draws_per_fit)
    if ranks.size < 2:
        raise ValueError("at least 2 finite ranks are needed")
    n_bins = rank_bins(ranks.size, draws_per_fit)
    counts, prob, _ = _binned(ranks, draws_per_fit, n_bins)
    return float(stats.chisquare(counts, ranks.size * prob).pvalue)


def sbc_bands(
    n_ranks: int,
    draws_per_fit: int,
    prob: float = SBC_BAND,
    n_simulations: int = SBC_SIMULATIONS,
    seed: int = SBC_SEED,
):
    """Simultaneous ``prob`` band of the ECDF of ``n_ranks`` uniform ranks on ``0..L``.

    The band is evaluated at rank boundaries ``z = b / (L + 1)`` (``L = draws_per_fit``; at
    most ``min(L, n_ranks)`` evenly spread boundaries ``b``), where under uniformity
    ``N ECDF(z) ~ Binomial(N, z)`` exactly.  The simultaneous level is found by the
    simulation method of Säilynoja, Bürkner & Vehtari (2022, Stat. Comput. 32:32, sec. 2.2),
    as implemented in arviz-stats (``ecdf_utils.simulate_confidence_bands`` and
    ``get_pointwise_confidence_band``), with a seeded generator; without those internals, by
    :func:`_simultaneous_band` (the same method in SciPy).

    Returns
    -------
    z, lower, upper : ndarray
        Evaluation points, with the endpoints 0 and 1, and the band of the ECDF there.
    """
    L1 = draws_per_fit + 1
    n_points = max(1, min(draws_per_fit, n_ranks))
    boundaries = np.unique(np.round(np.linspace(0, L1, n_points + 2)[1:-1]).astype(np.int64))
    z = boundaries / L1
    rng = np.random.default_rng(seed)
    ecdf_utils = _arviz_ecdf_utils()
    if ecdf_utils is not None:
        gamma = ecdf_utils.simulate_confidence_bands(n_ranks, 1, z, prob, n_simulations, rng)
        lower, upper = ecdf_utils.get_pointwise_confidence_band(gamma, n_ranks, z)
    else:
        lower, upper = _simultaneous_band(n_ranks, z, prob, n_simulations, rng)
    return tuple(np.r_[0.0, a, 1.0] for a in (z, lower, upper))


def _arviz_ecdf_utils():
    """arviz-stats' ``ecdf_utils`` (an internal module: pinned below arviz-stats 2), or None
    where it is missing or lacks the two functions: then :func:`_simultaneous_band`."""
    try:
        from arviz_stats import ecdf_utils
    except ImportError:
        return None
    needed = ("simulate_confidence_bands", "get_pointwise_confidence_band")
    return ecdf_utils if all(hasattr(ecdf_utils, n) for n in needed) else None


def _simultaneous_band(n: int, z: np.ndarray, prob: float, n_simulations: int, rng):
    """The same simultaneous band in NumPy/SciPy (the fallback of :func:`sbc_bands`):
    Säilynoja et al.'s simulation method -- the pointwise two-sided binomial level ``gamma``
    whose band holds the whole ECDF of ``n`` uniform draws with probability ``prob``, found as
    the ``1 - prob`` quantile over simulated ECDFs of their smallest pointwise tail
    probability -- and the binomial quantiles at ``gamma / 2`` and ``1 - gamma / 2``."""
    counts = np.stack(
        [
            np.searchsorted(np.sort(rng.uniform(size=n)), z, side="right")
            for _ in range(n_simulations)
        ]
    )
    tails = 2 * np.minimum(stats.binom.cdf(counts, n, z), stats.binom.sf(counts - 1, n, z))
    gamma = float(np.quantile(tails.min(axis=1), 1 - prob))
    lower = stats.binom.ppf(gamma / 2, n, z) / n
    upper = stats.binom.ppf(1 - gamma / 2, n, z) / n
    return lower, upper


def rank_ecdf(ranks: np.ndarray, draws_per_fit: int, z: np.ndarray) -> np.ndarray:
    """ECDF of the normalised ranks at ``z``: the fraction of ranks ``r`` with
    ``(r + 1) / (L + 1) <= z`` (at a rank boundary ``z = b / (L + 1)``: ranks below ``b``)."""
    ranks = np.sort(_clean_ranks(ranks, draws_per_fit))
    return np.searchsorted(ranks + 1, z * (draws_per_fit + 1) + 1e-9, side="right") / ranks.size


def sbc_figure(ranks: dict[str, np.ndarray], draws_per_fit: int) -> plt.Figure:
    """Simulation-based calibration: per parameter the ECDF difference of the normalised ranks
    with its simultaneous ``SBC_BAND`` band (see :func:`sbc_bands`; points outside the band in
    red) and a rank histogram with the pointwise 95% binomial range of a bin's count.

    ``ranks``: parameter -> ranks of the truth among ``draws_per_fit`` posterior draws
    (integers ``0..draws_per_fit``, one per simulated fit; NaN for failed fits is dropped).
    Titles give :func:`uniformity_p`.
    """
    if not ranks:
        raise ValueError("no parameters to plot")
    fig, axes = plt.subplots(
        len(ranks),
        2,
        figsize=(9, 2.6 * len(ranks)),
        layout="constrained",
        squeeze=False,
        gridspec_kw={"width_ratios": (3, 1)},
    )
    for (ax, hax), (name, values) in zip(axes, ranks.items(), strict=True):
        r = _clean_ranks(values, draws_per_fit)
        if r.size < 2:
            ax.text(
                0.5, 0.5, f"{_short(name)}: fewer than 2 ranks", ha="center", transform=ax.transAxes
            )
            continue
        z, lower, upper = sbc_bands(r.size, draws_per_fit)
        diff = rank_ecdf(r, draws_per_fit, z) - z
        ax.fill_between(z, lower - z, upper - z, color="0.8", lw=0)
        ax.axhline(0, color="0.4", lw=0.8)
        ax.plot(z, diff, color="tab:blue", lw=1.4)
        out = (diff < lower - z - 1e-12) | (diff > upper - z + 1e-12)
        if out.any():
            ax.plot(z[out], diff[out], "o", color="tab:red", ms=3)
        ax.set_xlim(0, 1)
        ax.set_ylabel("ECDF difference")
        ax.set_title(
            f"{_short(name)}: {r.size} fits, uniformity p = {uniformity_p(r, draws_per_fit):.3g}",
            fontsize=10,
        )
        n_bins = rank_bins(r.size, draws_per_fit)
        counts, prob, edges = _binned(r, draws_per_fit, n_bins)
        lo, hi = stats.binom.ppf(0.025, r.size, prob), stats.binom.ppf(0.975, r.size, prob)
        hax.stairs(hi, edges, baseline=lo, fill=True, color="0.85")
        hax.stairs(r.size * prob, edges, color="0.4", lw=0.8)
        hax.stairs(counts, edges, color="tab:blue", lw=1.4)
        hax.set_xlim(edges[0], edges[-1])
        hax.set_ylim(0, max(counts.max(), hi.max()) * 1.25)
        hax.set_title("rank histogram", fontsize=9)
    handles = [
        Patch(color="0.8", label=f"ECDF: {SBC_BAND:.0%} simultaneous band if uniform"),
        Line2D([], [], color="tab:blue", lw=1.4, label="ECDF - uniform CDF; rank counts"),
        Line2D([], [], color="tab:red", marker="o", ms=3, ls="", label="outside the band"),
        Patch(color="0.85", label="counts: pointwise 95% range if uniform"),
    ]
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=2, frameon=False)
    axes[-1, 0].set_xlabel(f"normalised rank (rank + 1) / {draws_per_fit + 1}")
    axes[-1, 1].set_xlabel("rank")
    fig.suptitle(
        f"Simulation-based calibration ({draws_per_fit} posterior draws per fit)", fontsize=11
    )
    return fig


def lrt_figure(tests: list[dict]) -> plt.Figure:
    """Likelihood-ratio tests of nested spectral models: per test the distribution of the
    statistic in the pseudo-experiments under the null (``toys_ts``), the chi-square density
    with ``extra_parameters`` degrees of freedom for orientation, and the observed ``ts``
    with its p-value (the ``compare`` job's ``likelihood_ratio_tests`` entries)."""
    fig, axes = _grid(len(tests), width=4.6, height=3.6)
    for ax, t in zip(axes, tests, strict=False):
        ts = np.asarray(t["toys_ts"], dtype=np.float64)
        ts = ts[np.isfinite(ts) & (ts >= 0)]
        top = max(float(np.max(ts, initial=1.0)), t["ts"]) * 1.1
        edges = np.linspace(0.0, top, 41)
        ax.hist(
            ts,
            bins=edges,
            density=True,
            histtype="stepfilled",
            color="0.75",
            label=f"{ts.size} pseudo-experiments (null: spl)",
        )
        x = np.linspace(edges[1] / 4, top, 300)
        ax.plot(
            x,
            stats.chi2.pdf(x, t["extra_parameters"]),
            color=WILKS_COLOUR,
            lw=1.2,
            label=f"$\\chi^2_{{{t['extra_parameters']}}}$ (for orientation)",
        )
        bound = "<" if t.get("p_value_is_bound") else "="
        ax.axvline(
            t["ts"],
            color="tab:red",
            lw=1.8,
            label=f"observed ts = {t['ts']:.2f}, p {bound} {t['p_value']:.2g}",
        )
        ax.set_yscale("log")
        ax.set_xlabel(r"$ts = 2\,(\ln L_\mathrm{alt} - \ln L_\mathrm{spl})$")
        ax.set_ylabel("density")
        ax.set_title(f"spl vs {t['alternative']}")
        ax.legend(fontsize=8, frameon=False)
    return fig
