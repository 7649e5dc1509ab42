"""A table of events: named 1-D float64 columns of equal length, plus where they came from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

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
    loaded_from : str or None
        How the columns were obtained (provenance): ``"json (fast path)"``,
        ``"json (exact parser)"`` or ``"cache <path> (verified)"``; ``None`` if not read.
    columns_sha256 : str or None
        :func:`columns_digest` of the columns as loaded (after clamping), or ``None``.
    clamped : dict[str, int]
        Field -> number of values printed rounded just outside a closed physical range
        (e.g. a zenith ``3.142``) that were set to the range's bound; empty if none.
    """

    columns: dict[str, np.ndarray]
    source: str
    sha256: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    loaded_from: str | None = None
    columns_sha256: str | None = None
    clamped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
        """The events where ``mask`` is true, same source, meta and provenance (the
        ``columns_sha256`` of the selection is recomputed)."""
        columns = {k: v[mask] for k, v in self.columns.items()}
        digest = columns_digest(columns) if self.columns_sha256 is not None else None
        return EventTable(
            columns, self.source, self.sha256, self.meta, self.loaded_from, digest, self.clamped
        )


def columns_digest(columns: dict[str, np.ndarray]) -> str:
    """SHA-256 of named float64 columns: for each, in order, the UTF-8 line
    ``"<name> <n_values>\\n"`` then the values as little-endian float64 bytes."""
    digest = hashlib.sha256()
    for name, values in columns.items():
        digest.update(f"{name} {len(values)}\n".encode())
        digest.update(np.ascontiguousarray(values, dtype="<f8").data)
    return digest.hexdigest()
