"""A toy simulation and pseudo-data in the schema of IceCube's HESE 7.5-year release.

For tests and demonstrations of :mod:`diffuse_fit.io.hese_release` where the release's own
simulation is not at hand; the physics is that of :mod:`diffuse_fit.physics.toy`, per neutrino species.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from diffuse_fit.io.hese_release import DATA_FIELDS, OPTIONAL_SIMULATION_FIELDS, SIMULATION_FIELDS
from diffuse_fit.physics import toy
from diffuse_fit.physics.atmospheric_flux import FLAVOURS, flux
from diffuse_fit.physics.hese_weights import (
    LIVETIME_S,
    N_SPECIES,
    astrophysical_expectation,
    conventional_expectation,
    muon_expectation,
    prompt_expectation,
)

TOY_TRUTH = {"atmos_norm": 1.0, "astro_norm": 6.37, "astro_gamma": 2.87}  # ~ the release's fit
TOY_SELECTION_GEV = 2.0e4  # reconstructed deposited energy
TOY_THRESHOLD_GEV = 6.0e4  # selection efficiency 1 - exp(-(E_deposited / this)^3)
TOY_MUONS_EXPECTED = 500.0  # atmospheric muons in the livetime, before the selection
TOY_MUON_INDEX = 2.7  # their energy spectrum E^-2.7
TOY_KAON_FRACTION = {"nue": 0.7, "numu": 0.4, "nutau": 0.5}  # of the conventional flux
TOY_TAU_LENGTH_M_PER_PEV = 50.0


@dataclass(frozen=True)
class ToyRelease:
    """A generated simulation and pseudo-data in the release's schema (columns, float64)."""

    simulation: dict[str, np.ndarray]
    data: dict[str, np.ndarray]
    truth: dict[str, Any]
    seed: int


