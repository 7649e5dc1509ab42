"""A binned dataset: observed counts, per-bin tables of the simulation, and what went in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.binned.binning import Binning
from model.binned.templates import Templates, build_templates
from model.errors import DataFormatError
from model.io.events import EventTable
from model.physics.components import WORKSHOP_COMPONENTS


@dataclass(frozen=True)
class BinnedDataset:
    """Everything a fit needs, built once.

    Attributes
    ----------
    counts : ndarray, (n_bins,)
        Observed events per bin.
    templates : Templates
        Per-bin tables of each component.
    sim_bin_index : ndarray of int, (n_sim,)
        Bin of each simulated event (-1 outside), for exact reference sums.
    data, simulation : EventTable
    n_data_outside, n_sim_outside : int
        Events outside the binning (below/above the energy range, topology code 2, ...).
    """

    counts: np.ndarray
    templates: Templates
    sim_bin_index: np.ndarray
    data: EventTable
    simulation: EventTable
    n_data_outside: int
    n_sim_outside: int

    @property
    def binning(self) -> Binning:
        return self.templates.binning

    @property
    def components(self) -> tuple:
        return self.templates.components

    def provenance(self) -> dict:
        """Files, hashes and event counts, for results files."""
        return {
            "data": {"source": self.data.source, "sha256": self.data.sha256,
                     "n_events": len(self.data), "n_outside_bins": self.n_data_outside},
            "simulation": {"source": self.simulation.source, "sha256": self.simulation.sha256,
                           "n_events": len(self.simulation), "n_outside_bins": self.n_sim_outside},
            "binning": self.binning.to_dict(),
            "template_max_relative_error": self.templates.max_relative_error,
        }  # fmt: skip

    def summary_lines(self) -> list[str]:
        """Human-readable description of the dataset."""
        return [
            f"data: {self.data.source}: {len(self.data)} events, "
            f"{int(self.counts.sum())} inside the {self.binning.n_bins} bins, "
            f"{self.n_data_outside} outside",
            f"simulation: {self.simulation.source}: {len(self.simulation)} events, "
            f"{self.n_sim_outside} outside the bins",
        ]


def bin_dataset(
    data: EventTable,
    simulation: EventTable,
    binning: Binning | None = None,
    components=WORKSHOP_COMPONENTS,
) -> BinnedDataset:
    """Bin data and simulation once and precompute the per-bin tables.

    Raises :class:`DataFormatError` if observed events fall in a bin where no simulated
    event has weight (the likelihood would be -inf for every parameter value).
    """
    binning = binning or Binning()
    data_index = binning.bin_index(data["energy"], data["zenith"], data["topology"])
    sim_index = binning.bin_index(
        simulation["energy"], simulation["zenith"], simulation["topology"]
    )
    counts = binning.histogram(data_index)
    templates = build_templates(simulation, binning, components, bin_index=sim_index)
    empty = np.flatnonzero((counts > 0) & ~templates.covered())
    if empty.size:
        b = int(empty[0])
        row = int(np.flatnonzero(data_index == b)[0])
        t, z, e = np.unravel_index(b, binning.shape)
        raise DataFormatError(
            data.source,
            f"observed event in bin {b} (topology {t}, zenith {z}, energy {e}) where the "
            f"simulation '{simulation.source}' predicts no events; the fit would be impossible",
            row=row,
        )
    return BinnedDataset(
        counts=counts,
        templates=templates,
        sim_bin_index=sim_index,
        data=data,
        simulation=simulation,
        n_data_outside=int(np.sum(data_index < 0)),
        n_sim_outside=int(np.sum(sim_index < 0)),
    )
