"""The unfolded astrophysical spectrum: posterior bands of ``E^2 dN/dE`` against energy, and one
figure comparing the spectral models.

:func:`flux_band` returns plain arrays (save them as JSON with ``.tolist()``);
:func:`spectrum_figure` returns a :class:`matplotlib.figure.Figure` (Agg backend, nothing
shown) that the caller saves with :func:`diffuse_fit.report.figures.save_figure`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from diffuse_fit.physics.flux import e2_flux

QUANTILES = (0.025, 0.16, 0.5, 0.84, 0.975)
ENERGIES_GEV = np.geomspace(1.0e4, 1.0e7, 121)  # where the spectrum bands are evaluated
MODEL_LABELS = {
    "spl": "single power law",
    "logparabola": "log-parabola",
    "broken": "broken power law",
    "cutoff": "power law with cutoff",
    "segmented": "segmented (E⁻² per segment)",
}
MODEL_COLOURS = {
    "spl": "tab:blue",
    "logparabola": "tab:orange",
    "broken": "tab:green",
    "cutoff": "tab:purple",
    "segmented": "tab:red",
}
OUTSIDE_ALPHA = 0.35  # opacity factor of everything outside the sensitive energy range
X_LABEL = "E [GeV]"
Y_LABEL = "E² dΦ/dE [GeV cm⁻² s⁻¹ sr⁻¹]"
TINY = np.finfo(np.float64).tiny


def flux_band(
    component, posterior_draws: dict[str, np.ndarray], energies, quantiles=QUANTILES
) -> dict:
    """Posterior quantiles of ``E^2 dN/dE`` at each energy.

    Parameters
    ----------
    component : PowerLawComponent or SpectralComponent
        The astrophysical component of the model fitted.
    posterior_draws : dict
        Parameter name -> posterior draws (any shape, e.g. (chain, draw); ravelled) of every
        parameter of ``component`` (see :func:`diffuse_fit.physics.flux.e2_flux`).
    energies : array
        Neutrino energies in GeV, shape (n_energies,).
    quantiles : sequence of float
        Probabilities in [0, 1].

    Returns
    -------
    dict
        ``energies`` (n_energies,) GeV; ``quantiles`` (n_q,); ``e2_flux`` (n_q, n_energies),
        the ``quantiles`` of ``E^2 dN/dE`` over draws in GeV cm^-2 s^-1 sr^-1 (all flavours,
        nu + nubar), taken separately at each energy (``np.quantile``, linear interpolation);
        ``n_draws``.
    """
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    flux = e2_flux(component, posterior_draws, energies)
    if not np.all(np.isfinite(flux)):
        raise ValueError("non-finite flux at some draws (non-finite posterior draws?)")
    return _band(energies, flux, quantiles)


def _band(energies: np.ndarray, flux: np.ndarray, quantiles) -> dict:
    """The band of ``flux`` (draws x energies) at ``energies``: :func:`flux_band`'s form."""
    q = np.asarray(quantiles, dtype=np.float64).reshape(-1)
    return {
        "energies": energies,
        "quantiles": q,
        "e2_flux": np.quantile(flux, q, axis=0),
        "n_draws": flux.shape[0],
    }


def segmented_band(
    segments, posterior_draws: dict[str, np.ndarray], energies, quantiles=QUANTILES
) -> dict:
    """:func:`flux_band` of the segmented spectrum (piecewise constant ``E^2 dPhi/dE``,
    :func:`diffuse_fit.physics.flux.segmented_e2_flux`) at the ``energies`` inside its
    segments, with each inner edge twice (the steps drawn vertical)."""
    from diffuse_fit.physics.flux import segmented_e2_flux

    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    low, high = segments[0].low, segments[-1].high
    edges = np.array([c.low for c in segments[1:]])
    grid = np.sort(np.r_[energies[(energies > low) & (energies < high)], low, high, edges])
    at = np.sort(np.r_[grid, edges * (1 - 1e-12)])
    return _band(at, segmented_e2_flux(segments, posterior_draws, at), quantiles)


def _label(name: str) -> str:
    """A model's legend label (a segmented spectrum's edges in TeV)."""
    base, _, edges = name.partition(":")
    label = MODEL_LABELS.get(base, name)
    if edges:
        label += ", edges " + "-".join(f"{float(e) / 1e3:g}" for e in edges.split(",")) + " TeV"
    return label


def _at(band: dict, p: float) -> np.ndarray:
    """The band's quantile ``p`` curve."""
    hit = np.flatnonzero(np.isclose(band["quantiles"], p, rtol=0, atol=1e-9))
    if hit.size == 0:
        raise ValueError(f"the band has no {p} quantile (has {list(band['quantiles'])})")
    return np.asarray(band["e2_flux"])[hit[0]]


