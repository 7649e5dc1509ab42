"""A binned dataset: observed counts, per-bin tables of the simulation, and what went in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.detector_tables import build_response_tables
from diffuse_fit.binned.joint import (
    JointBinning,
    join_tables,
    joint_index,
    sample_components,
    sample_parts,
    with_sample_columns,
)
from diffuse_fit.binned.templates import Templates, build_templates
from diffuse_fit.binned.variance import build_variance_tables
from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.events import EventTable
from diffuse_fit.physics.components import WORKSHOP_COMPONENTS, input_fields, weight_fields

if TYPE_CHECKING:
    from diffuse_fit.io.hese_splines import SplineTable


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
    def binning(self) -> Binning | JointBinning:
        return self.templates.binning

    @property
    def components(self) -> tuple[Any, ...]:
        return self.templates.components

    def with_variance(self) -> BinnedDataset:
        """This dataset with the tables of squared weights that the SAY likelihood needs
        (``templates.variance``, :mod:`diffuse_fit.binned.variance`); itself if it has them."""
        if self.templates.variance is not None:
            return self
        variance = build_variance_tables(
            self.simulation,
            self.sim_bin_index,
            self.binning.n_bins,
            self.components,
            responses=self.templates.responses,
        )
        return replace(self, templates=replace(self.templates, variance=variance))

    def with_detector(self, splines: Mapping[str, SplineTable]) -> BinnedDataset:
        """This dataset with the release's detector systematics as per-bin responses of the
        conventional, prompt and astrophysical components
        (:mod:`diffuse_fit.binned.detector_tables`; ``splines``: table path ->
        :class:`diffuse_fit.io.hese_splines.SplineTable`); the SAY tables, if any, rebuilt
        with them."""
        responses = build_response_tables(
            self.simulation, self.sim_bin_index, self.binning.n_bins, self.components, splines
        )
        had_variance = self.templates.variance is not None
        out = replace(self, templates=replace(self.templates, responses=responses, variance=None))
        return out.with_variance() if had_variance else out

    def provenance(self) -> dict[str, Any]:
        """Files, hashes, how they were read, what was fitted, event counts; for results files."""
        out: dict[str, Any] = {
            "data": _table_record(self.data, self.n_data_outside),
            "simulation": _table_record(self.simulation, self.n_sim_outside),
            "binning": self.binning.to_dict(),
            "template_max_relative_error": self.templates.max_relative_error,
        }
        notes = self.templates.exact_sum_notes()
        if notes:  # components evaluated by the exact per-event sum, and why
            out["exact_sums"] = notes
        if self.templates.variance is not None:
            out["variance_table_max_relative_error"] = self.templates.variance.max_relative_error
        if self.templates.responses:
            out["detector_responses"] = {
                r.key: {"interval": list(r.interval), "max_relative_error": r.max_relative_error}
                for r in self.templates.responses
            }
        return out

    def summary_lines(self) -> list[str]:
        """Human-readable description of the dataset (:func:`describe`)."""
        return describe(self.provenance(), self.counts)


@dataclass(frozen=True)
class JointDataset(BinnedDataset):
    """Several samples fitted jointly (:mod:`diffuse_fit.binned.joint`): the bins, counts,
    tables and events of every sample one after the other, ``templates.binning`` a
    :class:`JointBinning`; ``samples`` holds each sample's own events and records."""

    samples: tuple[BinnedSample, ...] = ()  # one BinnedSample per sample, in bin order

    def provenance(self) -> dict[str, Any]:
        out = super().provenance()
        out["samples"] = [
            {
                "name": s.name,
                "data": _table_record(s.data, s.n_data_outside),
                "simulation": _table_record(s.simulation, s.n_sim_outside),
                "n_observed_in_bins": int(np.sum(self.counts[where])),
                "n_bins": where.stop - where.start,
            }
            for s, (_, _, where) in zip(self.samples, sample_parts(self.binning), strict=True)
        ]
        return out


@dataclass(frozen=True)
class BinnedSample:
    """One sample of a :class:`JointDataset`: its name, events and events outside its bins."""

    name: str
    data: EventTable
    simulation: EventTable
    n_data_outside: int
    n_sim_outside: int


