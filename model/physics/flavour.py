"""The astrophysical flavour composition at Earth: the fractions ``f_e``, ``f_mu``, ``f_tau``.

``--astro-model flavour`` is the single power law with free flavour fractions:

    dPhi/dE = astro_norm * 1e-18 (E / 100 TeV)^-gamma * 3 f_a   per flavour a (nu + nubar),

``f_tau = 1 - f_e - f_mu`` (GeV^-1 cm^-2 s^-1 sr^-1; at ``f_a = 1/3`` it is today's all-flavour
single power law ``astro_norm``, split equally).  A simulated event's nominal astrophysical
weight ``w_i`` is its flavour's share of the equal-fractions flux, so its weight is ``3 f_a(i)``
times the single power law's; the flavour is read from the simulation's ``primaryType`` (PDG
code, +-12 nu_e, +-14 nu_mu, +-16 nu_tau: the HESE release's field, optional in workshop files).
The expectation is linear in the fractions:

    lam_b = astro_norm * 3 (f_e T_e,b(gamma) + f_mu T_mu,b(gamma) + f_tau T_tau,b(gamma)),

``T_a,b`` the power law's per-bin table of flavour ``a``'s events
(:mod:`diffuse_fit.binned.flavour_tables`).

Source expectations at Earth: a source flavour ratio ``s`` arrives as ``P s`` after
oscillations averaged over astrophysical baselines, ``P_ab = sum_i |U_ai|^2 |U_bi|^2``, with the
PMNS matrix of :data:`MIXING` (NuFIT 5.2, 2022, normal ordering with Super-Kamiokande's
atmospheric data: www.nu-fit.org).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from diffuse_fit.io.events import EventTable
from diffuse_fit.io.spectrum_names import FRACTIONS
from diffuse_fit.physics.components import PowerLawComponent

FLAVOUR_FIELD = "primaryType"  # PDG code of the simulated neutrino
FLAVOURS = ("e", "mu", "tau")
PDG_CODES = {12: 0, 14: 1, 16: 2}  # |PDG code| -> index into FLAVOURS

MIXING = {
    "theta12_deg": 33.41,
    "theta23_deg": 42.2,
    "theta13_deg": 8.58,
    "delta_cp_deg": 232.0,
}
"""The mixing angles and CP phase of the source expectations (NuFIT 5.2, normal ordering,
with SK atmospheric data; degrees)."""

WILKS_2DOF = {level: -2.0 * math.log(1.0 - level) for level in (0.6827, 0.9545)}
"""The profile-likelihood regions of the pair (f_e, f_mu): ``ts <= -2 ln(1 - level)``, the
chi-square quantile of 2 degrees of freedom (Wilks): 2.30 (68.27%) and 6.18 (95.45%)."""

SOURCES = {
    "pion decay (1:2:0)": (1.0, 2.0, 0.0),
    "muon-damped (0:1:0)": (0.0, 1.0, 0.0),
    "neutron decay (1:0:0)": (1.0, 0.0, 0.0),
}
"""Flavour ratios at the source (nu_e : nu_mu : nu_tau) of the textbook production mechanisms."""


def dirichlet_terms(
    alpha: tuple[float, float, float], f_e: float, f_mu: float, held: str | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """The Dirichlet(``alpha``) prior of the fractions as the PyMC model builds it
    (:meth:`diffuse_fit.inference.priors.Prior.build`): its log-density in ``(f_e, f_mu)``, its
    gradient (2,) and Hessian (2, 2) there.  With ``held`` (``"f_e"`` or ``"f_mu"``, a fraction
    held fixed by ``--fix``) the other is the conditional, the Beta of its share of ``1 -
    held``; its entries for the held fraction are 0.  Outside the simplex ``-inf``.

    Both fitted: ``log Gamma(sum alpha) - sum log Gamma(alpha_a) + sum (alpha_a - 1) log f_a``;
    ``f_mu`` held: ``(alpha_e - 1) log f_e + (alpha_tau - 1) log f_tau - (alpha_e + alpha_tau - 1)
    log(1 - f_mu) - log B(alpha_e, alpha_tau)`` (and the same for ``f_e`` held)."""
    a = np.asarray(alpha, dtype=np.float64)
    f = np.array([f_e, f_mu, 1.0 - f_e - f_mu])
    f[(f < 0.0) & (f > -1e-12)] = 0.0  # an edge's point, rounded (0.3 + 0.7 > 1)
    grad, hess = np.zeros(2), np.zeros((2, 2))
    if np.any(f < 0.0):
        return -math.inf, grad, hess
    fitted = [k for k, name in enumerate(FRACTIONS) if name != held]
    terms = [*fitted, 2]  # the fitted fractions and f_tau
    with np.errstate(divide="ignore"):
        logs = np.where(a == 1.0, 0.0, (a - 1.0) * np.log(f))
    log_p = float(sum(logs[k] for k in terms))
    if held is None:
        log_p += math.lgamma(float(a.sum())) - sum(math.lgamma(float(x)) for x in a)
    else:
        rest = 1.0 - f[1 - fitted[0]]
        top = float(a[fitted[0]] + a[2])
        log_p -= (top - 1.0) * math.log(rest) + (
            math.lgamma(float(a[fitted[0]])) + math.lgamma(float(a[2])) - math.lgamma(top)
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        tau_1 = (a[2] - 1.0) / f[2] if a[2] != 1.0 else 0.0
        tau_2 = (a[2] - 1.0) / f[2] ** 2 if a[2] != 1.0 else 0.0
        for k in fitted:
            own_1 = (a[k] - 1.0) / f[k] if a[k] != 1.0 else 0.0
            own_2 = (a[k] - 1.0) / f[k] ** 2 if a[k] != 1.0 else 0.0
            grad[k] = own_1 - tau_1
            hess[k, k] = -own_2 - tau_2
        if held is None:
            hess[0, 1] = hess[1, 0] = -tau_2
    return log_p, grad, hess


def outside_simplex(values: Mapping[str, float]) -> bool:
    """Whether the fractions among ``values`` add up to more than 1 (no composition)."""
    return sum(float(values[n]) for n in FRACTIONS if n in values) > 1.0 + 1e-12


def pmns(mixing: Mapping[str, float] = MIXING) -> np.ndarray:
    """The PMNS matrix ``U`` (3 x 3, complex; rows e, mu, tau; columns mass states 1-3) in the
    standard parametrisation."""
    t12, t23, t13, d = (
        math.radians(mixing[k])
        for k in ("theta12_deg", "theta23_deg", "theta13_deg", "delta_cp_deg")
    )
    s12, c12, s23, c23, s13, c13 = (
        math.sin(t12),
        math.cos(t12),
        math.sin(t23),
        math.cos(t23),
        math.sin(t13),
        math.cos(t13),
    )
    phase = complex(math.cos(d), math.sin(d))
    return np.array(
        [
            [c12 * c13, s12 * c13, s13 / phase],
            [-s12 * c23 - c12 * s23 * s13 * phase, c12 * c23 - s12 * s23 * s13 * phase, s23 * c13],
            [s12 * s23 - c12 * c23 * s13 * phase, -c12 * s23 - s12 * c23 * s13 * phase, c23 * c13],
        ]
    )


def averaged_transition(mixing: Mapping[str, float] = MIXING) -> np.ndarray:
    """``P_ab = sum_i |U_ai|^2 |U_bi|^2``: the probability that a nu_b arrives as a nu_a
    over astrophysical baselines (oscillations averaged out); rows sum to 1."""
    u2 = np.abs(pmns(mixing)) ** 2
    return cast(np.ndarray, u2 @ u2.T)


def at_earth(
    source: tuple[float, float, float], mixing: Mapping[str, float] = MIXING
) -> np.ndarray:
    """The flavour fractions at Earth (f_e, f_mu, f_tau; sum 1) of a source ratio ``source``.

    >>> np.round(at_earth((1.0, 2.0, 0.0)), 2)
    array([0.33, 0.34, 0.33])
    """
    s = np.asarray(source, dtype=np.float64)
    return averaged_transition(mixing) @ (s / s.sum())


def flavour_index(
    codes: np.ndarray, source: str = "<simulation>", weights: np.ndarray | None = None
) -> np.ndarray:
    """The flavour (0 e, 1 mu, 2 tau) of each PDG code, -1 for other particles;
    :class:`ValueError` naming the first event with a non-zero ``weights`` (default: every
    event) whose code is not a neutrino's."""
    magnitude = np.abs(np.asarray(codes, dtype=np.float64))
    index = np.full(magnitude.shape, -1, dtype=np.int64)
    for code, i in PDG_CODES.items():
        index[magnitude == code] = i
    weighted = np.ones(index.shape, dtype=bool) if weights is None else np.asarray(weights) != 0
    bad = np.flatnonzero((index < 0) & weighted)
    if bad.size:
        raise ValueError(
            f"{source}: {FLAVOUR_FIELD} of event {int(bad[0])} is {codes[bad[0]]!r}, not a "
            "neutrino's PDG code (+-12, +-14, +-16), for an event with an astrophysical weight"
        )
    return index


