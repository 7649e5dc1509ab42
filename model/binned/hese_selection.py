"""Which HESE release data events each double-cascade choice keeps in the bins."""

from __future__ import annotations

import numpy as np

from diffuse_fit.binned.binning import Binning
from diffuse_fit.io.events import EventTable
from diffuse_fit.physics.hese_weights import DOUBLE_CASCADE_CHOICES, workshop_topology


def double_cascade_counts(
    release_data: EventTable, binning: Binning | None = None
) -> dict[str, dict[str, int]]:
    """How many data events each double-cascade choice leaves inside/outside the bins.

    For each choice: ``events``, ``in_bins``, ``outside_bins``, ``double_cascades``,
    ``double_cascades_in_bins`` and ``dropped_by_choice`` -- double cascades inside the
    energy and zenith range that the choice leaves out of the fit.
    """
    binning = binning or Binning()
    energy, zenith = release_data["recoDepositedEnergy"], release_data["recoZenith"]
    double = release_data["recoMorphology"] == 2
    as_cascade = binning.bin_index(energy, zenith, np.zeros_like(energy)) >= 0
    counts = {}
    for choice in DOUBLE_CASCADE_CHOICES:
        topology = workshop_topology(release_data["recoMorphology"], choice)
        inside = binning.bin_index(energy, zenith, topology) >= 0
        counts[choice] = {
            "events": len(release_data),
            "in_bins": int(inside.sum()),
            "outside_bins": int((~inside).sum()),
            "double_cascades": int(double.sum()),
            "double_cascades_in_bins": int((double & inside).sum()),
            "dropped_by_choice": int((double & as_cascade & ~inside).sum()),
        }
    return counts