def _toy_neutrinos(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` neutrino interactions with the physics of :mod:`diffuse_fit.physics.toy`, per species."""
    lo, hi = toy.E_RANGE_GEV
    energy = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    cos_zenith = rng.uniform(-1.0, 1.0, n)
    flavour = rng.integers(0, 3, n)
    sign = np.where(rng.random(n) < 0.5, 1, -1)
    cc = rng.random(n) < toy.CC_PROBABILITY
    y = rng.beta(0.8, 2.4, n)
    u = rng.random(n)
    deposited = toy.deposited_energy(energy, flavour, cc, y)
    tau_cc = cc & (flavour == 2)
    true_length = np.where(tau_cc, TOY_TAU_LENGTH_M_PER_PEV * (1.0 - y) * energy / 1e6, np.nan)
    track = u < np.where(cc & (flavour == 1), 0.9, 0.02)
    double = ~track & tau_cc & (true_length > 10.0) & (u > 0.5)
    morphology = np.select([track, double], [1.0, 2.0], default=0.0)
    interaction = np.where(cc, 1.0, 2.0)
    glashow = cc & (flavour == 0) & (sign < 0) & (np.abs(energy - 6.3e6) < 1.0e6)
    interaction[glashow] = 3.0  # a label only: weights are those of CC

    inverse_density = energy * np.log(hi / lo) * 4.0 * np.pi * N_SPECIES
    inverse_density /= np.where(cc, toy.CC_PROBABILITY, 1.0 - toy.CC_PROBABILITY)
    area = toy.effective_area_cm2(np.where(cc, 1, 2), energy, cos_zenith)
    area *= -np.expm1(-((deposited / TOY_THRESHOLD_GEV) ** 3))  # HESE's charge threshold
    conventional, prompt = np.zeros(n), np.zeros(n)
    conventional_veto, prompt_veto = np.zeros(n), np.zeros(n)
    kaon_fraction = np.zeros(n)
    for i, name in enumerate(FLAVOURS):
        m = flavour == i
        args = (energy[m], cos_zenith[m])
        conventional[m] = flux("conventional", name, *args) / 2.0  # per species
        prompt[m] = flux("prompt", name, *args) / 2.0
        conventional_veto[m] = toy.self_veto_passing_fraction("conventional", name, *args)
        prompt_veto[m] = toy.self_veto_passing_fraction("prompt", name, *args)
        kaon_fraction[m] = TOY_KAON_FRACTION[name]
    return {
        "primaryType": (sign * (12 + 2 * flavour)).astype(np.float64),
        "primaryEnergy": energy,
        "primaryZenith": np.arccos(cos_zenith),
        "trueLength": true_length,
        "interactionType": interaction,
        "deposited": deposited,
        "recoMorphology": morphology,
        "weightOverFluxOverLivetime": area * inverse_density / n,
        "muonWeightOverLivetime": np.zeros(n),
        "pionFlux": conventional * (1.0 - kaon_fraction),
        "kaonFlux": conventional * kaon_fraction,
        "promptFlux": prompt,
        "conventionalSelfVetoCorrection": conventional_veto,
        "promptSelfVetoCorrection": prompt_veto,
    }


def _toy_muons(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` down-going atmospheric muons leaking through the veto (neutrino weight 0).

    Their flux fields hold the numu fluxes at their energy and direction (positive, but
    irrelevant: ``weightOverFluxOverLivetime`` is 0).
    """
    lo, hi = toy.E_RANGE_GEV
    energy = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    cos_zenith = rng.uniform(0.05, 1.0, n)
    deposited = energy * rng.uniform(0.05, 0.3, n)
    morphology = np.where(rng.random(n) < 0.8, 1.0, 0.0)
    s = TOY_MUON_INDEX  # pdf (s-1) E^-s / (lo^(1-s) - hi^(1-s)) over the generation density
    pdf = (s - 1.0) * energy**-s / (lo ** (1.0 - s) - hi ** (1.0 - s))
    weight = TOY_MUONS_EXPECTED / LIVETIME_S * pdf * energy * np.log(hi / lo) / n
    args = (energy, cos_zenith)
    conventional = flux("conventional", "numu", *args) / 2.0
    conventional_veto = toy.self_veto_passing_fraction("conventional", "numu", *args)
    return {
        "primaryType": np.full(n, 13.0),
        "primaryEnergy": energy,
        "primaryZenith": np.arccos(cos_zenith),
        "trueLength": np.full(n, np.nan),
        "interactionType": np.zeros(n),
        "deposited": deposited,
        "recoMorphology": morphology,
        "weightOverFluxOverLivetime": np.zeros(n),
        "muonWeightOverLivetime": weight,
        "pionFlux": conventional * (1.0 - TOY_KAON_FRACTION["numu"]),
        "kaonFlux": conventional * TOY_KAON_FRACTION["numu"],
        "promptFlux": flux("prompt", "numu", *args) / 2.0,
        "conventionalSelfVetoCorrection": conventional_veto,
        "promptSelfVetoCorrection": toy.self_veto_passing_fraction("prompt", "numu", *args),
    }


def _reconstruct(rng: np.random.Generator, truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Smear energies and directions as :mod:`diffuse_fit.physics.toy` does; add ``reco*`` fields."""
    n = truth["primaryEnergy"].size
    track = truth["recoMorphology"] == 1
    sigma_e = np.where(track, toy.ENERGY_RESOLUTION[1], toy.ENERGY_RESOLUTION[0])
    columns = {k: v for k, v in truth.items() if k != "deposited"}
    columns["recoZenith"] = toy.smeared_zenith(
        rng, np.cos(truth["primaryZenith"]), truth["recoMorphology"]
    )
    columns["recoDepositedEnergy"] = truth["deposited"] * np.exp(sigma_e * rng.standard_normal(n))
    smeared = truth["trueLength"] * np.exp(0.2 * rng.standard_normal(n))
    columns["recoLength"] = np.where(truth["recoMorphology"] == 2, smeared, np.nan)
    return columns


def make_toy_release(
    seed: int = toy.DEFAULT_SEED, n: int = 20_000, truth: dict[str, float] | None = None
) -> ToyRelease:
    """A deterministic look-alike of the release: simulation and pseudo-data columns.

    ``n`` interactions are generated (a tenth of them atmospheric muons, the rest
    neutrinos with :mod:`diffuse_fit.physics.toy`'s effective area, fluxes, self-veto and smearing,
    each neutrino one species: PDG code +-12/14/16; HESE's charge threshold as an
    efficiency ``1 - exp(-(E_deposited / 60 TeV)^3)`` in the effective area); those
    above 20 TeV reconstructed deposited energy are kept.  Tau-neutrino CC events with a tau length above 10 m
    are double cascades half of the time.  The pseudo-data resample the simulation
    with probability proportional to the workshop expectation at ``truth`` (default
    :data:`TOY_TRUTH`), Poisson in number, so every data event's bin has simulated
    events.  The same seed and ``n`` give the same values.
    """
    truth = dict(TOY_TRUTH if truth is None else truth)
    gen, reco, draw = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    n_muons = n // 10
    parts = (_toy_neutrinos(gen, n - n_muons), _toy_muons(gen, n_muons))
    generated = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    columns = _reconstruct(reco, generated)
    selected = columns["recoDepositedEnergy"] > TOY_SELECTION_GEV
    sim = {k: columns[k][selected] for k in (*SIMULATION_FIELDS, *OPTIONAL_SIMULATION_FIELDS)}
    weights = truth["atmos_norm"] * (
        conventional_expectation(sim) + prompt_expectation(sim) + muon_expectation(sim)
    ) + astrophysical_expectation(sim, truth["astro_norm"], truth["astro_gamma"])
    chosen = draw.choice(weights.size, size=draw.poisson(weights.sum()), p=weights / weights.sum())
    data = {k: sim[k][chosen] for k in DATA_FIELDS}
    return ToyRelease(simulation=sim, data=data, truth=truth, seed=seed)
