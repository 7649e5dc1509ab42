"""Binning in reconstructed energy x zenith x topology, the workshop's bins.

Bins are numbered topology-major, then zenith, then energy (the order of the
workshop's ``make_bin_masks`` loops): ``flat = (t * n_zenith + z) * n_energy + e``.

Energy and zenith follow :func:`numpy.histogram`'s convention: the edges are the
stated values exactly (the workshop binning's outer edges are 6e4 and 1e7 GeV and
0 and pi rad, not ``np.logspace``'s 60000.00000000003), bin i holds
``edges[i] <= x < edges[i+1]`` except the last, which is closed,
``edges[-2] <= x <= edges[-1]``.  Values outside ``[edges[0], edges[-1]]`` and NaN
are outside the binning.  Topology is categorical: a list of codes, one bin per code
(default 0 cascade, 1 track); any other code (2, double cascade) is outside.

The notebook bins with ``np.digitize``, which differs only for values exactly on the
outer edges: it leaves 6e4 GeV (below its first edge 60000.00000000003), 1e7 GeV and
zenith pi outside (``tests/test_binning.py`` asserts that these are the only differences).
Events are binned once into one integer index per event (``-1`` outside),
never into a list of boolean masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from diffuse_fit.io.events import EventTable

OUTSIDE = -1


def workshop_energy_edges(n: int = 20, low: float = 60.0e3, high: float = 1.0e7) -> np.ndarray:
    """``n`` log-spaced reconstructed-energy bins from ``low`` to ``high``, GeV.

    The interior edges are the notebook's ``np.logspace`` values; the end points are
    set to ``low`` and ``high`` exactly.
    """
    edges = np.logspace(np.log10(low), np.log10(high), n + 1)
    edges[0], edges[-1] = low, high
    return edges


def workshop_zenith_edges(n: int = 10) -> np.ndarray:
    """``n`` zenith bins uniform in cos(zenith), edges in radians increasing, 0 and pi exactly."""
    edges = np.arccos(np.linspace(-1, 1, n + 1))[::-1]
    edges[0], edges[-1] = 0.0, np.pi
    return edges


WORKSHOP_TOPOLOGY_CODES = (0, 1)
"""Topology codes binned by the workshop: 0 cascade, 1 track (2, double cascade, is left out)."""


SECOND_AXES = {"zenith": "rad", "length": "m"}
"""The observables of a binning's second axis and their units."""
EDGE_CONVENTIONS = {
    "histogram": "numpy.histogram: [e_i, e_i+1), last bin closed",
    "digitize": "numpy.digitize: [e_i, e_i+1), last edge open",
}


def _digitize_bins(x: npt.ArrayLike, edges: np.ndarray) -> np.ndarray:
    """Bin of each ``x`` by :func:`numpy.digitize`'s rule (``edges[i] <= x < edges[i+1]``,
    the last edge itself outside), -1 outside or NaN."""
    x = np.asarray(x, dtype=np.float64)
    i = np.searchsorted(edges, x, side="right") - 1
    return np.where((i >= 0) & (i < edges.size - 1) & ~np.isnan(x), i, OUTSIDE)


def _histogram_bins(x: npt.ArrayLike, edges: np.ndarray) -> np.ndarray:
    """Bin of each ``x`` by :func:`numpy.histogram`'s rule (last bin closed), -1 outside or NaN."""
    x = np.asarray(x, dtype=np.float64)
    n = edges.size - 1
    i = np.searchsorted(edges, x, side="right") - 1
    i = np.where(x == edges[-1], n - 1, i)
    return np.where((i >= 0) & (i < n), i, OUTSIDE)


def histogram(index: np.ndarray, n_bins: int, weights: npt.ArrayLike | None = None) -> np.ndarray:
    """Per-bin sums of ``weights`` (counts if None) of events in bins ``index`` (-1 outside,
    dropped), shape (n_bins,), float64."""
    inside = index >= 0
    w = None if weights is None else np.asarray(weights)[inside]
    return np.bincount(index[inside], weights=w, minlength=n_bins).astype(np.float64)


