"""A table of events: named 1-D float64 columns of equal length, plus where they came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TOPOLOGY_CODES = {0: "cascade", 1: "track", 2: "double cascade"}
"""Event topology codes of the workshop format (the HESE release's ``recoMorphology``)."""


@dataclass(frozen=True)
class EventTable:
    """Events as columns.

    Attributes
    ----------
    columns : dict[str, ndarray]
        Field name -> float64 array of shape (n_events,). Units follow the field
        (energies GeV, angles radians, weights expected events for the livetime).
    source : str
        File the events were read from, or a label for generated events.
    sha256 : str or None
        SHA-256 of the file's bytes (provenance).
    meta : dict
        Any other top-level JSON keys of the file (e.g. the toy truth), kept as read.
    """

    columns: dict[str, np.ndarray]
    source: str
    sha256: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        lengths = {name: len(col) for name, col in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{self.source}: columns of different lengths {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    @property
    def fields(self) -> list[str]:
        return list(self.columns)

    def select(self, mask: np.ndarray) -> EventTable:
        """The events where ``mask`` is true, same source and meta."""
        return EventTable(
            {k: v[mask] for k, v in self.columns.items()}, self.source, self.sha256, self.meta
        )