@dataclass(frozen=True)
class FlavourPowerLaw:
    """The astrophysical single power law with free flavour fractions (module doc):
    expected events ``norm * w * (E / pivot)^-(index - reference_index) * 3 f_a`` of an
    event of flavour ``a``; ``fractions`` names ``f_e`` and ``f_mu`` (``f_tau = 1 - f_e -
    f_mu``)."""

    name: str
    weight_field: str
    energy_field: str
    norm: str
    index: str
    flavour_field: str = FLAVOUR_FIELD
    fractions: tuple[str, str] = FRACTIONS
    pivot: float = 1.0e5  # GeV
    reference_index: float = 2.5
    index_range: tuple[float, float] = (1.0, 4.0)

    @classmethod
    def of(cls, power_law: Any) -> FlavourPowerLaw:
        """The flavoured twin of a :class:`diffuse_fit.physics.components.PowerLawComponent`."""
        return cls(
            power_law.name,
            power_law.weight_field,
            power_law.energy_field,
            power_law.norm,
            power_law.index,
            pivot=power_law.pivot,
            reference_index=power_law.reference_index,
            index_range=power_law.index_range,
        )

    @property
    def parameters(self) -> tuple[str, ...]:
        return (self.norm, self.index, *self.fractions)

    @property
    def all_flavours(self) -> PowerLawComponent:
        """The single power law of the flux summed over flavours (the fractions drop out)."""
        return PowerLawComponent(
            self.name,
            self.weight_field,
            self.energy_field,
            self.norm,
            self.index,
            self.pivot,
            self.reference_index,
            self.index_range,
        )

    @property
    def input_fields(self) -> tuple[str, ...]:
        return (self.weight_field, self.energy_field, self.flavour_field)

    def supports(self) -> dict[str, tuple[float, float]]:
        """The index's tabulated range; each fraction [0, 1] (their sum at most 1)."""
        return {
            self.index: (float(self.index_range[0]), float(self.index_range[1])),
            **{f: (0.0, 1.0) for f in self.fractions},
        }

    def log_energy(self, events: EventTable | Mapping[str, np.ndarray]) -> np.ndarray:
        """ln(E_true / pivot) of each event."""
        return np.log(np.asarray(events[self.energy_field]) / self.pivot)

    def flavours(self, events: EventTable | Mapping[str, np.ndarray]) -> np.ndarray:
        """The flavour index (0 e, 1 mu, 2 tau; -1 another particle) of each event;
        :class:`ValueError` for an event with an astrophysical weight and no neutrino flavour."""
        return flavour_index(
            np.asarray(events[self.flavour_field]),
            getattr(events, "source", ""),
            np.asarray(events[self.weight_field]),
        )

    def event_weights(
        self, events: EventTable | Mapping[str, Any], params: Mapping[str, Any]
    ) -> np.ndarray:
        """Expected events of each simulated event at ``params``."""
        f_e, f_mu = (params[f] for f in self.fractions)
        flavour = self.flavours(events)
        share = np.select([flavour == 0, flavour == 1], [f_e, f_mu], 1.0 - f_e - f_mu)
        tilt = np.exp(-(params[self.index] - self.reference_index) * self.log_energy(events))
        weights = params[self.norm] * np.asarray(events[self.weight_field]) * tilt
        return cast(np.ndarray, 3.0 * weights * share)
