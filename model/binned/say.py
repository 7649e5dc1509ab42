"""The SAY likelihood (NumPy): Poisson counts with a finite simulation, and its exact derivatives.

Argüelles, Schneider, Yuan, "A binned likelihood for stochastic models", JHEP 06 (2019) 030,
arXiv:1901.04645 (their L_Eff).  Per bin, with ``mu`` the sum of the simulated events'
weights and ``s2`` the sum of their squares (expected events, expected events squared),
both at the parameters, and ``k`` the observed events:

    alpha = mu^2 / s2 + 1,   beta = mu / s2,
    ln L_b = alpha ln(beta) + lnGamma(k + alpha) - lnGamma(k + 1)
             - (k + alpha) ln(1 + beta) - lnGamma(alpha);

the plain Poisson ``k ln mu - mu - lnGamma(k + 1)`` where ``s2 = 0`` (a bin with ``mu = 0``
adds 0 for ``k = 0``, -inf for ``k > 0``).  As ``s2 -> 0`` it tends to the Poisson term.
It is evaluated as ``-alpha ln(1 + 1/beta) - k ln(1 + beta) + lnGamma(k + alpha) -
lnGamma(alpha) - lnGamma(k + 1)`` (the same value; log1p avoids cancelling large logs);
``lnGamma(k + alpha) - lnGamma(alpha)`` still loses about ``1e-16 alpha ln(alpha)``
absolute per bin, ~1e-9 for a bin of 1e6 effective simulated events (``alpha`` is about
the number of simulated events in the bin, ``mu^2 / s2``).

:func:`say_loglike_derivatives` has the signature and return of
:func:`diffuse_fit.binned.curvature.loglike_derivatives`: the gradient and Hessian follow from the
partial derivatives in ``(alpha, beta)`` (digamma, trigamma) by the chain rule through
``(mu, s2)`` and the exact derivatives of the tables ``mu_b(theta)``
(:mod:`diffuse_fit.binned.templates`) and ``s2_b(theta)`` (:mod:`diffuse_fit.binned.variance`).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln, polygamma, psi, xlogy

from diffuse_fit.binned.curvature import expectation_derivatives
from diffuse_fit.binned.nuisance_tables import add_second
from diffuse_fit.binned.templates import Templates


def say_loglike(k: npt.ArrayLike, mu: npt.ArrayLike, s2: npt.ArrayLike) -> np.ndarray:
    """``ln L_b`` per bin (arrays broadcast): ``k`` observed events, ``mu`` expected events,
    ``s2`` sum of squared weights (expected events squared)."""
    k, mu, s2 = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (k, mu, s2)))
    positive = s2 > 0
    safe_s2 = np.where(positive, s2, 1.0)
    safe_mu = np.where(positive, mu, 1.0)
    alpha = safe_mu**2 / safe_s2 + 1.0
    beta = safe_mu / safe_s2
    with np.errstate(divide="ignore"):
        # alpha ln(beta) - (k + alpha) ln(1 + beta), without the cancellation of large logs
        say = (
            -alpha * np.log1p(1.0 / beta)
            - k * np.log1p(beta)
            + gammaln(k + alpha)
            - gammaln(alpha)
            - gammaln(k + 1.0)
        )
        poisson = np.where(mu > 0, xlogy(k, mu), np.where(k > 0, -np.inf, 0.0))
    return cast(np.ndarray, np.where(positive, say, poisson - mu - gammaln(k + 1.0)))


def say_partials(
    k: npt.ArrayLike, mu: npt.ArrayLike, s2: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``ln L_b`` and its first and second partial derivatives in ``(mu, s2)`` per bin:
    ``(lnL, l_mu, l_s2, l_mu_mu, l_mu_s2, l_s2_s2)``.  Where ``s2 = 0``: the Poisson
    derivatives in ``mu`` and 0 for those in ``s2`` (there every weight of the bin is 0,
    so ``s2``'s first derivatives vanish too).  (Each common subexpression is computed once;
    where every ``s2 > 0`` the Poisson branch is skipped: the same values.)"""
    k, mu, s2 = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (k, mu, s2)))
    positive = s2 > 0
    everywhere = bool(positive.all())
    s = s2 if everywhere else np.where(positive, s2, 1.0)
    m = mu if everywhere else np.where(positive, mu, 1.0)
    m_sq, s_sq, s_cube, two_m = m**2, s**2, s**3, 2.0 * m
    a, b = m_sq / s + 1.0, m / s
    k_a, one_b, log1p_b = k + a, 1.0 + b, np.log1p(b)
    # partials in (alpha, beta)
    la = np.log(b) + psi(k_a) - log1p_b - psi(a)
    lb = a / b - k_a / one_b
    laa = np.zeros_like(a)  # trigamma(k + a) - trigamma(a): 0 where k = 0 (most bins)
    some = k != 0
    laa[some] = polygamma(1, k_a[some]) - polygamma(1, a[some])
    lab = 1.0 / b - 1.0 / one_b
    lbb = -a / b**2 + k_a / one_b**2
    # alpha = m^2 / s + 1, beta = m / s
    a_m, a_s = two_m / s, -m_sq / s_sq
    a_mm, a_ms, a_ss = 2.0 / s, -2.0 * m / s_sq, 2.0 * m_sq / s_cube
    b_m, b_s = 1.0 / s, -m / s_sq
    b_ms, b_ss = -1.0 / s_sq, two_m / s_cube
    l_m = la * a_m + lb * b_m
    l_s = la * a_s + lb * b_s
    l_mm = laa * a_m**2 + 2.0 * lab * a_m * b_m + lbb * b_m**2 + la * a_mm
    l_ms = laa * a_m * a_s + lab * (a_m * b_s + a_s * b_m) + lbb * b_m * b_s + la * a_ms + lb * b_ms
    l_ss = laa * a_s**2 + 2.0 * lab * a_s * b_s + lbb * b_s**2 + la * a_ss + lb * b_ss
    if everywhere:  # say_loglike's SAY branch, from the same alpha, beta
        with np.errstate(divide="ignore"):
            lnl = (
                -a * np.log1p(1.0 / b) - k * log1p_b + gammaln(k_a) - gammaln(a) - gammaln(k + 1.0)
            )
        return lnl, l_m, l_s, l_mm, l_ms, l_ss
    with np.errstate(divide="ignore", invalid="ignore"):
        p_m = np.where(mu > 0, k / mu - 1.0, np.where(k > 0, np.inf, -1.0))
        p_mm = np.where(mu > 0, -k / mu**2, np.where(k > 0, -np.inf, 0.0))
    zero = np.zeros_like(mu)
    return (
        say_loglike(k, mu, s2),
        np.where(positive, l_m, p_m),
        np.where(positive, l_s, zero),
        np.where(positive, l_mm, p_mm),
        np.where(positive, l_ms, zero),
        np.where(positive, l_ss, zero),
    )