def _split(energies, curves, lo, hi):
    """Pieces (below, inside, above) of the curves on ``[E_min, lo]``, ``[lo, hi]``,
    ``[hi, E_max]``, the boundaries added by interpolation in log-log."""
    log_e = np.log(energies)
    pieces = []
    for a, b in ((energies[0], lo), (lo, hi), (hi, energies[-1])):
        a, b = max(a, energies[0]), min(b, energies[-1])
        if not a < b:
            pieces.append(None)
            continue
        inside = (energies > a) & (energies < b)
        e = np.r_[a, energies[inside], b]
        ys = [np.exp(np.interp(np.log(e), log_e, np.log(c))) for c in curves]
        pieces.append((e, ys))
    return pieces


def spectrum_figure(bands: dict[str, dict], ranges: dict[str, tuple[float, float]]) -> plt.Figure:
    """``E^2 dN/dE`` of every spectral model on one log-log figure.

    Per model (its own colour): the 68% band (quantiles 0.16-0.84) filled, the 95% band
    (0.025-0.975) lighter with an outline, and the median line; inside the model's sensitive
    energy range ``ranges[model] = (lo, hi)`` GeV (:func:`diffuse_fit.physics.flux.
    sensitive_energy_range`) drawn solid, outside it faded with dashed lines (a model missing
    from ``ranges`` is drawn solid everywhere).  ``bands``: model name -> :func:`flux_band`
    (with those five quantiles).  One legend entry per model, in ``bands``
    order, and a key to the line styles.
    """
    if not bands:
        raise ValueError("no spectra to plot")
    fig, ax = plt.subplots(figsize=(7.5, 5.2), layout="constrained")
    entries, shown = [], []
    for i, (name, band) in enumerate(bands.items()):
        colour = MODEL_COLOURS.get(name.split(":")[0], f"C{i}")
        energies = np.asarray(band["energies"], dtype=np.float64)
        # a flux that underflows to 0 (far above a cutoff) is drawn at the smallest float
        curves = [np.maximum(_at(band, p), TINY) for p in (0.025, 0.16, 0.5, 0.84, 0.975)]
        lo, hi = ranges.get(name, (energies[0], energies[-1]))
        for j, piece in enumerate(_split(energies, curves, lo, hi)):
            if piece is None:
                continue
            e, (y95lo, y68lo, med, y68hi, y95hi) = piece
            fade, ls = (1.0, "-") if j == 1 else (OUTSIDE_ALPHA, "--")
            ax.fill_between(e, y95lo, y95hi, color=colour, alpha=0.15 * fade, lw=0)
            for y in (y95lo, y95hi):
                ax.plot(e, y, color=colour, lw=0.7, ls=ls, alpha=0.7 * fade)
            ax.fill_between(e, y68lo, y68hi, color=colour, alpha=0.4 * fade, lw=0)
            ax.plot(e, med, color=colour, lw=1.8, ls=ls, alpha=fade)
            if j == 1:
                shown.append(np.r_[y95lo, y95hi])
        entries.append((Patch(facecolor=colour, alpha=0.5, edgecolor=colour), _label(name)))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(
        min(b["energies"][0] for b in bands.values()),
        max(b["energies"][-1] for b in bands.values()),
    )
    values = np.concatenate(shown) if shown else np.empty(0)
    values = values[values > TINY]
    if values.size:
        ax.set_ylim(values.min() / 3, values.max() * 3)
    ax.set_xlabel(X_LABEL, fontsize=12)
    ax.set_ylabel(Y_LABEL, fontsize=12)
    ax.set_title(
        "Astrophysical flux, all flavours (ν + ν̄): posterior per spectral model", fontsize=11
    )
    key = ax.legend(
        handles=[
            Line2D([], [], color="0.3", lw=1.8, label="median"),
            Patch(color="0.3", alpha=0.4, lw=0, label="68% credible"),
            Patch(facecolor="0.3", alpha=0.15, edgecolor="0.3", label="95% credible"),
            Line2D(
                [],
                [],
                color="0.3",
                lw=1.8,
                ls="--",
                alpha=OUTSIDE_ALPHA,
                label="outside the sensitive energy range",
            ),
        ],
        fontsize=8,
        loc="lower left",
        frameon=False,
    )
    ax.add_artist(key)
    ax.legend(*zip(*entries, strict=True), fontsize=9, loc="upper right", frameon=False)
    ax.grid(True, which="major", alpha=0.3)
    return fig


UPPER_LIMIT_RULE = (
    "a segment whose 68% highest-density interval starts at zero flux (its "
    "posterior peaks at 0: the lowest 1% of the draws) is drawn as its 95% "
    "upper limit"
)


def _hdi_starts_at_zero(values: np.ndarray, mass: float = 0.68) -> bool:
    """Whether the shortest interval holding ``mass`` of ``values`` starts among the lowest
    1% of them (a posterior that peaks at its lower bound, 0)."""
    x = np.sort(values)
    n = x.size
    k = max(1, int(np.ceil(mass * n)))
    widths = x[k - 1 :] - x[: n - k + 1]
    return int(np.argmin(widths)) <= 0.01 * n


