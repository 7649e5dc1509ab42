"""IceCube's HESE 7.5-year public data release (icecube/HESE-7-year-data-release) as an input.

Files (``resources/data`` of the release; column-oriented JSON, one list per field)::

    HESE_data.json             the 102 observed events
    HESE_mc_truth.json         \\
    HESE_mc_observable.json     > the simulation, one event per index, merged by index
    HESE_mc_flux.json          /

Fields: ``recoDepositedEnergy`` (GeV), ``recoZenith`` (rad), ``recoLength`` (m; NaN when
there is none, i.e. for events not reconstructed as double cascades), ``recoMorphology``
(0 cascade, 1 track, 2 double cascade); simulation also ``primaryType`` (PDG code),
``primaryEnergy`` (GeV), ``primaryZenith`` (rad), ``trueLength`` (m), ``interactionType``
(1 CC, 2 NC, 3 Glashow resonance, 0 atmospheric muon), ``weightOverFluxOverLivetime``
(GeV sr cm^2; 0 for muons), ``muonWeightOverLivetime`` (s^-1; 0 for neutrinos),
``pionFlux``, ``kaonFlux``, ``promptFlux`` (GeV^-1 cm^-2 s^-1 sr^-1, per species),
``conventionalSelfVetoCorrection``, ``promptSelfVetoCorrection`` (passing fractions).

The reader checks every value: numbers only, finite (lengths may be NaN), energies > 0,
zeniths in [0, pi], known morphology and interaction codes, integer PDG codes, weights,
fluxes and passing fractions >= 0 (passing fractions above 1 are accepted as given).
A zenith printed rounded just beyond pi (``3.142``) is pi: it is set to pi and counted in
``EventTable.clamped`` (see :mod:`diffuse_fit.io.checks`).  An object with a key twice is refused.
Fields it does not know are ignored; ``trueLength`` and ``interactionType`` are optional.

The weighting of these events and their conversion to the workshop format are in
:mod:`diffuse_fit.physics.hese_weights`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from diffuse_fit.errors import DataFormatError
from diffuse_fit.io import checks
from diffuse_fit.io.atomic import write_text
from diffuse_fit.io.events import TOPOLOGY_CODES, EventTable, columns_digest
from diffuse_fit.io.json_text import parse_json

DATA_FILE = "HESE_data.json"
SIMULATION_FILES = {  # file -> the fields the release keeps there (the writer's split)
    "HESE_mc_truth.json": (
        "primaryType",
        "primaryEnergy",
        "primaryZenith",
        "trueLength",
        "interactionType",
    ),
    "HESE_mc_observable.json": (
        "recoDepositedEnergy",
        "recoMorphology",
        "recoZenith",
        "recoLength",
    ),
    "HESE_mc_flux.json": (
        "weightOverFluxOverLivetime",
        "muonWeightOverLivetime",
        "pionFlux",
        "kaonFlux",
        "promptFlux",
        "conventionalSelfVetoCorrection",
        "promptSelfVetoCorrection",
    ),
}
ALL_FILES = (DATA_FILE, *SIMULATION_FILES)
DATA_FIELDS = ("recoDepositedEnergy", "recoMorphology", "recoZenith", "recoLength")
OPTIONAL_SIMULATION_FIELDS = ("trueLength", "interactionType")  # checked when present
SIMULATION_FIELDS = tuple(
    f for fields in SIMULATION_FILES.values() for f in fields if f not in OPTIONAL_SIMULATION_FIELDS
)
INTEGER_FIELDS = ("primaryType", "interactionType", "recoMorphology")
MORPHOLOGY_CODES = TOPOLOGY_CODES  # the release's recoMorphology codes are the workshop's
INTERACTION_CODES = {0: "atmospheric muon", 1: "CC", 2: "NC", 3: "Glashow resonance"}


def _length(v: np.ndarray) -> np.ndarray:
    # NaN means "no length"; anything else must be a finite length
    return np.isnan(v) | (np.isfinite(v) & (v >= 0))


LENGTH = (_length, "is not a length in metres (>= 0, or NaN for none)")
# field -> (test on a float64 array, what failing it means)
_CHECKS: dict[str, checks.Check] = {
    "recoDepositedEnergy": checks.POSITIVE_ENERGY,
    "primaryEnergy": checks.POSITIVE_ENERGY,
    "recoZenith": checks.ZENITH,
    "primaryZenith": checks.ZENITH,
    "recoLength": LENGTH,
    "trueLength": LENGTH,
    "recoMorphology": checks.one_of(
        MORPHOLOGY_CODES, "a morphology code (0 cascade, 1 track, 2 double cascade)"
    ),
    "interactionType": checks.one_of(
        INTERACTION_CODES,
        "an interaction type (1 CC, 2 NC, 3 Glashow resonance, 0 atmospheric muon)",
    ),
    "primaryType": (lambda v: v == np.round(v), "is not a PDG particle code (an integer)"),
    "weightOverFluxOverLivetime": checks.non_negative("weights"),
    "muonWeightOverLivetime": checks.non_negative("weights"),
    "pionFlux": checks.non_negative("fluxes"),
    "kaonFlux": checks.non_negative("fluxes"),
    "promptFlux": checks.non_negative("fluxes"),
    "conventionalSelfVetoCorrection": checks.non_negative("passing fractions"),
    "promptSelfVetoCorrection": checks.non_negative("passing fractions"),
}
_NAN_ALLOWED = ("recoLength", "trueLength")
LOADED_FROM = "json (exact parser)"  # EventTable.loaded_from: the files are parsed by json
_FOLDER_HINT = (
    f"a release folder holds {', '.join(ALL_FILES)} "
    "(resources/data of icecube/HESE-7-year-data-release)"
)


# --------------------------------------------------------------------------- reading


def release_folder(path: str | os.PathLike[str]) -> Path:
    """The folder holding the release's files: ``path`` itself, or its ``resources/data``
    (a clone of the release repository, or the folder above it)."""
    path = Path(path)
    for candidate in (
        path,
        path / "resources" / "data",
        path / "HESE-7-year-data-release" / "resources" / "data",
    ):
        if any((candidate / name).is_file() for name in ALL_FILES):
            return candidate
    return path


def _read_json_object(path: Path) -> tuple[dict[str, Any], str]:
    """Parse one file with :mod:`json`; return its object and the SHA-256 of its bytes."""
    source = str(path)
    if not path.parent.is_dir():
        raise DataFormatError(str(path.parent), f"is not a folder; {_FOLDER_HINT}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(source, f"does not exist; {_FOLDER_HINT}") from None
    except OSError as exc:
        raise DataFormatError(source, f"cannot be read ({exc.strerror})") from None
    content = parse_json(raw, source)
    if not isinstance(content, dict):
        raise DataFormatError(
            source,
            f"top level must be a JSON object of field -> list of values, not "
            f"{type(content).__name__}",
        )
    return content, hashlib.sha256(raw).hexdigest()


def _column(values: object, name: str, source: str) -> np.ndarray:
    """One field's list as float64, refusing anything but JSON numbers."""
    if not isinstance(values, list):
        raise DataFormatError(
            source, f"must be a list of numbers, not {type(values).__name__}", field=name
        )
    if not set(map(type, values)) <= {int, float}:  # bool, None, str, list, dict
        row = next(i for i, v in enumerate(values) if type(v) not in (int, float))
        raise DataFormatError(source, f"non-numeric value {values[row]!r}", field=name, row=row)
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float range
        row = next(i for i, v in enumerate(values) if abs(v) > sys.float_info.max)
        raise DataFormatError(
            source,
            f"integer {checks.short_integer(values[row])} is beyond the float range",
            field=name,
            row=row,
        ) from None