def bin_samples(
    samples: Iterable[tuple[str, EventTable, EventTable, Binning | None]],
    components: Sequence[Any] = WORKSHOP_COMPONENTS,
    variance: bool = False,
    spectral_method: str = "auto",
    renames: Sequence[Mapping[str, str]] | None = None,
) -> JointDataset:
    """The joint dataset of ``samples``: ``(name, data, simulation, binning)`` each
    (``binning`` None: the workshop's).  Each sample is checked on its own files as
    :func:`bin_dataset` checks one; the components are the same in every sample, so
    parameters of the same name are one parameter of the joint fit, except those a sample
    renames (``renames``: one ``{parameter: name in this sample}`` per sample,
    :func:`diffuse_fit.binned.joint.sample_components`): a per-sample nuisance parameter."""
    names, datas, sims, parts, d_idx, s_idx = [], [], [], [], [], []
    for name, data, simulation, binning in samples:
        binning = binning or Binning()
        di, si = check_sample(data, simulation, binning, components)
        names.append(name)
        datas.append(data)
        sims.append(simulation)
        parts.append(binning)
        d_idx.append(di)
        s_idx.append(si)
    joint = JointBinning(tuple(names), tuple(parts))
    records = tuple(
        BinnedSample(n, d, s, int(np.sum(di < 0)), int(np.sum(si < 0)))
        for n, d, s, di, si in zip(names, datas, sims, d_idx, s_idx, strict=True)
    )
    final, columns = sample_components(components, names, renames or [{} for _ in names])
    simulation = with_sample_columns(
        join_tables(names, sims, "simulation"), [len(s) for s in sims], columns
    )
    joint_dataset = assemble(
        join_tables(names, datas, "data"),
        simulation,
        joint,
        joint_index(joint, d_idx),
        joint_index(joint, s_idx),
        final,
        variance,
        spectral_method,
        cls=JointDataset,
        samples=records,
    )
    return cast(JointDataset, joint_dataset)  # assemble makes a cls


def describe(provenance: Mapping[str, Any], counts: np.ndarray) -> list[str]:
    """The dataset in two lines, from its :meth:`BinnedDataset.provenance` and the observed
    counts per bin (so a saved run describes itself the same way): events inside and
    outside the bins, and values set to a range boundary because they were printed rounded
    just outside it."""
    if "samples" in provenance:  # a joint fit: each sample's own lines
        lines, start = [], 0
        for sample in provenance["samples"]:
            mine = np.asarray(counts)[start : start + sample["n_bins"]]
            start += sample["n_bins"]
            lines += [f"sample {sample['name']}: {line}" for line in describe(sample, mine)]
        return lines
    d, s = provenance["data"], provenance["simulation"]
    return [
        f"data: {d['source']}: {d['n_events']} events, {int(np.sum(counts))} inside the "
        f"{np.size(counts)} bins, {d['n_outside_bins']} outside{_clamped(d)}",
        f"simulation: {s['source']}: {s['n_events']} events, {s['n_outside_bins']} outside "
        f"the bins{_clamped(s)}",
    ]


def _table_record(table: EventTable, n_outside: int) -> dict[str, Any]:
    """Source, hash, how the table was read (``loaded_from``), a digest of the columns that
    were fitted, values clamped on reading, event counts."""
    return {
        "source": table.source,
        "sha256": table.sha256,
        "loaded_from": table.loaded_from,
        "columns_sha256": table.columns_sha256,
        "clamped": table.clamped,
        "n_events": len(table),
        "n_outside_bins": n_outside,
    }


def _clamped(record: Mapping[str, Any]) -> str:
    clamped = record.get("clamped")  # absent from runs written before it was recorded
    if not clamped:
        return ""
    fields = ", ".join(f"{n} {field}" for field, n in clamped.items())
    return f"; rounded just outside their range, set to its boundary: {fields}"


def bin_dataset(
    data: EventTable,
    simulation: EventTable,
    binning: Binning | None = None,
    components: Sequence[Any] = WORKSHOP_COMPONENTS,
    variance: bool = False,
    spectral_method: str = "auto",
    templates: Templates | None = None,
) -> BinnedDataset:
    """Bin data and simulation once and precompute the per-bin tables (``spectral_method``:
    how a spectral component's sums are evaluated, :func:`diffuse_fit.binned.templates.build_templates`; with ``variance``,
    also the tables of squared weights of the SAY likelihood: :meth:`BinnedDataset.with_variance`).

    Raises :class:`DataFormatError` (one line, naming the file) where the fit could only
    return its start values or -inf:

    * no observed event inside the bins (an empty likelihood);
    * no simulated event inside the bins, or a component whose weight field is 0 for
      every simulated event inside the bins (its parameters would be unconstrained);
    * an observed event in a bin where no simulated event has weight (the likelihood
      would be -inf for every parameter value).

    ``templates``: the tables of this simulation, binning and components, built before (a
    cache's, :mod:`diffuse_fit.jobs.table_cache`): used as they are, not built again.
    """
    binning = binning or Binning()
    data_index, sim_index = check_sample(data, simulation, binning, components)
    return assemble(
        data,
        simulation,
        binning,
        data_index,
        sim_index,
        components,
        variance,
        spectral_method,
        templates=templates,
    )


