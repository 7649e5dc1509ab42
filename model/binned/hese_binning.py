"""The HESE 7.5-year release's own binning (its ``binning.py`` and ``data_loader.py``, PRD 104,
022002), as a :class:`~diffuse_fit.binned.joint.JointBinning` of three parts:

* ``cascades`` (topology 0) and ``tracks`` (1): 21 reconstructed-energy bins x 10 zenith bins
  equal in cos(zenith) (210 bins each);
* ``double_cascades`` (2): the same 21 energy bins x 20 bins of reconstructed length;

840 bins in all, in the release's order (cascades, tracks, double cascades; within each,
the second observable major, energy minor).

Edges: energy walks out from 60 TeV in steps of 0.111 in log10 E until it covers 60 TeV -
10 PeV (21 bins, 60 TeV to 12.86 PeV), length from 10 m in steps of 0.1 in log10 L until it
covers 10 - 1000 m (20 bins); the edges are ``numpy.logspace`` between the walk's end points,
as the release computes them.  Zenith edges are ``arccos(linspace(-1, 1, 11))`` reversed.
Events are binned by ``numpy.digitize``'s rule (``e_i <= x < e_i+1``; a value on the last
edge is outside).  Before binning, the release's data loader keeps events with reconstructed
energy in [60 TeV, 10 PeV] (closed), and double cascades only with a reconstructed length in
[10, 1000] m (closed; a missing length, NaN, is outside).
"""

from __future__ import annotations

import numpy as np

from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.joint import JointBinning

ENERGY_RANGE_GEV = (60.0e3, 1.0e7)
ENERGY_START_GEV, ENERGY_STEP_DEX = 60.0e3, 0.111
LENGTH_RANGE_M = (10.0, 1000.0)
LENGTH_START_M, LENGTH_STEP_DEX = 10.0, 0.1
N_ZENITH = 10
PART_NAMES = ("cascades", "tracks", "double_cascades")


def walked_edges(start: float, step_dex: float, low: float, high: float) -> np.ndarray:
    """Log-spaced edges from a walk: from ``start``, divide by ``10**step_dex`` until at or
    below ``low``, multiply until at or above ``high``; then ``numpy.logspace`` between the
    two ends with one edge per step taken (the end values as the walk computed them)."""
    factor = 10.0**step_dex
    n_edges, bottom, top = 1, start, start
    while bottom > low:
        bottom /= factor
        n_edges += 1
    while top < high:
        top *= factor
        n_edges += 1
    return np.logspace(np.log10(bottom), np.log10(top), n_edges)


def release_binning() -> JointBinning:
    """The release's 840 bins (module docstring)."""
    energy = walked_edges(ENERGY_START_GEV, ENERGY_STEP_DEX, *ENERGY_RANGE_GEV)
    zenith = np.arccos(np.linspace(-1.0, 1.0, N_ZENITH + 1))[::-1]
    length = walked_edges(LENGTH_START_M, LENGTH_STEP_DEX, *LENGTH_RANGE_M)
    energy_cut = ("energy", *ENERGY_RANGE_GEV)
    length_cut = ("length", *LENGTH_RANGE_M)
    parts = (
        Binning(energy, zenith, np.array([0]), rule="digitize", cuts=(energy_cut,)),
        Binning(energy, zenith, np.array([1]), rule="digitize", cuts=(energy_cut,)),
        Binning(
            energy,
            length,
            np.array([2]),
            second="length",
            rule="digitize",
            cuts=(energy_cut, length_cut),
        ),
    )
    return JointBinning(PART_NAMES, parts)
