"""Figures of a fit: corner plot, observable projections, sampler and model checks.

Every function returns a :class:`matplotlib.figure.Figure` (Agg backend, nothing shown).
"""

from __future__ import annotations

import arviz_plots
import corner
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from diffuse_fit.binned.binning import Binning
from diffuse_fit.physics.parameters import parameter_info
from diffuse_fit.report.predictive import Bands, poisson_interval, project


class _Labels(dict):
    """Parameter -> figure label from :mod:`diffuse_fit.physics.parameters` (any name works)."""

    def __init__(self, attribute: str):
        super().__init__()
        self._attribute = attribute

    def __missing__(self, name):
        return getattr(parameter_info(name), self._attribute)

    def get(self, name, default=None):  # every name has a label
        return self[name]


LABELS = _Labels("label")  # with units: corner plots
SHORT = _Labels("symbol")  # symbols only: trace and rank plots
MARKERS = {  # name -> (colour, marker, legend label)
    "map": ("tab:red", "s", "MAP"),
    "workshop": ("tab:green", "x", "workshop scipy fit"),
    "truth": ("black", "*", "truth (simulated)"),
}
COMPONENT_COLOURS = {"atmospheric": "tab:blue", "astrophysical": "tab:orange"}
CREDIBLE_LEVELS = (0.68, 0.95)
RANK_BAND = 0.95


def _corner_ranges(samples, names, points: dict, pad: float = 0.05) -> list[tuple]:
    """Per parameter, the range of the draws (0.05% to 99.95%) widened to hold every marked
    point, so that a truth far in a tail stays visible."""
    ranges = []
    for i, name in enumerate(names):
        lo, hi = np.quantile(samples[:, i], [0.0005, 0.9995])
        for values in points.values():
            if values and name in values and np.isfinite(values[name]):
                lo, hi = min(lo, values[name]), max(hi, values[name])
        width = (hi - lo) or abs(hi) or 1.0
        ranges.append((lo - pad * width, hi + pad * width))
    return ranges


def corner_plot(posterior, names, points: dict) -> plt.Figure:
    """1-D marginals and 68%/95% credible contours, with reference points marked.

    ``points``: marker name ("map", "workshop", "truth") -> {parameter: value}; None skipped.
    """
    samples = np.column_stack([np.asarray(posterior[n]).reshape(-1) for n in names])
    fig = corner.corner(
        samples,
        range=_corner_ranges(samples, names, points),
        labels=[LABELS.get(n, n) for n in names],
        levels=CREDIBLE_LEVELS,
        plot_datapoints=False,
        fill_contours=True,
        smooth=1.0,
        show_titles=True,
        titles=[SHORT.get(n, n) for n in names],
        title_quantiles=(0.16, 0.5, 0.84),
        title_fmt=".3f",
        label_kwargs={"fontsize": 11},
        title_kwargs={"fontsize": 10},
    )
    fig.set_size_inches(2.8 * len(names) + 0.5, 2.8 * len(names) + 0.5)
    handles = []
    for key, values in points.items():
        if not values:
            continue
        colour, marker, label = MARKERS[key]
        xs = np.array([values[n] for n in names])
        corner.overplot_lines(fig, xs, color=colour, lw=1.2, ls="--")
        corner.overplot_points(fig, xs[None, :], color=colour, marker=marker, ms=9)
        handles.append(Line2D([], [], color=colour, marker=marker, ls="--", label=label))
    handles.append(Line2D([], [], color="k", lw=1, label="68% / 95% credible regions"))
    fig.legend(
        handles=handles, loc="upper right", bbox_to_anchor=(0.97, 0.97), fontsize=10, frameon=False
    )
    return fig


def _axis_geometry(binning: Binning, axis: str):
    """Bin edges to draw, whether to reverse the bin order, axis label, log scale."""
    if axis == "energy":
        return binning.energy_edges, False, "Reconstructed deposited energy [GeV]", True
    if axis == "length":  # reconstructed length of double cascades (HESE release)
        return binning.zenith_edges, False, "Reconstructed length [m]", True
    if axis == "zenith":  # draw in cos(zenith), increasing: reverse the zenith order
        return np.cos(binning.zenith_edges)[::-1], True, r"Reconstructed $\cos(\theta_z)$", False
    return binning.topology_edges, False, "Topology", False