def say_loglike_derivatives(
    templates: Templates,
    counts: np.ndarray,
    params: dict[str, float],
    names: list[str],
    bins: np.ndarray,
    curvature: bool = True,
) -> tuple[float, np.ndarray, np.ndarray]:
    """``(ln L, gradient, Hessian)`` of the SAY log-likelihood in ``names`` (that order).

    As :func:`diffuse_fit.binned.curvature.loglike_derivatives`; ``templates.variance`` must hold
    the tables of squared weights (:meth:`diffuse_fit.binned.dataset.BinnedDataset.with_variance`).
    ``ln L`` includes ``-lnGamma(k + 1)``.

    Parameters
    ----------
    templates : Templates
        With ``variance`` set.
    counts : ndarray, (n_bins,)
        Observed events per bin of the whole binning.
    params : dict
        Parameter -> value (norms dimensionless, spectral indices).
    names : list of str
        Parameter order of the gradient and Hessian.
    bins : ndarray of int
        The likelihood's bins (where some component predicts events).
    curvature : bool
        As for :func:`diffuse_fit.binned.curvature.loglike_derivatives`.
    """
    if templates.variance is None:
        raise ValueError(
            "the SAY likelihood needs the tables of squared weights: build the dataset "
            "with bin_dataset(..., variance=True) or BinnedDataset.with_variance()"
        )
    position = {name: i for i, name in enumerate(names)}
    k = np.asarray(counts, dtype=np.float64)[bins]
    mu, j_mu, second_mu = expectation_derivatives(templates, params, position, bins, curvature)
    s2, j_s, second_s = templates.variance.derivatives(params, position, bins)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lnl, l_m, l_s, l_mm, l_ms, l_ss = say_partials(k, mu, s2)
        gradient = j_mu.T @ l_m + j_s.T @ l_s
        # J^T W J with J = [j_mu, j_s] and W the 2 x 2 blocks (l_mm, l_ms; l_ms, l_ss)
        towards_mu = j_mu * l_mm[:, None] + j_s * l_ms[:, None]
        towards_s = j_mu * l_ms[:, None] + j_s * l_ss[:, None]
        hessian = j_mu.T @ towards_mu + j_s.T @ towards_s
        add_second(hessian, second_mu, l_m)
        add_second(hessian, second_s, l_s)
    return float(np.sum(lnl)), gradient, hessian
