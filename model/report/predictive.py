"""Posterior-predictive quantities from posterior draws, NumPy only.

For each posterior draw s the per-bin expectation of each component is
``lam_{c,b}^s = norm_c^s * T_{c,b}(shape^s)`` (the tables of :mod:`model.templates`);
replicated counts are ``k_b^rep,s ~ Poisson(sum_c lam_{c,b}^s)``.  Projections sum bins
over the other observables.  The discrepancy statistic is the Poisson deviance
``D(k, lam) = 2 sum_b [lam_b - k_b + k_b log(k_b / lam_b)]``; its posterior-predictive
p-value is ``P(D(k^rep, lam) >= D(k^obs, lam))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy
from scipy.stats import chi2

from model.binned.binning import Binning
from model.binned.templates import Templates

AXES = ("topology", "zenith", "energy")  # the order of Binning.shape


def posterior_draws(posterior, names, n_draws: int, rng: np.random.Generator) -> dict:
    """``n_draws`` draws (without replacement when possible) of each parameter, flattened."""
    flat = {n: np.asarray(posterior[n]).reshape(-1) for n in names}
    total = len(next(iter(flat.values())))
    pick = rng.choice(total, size=min(n_draws, total), replace=False)
    return {n: v[pick] for n, v in flat.items()}


def component_expectations(templates: Templates, draws: dict) -> dict[str, np.ndarray]:
    """Expected events per bin of each component for each draw: name -> (n_draws, n_bins)."""
    n = len(next(iter(draws.values())))
    out = {t.component.name: np.empty((n, templates.binning.n_bins)) for t in templates.tables}
    for s in range(n):
        point = {k: float(v[s]) for k, v in draws.items()}
        for name, lam in templates.component_counts(point).items():
            out[name][s] = lam
    return out


def project(per_bin: np.ndarray, binning: Binning, axis: str) -> np.ndarray:
    """Sum a (..., n_bins) array over all observables but ``axis``: (..., n_axis_bins)."""
    shaped = per_bin.reshape(per_bin.shape[:-1] + binning.shape)
    keep = AXES.index(axis)
    others = tuple(per_bin.ndim - 1 + i for i in range(3) if i != keep)
    return shaped.sum(axis=others)


def poisson_interval(k, cl: float = 0.6827) -> tuple[np.ndarray, np.ndarray]:
    """Central (Garwood) confidence interval of a Poisson mean given ``k`` observed events."""
    k = np.asarray(k, dtype=np.float64)
    alpha = 1.0 - cl
    lower = np.where(k > 0, chi2.ppf(alpha / 2, 2 * k) / 2, 0.0)
    upper = chi2.ppf(1 - alpha / 2, 2 * (k + 1)) / 2
    return lower, upper


@dataclass(frozen=True)
class Bands:
    """Posterior-predictive expectation of one projection.

    ``mean``: posterior mean of the expected events per bin (= the mean of replicated
    counts); ``band68`` / ``band95``: (2, n) central credible intervals of the expected
    events; ``components``: name -> posterior mean expectation of each component.
    The data's own Poisson fluctuation is drawn on the data points, not in the bands
    (integer-valued count quantiles collapse to 0 in sparse bins).
    """

    mean: np.ndarray
    band68: np.ndarray
    band95: np.ndarray
    components: dict


def predictive_bands(components: dict, binning: Binning, axis: str) -> Bands:
    """Credible bands of the expected events projected on ``axis``."""
    projected = project(sum(components.values()), binning, axis)
    return Bands(
        mean=projected.mean(axis=0),
        band68=np.quantile(projected, [0.15865, 0.84135], axis=0),
        band95=np.quantile(projected, [0.02275, 0.97725], axis=0),
        components={k: project(v, binning, axis).mean(axis=0) for k, v in components.items()},
    )


def deviance(k, lam) -> np.ndarray:
    """Poisson deviance over the last axis (bins with lam = 0 must have k = 0 and add 0)."""
    k = np.asarray(k, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    safe = np.where(lam > 0, lam, 1.0)
    return 2.0 * np.sum(lam - k + xlogy(k, k) - xlogy(k, safe), axis=-1)


def deviance_check(counts, components: dict, rng) -> dict:
    """Observed and replicated deviances per draw, and the posterior-predictive p-value."""
    lam = sum(components.values())
    replicated = rng.poisson(lam)
    observed = deviance(np.broadcast_to(counts, lam.shape), lam)
    rep = deviance(replicated, lam)
    return {"observed": observed, "replicated": rep, "p_value": float(np.mean(rep >= observed))}
