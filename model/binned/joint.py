"""Several event samples fitted jointly: one flat bin vector made of each sample's bins.

A joint fit of samples ``s = 1..S`` that share parameters maximises
``sum_s ln L_s(theta)``, each ``L_s`` a product over the sample's own bins.  Every likelihood
here is a product over bins, so the joint likelihood is the single-sample likelihood of the
concatenated bin vector: sample ``s``'s bin ``b`` is joint bin ``offset_s + b``.  The tables of
a component are then built once from the concatenated simulation, each simulated event
binned into its own sample's bins (an event of one sample never lands in another's); every
fit, scan, toy and check that works on one binning works unchanged on :class:`JointBinning`.

Binning one sample is :func:`diffuse_fit.binned.dataset.bin_dataset`;
:func:`diffuse_fit.binned.dataset.bin_samples` checks each sample on its own files (empty
likelihoods, missing fields, observed events without simulation: the error names that
sample's file) and then joins them with the functions here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from diffuse_fit.binned.binning import Binning, histogram
from diffuse_fit.io.events import EventTable, columns_digest


@dataclass(frozen=True)
class JointBinning:
    """The bins of several samples, one after the other: sample ``names[i]`` with binning
    ``parts[i]`` holds joint bins ``offsets[i] .. offsets[i + 1] - 1``."""

    names: tuple[str, ...]
    parts: tuple[Binning, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.parts) or len(self.names) < 1:
            raise ValueError("JointBinning needs one name per binning, at least one")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"JointBinning: sample names must be distinct, not {self.names}")
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "parts", tuple(self.parts))

    @property
    def offsets(self) -> np.ndarray:
        """First joint bin of each sample, and the total: shape (n_samples + 1,)."""
        return np.concatenate([[0], np.cumsum([p.n_bins for p in self.parts])]).astype(np.int64)

    @property
    def n_bins(self) -> int:
        return int(self.offsets[-1])

    def slice(self, i: int) -> slice:
        """The joint bins of sample ``i``."""
        o = self.offsets
        return slice(int(o[i]), int(o[i + 1]))

    def bin_events(self, events: EventTable | Mapping[str, np.ndarray]) -> np.ndarray:
        """Joint bin of each event of one table binned by every part (the parts must take
        disjoint topology codes, as the HESE release's cascades, tracks and double cascades
        do): -1 where no part takes it."""
        codes = np.concatenate([p.topology_codes for p in self.parts])
        if np.unique(codes).size != codes.size:
            raise ValueError("one table binned by several parts needs disjoint topology codes")
        out = np.full(len(events), -1, dtype=np.int64)
        for i, part in enumerate(self.parts):
            index = part.bin_events(events)
            out = np.where(index >= 0, index + self.offsets[i], out)
        return out

    def histogram(self, index: np.ndarray, weights: npt.ArrayLike | None = None) -> np.ndarray:
        """Per-bin sums of ``weights`` (counts if None) from joint per-event indices."""
        return histogram(index, self.n_bins, weights)

    def to_dict(self) -> dict[str, Any]:
        """Each sample's name and :meth:`Binning.to_dict`, in bin order (provenance)."""
        return {
            "samples": [
                {"name": n, **p.to_dict()} for n, p in zip(self.names, self.parts, strict=True)
            ]
        }


SampleColumn = tuple[str, str, int]
"""A per-sample weight field of :func:`sample_components`: ``(new field, field, sample number)``."""


def sample_parts(binning: Binning | JointBinning) -> list[tuple[str | None, Binning, slice]]:
    """``(sample name, its Binning, its slice of the bin vector)`` for every sample of
    ``binning``: one entry with name ``None`` for a plain :class:`Binning`."""
    if isinstance(binning, JointBinning):
        return [
            (n, p, binning.slice(i))
            for i, (n, p) in enumerate(zip(binning.names, binning.parts, strict=True))
        ]
    return [(None, binning, slice(0, binning.n_bins))]