@dataclass(frozen=True)
class Binning:
    """Bin edges of energy and zenith, and the binned topology codes.

    Attributes
    ----------
    energy_edges : ndarray
        Reconstructed deposited energy, GeV, strictly increasing.
    zenith_edges : ndarray
        Reconstructed zenith, radians, strictly increasing.
    topology_codes : ndarray of int
        Topology codes with a bin each, in bin order (0 cascade, 1 track, 2 double cascade).
    """

    energy_edges: np.ndarray = field(default_factory=workshop_energy_edges)
    zenith_edges: np.ndarray = field(default_factory=workshop_zenith_edges)
    topology_codes: np.ndarray = field(default_factory=lambda: np.array(WORKSHOP_TOPOLOGY_CODES))
    second: str = "zenith"  # the second axis: "zenith" (rad) or "length" (reconstructed, m)
    rule: str = "histogram"  # edge convention: "histogram" (last bin closed) or "digitize"
    cuts: tuple[
        tuple[str, float, float], ...
    ] = ()  # ((field, low, high), ...): events kept only with low <= field <= high

    def __post_init__(self) -> None:
        if self.second not in SECOND_AXES:
            raise ValueError(
                f"Binning.second must be one of {list(SECOND_AXES)}, not {self.second!r}"
            )
        if self.rule not in ("histogram", "digitize"):
            raise ValueError(f"Binning.rule must be 'histogram' or 'digitize', not {self.rule!r}")
        object.__setattr__(
            self, "cuts", tuple((str(f), float(lo), float(hi)) for f, lo, hi in self.cuts)
        )
        for name in ("energy_edges", "zenith_edges"):
            edges = np.asarray(getattr(self, name), dtype=np.float64)
            if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
                raise ValueError(f"Binning.{name} must be >= 2 strictly increasing values")
            if not np.all(np.isfinite(edges)):
                raise ValueError(f"Binning.{name} must be finite")
            object.__setattr__(self, name, edges)
        codes = np.asarray(self.topology_codes)
        if (
            codes.ndim != 1
            or codes.size < 1
            or not np.all(np.isfinite(codes))
            or not np.all(codes == np.round(codes))
            or np.unique(codes).size != codes.size
        ):
            raise ValueError("Binning.topology_codes must be >= 1 distinct integer codes")
        object.__setattr__(self, "topology_codes", codes.astype(np.int64))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_topology, n_zenith, n_energy)."""
        return (self.topology_codes.size, self.zenith_edges.size - 1, self.energy_edges.size - 1)

    @property
    def n_bins(self) -> int:
        t, z, e = self.shape
        return t * z * e

    @property
    def topology_edges(self) -> np.ndarray:
        """Axis positions for drawing the topology bins: bin i spans [i, i + 1).

        Not used to bin events (topology is categorical: :attr:`topology_codes`).
        """
        return np.arange(self.topology_codes.size + 1, dtype=np.float64)

    def bin_index(
        self, energy: npt.ArrayLike, zenith: npt.ArrayLike, topology: npt.ArrayLike
    ) -> np.ndarray:
        """Flat bin index of each event, ``OUTSIDE`` (-1) where any observable is outside.

        Parameters
        ----------
        energy : array_like, GeV
        zenith : array_like, radians (the second axis's observable: metres for ``length``)
        topology : array_like, topology codes
        """
        _, n_z, n_e = self.shape
        topology = np.asarray(topology, dtype=np.float64)
        t = np.full(topology.shape, OUTSIDE, dtype=np.int64)
        for i, code in enumerate(self.topology_codes):
            t[topology == code] = i
        rule = _histogram_bins if self.rule == "histogram" else _digitize_bins
        z = rule(zenith, self.zenith_edges)
        e = rule(energy, self.energy_edges)
        inside = (t >= 0) & (z >= 0) & (e >= 0)
        return np.where(inside, (t * n_z + z) * n_e + e, OUTSIDE)

    def bin_events(self, events: EventTable | Mapping[str, np.ndarray]) -> np.ndarray:
        """:meth:`bin_index` of an event table's ``energy``, second observable (``zenith`` or
        ``length``) and ``topology``, after the :attr:`cuts`."""
        if self.second not in events:
            raise KeyError(self.second)
        index = self.bin_index(events["energy"], events[self.second], events["topology"])
        for name, low, high in self.cuts:
            with np.errstate(invalid="ignore"):  # NaN is outside
                keep = (events[name] >= low) & (events[name] <= high)
            index = np.where(keep, index, OUTSIDE)
        return index

    def histogram(self, index: np.ndarray, weights: npt.ArrayLike | None = None) -> np.ndarray:
        """Per-bin sums of ``weights`` (counts if None) from per-event indices; outside dropped."""
        return histogram(index, self.n_bins, weights)

    def to_dict(self) -> dict[str, Any]:
        """Edges, codes and the edge convention, as lists and text (provenance)."""
        second = (
            {"zenith_edges_rad": self.zenith_edges.tolist()}
            if self.second == "zenith"
            else {"length_edges_m": self.zenith_edges.tolist()}
        )
        out = {
            "energy_edges_GeV": self.energy_edges.tolist(),
            **second,
            "topology_codes": self.topology_codes.tolist(),
            "edge_convention": EDGE_CONVENTIONS[self.rule],
        }
        if self.cuts:
            out["cuts"] = [list(c) for c in self.cuts]
        return out