def _check_values(columns: dict[str, np.ndarray], source: str) -> dict[str, int]:
    """Finite (NaN allowed for lengths) and physical; errors name field, row and value.
    Returns field -> number of values set to a bound they were printed rounded beyond."""
    counts = {
        name: checks.check_column(values, name, source, _CHECKS[name], name in _NAN_ALLOWED)
        for name, values in columns.items()
    }
    return {name: n for name, n in counts.items() if n}


def _read_columns(
    path: Path, known: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], str, dict[str, int]]:
    """The ``known`` fields present in one file, as checked float64 columns; its SHA-256;
    and field -> number of values set to a range bound (see :mod:`diffuse_fit.io.checks`)."""
    content, sha = _read_json_object(path)
    source = str(path)
    # pop each list as it is converted, so a large file is not held twice
    columns = {name: _column(content.pop(name), name, source) for name in known if name in content}
    if columns:
        first, n = next((k, len(v)) for k, v in columns.items())
        for name, values in columns.items():
            if len(values) != n:
                raise DataFormatError(
                    source,
                    f"has {len(values)} values but field '{first}' has {n}; "
                    "every field must have one value per event",
                    field=name,
                )
        if n == 0:
            raise DataFormatError(source, "has no events", field=first)
    return columns, sha, _check_values(columns, source)


def _missing(source: str, name: str, found: Iterable[str], where: str) -> DataFormatError:
    return DataFormatError(
        source, f"required field is missing; {where} hold {sorted(found)}", field=name
    )


def read_release_data(path: str | os.PathLike[str]) -> EventTable:
    """Read ``HESE_data.json`` (a file, or a release folder) into an :class:`EventTable`.

    Columns: ``DATA_FIELDS`` as float64 (``recoLength`` NaN where there is none);
    other fields of the file are ignored.

    Raises
    ------
    DataFormatError
        Naming the file, field, row and value of the first problem found.
    """
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = release_folder(path) / DATA_FILE
    columns, sha, clamped = _read_columns(path, DATA_FIELDS)
    for name in DATA_FIELDS:
        if name not in columns:
            raise _missing(str(path), name, columns, "its known fields")
    columns = {name: columns[name] for name in DATA_FIELDS}
    meta = {"hese_release": {"file": DATA_FILE}}
    return EventTable(columns, str(path), sha, meta, LOADED_FROM, columns_digest(columns), clamped)


