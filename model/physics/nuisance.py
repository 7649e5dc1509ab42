"""Atmospheric components with the HESE release's nuisance parameters (NumPy, exact per event).

The release (``weighter.py``, ``Weighter.flux_conv`` / ``flux_prompt`` /
``weight_nunubar_ratio``) reweights each simulated atmospheric neutrino by

* conventional: ``conv_norm * (E / 2020 GeV)^-cr_delta_gamma * (pionFlux + kpi_ratio * kaonFlux)
  * r``;
* prompt: ``prompt_norm * (E / 7887 GeV)^-cr_delta_gamma * promptFlux * r``;

with ``r = nunubar_ratio`` for neutrinos (``primaryType > 0``) and ``2 - nunubar_ratio`` for
antineutrinos (``primaryType < 0``), ``E`` the true neutrino energy.  Here a component is a
sum of :class:`Term` s, each ``(product of affine factors of parameters) * w_i *
(E_i / pivot)^-(x - x0)`` over the events of one sign, so that its per-bin sum is a sum of
one-parameter smooth tables times polynomials in the linear parameters (see
:mod:`diffuse_fit.binned.nuisance_tables`).  In this package the conventional normalization keeps
the name ``atmos_norm`` (the release's ``conv_norm``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from diffuse_fit.io.events import EventTable

CR_DELTA_GAMMA_RANGE = (-0.55, 0.45)
"""Range of the cosmic-ray slope shift the tables cover: the release's prior mean -0.05
+- 10 of its sigmas (0.05); the release itself leaves it unbounded."""
SIGN_FIELD = "primaryType"  # PDG code: > 0 neutrino, < 0 antineutrino

Factor = tuple[str, float, float]  # (parameter p_k, a_k, b_k) of a factor a_k + b_k * p_k
Params = Mapping[str, Any]  # parameter name -> value (a float, or an array of draws)


@dataclass(frozen=True)
class Term:
    """``prod_k (a_k + b_k * params[p_k]) * w_i * exp(-(params[index] - reference_index)
    * ln(E_i / pivot))`` for the events of ``sign`` (+1: ``primaryType > 0``, -1: ``< 0``,
    0: all events).

    ``factors``: ``((p_k, a_k, b_k), ...)``; ``weight_field``: expected events at the
    nominal parameters; ``index`` None for no spectral tilt; ``energy_field`` the true
    energy, GeV; ``pivot`` GeV.
    """

    weight_field: str
    factors: tuple[Factor, ...] = ()
    sign: int = 0
    index: str | None = None
    energy_field: str = "primaryEnergy"
    pivot: float = 1.0
    reference_index: float = 0.0
    index_range: tuple[float, float] = (0.0, 0.0)

    def coefficient(self, params: Params) -> float:
        """The product of the affine factors at ``params``."""
        return cast(float, math.prod(a + b * params[p] for p, a, b in self.factors))

    def log_energy(self, events: EventTable) -> np.ndarray:
        """``ln(E_true / pivot)`` of each event."""
        return np.log(events[self.energy_field] / self.pivot)

    def unit_weights(self, events: EventTable) -> np.ndarray:
        """``w_i`` on the events of the term's sign, 0 on the others."""
        w = np.asarray(events[self.weight_field], dtype=np.float64)
        if self.sign == 0:
            return w
        code = np.asarray(events[SIGN_FIELD])
        return np.where(np.sign(code) == self.sign, w, 0.0)

    def event_weights(self, events: EventTable, params: Params) -> np.ndarray:
        """The term's expected events of each simulated event at ``params``."""
        w = self.coefficient(params) * self.unit_weights(events)
        if self.index is None:
            return w
        tilt = np.exp(-(params[self.index] - self.reference_index) * self.log_energy(events))
        return cast(np.ndarray, w * tilt)


@dataclass(frozen=True)
class NuisanceComponent:
    """Expected events ``norm * sum_t term_t``; ``supports``: allowed range of the terms'
    linear parameters (the indices' ranges come from the terms)."""

    name: str
    norm: str
    terms: tuple[Term, ...]
    linear_supports: tuple[tuple[str, tuple[float, float]], ...] = ()  # ((name, (low, high)), ...)

    @property
    def parameters(self) -> tuple[str, ...]:
        names = [self.norm]
        for t in self.terms:
            for p in [f[0] for f in t.factors] + ([t.index] if t.index else []):
                if p not in names:
                    names.append(p)
        return tuple(names)

    @property
    def weight_fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.weight_field for t in self.terms))

    @property
    def input_fields(self) -> tuple[str, ...]:
        """Every simulation field the component reads."""
        fields = [*self.weight_fields, *(t.energy_field for t in self.terms if t.index)]
        if any(t.sign for t in self.terms):
            fields.append(SIGN_FIELD)
        return tuple(dict.fromkeys(fields))

    def supports(self) -> dict[str, tuple[float, float]]:
        """Allowed range of each parameter (norm [0, inf), indices their tabulated range)."""
        out = {self.norm: (0.0, math.inf), **dict(self.linear_supports)}
        for t in self.terms:
            if t.index:
                out[t.index] = cast("tuple[float, float]", tuple(map(float, t.index_range)))
        return out

    def event_weights(self, events: EventTable, params: Params) -> np.ndarray:
        """Expected events of each simulated event at ``params`` (the per-event formula)."""
        total = params[self.norm] * sum(t.event_weights(events, params) for t in self.terms)
        return cast(np.ndarray, total)


def _ratio_factor(sign: int) -> Factor:
    """The release's nu/nubar weight: ``r`` for neutrinos, ``2 - r`` for antineutrinos."""
    return ("nunubar_ratio", 0.0, 1.0) if sign > 0 else ("nunubar_ratio", 2.0, -1.0)


def _tilt(pivot: float) -> dict[str, Any]:
    return {
        "index": "cr_delta_gamma",
        "pivot": pivot,
        "reference_index": 0.0,
        "index_range": CR_DELTA_GAMMA_RANGE,
    }


def conventional_with_nuisances(pivot: float = 2020.0) -> NuisanceComponent:
    """Conventional atmospheric neutrinos: ``atmos_norm * (E / 2020 GeV)^-cr_delta_gamma *
    (pionWeight + kpi_ratio * kaonWeight) * r(nunubar_ratio)`` (release ``weighter.py``)."""
    terms = tuple(
        Term(field, (*extra, _ratio_factor(sign)), sign, **_tilt(pivot))
        for field, extra in (("pionWeight", ()), ("kaonWeight", (("kpi_ratio", 0.0, 1.0),)))
        for sign in (1, -1)
    )
    supports = (("kpi_ratio", (0.0, math.inf)), ("nunubar_ratio", (0.0, 2.0)))
    return NuisanceComponent("conventional", "atmos_norm", terms, supports)


def prompt_with_nuisances(pivot: float = 7887.0) -> NuisanceComponent:
    """Prompt atmospheric neutrinos: ``prompt_norm * (E / 7887 GeV)^-cr_delta_gamma *
    promptWeight * r(nunubar_ratio)`` (release ``weighter.py``)."""
    terms = tuple(Term("promptWeight", (_ratio_factor(s),), s, **_tilt(pivot)) for s in (1, -1))
    return NuisanceComponent("prompt", "prompt_norm", terms, (("nunubar_ratio", (0.0, 2.0)),))