def projection_plot(counts, bands: Bands, binning: Binning, axis: str) -> plt.Figure:
    """Observed counts (Poisson 68% error bars; 68% upper limits for empty bins) against the
    posterior-predictive expectation, with a panel of their ratio below.

    Bands are 68% / 95% credible intervals of the expected events; the posterior mean
    expectation is the dashed line; component posterior means are outlined.  The ratio panel
    shows data / (posterior mean expectation) with the data's Poisson intervals and the
    bands divided by the same mean.
    """
    edges, reverse, xlabel, log = _axis_geometry(binning, axis)
    order = slice(None, None, -1) if reverse else slice(None)
    observed = project(np.asarray(counts, dtype=np.float64), binning, axis)[order]
    fig, (ax, ratio_ax) = plt.subplots(
        2,
        1,
        figsize=(8, 7),
        sharex=True,
        layout="constrained",
        gridspec_kw={"height_ratios": [3, 1]},
    )
    x = edges
    ax.stairs(
        bands.band95[1][order],
        x,
        baseline=bands.band95[0][order],
        fill=True,
        color="0.85",
        label="expectation, 95% credible",
    )
    ax.stairs(
        bands.band68[1][order],
        x,
        baseline=bands.band68[0][order],
        fill=True,
        color="0.65",
        label="expectation, 68% credible",
    )
    ax.stairs(bands.mean[order], x, color="k", ls="--", lw=1.2, label="expectation, posterior mean")
    for name, values in bands.components.items():
        ax.stairs(
            values[order],
            x,
            color=COMPONENT_COLOURS.get(name),
            lw=1.8,
            label=f"{name} (posterior mean)",
        )
    centres = np.sqrt(x[1:] * x[:-1]) if log else 0.5 * (x[1:] + x[:-1])
    lower, upper = poisson_interval(observed)
    shown = observed > 0
    ax.errorbar(
        centres[shown],
        observed[shown],
        yerr=[observed[shown] - lower[shown], upper[shown] - observed[shown]],
        fmt="o",
        color="k",
        ms=5,
        capsize=3,
        label="data (68% Poisson interval)",
    )
    empty = ~shown
    if np.any(empty):
        ax.plot(
            centres[empty],
            upper[empty],
            "v",
            color="k",
            ms=6,
            mfc="none",
            label="no events: 68% upper limit",
        )
    ax.set_ylabel("Events per bin", fontsize=12)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(0.05, max(bands.band95[1].max(), observed.max()) * 8)
    else:
        ax.set_ylim(0, max(bands.band95[1].max(), observed.max()) * 1.45)
    ax.legend(fontsize=9, loc="upper right", ncols=2, frameon=False)
    # ratio to the posterior mean expectation (bins with no expectation left blank)
    mean = bands.mean[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(mean > 0, 1.0 / mean, np.nan)
    ratio_ax.stairs(
        bands.band95[1][order] * scale,
        x,
        baseline=bands.band95[0][order] * scale,
        fill=True,
        color="0.85",
    )
    ratio_ax.stairs(
        bands.band68[1][order] * scale,
        x,
        baseline=bands.band68[0][order] * scale,
        fill=True,
        color="0.65",
    )
    ratio_ax.axhline(1.0, color="k", ls="--", lw=1.0)
    r, r_lo, r_hi = observed * scale, lower * scale, upper * scale
    ok = shown & np.isfinite(r)
    ratio_ax.errorbar(
        centres[ok],
        r[ok],
        yerr=[r[ok] - r_lo[ok], r_hi[ok] - r[ok]],
        fmt="o",
        color="k",
        ms=4,
        capsize=2,
    )
    limits = empty & np.isfinite(r_hi)
    ratio_ax.plot(centres[limits], r_hi[limits], "v", color="k", ms=5, mfc="none")
    top = np.nanmax(np.r_[r_hi[ok | limits], 2.0]) if np.any(ok | limits) else 2.0
    ratio_ax.set_ylim(0, min(top * 1.1, 5.0))
    ratio_ax.set_ylabel("data / expectation", fontsize=11)
    ratio_ax.set_xlabel(xlabel, fontsize=12)
    if axis == "topology":
        ratio_ax.set_xticks(centres, ["cascade", "track"][: len(centres)])
    return fig


def trace_plot(idata, names) -> plt.Figure:
    """Per parameter, the draws of every chain in order."""
    fig, axes = plt.subplots(
        len(names), 1, figsize=(9, 2.2 * len(names)), layout="constrained", squeeze=False
    )
    post = idata.posterior
    n_chains = post.sizes["chain"]
    for ax, name in zip(axes[:, 0], names, strict=True):
        values = np.asarray(post[name])  # (chain, draw)
        for c in range(n_chains):
            ax.plot(values[c], lw=0.5, alpha=0.8, label=f"chain {c}")
        ax.set_ylabel(SHORT.get(name, name), fontsize=11)
    axes[-1, 0].set_xlabel("draw")
    axes[0, 0].legend(fontsize=8, ncols=n_chains, loc="upper right", frameon=False)
    divergent = int(idata.sample_stats["diverging"].sum()) if "sample_stats" in idata else 0
    fig.suptitle(f"Traces ({n_chains} chains, {divergent} divergences)")
    return fig


def rank_plot(idata, names) -> plt.Figure:
    """Per parameter, the ECDF of each chain's fractional ranks minus the uniform CDF, inside
    the simultaneous ``RANK_BAND`` envelope expected if all chains sample the same posterior
    (arviz-plots' ``plot_rank``).

    With exactly 2 chains arviz-stats' multi-chain envelope degenerates to [0, 1] (arviz-stats
    1.3); the single-chain simultaneous band (slightly wider) is drawn instead."""
    two_chains = idata.posterior.sizes["chain"] == 2
    pc = arviz_plots.plot_rank(
        idata,
        var_names=list(names),
        method="envelope",
        envelope_prob=RANK_BAND,
        backend="matplotlib",
        col_wrap=1,
        visuals={"remove_axis": False},
        stats={"ecdf_pit": {"n_chains": 1}} if two_chains else None,
        figure_kwargs={"figsize": (8, 2.4 * len(names)), "layout": "constrained"},
    )
    fig = pc.viz["figure"].item()
    for ax, name in zip(fig.axes, names, strict=True):
        ax.set_title(SHORT.get(name, name), fontsize=11)
        ax.set_ylabel("ECDF - uniform")
    chains = idata.posterior["chain"].values
    lines = fig.axes[0].lines[: len(chains)]  # one ECDF line per chain, in chain order
    fig.axes[0].legend(
        lines,
        [f"chain {c}" for c in chains],
        fontsize=8,
        ncols=len(chains),
        loc="upper right",
        frameon=False,
    )
    fig.suptitle(f"Rank ECDFs per chain, {RANK_BAND:.0%} simultaneous band (grey)")
    return fig


def deviance_plot(check: dict) -> plt.Figure:
    """Replicated vs observed Poisson deviance per posterior draw, with the p-value."""
    fig, ax = plt.subplots(figsize=(6, 6), layout="constrained")
    obs, rep = check["observed"], check["replicated"]
    ax.scatter(obs, rep, s=6, alpha=0.4, color="tab:blue", label="posterior draws")
    lo, hi = min(obs.min(), rep.min()), max(obs.max(), rep.max())
    ax.plot([lo, hi], [lo, hi], color="k", lw=1, label="D(rep) = D(obs)")
    ax.set_xlabel(r"Deviance of observed counts $D(k^\mathrm{obs}, \lambda)$", fontsize=11)
    ax.set_ylabel(r"Deviance of replicated counts $D(k^\mathrm{rep}, \lambda)$", fontsize=11)
    ax.set_title(f"Posterior-predictive check: p = {check['p_value']:.3f}")
    ax.legend(loc="upper left", frameon=False)
    return fig