def read_release_simulation(folder: str | os.PathLike[str]) -> EventTable:
    """Read and merge the three simulation files of a release folder.

    Each file is parsed once; its fields must have equal lengths, the three files the
    same number of events (merged by index).  Columns: ``SIMULATION_FIELDS`` and, when
    present, ``OPTIONAL_SIMULATION_FIELDS``, as float64.  ``sha256`` is the SHA-256 of
    the lines ``"<file name> <sha256 of its bytes>\\n"`` in the order truth, observable,
    flux; ``meta["hese_release"]["files"]`` holds the three hashes.

    Raises
    ------
    DataFormatError
        Naming the file, field, row and value of the first problem found.
    """
    folder = release_folder(folder)
    known = (*SIMULATION_FIELDS, *OPTIONAL_SIMULATION_FIELDS)
    columns: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}  # field -> file it was read from
    hashes: dict[str, str] = {}
    n_events: dict[str, int] = {}
    clamped: dict[str, int] = {}
    for name in SIMULATION_FILES:
        path = folder / name
        file_columns, hashes[name], file_clamped = _read_columns(path, known)
        if file_columns:
            n_events[name] = len(next(iter(file_columns.values())))
            first = next(iter(n_events))
            if n_events[name] != n_events[first]:
                raise DataFormatError(
                    str(path),
                    f"has {n_events[name]} events but {first} has {n_events[first]}; "
                    "the simulation files must describe the same events",
                )
        for field, values in file_columns.items():
            if field in columns and not np.array_equal(columns[field], values, equal_nan=True):
                raise DataFormatError(
                    str(path), f"differs from the same field in {origin[field]}", field=field
                )
            if field not in columns:
                columns[field], origin[field] = values, name
                if field in file_clamped:
                    clamped[field] = file_clamped[field]
    for name in SIMULATION_FIELDS:
        if name not in columns:
            home = next(f for f, fields in SIMULATION_FILES.items() if name in fields)
            where = f"the known fields of {', '.join(SIMULATION_FILES)} together"
            raise _missing(str(folder / home), name, columns, where)
    ordered = {name: columns[name] for name in known if name in columns}
    digest = hashlib.sha256("".join(f"{f} {h}\n" for f, h in hashes.items()).encode())
    source = str(folder / "HESE_mc_{truth,observable,flux}.json")
    meta = {"hese_release": {"files": hashes}}
    return EventTable(
        ordered, source, digest.hexdigest(), meta, LOADED_FROM, columns_digest(ordered), clamped
    )


def read_release(folder: str | os.PathLike[str]) -> tuple[EventTable, EventTable]:
    """``(simulation, data)`` of a release folder (see :func:`release_folder`)."""
    folder = release_folder(folder)
    return read_release_simulation(folder), read_release_data(folder / DATA_FILE)


# --------------------------------------------------------------------------- writing


def _json_column(name: str, values: Any) -> list[Any]:
    """A column as a JSON list: integer fields as ints, lists passed through as given."""
    if not isinstance(values, np.ndarray):
        return list(values)
    if name in INTEGER_FIELDS and np.all(values == np.round(values)):
        return cast("list[Any]", values.astype(np.int64).tolist())
    return cast("list[Any]", values.astype(np.float64).tolist())


def write_release_folder(
    folder: str | os.PathLike[str],
    sim_columns: Mapping[str, Any] | None,
    data_columns: Mapping[str, Any] | None,
) -> None:
    """Write columns in the release's own format (atomically, file by file).

    ``data_columns`` go to ``HESE_data.json``; ``sim_columns`` are split over the three
    simulation files as in :data:`SIMULATION_FILES` (other fields go to the observable
    file).  Either may be ``None`` to skip it.  Values are written as given (NaN as
    ``NaN``, as the release does); nothing is validated -- that is the reader's job.
    """
    folder = Path(folder)
    files: dict[str, dict[str, Any]] = {}
    if data_columns is not None:
        files[DATA_FILE] = dict(data_columns)
    if sim_columns is not None:
        placed = {f for fields in SIMULATION_FILES.values() for f in fields}
        for name, fields in SIMULATION_FILES.items():
            files[name] = {f: sim_columns[f] for f in fields if f in sim_columns}
        files["HESE_mc_observable.json"].update(
            {f: v for f, v in sim_columns.items() if f not in placed}
        )
    for name, columns in files.items():
        content = {field: _json_column(field, values) for field, values in columns.items()}
        write_text(folder / name, json.dumps(content) + "\n")
