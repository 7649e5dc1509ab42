"""Binning in reconstructed energy x zenith x topology, the workshop's way.

Bins are numbered topology-major, then zenith, then energy (the order of the
workshop's ``make_bin_masks`` loops): ``flat = (t * n_zenith + z) * n_energy + e``.
Edges follow ``np.digitize`` semantics: bin i holds ``edges[i] <= x < edges[i+1]``;
a value equal to the last edge, or outside the edges, is outside the binning.
Events are binned once into one integer index per event (``-1`` outside),
never into a list of boolean masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OUTSIDE = -1


def workshop_energy_edges(n: int = 20, low: float = 60.0e3, high: float = 1.0e7) -> np.ndarray:
    """``n`` log-spaced reconstructed-energy bins from ``low`` to ``high``, GeV."""
    return np.logspace(np.log10(low), np.log10(high), n + 1)


def workshop_zenith_edges(n: int = 10) -> np.ndarray:
    """``n`` zenith bins uniform in cos(zenith), edges in radians increasing 0..pi."""
    return np.arccos(np.linspace(-1, 1, n + 1))[::-1]


def workshop_topology_edges(n: int = 2) -> np.ndarray:
    """Topology bins [0,1), [1,2), ...: with n=2, cascades and tracks; code 2 falls outside."""
    return np.linspace(0, n, n + 1)


@dataclass(frozen=True)
class Binning:
    """Bin edges of the three observables.

    Attributes
    ----------
    energy_edges : ndarray
        Reconstructed deposited energy, GeV, increasing.
    zenith_edges : ndarray
        Reconstructed zenith, radians, increasing.
    topology_edges : ndarray
        Topology code edges, increasing (0 cascade, 1 track, 2 double cascade).
    """

    energy_edges: np.ndarray = field(default_factory=workshop_energy_edges)
    zenith_edges: np.ndarray = field(default_factory=workshop_zenith_edges)
    topology_edges: np.ndarray = field(default_factory=workshop_topology_edges)

    def __post_init__(self):
        for name in ("energy_edges", "zenith_edges", "topology_edges"):
            edges = np.asarray(getattr(self, name), dtype=np.float64)
            if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
                raise ValueError(f"Binning.{name} must be >= 2 strictly increasing values")
            if not np.all(np.isfinite(edges)):
                raise ValueError(f"Binning.{name} must be finite")
            object.__setattr__(self, name, edges)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_topology, n_zenith, n_energy)."""
        return (
            self.topology_edges.size - 1,
            self.zenith_edges.size - 1,
            self.energy_edges.size - 1,
        )

    @property
    def n_bins(self) -> int:
        t, z, e = self.shape
        return t * z * e

    def bin_index(self, energy, zenith, topology) -> np.ndarray:
        """Flat bin index of each event, ``OUTSIDE`` (-1) where any observable is outside.

        Parameters
        ----------
        energy : array_like, GeV
        zenith : array_like, radians
        topology : array_like, topology codes
        """
        n_t, n_z, n_e = self.shape
        t = np.digitize(topology, self.topology_edges) - 1
        z = np.digitize(zenith, self.zenith_edges) - 1
        e = np.digitize(energy, self.energy_edges) - 1
        inside = (t >= 0) & (t < n_t) & (z >= 0) & (z < n_z) & (e >= 0) & (e < n_e)
        return np.where(inside, (t * n_z + z) * n_e + e, OUTSIDE)

    def histogram(self, index: np.ndarray, weights=None) -> np.ndarray:
        """Per-bin sums of ``weights`` (counts if None) from per-event indices; outside dropped."""
        inside = index >= 0
        w = None if weights is None else np.asarray(weights)[inside]
        return np.bincount(index[inside], weights=w, minlength=self.n_bins).astype(np.float64)

    def unflatten(self, per_bin: np.ndarray) -> np.ndarray:
        """Reshape a flat per-bin array to (topology, zenith, energy)."""
        return np.asarray(per_bin).reshape(self.shape)

    def to_dict(self) -> dict:
        """Edges as lists (provenance)."""
        return {
            "energy_edges_GeV": self.energy_edges.tolist(),
            "zenith_edges_rad": self.zenith_edges.tolist(),
            "topology_edges": self.topology_edges.tolist(),
        }
