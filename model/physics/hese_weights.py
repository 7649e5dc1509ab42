"""The HESE 7.5-year release's weighting, and its conversion to the workshop format.

Expected events per simulated event (livetime ``T`` = 227708167.68 s):

* astrophysical: ``weightOverFluxOverLivetime * norm * 1e-18 / 6 * (E_true / 100 TeV)^-gamma * T``;
* conventional:  ``weightOverFluxOverLivetime * (pionFlux + kaonFlux)
  * conventionalSelfVetoCorrection * (E_true / 2020 GeV)^-dgamma * T``;
* prompt:        ``weightOverFluxOverLivetime * promptFlux * promptSelfVetoCorrection
  * (E_true / 7887 GeV)^-dgamma * T``;
* muons:         ``muonWeightOverLivetime * T``.

``weightOverFluxOverLivetime`` is per species: each simulated event is one neutrino of
its own ``primaryType``, and multiplying by that species' flux gives its expected
events.  The release's ``astro_norm`` is the six-neutrino flux (three flavours, nu and
nubar) at 100 TeV in units of 1e-18 GeV^-1 cm^-2 s^-1 sr^-1, so one species carries
``norm / 6`` -- the release's own ``weighter.flux_spl`` multiplies by ``1e-18 / 6``.
The release's fit also has nu/nubar-ratio, kaon/pion-ratio and cosmic-ray-slope nuisance
parameters (:data:`HESE_COMPONENTS_NUISANCE`, :mod:`diffuse_fit.physics.nuisance`) and
detector-systematics ones (DOM efficiency, hole ice, ice anisotropy: not available here).

:func:`to_workshop` turns a release (read by :mod:`diffuse_fit.io.hese_release`) into the
workshop's format (see its docstring for how ``astro_norm`` and the double cascades carry
over).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import cast

import numpy as np
import numpy.typing as npt

from diffuse_fit.io.events import EventTable, columns_digest
from diffuse_fit.physics.components import ASTROPHYSICAL, FlatComponent
from diffuse_fit.physics.constants import ASTRO_PIVOT_GEV, HESE_LIVETIME_S, REFERENCE_GAMMA
from diffuse_fit.physics.nuisance import conventional_with_nuisances, prompt_with_nuisances

Columns = EventTable | Mapping[str, np.ndarray]  # a simulation's fields -> arrays

LIVETIME_S = HESE_LIVETIME_S  # s, the release's livetime (its HESE_fit.py)
ASTRO_UNIT = 1.0e-18  # GeV^-1 cm^-2 s^-1 sr^-1, unit of the six-neutrino normalization
N_SPECIES = 6  # nue, numu, nutau and their antineutrinos
CONVENTIONAL_PIVOT_GEV = 2020.0  # the release's cosmic-ray slope pivots
PROMPT_PIVOT_GEV = 7887.0
DOUBLE_CASCADE_CHOICES = ("drop", "cascade")


# --------------------------------------------------------------------------- physics


def astrophysical_flux(
    energy: npt.ArrayLike, norm: float = 1.0, gamma: float = REFERENCE_GAMMA
) -> np.ndarray:
    """Astrophysical flux of ONE neutrino species, GeV^-1 cm^-2 s^-1 sr^-1.

    ``norm * 1e-18 / 6 * (energy / 100 TeV)^-gamma``: ``norm`` is the release's
    six-neutrino normalization (all flavours, nu + nubar, at 100 TeV) in units of
    1e-18 GeV^-1 cm^-2 s^-1 sr^-1; ``energy`` is the true neutrino energy in GeV.
    """
    tilt = (np.asarray(energy) / ASTRO_PIVOT_GEV) ** -gamma
    return cast(np.ndarray, norm * ASTRO_UNIT / N_SPECIES * tilt)


def astrophysical_expectation(
    sim: Columns, norm: float = 1.0, gamma: float = REFERENCE_GAMMA, livetime: float = LIVETIME_S
) -> np.ndarray:
    """Expected astrophysical events of each simulated event (dimensionless).

    ``weightOverFluxOverLivetime [GeV sr cm^2] * astrophysical_flux(primaryEnergy, norm,
    gamma) [GeV^-1 cm^-2 s^-1 sr^-1] * livetime [s]``.  The weight is per species (the
    event's own ``primaryType``), so the per-species flux ``norm / 6`` is the one to use.
    ``sim`` is any mapping of the release's fields to arrays.
    """
    return cast(
        np.ndarray,
        sim["weightOverFluxOverLivetime"]
        * astrophysical_flux(sim["primaryEnergy"], norm, gamma)
        * livetime,
    )


def conventional_expectation(
    sim: Columns, norm: float = 1.0, dgamma: float = 0.0, livetime: float = LIVETIME_S
) -> np.ndarray:
    """Expected conventional-atmospheric events of each simulated event.

    ``weightOverFluxOverLivetime [GeV sr cm^2] * (pionFlux + kaonFlux)
    [GeV^-1 cm^-2 s^-1 sr^-1] * conventionalSelfVetoCorrection * norm
    * (primaryEnergy / 2020 GeV)^-dgamma * livetime [s]``; ``dgamma`` is the release's
    cosmic-ray slope shift (0 nominal).
    """
    tilt = (sim["primaryEnergy"] / CONVENTIONAL_PIVOT_GEV) ** -dgamma
    return cast(
        np.ndarray,
        sim["weightOverFluxOverLivetime"]
        * (sim["pionFlux"] + sim["kaonFlux"])
        * sim["conventionalSelfVetoCorrection"]
        * (norm * tilt * livetime),
    )


def conventional_parts(sim: Columns, livetime: float = LIVETIME_S) -> tuple[np.ndarray, np.ndarray]:
    """Nominal conventional expected events of each simulated event from pion and from kaon
    decays: ``weightOverFluxOverLivetime * pionFlux (kaonFlux) * conventionalSelfVetoCorrection
    * livetime`` (their sum is :func:`conventional_expectation` at nominal)."""
    common = sim["weightOverFluxOverLivetime"] * sim["conventionalSelfVetoCorrection"] * livetime
    return common * sim["pionFlux"], common * sim["kaonFlux"]


def prompt_expectation(
    sim: Columns, norm: float = 1.0, dgamma: float = 0.0, livetime: float = LIVETIME_S
) -> np.ndarray:
    """Expected prompt-atmospheric events of each simulated event.

    ``weightOverFluxOverLivetime [GeV sr cm^2] * promptFlux [GeV^-1 cm^-2 s^-1 sr^-1]
    * promptSelfVetoCorrection * norm * (primaryEnergy / 7887 GeV)^-dgamma * livetime [s]``.
    """
    tilt = (sim["primaryEnergy"] / PROMPT_PIVOT_GEV) ** -dgamma
    return cast(
        np.ndarray,
        sim["weightOverFluxOverLivetime"]
        * sim["promptFlux"]
        * sim["promptSelfVetoCorrection"]
        * (norm * tilt * livetime),
    )


def muon_expectation(sim: Columns, norm: float = 1.0, livetime: float = LIVETIME_S) -> np.ndarray:
    """Expected atmospheric-muon events of each simulated event:
    ``norm * muonWeightOverLivetime [s^-1] * livetime [s]``."""
    return cast(np.ndarray, norm * sim["muonWeightOverLivetime"] * livetime)


# --------------------------------------------------------------------------- workshop format

CONVENTIONAL = FlatComponent("conventional", "conventionalWeight", "atmos_norm")
PROMPT = FlatComponent("prompt", "promptWeight", "prompt_norm")
MUON = FlatComponent("muon", "muonWeight", "muon_norm")
HESE_COMPONENTS_SPLIT = (CONVENTIONAL, PROMPT, MUON, ASTROPHYSICAL)
"""Components for a converted release with separate prompt and muon normalizations.

``atmos_norm`` then scales the conventional flux only (the release's ``conv_norm``);
with ``prompt_norm = muon_norm = atmos_norm`` the expectation equals the workshop model's
(``WORKSHOP_COMPONENTS``), whose ``atmos_norm`` scales ``atmoWeight`` = all three.
"""


HESE_COMPONENTS_NUISANCE = (
    conventional_with_nuisances(CONVENTIONAL_PIVOT_GEV),
    prompt_with_nuisances(PROMPT_PIVOT_GEV),
    MUON,
    ASTROPHYSICAL,
)
"""The release's components with its atmospheric nuisance parameters
(:mod:`diffuse_fit.physics.nuisance`): conventional (``atmos_norm``, ``cr_delta_gamma``,
``kpi_ratio``, ``nunubar_ratio``; fields ``pionWeight``, ``kaonWeight``, ``primaryType``),
prompt (``prompt_norm``, ``cr_delta_gamma``, ``nunubar_ratio``; ``promptWeight``), muons
(``muon_norm``) and the astrophysical power law.  At ``kpi_ratio = nunubar_ratio = 1``,
``cr_delta_gamma = 0`` it equals :data:`HESE_COMPONENTS_SPLIT`."""


def workshop_topology(morphology: npt.ArrayLike, double_cascades: str = "drop") -> np.ndarray:
    """Workshop topology codes from release morphologies (0 -> 0, 1 -> 1, 2 -> 2 or 0).

    ``"drop"`` keeps double cascades as code 2, which the workshop binning's topology
    codes (0, 1) leave outside the bins; ``"cascade"`` merges them into cascades (0).
    """
    if double_cascades not in DOUBLE_CASCADE_CHOICES:
        raise ValueError(
            f"double_cascades must be one of {DOUBLE_CASCADE_CHOICES}, not {double_cascades!r}"
        )
    morphology = np.asarray(morphology, dtype=np.float64)
    return np.where(morphology == 2, 2.0 if double_cascades == "drop" else 0.0, morphology)


def _length(table: EventTable) -> np.ndarray:
    """recoLength in m, 0 where the release has none (NaN)."""
    return np.nan_to_num(np.asarray(table["recoLength"], dtype=np.float64), nan=0.0)


def to_workshop(
    release_sim: EventTable, release_data: EventTable, double_cascades: str = "drop"
) -> tuple[EventTable, EventTable]:
    """The release as workshop-format ``(simulation, data)`` tables.

    ``energy`` = recoDepositedEnergy (GeV), ``zenith`` = recoZenith (rad), ``length`` =
    recoLength (m; the release's double-cascade observable; 0 where the release has none, NaN,
    which workshop JSON cannot hold: both lie outside its 10-1000 m cut), ``topology``
    from recoMorphology (:func:`workshop_topology`), ``primaryEnergy`` / ``primaryZenith``
    as in the release; ``atmoWeight`` = conventional + prompt + muon expectation at
    nominal (norms 1, dgamma 0), kept separately as ``conventionalWeight``,
    ``promptWeight`` and ``muonWeight`` (for :data:`HESE_COMPONENTS_SPLIT`), the
    conventional split by parent as ``pionWeight`` and ``kaonWeight`` (:func:`conventional_parts`)
    and the PDG ``primaryType`` (for :data:`HESE_COMPONENTS_NUISANCE`);
    ``astroWeight`` = astrophysical expectation at norm 1 and gamma 2.5.  So the
    workshop's ``astro_norm`` is the release's six-neutrino normalization at 100 TeV
    in units of 1e-18 GeV^-1 cm^-2 s^-1 sr^-1, and ``astro_gamma`` its spectral index.

    Double cascades: ``"drop"`` (topology 2, outside the workshop bins) or
    ``"cascade"`` (merged into cascades, whatever their length; the release's own fit
    bins them separately and keeps only those with recoLength in [10, 1000] m).
    """
    conventional = conventional_expectation(release_sim)
    pion, kaon = conventional_parts(release_sim)
    prompt = prompt_expectation(release_sim)
    muon = muon_expectation(release_sim)
    sim_columns = {
        "astroWeight": astrophysical_expectation(release_sim),
        "atmoWeight": conventional + prompt + muon,
        "energy": release_sim["recoDepositedEnergy"],
        "primaryEnergy": release_sim["primaryEnergy"],
        "primaryZenith": release_sim["primaryZenith"],
        "topology": workshop_topology(release_sim["recoMorphology"], double_cascades),
        "zenith": release_sim["recoZenith"],
        "length": _length(release_sim),
        "conventionalWeight": conventional,
        "promptWeight": prompt,
        "muonWeight": muon,
        "pionWeight": pion,
        "kaonWeight": kaon,
        "primaryType": release_sim["primaryType"],
    }
    data_columns = {
        "energy": release_data["recoDepositedEnergy"],
        "topology": workshop_topology(release_data["recoMorphology"], double_cascades),
        "zenith": release_data["recoZenith"],
        "length": _length(release_data),
    }
    common = {
        "double_cascades": double_cascades,
        "livetime_s": LIVETIME_S,
        "astro_norm": "six-neutrino flux at 100 TeV, 1e-18 GeV^-1 cm^-2 s^-1 sr^-1",
    }

    def converted(table: EventTable, columns: dict[str, np.ndarray]) -> EventTable:
        origin = {"source": table.source, "sha256": table.sha256}
        origin.update(table.meta.get("hese_release", {}))
        meta = {"hese_release": {**origin, **common}}
        sha = hashlib.sha256(f"{table.sha256} to_workshop {double_cascades}".encode())
        return EventTable(
            columns,
            table.source,
            sha.hexdigest(),
            meta,
            loaded_from=f"{table.loaded_from}, converted to the workshop format",
            columns_sha256=columns_digest(columns),
            clamped=dict(table.clamped),
        )

    return converted(release_sim, sim_columns), converted(release_data, data_columns)