def segment_summary(segments, draws: dict) -> list[dict]:
    """Per segment (a :class:`diffuse_fit.physics.components.SegmentComponent`): its energy
    range (GeV), the posterior median and 68% interval of ``E^2 dPhi/dE`` (GeV cm^-2 s^-1
    sr^-1, all flavours), its 95% upper limit, and whether it is drawn as a limit
    (:data:`UPPER_LIMIT_RULE`).  ``draws``: norm name -> posterior draws."""
    from diffuse_fit.physics.flux import segment_e2_flux

    out = []
    for c in segments:
        flux = segment_e2_flux(c, np.asarray(draws[c.norm]).reshape(-1))
        q16, median, q84, q95 = np.quantile(flux, [0.16, 0.5, 0.84, 0.95])
        out.append(
            {
                "name": c.name,
                "norm": c.norm,
                "low_GeV": c.low,
                "high_GeV": c.high,
                "median": float(median),
                "q16": float(q16),
                "q84": float(q84),
                "upper_limit_95": float(q95),
                "limit": _hdi_starts_at_zero(flux),
            }
        )
    return out


def segmented_figure(
    summary: list[dict], band: dict | None = None, truth: dict | None = None
) -> plt.Figure:
    """The segmented (differential) flux: per segment its posterior median and 68% interval
    of ``E^2 dPhi/dE``, or its 95% upper limit (an arrow) by :data:`UPPER_LIMIT_RULE`;
    ``band``: a :func:`flux_band` (e.g. the single power law's) drawn behind for comparison;
    ``truth``: the injected spectrum of simulated data (``label``, ``energies`` in GeV,
    ``e2_flux``), drawn as a dotted line."""
    fig, ax = plt.subplots(figsize=(7.5, 5.2), layout="constrained")
    if truth is not None:
        ax.plot(
            truth["energies"], truth["e2_flux"], color="k", ls=":", lw=1.2, label=truth["label"]
        )
    if band is not None:
        band = {
            k: np.asarray(v) if k in ("energies", "quantiles", "e2_flux") else v
            for k, v in band.items()
        }
        e = band["energies"]
        inside = (e >= summary[0]["low_GeV"]) & (e <= summary[-1]["high_GeV"])
        ax.fill_between(
            e[inside],
            _at(band, 0.16)[inside],
            _at(band, 0.84)[inside],
            color="0.82",
            lw=0,
            label="single power law, 68% (Laplace at its MAP)",
        )
        ax.plot(e[inside], _at(band, 0.5)[inside], color="0.5", lw=1)
    profiled = False
    for k, s in enumerate(summary):
        lo, hi = s["low_GeV"], s["high_GeV"]
        centre = np.sqrt(lo * hi)
        if "profile_68" in s:  # beside the credible interval, a little to the right
            p_lo, p_hi = s["profile_68"]
            x = centre * (hi / lo) ** 0.12
            label = "profile likelihood: MAP, 68% (arrow: from 0)" if not profiled else None
            if p_lo > 0:
                m = s["profile_map"]
                ax.errorbar(
                    x,
                    m,
                    yerr=[[m - p_lo], [p_hi - m]],
                    fmt="o",
                    mfc="white",
                    color="C1",
                    capsize=3,
                    lw=1.2,
                    ms=4,
                    label=label,
                )
            else:  # the interval starts at 0: its upper end, an arrow down
                ax.errorbar(
                    x,
                    p_hi,
                    yerr=[[p_hi * (1 - 1 / 3)], [0]],
                    uplims=True,
                    fmt="none",
                    color="C1",
                    capsize=3,
                    lw=1.2,
                    label=label,
                )
            profiled = True
        label = "segments: median, 68% credible" if k == 0 else None
        if s["limit"]:
            ax.hlines(s["upper_limit_95"], lo, hi, color="C3", lw=2)
            ax.annotate(
                "",
                xy=(centre, s["upper_limit_95"] / 3),
                xytext=(centre, s["upper_limit_95"]),
                arrowprops={"arrowstyle": "->", "color": "C3", "lw": 1.5},
            )
        else:
            ax.hlines(s["median"], lo, hi, color="C0", lw=2, label=label)
            ax.errorbar(
                centre,
                s["median"],
                yerr=[[s["median"] - s["q16"]], [s["q84"] - s["median"]]],
                color="C0",
                capsize=3,
                lw=1.5,
            )
    ax.plot([], [], color="C3", lw=2, label="95% upper limit")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Neutrino energy [GeV]")
    ax.set_ylabel(r"$E^2\,d\Phi/dE$ [GeV cm$^{-2}$ s$^{-1}$ sr$^{-1}$] (all flavours)")
    ax.set_title("Segmented astrophysical flux ($E^{-2}$ in each segment)")
    ax.legend(loc="best", fontsize=8)
    return fig
