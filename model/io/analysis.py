"""The analysis specification: one typed, frozen, validated description of an analysis,
read from a TOML or JSON file (``--analysis FILE``) or built from the command line's options.

Why pydantic (v2): one class per section gives the validation, the frozen typed objects the
code uses, the error locations (``samples.0.binning.energy_edges_GeV``) and the published
JSON Schema (:func:`json_schema`) from a single definition; with dataclasses + jsonschema the
schema and the classes would be two texts to keep in step.

A file::

    format = "diffuse-fit-analysis"
    format_version = 1
    priors = "default"                 # flat | default | hese | a prior file
    fix = {astro_gamma = 2.5}          # parameters held fixed (optional; --fix NAME=VALUE)

    [[samples]]
    name = "main"
    components = "workshop"            # workshop | split | hese
    astro_model = "spl"                # spl | logparabola | broken | cutoff | segmented | flavour
    # segments_GeV = [6e4, 2e5, 1e6, 1e7]  # segmented only: edges in true energy (GeV)
    likelihood = "poisson"             # poisson | say
    [samples.inputs]
    toy = "default"                    # or data = "data.json", simulation = "sim.json",
                                       # or hese_release = "DIR"
    [samples.binning]
    energy_edges_GeV = [6e4, 1e5, 3e5, 1e6, 1e7]
    cos_zenith_edges = [-1, 0, 1]
    topology_codes = [0, 1]

Paths in a file are relative to the file's folder.  The binning's edges are reconstructed
deposited energy (GeV, strictly increasing) and cos(zenith) (strictly increasing, in
[-1, 1]; zenith edges in rad with ``zenith_edges_rad`` instead); omitted, the workshop's.
``preset = "hese-release"`` is the HESE release's own binning (840 bins, double cascades in
energy x length: :mod:`diffuse_fit.binned.hese_binning`), the default ("auto") for a sample
whose inputs are a HESE release folder; ``preset = "workshop"`` keeps the workshop's there.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from diffuse_fit.errors import DataFormatError

FORMAT: Final = "diffuse-fit-analysis"
FORMAT_VERSION: Final = 1
TOY_SEED = 20190614  # keep in step with diffuse_fit.physics.constants.TOY_SEED (tested)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class InputsSpec(_Section):
    """Where a sample's events come from: the embedded toy (default), workshop files, or a
    downloaded HESE release folder."""

    toy: Literal["default", "broken", "flavour"] | None = None
    toy_seed: int = Field(TOY_SEED, ge=0, le=2**32 - 1)
    data: Path | None = None
    simulation: Path | None = None
    hese_release: Path | None = None
    double_cascades: Literal["drop", "cascade"] = "drop"  # the workshop binning's choice
    cache: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> InputsSpec:
        files = self.data is not None or self.simulation is not None
        if files and (self.data is None or self.simulation is None):
            raise ValueError("give both data and simulation, or neither")
        sources = [files, self.hese_release is not None, self.toy is not None]
        if sum(sources) > 1:
            raise ValueError("give one of toy, data + simulation, hese_release")
        return self

    def resolved(self, folder: Path) -> InputsSpec:
        """Paths made absolute against ``folder`` (the specification file's)."""
        update = {
            k: (folder / v).resolve()
            for k in ("data", "simulation", "hese_release")
            if (v := getattr(self, k)) is not None and not Path(v).is_absolute()
        }
        return self.model_copy(update=update)


def _strictly_increasing(values: list[float] | None, what: str) -> list[float] | None:
    if values is None:
        return None
    if len(values) < 2:
        raise ValueError(f"{what} needs at least 2 edges")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} must be finite")
    if not all(b > a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{what} must be strictly increasing")
    return values


class BinningSpec(_Section):
    """A sample's bins: reconstructed deposited energy (GeV), zenith (as cos(zenith) edges or
    as zenith edges in rad), topology codes (0 cascade, 1 track, 2 double cascade)."""

    preset: Literal["auto", "workshop", "hese-release"] = "auto"
    energy_edges_GeV: list[float] | None = None
    cos_zenith_edges: list[float] | None = None
    zenith_edges_rad: list[float] | None = None
    topology_codes: list[int] = [0, 1]

    @field_validator("energy_edges_GeV")
    @classmethod
    def _energy(cls, v: list[float] | None) -> list[float] | None:
        v = _strictly_increasing(v, "energy edges")
        if v is not None and v[0] <= 0:
            raise ValueError("energy edges must be positive (GeV)")
        return v

    @field_validator("cos_zenith_edges")
    @classmethod
    def _cos(cls, v: list[float] | None) -> list[float] | None:
        v = _strictly_increasing(v, "cos(zenith) edges")
        if v is not None and not (-1 <= v[0] and v[-1] <= 1):
            raise ValueError("cos(zenith) edges must lie in [-1, 1]")
        return v

    @field_validator("zenith_edges_rad")
    @classmethod
    def _zenith(cls, v: list[float] | None) -> list[float] | None:
        v = _strictly_increasing(v, "zenith edges")
        if v is not None and not (0 <= v[0] and v[-1] <= math.pi):
            raise ValueError("zenith edges must lie in [0, pi] rad")
        return v

    @field_validator("topology_codes")
    @classmethod
    def _codes(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError("give at least one topology code, each once")
        return v

    @model_validator(mode="after")
    def _one_zenith(self) -> BinningSpec:
        if self.cos_zenith_edges is not None and self.zenith_edges_rad is not None:
            raise ValueError("give cos_zenith_edges or zenith_edges_rad, not both")
        if self.preset == "hese-release" and self.explicit():
            raise ValueError(
                "preset 'hese-release' is the release's whole binning: give no "
                "edges or topology codes with it"
            )
        return self

    def explicit(self) -> bool:
        """Whether edges or topology codes other than the workshop's are given."""
        return (
            self.energy_edges_GeV is not None
            or self.cos_zenith_edges is not None
            or self.zenith_edges_rad is not None
            or list(self.topology_codes) != [0, 1]
        )

    def zenith_edges(self) -> np.ndarray | None:
        """Zenith edges in rad, increasing (None: the workshop's)."""
        if self.zenith_edges_rad is not None:
            return np.asarray(self.zenith_edges_rad, dtype=np.float64)
        if self.cos_zenith_edges is not None:
            edges = np.arccos(np.asarray(self.cos_zenith_edges, dtype=np.float64))[::-1]
            return np.clip(edges, 0.0, np.pi)
        return None


class SampleSpec(_Section):
    """One event sample: its inputs, binning, components, spectral model and likelihood."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "main"
    inputs: InputsSpec = InputsSpec()
    binning: BinningSpec = BinningSpec()
    components: Literal["workshop", "split", "hese"] = "workshop"
    astro_model: str = "spl"
    # the segmented spectrum's edges in true neutrino energy (GeV, increasing); only with
    # astro_model = "segmented" (omitted: 60 TeV - 10 PeV in 5 segments)
    segments_GeV: Annotated[list[float], Field(min_length=2)] | None = None
    likelihood: Literal["poisson", "say"] = "poisson"
    # a joint fit's per-sample parameters: {parameter: its name in this sample}, e.g.
    # {atmos_norm = "atmos_norm_tracks"}; the others are shared by name
    parameters: dict[str, Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = {}

    @model_validator(mode="after")
    def _segments_of_segmented(self) -> SampleSpec:
        from diffuse_fit.io.spectrum_names import check_segment_edges, split_segmented

        name, edges = split_segmented(self.astro_model)
        if self.segments_GeV is None:
            return self
        if name != "segmented":
            raise ValueError(
                f"segments_GeV is for astro_model = 'segmented', not {self.astro_model!r}"
            )
        given = check_segment_edges(self.segments_GeV)
        if self.astro_model != "segmented" and given != edges:
            raise ValueError(
                f"segments_GeV {list(given)} differs from the edges of "
                f"astro_model = {self.astro_model!r}"
            )
        return self

    def spectrum(self) -> str:
        """The spectral model's name as the jobs take it (``segmented:E1,...`` for segments
        of the sample's own: :func:`diffuse_fit.physics.spectra.segmented_model`)."""
        if self.segments_GeV is None:
            return self.astro_model
        from diffuse_fit.io.spectrum_names import segmented_model

        return segmented_model(self.segments_GeV)


class AnalysisSpec(_Section):
    """A whole analysis: its samples (several samples are fitted jointly, sharing their
    parameters by name), the priors of its parameters and those held fixed."""

    format: Literal["diffuse-fit-analysis"] = FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    priors: str | dict = "default"  # type: ignore[type-arg]  # a pydantic field: kept as is
    fix: dict[str, float] = {}
    samples: Annotated[list[SampleSpec], Field(min_length=1)] = [SampleSpec()]

    @field_validator("fix")
    @classmethod
    def _finite_fixed(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not math.isfinite(x)}
        if bad:
            raise ValueError(f"fixed values must be finite numbers, not {bad}")
        return v

    @field_validator("samples")
    @classmethod
    def _unique_names(cls, v: list[SampleSpec]) -> list[SampleSpec]:
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError(f"sample names must be distinct, not {names}")
        return v

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON content (paths as text), the form a run records."""
        return self.model_dump(mode="json")


def from_options(
    *,
    priors: str | os.PathLike[str] | dict[str, Any] = "default",
    components: str = "workshop",
    astro_model: str = "spl",
    likelihood: str = "poisson",
    inputs: Mapping[str, Any] | None = None,
) -> AnalysisSpec:
    """The one-sample specification of today's options; ``inputs``: how the inputs were
    loaded (:attr:`diffuse_fit.jobs.inputs.Inputs.spec`: ``toy_seed`` and ``toy``, or
    ``data`` and ``sim``, or ``hese_release`` and ``double_cascades``)."""
    given = dict(inputs or {})
    if "sim" in given:
        given["simulation"] = given.pop("sim")
    if "toy_seed" in given and "toy" not in given:
        given["toy"] = "default"
    from diffuse_fit.io.spectrum_names import SEGMENTED, split_segmented

    segments: list[float] | None = None
    if astro_model != SEGMENTED and split_segmented(astro_model)[0] == SEGMENTED:
        edges = split_segmented(astro_model)[1]
        assert edges is not None  # a segmented model always has its edges
        astro_model, segments = SEGMENTED, list(edges)
    sample = SampleSpec(
        inputs=InputsSpec(**given),
        components=components,
        astro_model=astro_model,
        segments_GeV=segments,
        likelihood=likelihood,
    )
    return AnalysisSpec(
        priors=priors if isinstance(priors, dict) else str(priors), samples=[sample]
    )


def from_provenance(provenance: Mapping[str, Any], source: str = "<run>") -> AnalysisSpec:
    """The specification a run recorded; for runs made before specifications existed, the
    one its recorded options, inputs and binning amount to."""
    if "analysis" in provenance and provenance["analysis"] is not None:
        return from_dict(provenance["analysis"], source)
    spec = from_options(
        priors=provenance.get("prior_set", "default"),
        components=provenance.get("components", "workshop"),
        astro_model=provenance.get("astro_model", "spl"),
        likelihood=provenance.get("likelihood", "poisson"),
        inputs=provenance.get("input_spec"),
    )
    binning = provenance.get("binning")
    if binning:
        edges = BinningSpec(
            energy_edges_GeV=binning["energy_edges_GeV"],
            zenith_edges_rad=binning["zenith_edges_rad"],
            topology_codes=binning["topology_codes"],
        )
        spec = with_sample(spec, binning=edges)
    return spec


def with_sample(spec: AnalysisSpec, **changes: Any) -> AnalysisSpec:
    """``spec`` with its (one) sample's fields changed (``astro_model="logparabola"``)."""
    sample = spec.samples[0].model_copy(update=changes)
    return spec.model_copy(update={"samples": [sample, *spec.samples[1:]]})


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a specification file."""
    schema = AnalysisSpec.model_json_schema()
    schema["$id"] = f"https://diffuse-fit/{FORMAT}/{FORMAT_VERSION}"
    return schema


def _location(error: Mapping[str, Any]) -> str:
    return ".".join(str(p) for p in error["loc"]) or "(top level)"


def from_dict(
    content: dict[str, Any], source: str = "<analysis>", folder: Path | None = None
) -> AnalysisSpec:
    """Validate ``content``; bad content is one :class:`DataFormatError` line naming the key
    path and value."""
    try:
        spec = AnalysisSpec.model_validate(content)
    except ValidationError as exc:
        first = exc.errors()[0]
        value = first.get("input")
        shown = json.dumps(value, default=str)[:80] if not isinstance(value, dict) else "{...}"
        message = first["msg"].removeprefix("Value error, ")
        raise DataFormatError(source, f"{_location(first)}: {message} (value {shown})") from None
    if folder is not None:
        samples = [s.model_copy(update={"inputs": s.inputs.resolved(folder)}) for s in spec.samples]
        spec = spec.model_copy(update={"samples": samples})
    return spec


def read_analysis(path: str | os.PathLike[str]) -> AnalysisSpec:
    """A specification file, TOML (``.toml``) or JSON (anything else)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(str(path), f"cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
        content = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(
            str(path), f"is not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc})"
        ) from None
    if not isinstance(content, dict):
        raise DataFormatError(str(path), "must hold a table/object at the top level")
    return from_dict(content, str(path), path.parent)
