"""Flux components of the expectation and their per-event reweighting (NumPy, exact).

A component turns each simulated event's nominal weight (expected events for the
livetime at the simulation's reference flux) into its weight at given parameters:

* :class:`FlatComponent` -- ``norm * w`` (e.g. conventional + prompt atmospheric);
* :class:`PowerLawComponent` -- ``norm * w * (E_true / pivot)^-(gamma - reference_index)``,
  a power law re-tilted from the simulation's reference index (astrophysical).

The spectral reweighting uses the TRUE neutrino energy; binning uses reconstructed
quantities.  New components (prompt, atmospheric muons) are new entries in a tuple
of components; new parameters are new names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from diffuse_fit.io.events import EventTable

Params = Mapping[str, Any]  # parameter name -> value (a float, or an array of draws)


@dataclass(frozen=True)
class FlatComponent:
    """Expected events ``norm * weight``; the weight field is expected events at norm 1."""

    name: str
    weight_field: str
    norm: str  # parameter name of the normalization (dimensionless)

    @property
    def parameters(self) -> tuple[str, ...]:
        return (self.norm,)

    def unit_weights(self, events: EventTable) -> np.ndarray:
        """Expected events of each simulated event at norm 1."""
        return events[self.weight_field]

    def event_weights(self, events: EventTable, params: Params) -> np.ndarray:
        """Expected events of each simulated event at ``params``."""
        return cast(np.ndarray, params[self.norm] * self.unit_weights(events))


@dataclass(frozen=True)
class SegmentComponent(FlatComponent):
    """The astrophysical flux in one segment of true neutrino energy, ``[low, high)`` GeV:
    ``norm * 1e-18 (E / pivot)^-index`` GeV^-1 cm^-2 s^-1 sr^-1 (all flavours, nu + nubar;
    ``index`` 2: flat in ``E^2 dPhi/dE``) inside it, 0 outside.  Linear in its norm, so its
    table is an exact per-bin sum: the unit weight of a simulated event is its reference
    weight ``w`` (``E^-reference_index`` at norm 1) times ``(E / pivot)^-(index -
    reference_index)`` inside the segment.  The norm has the units of ``astro_norm``: with one
    segment over every simulated energy and index 2, it is the single power law at gamma 2."""

    energy_field: str = "primaryEnergy"
    low: float = 6.0e4
    high: float = 1.0e7
    pivot: float = 1.0e5
    reference_index: float = 2.5
    index: float = 2.0

    def unit_weights(self, events: EventTable) -> np.ndarray:
        energy = np.asarray(events[self.energy_field], dtype=np.float64)
        inside = (energy >= self.low) & (energy < self.high)
        tilt = (energy / self.pivot) ** -(self.index - self.reference_index)
        return np.where(inside, events[self.weight_field] * tilt, 0.0)


@dataclass(frozen=True)
class PowerLawComponent:
    """Expected events ``norm * w * (E_true / pivot)^-(index - reference_index)``.

    ``weight_field`` is the expected events at ``norm = 1`` and ``index =
    reference_index``; ``energy_field`` is the true neutrino energy in GeV;
    ``pivot`` is in GeV; the spectral index must stay inside ``index_range``
    (the range the per-bin tables are built for).
    """

    name: str
    weight_field: str
    energy_field: str
    norm: str
    index: str
    pivot: float = 1.0e5  # GeV
    reference_index: float = 2.5
    index_range: tuple[float, float] = (1.0, 4.0)

    @property
    def parameters(self) -> tuple[str, ...]:
        return (self.norm, self.index)

    def log_energy(self, events: EventTable) -> np.ndarray:
        """ln(E_true / pivot) of each event."""
        return np.log(events[self.energy_field] / self.pivot)

    def event_weights(self, events: EventTable, params: Params) -> np.ndarray:
        """Expected events of each simulated event at ``params``."""
        tilt = np.exp(-(params[self.index] - self.reference_index) * self.log_energy(events))
        return cast(np.ndarray, params[self.norm] * events[self.weight_field] * tilt)


ATMOSPHERIC = FlatComponent("atmospheric", "atmoWeight", "atmos_norm")
ASTROPHYSICAL = PowerLawComponent(
    "astrophysical", "astroWeight", "primaryEnergy", "astro_norm", "astro_gamma"
)
WORKSHOP_COMPONENTS = (ATMOSPHERIC, ASTROPHYSICAL)


def parameter_names(components: Iterable[Any]) -> tuple[str, ...]:
    """Parameter names of ``components``, each once, in order of appearance."""
    names: list[str] = []
    for component in components:
        names += [p for p in component.parameters if p not in names]
    return tuple(names)


def parameter_supports(components: Sequence[Any]) -> dict[str, tuple[float, float]]:
    """Allowed range of each parameter: norms [0, inf), spectral shape parameters the
    tabulated range."""
    supports = {}
    for c in components:
        supports[c.norm] = (0.0, math.inf)
        if hasattr(c, "supports"):  # diffuse_fit.physics.nuisance.NuisanceComponent
            supports.update(c.supports())
        elif isinstance(c, PowerLawComponent):
            supports[c.index] = cast("tuple[float, float]", tuple(map(float, c.index_range)))
        elif not isinstance(c, FlatComponent):  # diffuse_fit.physics.spectra.SpectralComponent
            for name, interval in zip(c.shape, c.shape_ranges, strict=True):
                supports[name] = cast("tuple[float, float]", tuple(map(float, interval)))
    return {name: supports[name] for name in parameter_names(components)}


def weight_fields(component: Any) -> tuple[str, ...]:
    """The simulation fields holding ``component``'s nominal weights."""
    if hasattr(component, "weight_fields"):
        return cast("tuple[str, ...]", component.weight_fields)
    return (component.weight_field,)


def input_fields(component: Any) -> tuple[str, ...]:
    """Every simulation field ``component`` reads (weights, true energy, particle type)."""
    if hasattr(component, "input_fields"):
        return cast("tuple[str, ...]", component.input_fields)
    return (
        component.weight_field,
        *([component.energy_field] if hasattr(component, "energy_field") else []),
    )


def event_weights(
    events: EventTable | Mapping[str, np.ndarray], components: Iterable[Any], params: Params
) -> np.ndarray:
    """Total expected events of each simulated event at ``params`` (sum over components);
    ``events``: an :class:`EventTable` or its columns."""
    return cast(np.ndarray, sum(c.event_weights(events, params) for c in components))
