"""Tabulate the atmospheric neutrino fluxes the toy generator uses, from ``nuflux``.

``nuflux`` (2.0.7, the current release) requires ``numpy<2`` while PyMC 6 requires
``numpy>=2``, so it cannot live in the project's environment.  The toy generator
therefore reads a small table written by this script, which runs in a throw-away
environment of its own::

    python3.12 -m venv /tmp/nuflux-env
    /tmp/nuflux-env/bin/pip install 'nuflux==2.0.7' 'numpy<2'
    /tmp/nuflux-env/bin/python scripts/make_flux_table.py

It writes ``model/physics/data/atmospheric_flux.npz``: log10 of the per-flavour
(neutrino + antineutrino) flux, GeV^-1 cm^-2 s^-1 sr^-1, for the conventional
(H3a_SIBYLL23C) and prompt (H3a_SIBYLL23C_pr) models on a grid of
log10(E / GeV) x cos(zenith).
"""

from pathlib import Path

import nuflux
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "model" / "physics" / "data" / "atmospheric_flux.npz"
LOG10_E = np.round(np.arange(3.0, 8.0001, 0.05), 4)  # 1 TeV .. 100 PeV
COS_ZENITH = np.round(np.linspace(-1.0, 1.0, 41), 4)
FLAVOURS = {
    "nue": (nuflux.NuE, nuflux.NuEBar),
    "numu": (nuflux.NuMu, nuflux.NuMuBar),
    "nutau": (nuflux.NuTau, nuflux.NuTauBar),
}
MODELS = {"conventional": "H3a_SIBYLL23C", "prompt": "H3a_SIBYLL23C_pr"}
FLOOR = 1e-60  # GeV^-1 cm^-2 s^-1 sr^-1, stands in for an exact zero before log10


def main() -> None:
    energy, cosz = np.meshgrid(10.0**LOG10_E, COS_ZENITH, indexing="ij")
    tables = {}
    for component, name in MODELS.items():
        flux = nuflux.makeFlux(name)
        for flavour, (nu, nubar) in FLAVOURS.items():
            total = flux.getFlux(nu, energy.ravel(), cosz.ravel()) + flux.getFlux(
                nubar, energy.ravel(), cosz.ravel()
            )
            tables[f"{component}_{flavour}"] = np.log10(np.maximum(total, FLOOR)).reshape(
                energy.shape
            )
    np.savez_compressed(
        OUT,
        log10_energy=LOG10_E,
        cos_zenith=COS_ZENITH,
        nuflux_version=np.array(nuflux.__version__),
        conventional_model=np.array(MODELS["conventional"]),
        prompt_model=np.array(MODELS["prompt"]),
        **tables,
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
