"""The flavour composition's ternary figure (mpltern): credible regions of the posterior,
profile-likelihood contours of a scan, and the source expectations at Earth.

Corners: ``f_e`` (top), ``f_mu`` (left), ``f_tau`` (right), the fractions at Earth of the
astrophysical flux (:mod:`diffuse_fit.physics.flavour`).

* Credible regions: the highest-density regions holding 68% and 95% of the posterior draws,
  from a Gaussian kernel density estimate of ``(f_e, f_mu)`` (scipy, Scott's bandwidth),
  its levels the 32% and 5% quantiles of the density at the draws themselves.
* Profile-likelihood regions (a scan over ``f_e`` x ``f_mu``): ``ts <= 2.30`` (68.27%) and
  ``<= 6.18`` (95.45%), Wilks with 2 degrees of freedom.
* Source expectations: pion decay (1:2:0), muon-damped (0:1:0), neutron decay (1:0:0) at the
  source, averaged over oscillations with the mixing of
  :data:`diffuse_fit.physics.flavour.MIXING`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats

from diffuse_fit.physics.flavour import MIXING, SOURCES, WILKS_2DOF, at_earth

LEVELS = (0.68, 0.95)
_MARKERS = ("o", "s", "^")


def _triangle_grid(n: int = 121) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(f_e, f_mu)`` of a triangular grid covering the simplex."""
    f_e, f_mu = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij")
    inside = f_e + f_mu <= 1.0 + 1e-12
    return f_e[inside], f_mu[inside]


def credible_levels(f_e: np.ndarray, f_mu: np.ndarray) -> tuple[stats.gaussian_kde, list[float]]:
    """The kernel density estimate of the draws and its levels enclosing :data:`LEVELS`
    of them (highest-density regions)."""
    kde = stats.gaussian_kde(np.vstack([f_e, f_mu]))
    at_draws = kde(np.vstack([f_e, f_mu]))
    return kde, [float(np.quantile(at_draws, 1.0 - level)) for level in LEVELS]


def source_levels(f_e: np.ndarray, f_mu: np.ndarray) -> dict[str, float]:
    """Each source expectation's credibility: the share of the posterior draws denser (in the
    kernel density estimate) than the source's point, i.e. the smallest highest-density
    region that holds it (0.97: the source lies outside the 95% region)."""
    f_e, f_mu = np.asarray(f_e).reshape(-1), np.asarray(f_mu).reshape(-1)
    kde = stats.gaussian_kde(np.vstack([f_e, f_mu]))
    at_draws = kde(np.vstack([f_e, f_mu]))
    out = {}
    for name, source in SOURCES.items():
        point = at_earth(source)[:2, None]
        out[name] = float(np.mean(at_draws > kde(point)[0]))
    return out


