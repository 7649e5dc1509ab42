"""Atmospheric neutrino fluxes from a table of the ``nuflux`` models H3a_SIBYLL23C (conventional)
and H3a_SIBYLL23C_pr (prompt).

``nuflux`` needs ``numpy<2`` and cannot share an environment with PyMC 6, so its fluxes
are tabulated once by ``scripts/make_flux_table.py`` into ``model/physics/data/atmospheric_flux.npz``
(log10 flux on a grid of log10(E/GeV) in [3, 8] x cos(zenith) in [-1, 1]) and
interpolated here, bilinearly in (log10 E, cos zenith, log10 flux).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from scipy.interpolate import RegularGridInterpolator

FLAVOURS = ("nue", "numu", "nutau")
TABLE = "atmospheric_flux.npz"


@cache
def _interpolators() -> dict[str, RegularGridInterpolator]:
    # imported here: jobs on the user's own files never make the toy and need no interpolation
    from scipy.interpolate import RegularGridInterpolator

    with files("diffuse_fit.physics.data").joinpath(TABLE).open("rb") as fh, np.load(fh) as table:
        grid = (table["log10_energy"], table["cos_zenith"])
        return {
            f"{component}_{flavour}": RegularGridInterpolator(grid, table[f"{component}_{flavour}"])
            for component in ("conventional", "prompt")
            for flavour in FLAVOURS
        }


@cache
def table_provenance() -> dict[str, str]:
    """The models and nuflux version the table was made with."""
    with files("diffuse_fit.physics.data").joinpath(TABLE).open("rb") as fh, np.load(fh) as table:
        return {
            "conventional": str(table["conventional_model"]),
            "prompt": str(table["prompt_model"]),
            "nuflux_version": str(table["nuflux_version"]),
        }


def flux(
    component: str, flavour: str, energy: npt.ArrayLike, cos_zenith: npt.ArrayLike
) -> np.ndarray:
    """Neutrino + antineutrino flux of one flavour, GeV^-1 cm^-2 s^-1 sr^-1.

    Parameters
    ----------
    component : {"conventional", "prompt"}
    flavour : {"nue", "numu", "nutau"}
    energy : array_like
        Neutrino energy, GeV, within [1e3, 1e8].
    cos_zenith : array_like
        Cosine of the arrival zenith angle, in [-1, 1].
    """
    energy, cos_zenith = np.broadcast_arrays(
        np.asarray(energy, float), np.asarray(cos_zenith, float)
    )
    points = np.column_stack([np.log10(energy).ravel(), cos_zenith.ravel()])
    log10_flux = _interpolators()[f"{component}_{flavour}"](points)
    return cast(np.ndarray, (10.0**log10_flux).reshape(energy.shape))