def joint_index(binning: JointBinning, indices: list[np.ndarray]) -> np.ndarray:
    """Concatenated joint bin indices from each sample's own (``-1`` stays outside)."""
    out = []
    for i, index in enumerate(indices):
        index = np.asarray(index, dtype=np.int64)
        out.append(np.where(index >= 0, index + binning.offsets[i], -1))
    return np.concatenate(out)


def join_tables(names: list[str], tables: list[EventTable], what: str) -> EventTable:
    """One :class:`EventTable` of ``tables`` one after the other, with the fields they all
    have (a component's fields are checked per sample before).  Its ``sha256`` is the digest
    of the samples' names and hashes; ``source`` names every sample's file."""
    common = [f for f in tables[0].fields if all(f in t for t in tables[1:])]
    columns = {
        f: np.concatenate([np.asarray(t[f], dtype=np.float64) for t in tables]) for f in common
    }
    digest = hashlib.sha256()
    for name, t in zip(names, tables, strict=True):
        digest.update(f"{name} {t.sha256}\n".encode())
    source = "; ".join(f"{n}: {t.source}" for n, t in zip(names, tables, strict=True))
    clamped: dict[str, int] = {}
    for t in tables:
        for field, n in t.clamped.items():
            clamped[field] = clamped.get(field, 0) + n
    return EventTable(
        columns,
        source,
        digest.hexdigest(),
        {"joined": what},
        "joined from the samples",
        columns_digest(columns),
        clamped,
    )


def _renamed(component: Any, mapping: Mapping[str, str]) -> Any:
    """``component`` with its parameter names changed by ``mapping`` (norm, index, shape)."""
    changes: dict[str, Any] = {"norm": mapping.get(component.norm, component.norm)}
    if hasattr(component, "index") and isinstance(component.index, str):
        changes["index"] = mapping.get(component.index, component.index)
    if hasattr(component, "shape") and isinstance(component.shape, tuple):
        changes["shape"] = tuple(mapping.get(s, s) for s in component.shape)
    return dataclasses.replace(component, **changes)


def sample_components(
    components: Iterable[Any], names: Sequence[str], renames: Sequence[Mapping[str, str]]
) -> tuple[tuple[Any, ...], list[SampleColumn]]:
    """The components of a joint fit whose samples rename some parameters (``renames``: one
    ``{parameter: its name in this sample}`` per sample, in ``names`` order).

    A component with a renamed parameter in any sample becomes one copy per sample,
    ``<name>@<sample>``, with that sample's parameter names and the weight field
    ``<field>@<sample>`` (the field, 0 outside the sample's events: returned as ``(new
    field, field, sample number)`` for the joined simulation); the others stay shared.
    Components with nuisance terms cannot be renamed (``ValueError``)."""
    renamed = set().union(*(set(r) for r in renames)) if renames else set()
    if not renamed:
        return tuple(components), []
    out: list[Any]
    columns: list[SampleColumn]
    out, columns = [], []
    for c in components:
        if not renamed & set(c.parameters):
            out.append(c)
            continue
        if not hasattr(c, "weight_field") or hasattr(c, "terms"):
            raise ValueError(f"component {c.name!r}: its parameters cannot differ by sample")
        for k, (sample, mapping) in enumerate(zip(names, renames, strict=True)):
            field = f"{c.weight_field}@{sample}"
            out.append(
                dataclasses.replace(
                    _renamed(c, mapping), name=f"{c.name}@{sample}", weight_field=field
                )
            )
            columns.append((field, c.weight_field, k))
    return tuple(out), columns


def with_sample_columns(
    simulation: EventTable, sizes: list[int], columns: list[SampleColumn]
) -> EventTable:
    """``simulation`` (samples joined, ``sizes`` events each) with the per-sample weight
    fields of :func:`sample_components`."""
    if not columns:
        return simulation
    sample_of = np.repeat(np.arange(len(sizes)), sizes)
    extra = {new: np.where(sample_of == k, simulation[field], 0.0) for new, field, k in columns}
    merged = {**simulation.columns, **extra}
    return EventTable(
        merged,
        simulation.source,
        simulation.sha256,
        simulation.meta,
        simulation.loaded_from,
        columns_digest(merged),
        simulation.clamped,
    )