def ternary_figure(
    draws: Mapping[str, np.ndarray] | None = None,
    best: Mapping[str, float] | None = None,
    truth: Mapping[str, float] | None = None,
    scan: Mapping | None = None,
    title: str = "astrophysical flavour composition at Earth",
):
    """The ternary figure (module doc): posterior ``draws`` of ``f_e`` and ``f_mu`` (credible
    regions), a 2-D ``scan`` over them (``scan.json``: profile-likelihood regions), the
    ``best`` fit and the ``truth`` (an injected composition) as markers."""
    import matplotlib.pyplot as plt
    import mpltern  # noqa: F401 (registers the "ternary" projection)

    fig = plt.figure(figsize=(6.4, 5.6))
    ax = fig.add_subplot(projection="ternary")
    handles = []
    grid_e, grid_mu = _triangle_grid()
    corners = (grid_e, grid_mu, np.clip(1.0 - grid_e - grid_mu, 0.0, 1.0))
    if draws is not None:
        f_e, f_mu = (np.asarray(draws[n], dtype=np.float64).reshape(-1) for n in ("f_e", "f_mu"))
        kde, levels = credible_levels(f_e, f_mu)
        density = kde(np.vstack([grid_e, grid_mu]))
        ax.tricontourf(
            *corners,
            density,
            levels=[levels[1], levels[0], np.inf],
            colors=["#9ecae1", "#3182bd"],
            alpha=0.8,
        )
        handles += [
            plt.Rectangle((0, 0), 1, 1, color="#3182bd", label="68% credible (posterior)"),
            plt.Rectangle((0, 0), 1, 1, color="#9ecae1", label="95% credible"),
        ]
    if scan is not None:
        e, mu = (np.asarray(scan["grid"][n], dtype=np.float64) for n in ("f_e", "f_mu"))
        ts = np.asarray(scan["ts"], dtype=np.float64)
        if scan["parameters"] != ["f_e", "f_mu"]:
            ts = ts.T
        ge, gmu = np.meshgrid(e, mu, indexing="ij")
        keep = np.isfinite(ts) & (ge + gmu <= 1.0 + 1e-9)
        t = (ge[keep], gmu[keep], np.clip(1.0 - ge[keep] - gmu[keep], 0.0, 1.0))
        for (level, threshold), style in zip(WILKS_2DOF.items(), ("-", "--"), strict=True):
            ax.tricontour(*t, ts[keep], levels=[threshold], colors="k", linestyles=style)
            handles.append(
                plt.Line2D([], [], color="k", ls=style, label=f"profile likelihood {level:.1%}")
            )
    for (name, source), marker in zip(SOURCES.items(), _MARKERS, strict=True):
        f = at_earth(source)
        handles.append(
            ax.scatter(*f, marker=marker, s=60, color="w", edgecolor="k", zorder=5, label=name)
        )
    if best is not None:
        f = (best["f_e"], best["f_mu"], 1.0 - best["f_e"] - best["f_mu"])
        handles.append(
            ax.scatter(
                *f, marker="x", s=60, color="crimson", zorder=6, clip_on=False, label="best fit"
            )
        )
    if truth is not None and "f_e" in truth:
        f = (truth["f_e"], truth["f_mu"], 1.0 - truth["f_e"] - truth["f_mu"])
        handles.append(
            ax.scatter(
                *f,
                marker="*",
                s=140,
                color="gold",
                edgecolor="k",
                zorder=6,
                clip_on=False,
                label="injected",
            )
        )
    ax.set_tlabel(r"$f_e$")
    ax.set_llabel(r"$f_\mu$")
    ax.set_rlabel(r"$f_\tau$")
    ax.grid(alpha=0.3)
    angles = ", ".join(
        f"{k.split('_')[0].replace('theta', 'θ').replace('delta', 'δ')}={v:g}°"
        for k, v in MIXING.items()
    )
    ax.set_title(title, pad=28, fontsize=11)
    fig.text(
        0.5,
        0.01,
        f"sources at Earth after oscillation (NuFIT 5.2, NO: {angles})",
        ha="center",
        fontsize=7,
    )
    fig.legend(handles=handles, loc="upper left", fontsize=7, frameon=False)
    return fig


def region_coverage_figure(ts: np.ndarray, truth: Mapping[str, float]):
    """The coverage of the pair's profile-likelihood regions in pseudo-experiments: the
    empirical distribution of ``ts`` at the true ``(f_e, f_mu)`` against Wilks' chi-square
    of 2 degrees of freedom, with the share of experiments inside the 68.27% and 95.45%
    regions (binomial standard errors)."""
    import matplotlib.pyplot as plt

    ts = np.asarray(ts, dtype=np.float64)
    finite = np.sort(ts[np.isfinite(ts)])
    n = ts.size
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    x = np.linspace(0.0, max(10.0, float(finite.max(initial=0.0))), 400)
    ax.plot(x, stats.chi2.cdf(x, 2), color="k", ls="--", label="Wilks: chi-square, 2 dof")
    ax.step(
        finite,
        np.arange(1, finite.size + 1) / n,
        where="post",
        color="C0",
        label=f"pseudo-experiments ({n})",
    )
    for level, threshold in WILKS_2DOF.items():
        share = float(np.mean(ts <= threshold))
        error = np.sqrt(share * (1 - share) / n)
        ax.axvline(threshold, color="grey", lw=0.8)
        ax.errorbar(threshold, share, yerr=error, fmt="o", color="C3", zorder=5)
        ax.annotate(
            f"{level:.2%} region: {share:.3f} +- {error:.3f}",
            (threshold, share),
            xytext=(8, -14),
            textcoords="offset points",
            fontsize=8,
        )
    injected = ":".join(
        f"{v:.2f}" for v in (truth["f_e"], truth["f_mu"], 1 - truth["f_e"] - truth["f_mu"])
    )
    ax.set_xlabel("ts = -2 (log p at the injected (f_e, f_mu), profiled - log p at the MAP)")
    ax.set_ylabel("fraction of pseudo-experiments with ts below")
    ax.set_title(f"coverage of the flavour regions, injected {injected}", fontsize=10)
    ax.set_xlim(0, x[-1])
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
