"""The embedded default: a seeded toy simulation and pseudo-data in the workshop's format.

The workshop's own files cannot be downloaded here, so this module makes look-alikes
(~1e5 simulated events, ~120 data events inside the workshop binning) in well under
a second, deterministically for a seed.

Physics (and its simplifications)
---------------------------------
* **Generation.** Neutrinos of the three flavours (nu + nubar together), charged- (CC,
  probability 0.7) or neutral-current (NC, 0.3) interactions, true energy log-uniform
  in [1e4, 1e8] GeV, direction isotropic.  Each event carries the inverse generation
  density so that ``weight = A_eff * flux * livetime / (N * p_gen)`` is its expected
  number of events.
* **Effective area** (all-sky average per flavour, nu/nubar mean): a HESE-like
  ``A_eff(E) = a * (E / 100 TeV)^0.45`` m^2 with ``a`` 6.0 (CC) / 1.9 (NC), times Earth
  absorption for up-going events ``exp(-(E / 60 TeV)^0.36 * |cos zenith|)``.  No
  per-flavour differences beyond the deposited energy, no Glashow resonance.
* **Astrophysical flux** per flavour (nu + nubar): ``astro_norm * 1e-18 / 3 *
  (E / 100 TeV)^-2.5`` GeV^-1 cm^-2 s^-1 sr^-1, i.e. ``astro_norm`` is the six-neutrino
  flux at 100 TeV in units of 1e-18 GeV^-1 cm^-2 s^-1 sr^-1, the convention of
  IceCube's HESE public release.  ``astroWeight`` is the expectation at norm 1,
  gamma 2.5.
* **Atmospheric flux**: conventional and prompt from nuflux's H3a_SIBYLL23C and
  H3a_SIBYLL23C_pr (:mod:`diffuse_fit.physics.atmospheric_flux`), each times a self-veto passing
  fraction for down-going events, ``P = 1 / (1 + E cos(zenith) / E_veto)`` with
  ``E_veto`` 20 TeV (conventional numu), 200 TeV (conventional nue/nutau) and
  100 TeV (prompt); 1 for up-going.  This is an illustrative form with the right
  trends (vetoed more at higher energy and more vertical; muon-neutrinos from pion
  and kaon decays most), not the Schoenert/Gaisser calculation.  ``atmoWeight`` =
  conventional + prompt (kept as extra fields ``conventionalWeight``,
  ``promptWeight``).  Atmospheric muons are not simulated.
* **Deposited energy**: fraction 1 (nue CC), ``y + 0.2 (1 - y)`` (numu CC, the muon
  leaves), ``y + 0.7 (1 - y)`` (nutau CC), ``y`` (NC), inelasticity ``y ~ Beta(0.8, 2.4)``
  (mean 0.25).  Reconstructed energy: log-normal smearing, 10% (cascades) / 25% (tracks).
* **Topology**: numu CC is a track with probability 0.9, everything else with 0.02;
  the rest are cascades (no double cascades).
* **Direction**: reconstructed direction scattered by a 2-D Gaussian of 10 degrees
  (cascades) / 1 degree (tracks) around the true one.
* **Selection**: reconstructed deposited energy above 30 TeV; events below the
  binning's 60 TeV stay in the files and are reported as outside the bins.
* **Pseudo-data**: an independent simulation (its own random stream) weighted to the
  truth; the count is Poisson, events drawn with probability proportional to weight.
  Truth defaults to the workshop's best fit (atmos_norm 1.0, astro_norm 6.7, gamma 3.0).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from diffuse_fit.io.events import EventTable, columns_digest
from diffuse_fit.io.spectrum_names import FLAVOUR
from diffuse_fit.physics.atmospheric_flux import FLAVOURS, flux, table_provenance
from diffuse_fit.physics.components import WORKSHOP_COMPONENTS, event_weights
from diffuse_fit.physics.constants import HESE_LIVETIME_S, TOY_SEED
from diffuse_fit.physics.spectra import with_astro_model

LIVETIME_S = HESE_LIVETIME_S  # s, the HESE 7.5-year livetime
E_RANGE_GEV = (1.0e4, 1.0e8)
CC_PROBABILITY = 0.7
AREA_M2 = {"CC": 6.0, "NC": 1.9}  # at 100 TeV
AREA_SLOPE = 0.45
ABSORPTION_E_GEV, ABSORPTION_SLOPE = 6.0e4, 0.36
VETO_E_GEV = {"conventional_numu": 2.0e4, "conventional_nue": 2.0e5, "conventional_nutau": 2.0e5}
PROMPT_VETO_E_GEV = 1.0e5
SELECTION_E_GEV = 3.0e4
ENERGY_RESOLUTION = {0: 0.10, 1: 0.25}  # log-normal sigma by topology
ANGULAR_RESOLUTION_DEG = {0: 10.0, 1: 1.0}
DEFAULT_SEED = TOY_SEED  # the workshop's date
DEFAULT_N_SIMULATED = 100_000
DEFAULT_TRUTH = {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0}
# The demonstration of `diffuse-fit compare` (README "Spectral models"): a pronounced break at
# 250 TeV, inside the binning's 60 TeV - 10 PeV, hard below and soft above.
BROKEN_TRUTH = {
    "atmos_norm": 1.0,
    "astro_norm": 8.0,
    "astro_gamma1": 1.5,
    "astro_gamma2": 3.5,
    "astro_log10_ebreak": 5.4,
}
# name -> (astrophysical spectrum of the pseudo-data, its truth); the simulation is shared
# The demonstration of `--astro-model flavour` (README "Flavour composition"): the default toy's
# spectrum, all of it nu_mu at Earth (0:1:0)
FLAVOUR_TRUTH = {**DEFAULT_TRUTH, "f_e": 0.0, "f_mu": 1.0}
TOY_DATASETS = {
    "default": ("spl", DEFAULT_TRUTH),
    "broken": ("broken", BROKEN_TRUTH),
    "flavour": ("flavour", FLAVOUR_TRUTH),
}
SIMULATION_FIELDS = (
    "astroWeight",
    "atmoWeight",
    "energy",
    "primaryEnergy",
    "primaryZenith",
    "topology",
    "zenith",
    "conventionalWeight",
    "promptWeight",
)


@dataclass(frozen=True)
class ToyDataset:
    """A generated simulation and pseudo-data with what made them."""

    simulation: EventTable
    data: EventTable
    truth: dict[str, Any]
    seed: int


def self_veto_passing_fraction(
    component: str, flavour: str, energy: np.ndarray, cos_zenith: np.ndarray
) -> np.ndarray:
    """Fraction of atmospheric neutrinos not vetoed by accompanying muons (see module doc)."""
    e_veto = PROMPT_VETO_E_GEV if component == "prompt" else VETO_E_GEV[f"{component}_{flavour}"]
    return cast(np.ndarray, 1.0 / (1.0 + np.clip(cos_zenith, 0.0, None) * energy / e_veto))


def effective_area_cm2(
    interaction: np.ndarray, energy: np.ndarray, cos_zenith: np.ndarray
) -> np.ndarray:
    """Toy all-sky effective area, cm^2, per flavour (nu/nubar mean); see module doc."""
    area = np.where(interaction == 1, AREA_M2["CC"], AREA_M2["NC"]) * 1e4
    earth = np.exp(
        -((energy / ABSORPTION_E_GEV) ** ABSORPTION_SLOPE) * np.clip(-cos_zenith, 0, None)
    )
    return cast(np.ndarray, area * (energy / 1e5) ** AREA_SLOPE * earth)


def deposited_energy(
    energy: np.ndarray, flavour: np.ndarray, cc: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Deposited energy, GeV: fraction 1 (nue CC), y + 0.2 (1 - y) (numu CC), y + 0.7 (1 - y)
    (nutau CC), y (NC); ``flavour`` indexes FLAVOURS, ``cc`` is a bool array."""
    kept = np.select(
        [cc & (flavour == 0), cc & (flavour == 1), cc & (flavour == 2)],
        [1.0, 0.2, 0.7],
        default=0.0,
    )
    return energy * (y + kept * (1.0 - y))