def assemble(
    data: EventTable,
    simulation: EventTable,
    binning: Binning | JointBinning,
    data_index: np.ndarray,
    sim_index: np.ndarray,
    components: Sequence[Any],
    variance: bool = False,
    spectral_method: str = "auto",
    cls: type[BinnedDataset] = BinnedDataset,
    templates: Templates | None = None,
    **extra: Any,
) -> BinnedDataset:
    """The dataset of events already binned (``data_index``, ``sim_index``: one bin per event,
    -1 outside, checked by :func:`check_sample`): counts, tables, and the check that every
    observed event has simulation in its bin.  ``cls`` and ``extra``: a subclass and its
    fields (:class:`diffuse_fit.binned.joint.JointDataset`); ``templates``: tables built
    before (:func:`bin_dataset`), else built here."""
    counts = binning.histogram(data_index)
    if templates is None:
        templates = build_templates(
            simulation, binning, components, bin_index=sim_index, spectral_method=spectral_method
        )
    empty = np.flatnonzero((counts > 0) & ~templates.covered())
    if empty.size:
        b = int(empty[0])
        row = int(np.flatnonzero(data_index == b)[0])
        raise DataFormatError(
            data.source,
            f"observed event in bin {b} ({_bin_position(binning, b)}) where the "
            f"simulation '{simulation.source}' predicts no events; the fit would be impossible",
            row=row,
        )
    binned = cls(
        counts=counts,
        templates=templates,
        sim_bin_index=sim_index,
        data=data,
        simulation=simulation,
        n_data_outside=int(np.sum(data_index < 0)),
        n_sim_outside=int(np.sum(sim_index < 0)),
        **extra,
    )
    return binned.with_variance() if variance else binned


def _bin_position(binning: Binning | JointBinning, b: int) -> str:
    """Where joint or plain bin ``b`` lies: its sample (if joint) and its 3 axis indices."""
    for name, part, where in sample_parts(binning):
        if where.start <= b < where.stop:
            t, z, e = np.unravel_index(b - where.start, part.shape)
            sample = "" if name is None else f"sample {name}, "
            return f"{sample}topology {t}, zenith {z}, energy {e}"
    raise ValueError(f"bin {b} outside the binning")


def check_sample(
    data: EventTable,
    simulation: EventTable,
    binning: Binning | JointBinning,
    components: Sequence[Any],
) -> tuple[np.ndarray, np.ndarray]:
    """``(data_index, sim_index)`` of one sample's events in ``binning``, after the checks of
    :func:`bin_dataset` that need only this sample (errors name its files)."""
    for table in (data, simulation):
        for name in _binned_fields(binning):
            if name not in table:
                raise DataFormatError(
                    table.source,
                    f"the binning needs this field (have {sorted(table.fields)})",
                    field=name,
                )
    data_index, sim_index = binning.bin_events(data), binning.bin_events(simulation)
    _check_not_empty(data, simulation, binning, data_index, sim_index, components)
    return data_index, sim_index


def _binned_fields(binning: Binning | JointBinning) -> set[str]:
    """The event fields ``binning`` reads (observables and cuts)."""
    return {
        name
        for _, part, _ in sample_parts(binning)
        for name in ("energy", part.second, "topology", *(c[0] for c in part.cuts))
    }


def _describe_bins(binning: Binning | JointBinning) -> str:
    texts = []
    for name, part, _ in sample_parts(binning):
        e, z = part.energy_edges, part.zenith_edges
        unit = {"zenith": "rad", "length": "m"}[part.second]
        texts.append(
            ("" if name is None else f"{name}: ")
            + f"reconstructed energy {e[0]:.6g}..{e[-1]:.6g} GeV, {part.second} "
            f"{z[0]:.6g}..{z[-1]:.6g} {unit}, topology codes {part.topology_codes.tolist()}"
        )
    return "; ".join(texts)


def _check_not_empty(
    data: EventTable,
    simulation: EventTable,
    binning: Binning | JointBinning,
    data_index: np.ndarray,
    sim_index: np.ndarray,
    components: Sequence[Any],
) -> None:
    """Refuse inputs whose fit would leave parameters unconstrained (see :func:`bin_dataset`)."""
    if not np.any(data_index >= 0):
        raise DataFormatError(
            data.source,
            f"empty likelihood: none of the {len(data)} data events falls inside the bins "
            f"({_describe_bins(binning)}); there is nothing to fit",
        )
    inside = sim_index >= 0
    n_inside = int(inside.sum())
    if n_inside == 0:
        raise DataFormatError(
            simulation.source,
            f"none of the {len(simulation)} simulated events falls inside the bins "
            f"({_describe_bins(binning)}); no expectation to fit",
        )
    for c in components:
        for name in input_fields(c):
            if name not in simulation:
                raise DataFormatError(
                    simulation.source,
                    f"component '{c.name}' needs this field (have {sorted(simulation.fields)})",
                    field=name,
                )
    for c, field in [(comp, f) for comp in components for f in weight_fields(comp)]:
        weights = simulation[field]
        if not np.any(weights[inside] != 0):
            where = (
                f"all {len(simulation)} simulated events"
                if not np.any(weights != 0)
                else f"every one of the {n_inside} simulated events inside the bins"
            )
            raise DataFormatError(
                simulation.source,
                f"component '{c.name}' has weight 0 for {where}, so it predicts no events "
                f"and leaves {', '.join(c.parameters)} unconstrained",
                field=field,
            )
