"""The workshop's own fit, transcribed from the notebook (NumPy + SciPy only).

This is the independent reference the PyMC model is checked against, so it uses
none of the package's tables or components: it reweights every simulated event
(``weight_event``), sums them per bin (``get_expectation``), evaluates the notebook's
Poisson ``llh`` and minimises ``-llh`` with ``scipy.optimize.minimize`` from
x0 = (1, 6, 2.5).  The notebook's 400 boolean masks are replaced by one bin index
per event, which the caller passes in (:meth:`diffuse_fit.binned.binning.Binning.bin_index`,
the same index the PyMC model's tables are built from, so both fits see the same
bins).  It equals the notebook's masks except for values exactly on the outer edges
(60 TeV, 10 PeV, zenith pi), which the notebook leaves outside (``tests/test_binning.py``).
:func:`fit` drops the events outside every bin once before the minimisation instead of
reweighting them at every step: the same optimum bit for bit (tested), 2.8x faster on a
simulation with 3e6 events in the bins (8.4 s to 3.0 s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt
import scipy.optimize
from scipy.special import gammaln, xlogy

if TYPE_CHECKING:
    from diffuse_fit.io.events import EventTable

PARAMETERS = ("atmos_norm", "astro_norm", "astro_gamma")
X0 = (1.0, 6.0, 2.5)
BOUNDS = ((0.0, None), (0.0, None), (1.0, 4.0))


def weight_event(
    events: EventTable | Mapping[str, np.ndarray],
    atmos_norm: float,
    astro_norm: float,
    astro_gamma: float,
) -> np.ndarray:
    """Expected events of each simulated event (the notebook's ``weight_event``).

    ``atmos_norm * atmoWeight + astro_norm * astroWeight * (E/100 TeV)^-gamma / (E/100 TeV)^-2.5``
    with E the true neutrino energy (``primaryEnergy``, GeV).
    """
    e = events["primaryEnergy"] / 1.0e5
    return cast(
        np.ndarray,
        atmos_norm * events["atmoWeight"]
        + astro_norm * events["astroWeight"] * (e ** (-astro_gamma) / e ** (-2.5)),
    )


def get_expectation(bin_index: np.ndarray, weights: np.ndarray, n_bins: int) -> np.ndarray:
    """Expected events per bin: the sum of the weights of the events in each bin."""
    inside = bin_index >= 0
    return np.bincount(bin_index[inside], weights=weights[inside], minlength=n_bins)


def llh(data: np.ndarray, expectation: np.ndarray) -> float:
    """``sum_i k_i log(lam_i) - lam_i - lgamma(k_i + 1)``; 0 where k = lam = 0."""
    return cast(float, np.sum(xlogy(data, expectation) - expectation - gammaln(data + 1.0)))


@dataclass(frozen=True)
class ReferenceFit:
    """Result of :func:`fit`.

    Attributes
    ----------
    x : ndarray
        (atmos_norm, astro_norm, astro_gamma) where the optimizer stopped: the best fit
        if ``converged``, otherwise not to be used as one.
    neg_log_likelihood : float
        ``-llh`` at ``x``.
    result : scipy.optimize.OptimizeResult
    converged : bool
        Whether L-BFGS-B reported success.
    message : str
        The optimizer's message (with "did not converge" when it failed).
    """

    x: np.ndarray
    neg_log_likelihood: float
    result: scipy.optimize.OptimizeResult
    converged: bool
    message: str

    def as_dict(self) -> dict[str, float]:
        return dict(zip(PARAMETERS, map(float, self.x), strict=True))


def fit(
    data_counts: npt.ArrayLike,
    simulation: EventTable | Mapping[str, np.ndarray],
    sim_bin_index: npt.ArrayLike,
    n_bins: int,
    x0: Sequence[float] = X0,
) -> ReferenceFit:
    """Maximise the workshop likelihood over (atmos_norm, astro_norm, astro_gamma).

    L-BFGS-B within bounds (norms >= 0, 1 <= gamma <= 4) with the analytic gradient
    and tight tolerances, so the optimum is found to ~1e-8 relative.  Does not raise when
    the optimizer fails (e.g. one absurd weight of 1e300 makes its line search stop at
    the start): the result then has ``converged`` False and says why in ``message``.
    """
    data_counts = np.asarray(data_counts, dtype=np.float64)
    # Events outside the bins add to no bin: drop them once, not at every evaluation (the
    # same per-event weights, summed per bin in the same order: the same expectations).
    inside = np.asarray(sim_bin_index) >= 0
    index = np.asarray(sim_bin_index)[inside]
    events = {
        name: np.asarray(simulation[name])[inside]
        for name in ("primaryEnergy", "atmoWeight", "astroWeight")
    }
    log_e = np.log(events["primaryEnergy"] / 1.0e5)

    def per_bin(weights: np.ndarray) -> np.ndarray:  # get_expectation on events that are all inside
        return np.bincount(index, weights=weights, minlength=n_bins)

    atmo_per_bin = per_bin(events["atmoWeight"])

    def neg_llh_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        atmos_norm, astro_norm, gamma = x
        lam = per_bin(weight_event(events, *x))
        # d llh / d theta = sum_b (k_b / lam_b - 1) d lam_b / d theta
        astro = weight_event(events, 0.0, 1.0, gamma)
        d_lam = (atmo_per_bin, per_bin(astro), astro_norm * per_bin(-log_e * astro))
        residual = np.divide(data_counts, lam, out=np.zeros_like(lam), where=lam > 0) - 1.0
        return -llh(data_counts, lam), -np.array([residual @ d for d in d_lam])

    result = scipy.optimize.minimize(
        neg_llh_and_grad,
        np.asarray(x0, dtype=np.float64),
        jac=True,
        method="L-BFGS-B",
        bounds=BOUNDS,
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000},
    )
    message = str(result.message).strip()
    if not result.success:
        message = (
            f"reference fit did not converge after {result.nit} iterations: "
            f"L-BFGS-B stopped with {message or 'no message'!r} "
            f"(max |gradient| {float(np.max(np.abs(result.jac))):.1e})"
        )
    return ReferenceFit(result.x, float(result.fun), result, bool(result.success), message)