def smeared_zenith(
    rng: np.random.Generator, cos_zenith: np.ndarray, topology: np.ndarray
) -> np.ndarray:
    """Reconstructed zenith, radians: the true direction scattered by a 2-D Gaussian of
    ANGULAR_RESOLUTION_DEG (by topology) with a uniform azimuth around it."""
    n = np.size(cos_zenith)
    sigma = np.radians(
        np.where(topology == 1, ANGULAR_RESOLUTION_DEG[1], ANGULAR_RESOLUTION_DEG[0])
    )
    opening = sigma * np.sqrt(-2.0 * np.log1p(-rng.random(n)))  # Rayleigh: 2-D Gaussian
    azimuth = rng.uniform(0.0, 2.0 * np.pi, n)
    sin_zenith = np.sqrt(1.0 - cos_zenith**2)
    reco_cos = cos_zenith * np.cos(opening) + sin_zenith * np.sin(opening) * np.cos(azimuth)
    return cast(np.ndarray, np.arccos(np.clip(reco_cos, -1.0, 1.0)))


def _simulate(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Generate ``n`` interactions, reconstruct them, weight them; return selected columns."""
    lo, hi = E_RANGE_GEV
    energy = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    cos_zenith = rng.uniform(-1.0, 1.0, n)
    flavour = rng.integers(0, 3, n)  # index into FLAVOURS
    interaction = np.where(rng.random(n) < CC_PROBABILITY, 1, 2)  # 1 CC, 2 NC
    y = rng.beta(0.8, 2.4, n)
    cc = interaction == 1
    deposited = deposited_energy(energy, flavour, cc, y)
    track_probability = np.where(cc & (flavour == 1), 0.9, 0.02)
    topology = (rng.random(n) < track_probability).astype(np.float64)
    sigma_e = np.where(topology == 1, ENERGY_RESOLUTION[1], ENERGY_RESOLUTION[0])
    reco_energy = deposited * np.exp(sigma_e * rng.standard_normal(n))
    reco_zenith = smeared_zenith(rng, cos_zenith, topology)
    # Every random number is drawn; only the selected events are weighted from here on (the
    # same values, elementwise, with a third of the memory: this is a job's peak).
    selected = reco_energy > SELECTION_E_GEV
    energy, cos_zenith, flavour, interaction, cc, topology, reco_energy, reco_zenith = (
        cast(np.ndarray, a[selected])  # one type for all (their dtypes differ)
        for a in (energy, cos_zenith, flavour, interaction, cc, topology, reco_energy, reco_zenith)
    )
    del y, deposited, track_probability, sigma_e
    m_selected = energy.size

    # expected events per generated event: A_eff * flux * T / (n * p_gen)
    inverse_density = energy * np.log(hi / lo) * 4.0 * np.pi * 3.0
    inverse_density /= np.where(cc, CC_PROBABILITY, 1.0 - CC_PROBABILITY)
    exposure = (
        effective_area_cm2(interaction, energy, cos_zenith) * LIVETIME_S * inverse_density / n
    )
    astro = exposure * 1e-18 / 3.0 * (energy / 1e5) ** -2.5
    conventional, prompt = np.zeros(m_selected), np.zeros(m_selected)
    for i, name in enumerate(FLAVOURS):
        m = flavour == i
        args = (energy[m], cos_zenith[m])
        conventional[m] = flux("conventional", name, *args) * self_veto_passing_fraction(
            "conventional", name, *args
        )
        prompt[m] = flux("prompt", name, *args) * self_veto_passing_fraction("prompt", name, *args)
    return {
        "astroWeight": astro,
        "atmoWeight": exposure * (conventional + prompt),
        "energy": reco_energy,
        "primaryEnergy": energy,
        "primaryZenith": np.arccos(cos_zenith),
        "topology": topology,
        "zenith": reco_zenith,
        "conventionalWeight": exposure * conventional,
        "promptWeight": exposure * prompt,
        "primaryType": (12.0 + 2.0 * flavour).astype(np.float64),  # PDG: 12 nu_e, 14, 16
    }


def _digest(columns: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(columns):
        h.update(name.encode())
        h.update(np.ascontiguousarray(columns[name], dtype=np.float64).tobytes())
    return h.hexdigest()


def generate(
    seed: int = DEFAULT_SEED,
    n_simulated: int = DEFAULT_N_SIMULATED,
    truth: dict[str, float] | None = None,
    astro_model: str = "spl",
) -> ToyDataset:
    """Make the toy simulation and pseudo-data; the same seed gives the same bytes.

    Parameters
    ----------
    seed : int
        Seeds one ``np.random.SeedSequence``; simulation and data use independent streams.
    n_simulated : int
        Generated interactions for the simulation (before the 30 TeV selection).
    truth : dict, optional
        The pseudo-data's parameters: ``atmos_norm``, ``astro_norm`` and the shape
        parameters of ``astro_model`` (default: the workshop's best fit,
        :data:`DEFAULT_TRUTH`, for ``spl``; :data:`BROKEN_TRUTH` for ``broken``).
    astro_model : str
        The astrophysical spectrum of the pseudo-data (:mod:`diffuse_fit.physics.spectra`); the
        simulation is the same for every model.
    """
    if truth is None:
        truth = {m: t for m, t in TOY_DATASETS.values()}.get(astro_model)
    if truth is None:
        raise ValueError(f"no default truth for the astro model {astro_model!r}; give one")
    truth = dict(truth)
    sim_stream, data_stream, draw_stream = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    sim = _simulate(sim_stream, n_simulated)
    pool = _simulate(data_stream, n_simulated)
    if astro_model != FLAVOUR:  # the flavour column only where it is fitted (same bytes as before)
        del sim["primaryType"]
    components = with_astro_model(WORKSHOP_COMPONENTS, astro_model)
    weights = event_weights(pool, components, truth)  # the workshop's reweighting
    n_data = draw_stream.poisson(weights.sum())
    chosen = draw_stream.choice(weights.size, size=n_data, p=weights / weights.sum())
    data = {k: pool[k][chosen] for k in ("energy", "topology", "zenith")}
    meta = {
        "toy": {
            "generator": "diffuse_fit.physics.toy",
            "seed": seed,
            "n_simulated": n_simulated,
            "truth": truth,
            "astro_model": astro_model,
            "livetime_s": LIVETIME_S,
            "atmospheric_flux": table_provenance(),
        }
    }
    return ToyDataset(
        simulation=EventTable(
            sim,
            f"<toy simulation seed={seed}>",
            _digest(sim),
            meta,
            "generated (diffuse_fit.physics.toy)",
            columns_digest(sim),
        ),
        data=EventTable(
            data,
            f"<toy data seed={seed}>",
            _digest(data),
            meta,
            "generated (diffuse_fit.physics.toy)",
            columns_digest(data),
        ),
        truth=truth,
        seed=seed,
    )
