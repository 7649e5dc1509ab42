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
Fields it does not know are ignored; ``trueLength`` and ``interactionType`` are optional.

Expected events per simulated event (livetime ``T`` = 227708167.68 s):

* astrophysical: ``weightOverFluxOverLivetime * norm * 1e-18 / 6 * (E_true / 100 TeV)^-gamma * T``;
* conventional:  ``weightOverFluxOverLivetime * (pionFlux + kaonFlux)
  * conventionalSelfVetoCorrection * (E_true / 2020 GeV)^-dgamma * T``;
* prompt:        ``weightOverFluxOverLivetime * promptFlux * promptSelfVetoCorrection
  * (E_true / 7887 GeV)^-dgamma * T``;
* muons:         ``muonWeightOverLivetime * T``.

``weightOverFluxOverLivetime`` is per species: each simulated event is one neutrino of
its own ``primaryType``, and multiplying by that species' flux gives its expected
events.  The release's ``astro_norm`` is the six-neutrino flux (three flavours, nu and
nubar) at 100 TeV in units of 1e-18 GeV^-1 cm^-2 s^-1 sr^-1, so one species carries
``norm / 6`` -- the release's own ``weighter.flux_spl`` multiplies by ``1e-18 / 6``.
The release's fit also has nu/nubar-ratio, kaon/pion-ratio and detector-systematics
nuisance parameters (all at their nominal 1 or 0 here) and a likelihood for the
simulation's statistics (SAY); neither is part of the workshop model.

:func:`to_workshop` turns a release into the workshop's format (see its docstring for
how ``astro_norm`` and the double cascades carry over).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from . import checks
from .atomic import write_text
from .binning import Binning
from .components import ASTROPHYSICAL, FlatComponent
from .errors import DataFormatError
from .events import EventTable
from .json_text import parse_json

LIVETIME_S = 227708167.68  # s, the release's livetime (its HESE_fit.py)
ASTRO_UNIT = 1.0e-18  # GeV^-1 cm^-2 s^-1 sr^-1, unit of the six-neutrino normalization
N_SPECIES = 6  # nue, numu, nutau and their antineutrinos
ASTRO_PIVOT_GEV = 1.0e5
REFERENCE_GAMMA = 2.5  # astroWeight's spectral index
CONVENTIONAL_PIVOT_GEV = 2020.0  # the release's cosmic-ray slope pivots
PROMPT_PIVOT_GEV = 7887.0

DATA_FILE = "HESE_data.json"
SIMULATION_FILES = {  # file -> the fields the release keeps there (the writer's split)
    "HESE_mc_truth.json": (
        "primaryType", "primaryEnergy", "primaryZenith", "trueLength", "interactionType",
    ),
    "HESE_mc_observable.json": (
        "recoDepositedEnergy", "recoMorphology", "recoZenith", "recoLength",
    ),
    "HESE_mc_flux.json": (
        "weightOverFluxOverLivetime", "muonWeightOverLivetime", "pionFlux", "kaonFlux",
        "promptFlux", "conventionalSelfVetoCorrection", "promptSelfVetoCorrection",
    ),
}  # fmt: skip
ALL_FILES = (DATA_FILE, *SIMULATION_FILES)
DATA_FIELDS = ("recoDepositedEnergy", "recoMorphology", "recoZenith", "recoLength")
OPTIONAL_SIMULATION_FIELDS = ("trueLength", "interactionType")  # checked when present
SIMULATION_FIELDS = tuple(
    f for fields in SIMULATION_FILES.values() for f in fields if f not in OPTIONAL_SIMULATION_FIELDS
)
INTEGER_FIELDS = ("primaryType", "interactionType", "recoMorphology")
MORPHOLOGY_CODES = {0: "cascade", 1: "track", 2: "double cascade"}
INTERACTION_CODES = {0: "atmospheric muon", 1: "CC", 2: "NC", 3: "Glashow resonance"}
DOUBLE_CASCADE_CHOICES = ("drop", "cascade")


def _length(v):  # NaN means "no length"; anything else must be a finite length
    return np.isnan(v) | (np.isfinite(v) & (v >= 0))


LENGTH = (_length, "is not a length in metres (>= 0, or NaN for none)")
# field -> (test on a float64 array, what failing it means)
_CHECKS = {
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
_FOLDER_HINT = (
    f"a release folder holds {', '.join(ALL_FILES)} "
    "(resources/data of icecube/HESE-7-year-data-release)"
)


# --------------------------------------------------------------------------- reading


def release_folder(path: str | os.PathLike) -> Path:
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


def _read_json_object(path: Path) -> tuple[dict, str]:
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


def _column(values, name: str, source: str) -> np.ndarray:
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
            source, f"non-finite value {values[row]!r}", field=name, row=row
        ) from None


def _check_values(columns: dict[str, np.ndarray], source: str) -> None:
    """Finite (NaN allowed for lengths) and physical; errors name field, row and value."""
    for name, values in columns.items():
        checks.check_column(values, name, source, _CHECKS[name], allow_nan=name in _NAN_ALLOWED)


def _read_columns(path: Path, known: tuple[str, ...]) -> tuple[dict[str, np.ndarray], str]:
    """The ``known`` fields present in one file, as checked float64 columns; and its SHA-256."""
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
    _check_values(columns, source)
    return columns, sha


def _missing(source: str, name: str, found, where: str) -> DataFormatError:
    return DataFormatError(
        source, f"required field is missing; {where} hold {sorted(found)}", field=name
    )


def read_release_data(path: str | os.PathLike) -> EventTable:
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
    columns, sha = _read_columns(path, DATA_FIELDS)
    for name in DATA_FIELDS:
        if name not in columns:
            raise _missing(str(path), name, columns, "its known fields")
    return EventTable(columns, str(path), sha, {"hese_release": {"file": DATA_FILE}})


def read_release_simulation(folder: str | os.PathLike) -> EventTable:
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
    for name in SIMULATION_FILES:
        path = folder / name
        file_columns, hashes[name] = _read_columns(path, known)
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
            columns.setdefault(field, values)
            origin.setdefault(field, name)
    for name in SIMULATION_FIELDS:
        if name not in columns:
            home = next(f for f, fields in SIMULATION_FILES.items() if name in fields)
            where = f"the known fields of {', '.join(SIMULATION_FILES)} together"
            raise _missing(str(folder / home), name, columns, where)
    ordered = {name: columns[name] for name in known if name in columns}
    digest = hashlib.sha256("".join(f"{f} {h}\n" for f, h in hashes.items()).encode())
    source = str(folder / "HESE_mc_{truth,observable,flux}.json")
    return EventTable(ordered, source, digest.hexdigest(), {"hese_release": {"files": hashes}})


def read_release(folder: str | os.PathLike) -> tuple[EventTable, EventTable]:
    """``(simulation, data)`` of a release folder (see :func:`release_folder`)."""
    folder = release_folder(folder)
    return read_release_simulation(folder), read_release_data(folder / DATA_FILE)


# --------------------------------------------------------------------------- physics


def astrophysical_flux(energy, norm: float = 1.0, gamma: float = REFERENCE_GAMMA) -> np.ndarray:
    """Astrophysical flux of ONE neutrino species, GeV^-1 cm^-2 s^-1 sr^-1.

    ``norm * 1e-18 / 6 * (energy / 100 TeV)^-gamma``: ``norm`` is the release's
    six-neutrino normalization (all flavours, nu + nubar, at 100 TeV) in units of
    1e-18 GeV^-1 cm^-2 s^-1 sr^-1; ``energy`` is the true neutrino energy in GeV.
    """
    return norm * ASTRO_UNIT / N_SPECIES * (np.asarray(energy) / ASTRO_PIVOT_GEV) ** -gamma


def astrophysical_expectation(
    sim, norm: float = 1.0, gamma: float = REFERENCE_GAMMA, livetime: float = LIVETIME_S
) -> np.ndarray:
    """Expected astrophysical events of each simulated event (dimensionless).

    ``weightOverFluxOverLivetime [GeV sr cm^2] * astrophysical_flux(primaryEnergy, norm,
    gamma) [GeV^-1 cm^-2 s^-1 sr^-1] * livetime [s]``.  The weight is per species (the
    event's own ``primaryType``), so the per-species flux ``norm / 6`` is the one to use.
    ``sim`` is any mapping of the release's fields to arrays.
    """
    return (
        sim["weightOverFluxOverLivetime"]
        * astrophysical_flux(sim["primaryEnergy"], norm, gamma)
        * livetime
    )


def conventional_expectation(
    sim, norm: float = 1.0, dgamma: float = 0.0, livetime: float = LIVETIME_S
) -> np.ndarray:
    """Expected conventional-atmospheric events of each simulated event.

    ``weightOverFluxOverLivetime [GeV sr cm^2] * (pionFlux + kaonFlux)
    [GeV^-1 cm^-2 s^-1 sr^-1] * conventionalSelfVetoCorrection * norm
    * (primaryEnergy / 2020 GeV)^-dgamma * livetime [s]``; ``dgamma`` is the release's
    cosmic-ray slope shift (0 nominal).
    """
    tilt = (sim["primaryEnergy"] / CONVENTIONAL_PIVOT_GEV) ** -dgamma
    return (
        sim["weightOverFluxOverLivetime"]
        * (sim["pionFlux"] + sim["kaonFlux"])
        * sim["conventionalSelfVetoCorrection"]
        * (norm * tilt * livetime)
    )


def prompt_expectation(
    sim, norm: float = 1.0, dgamma: float = 0.0, livetime: float = LIVETIME_S
) -> np.ndarray:
    """Expected prompt-atmospheric events of each simulated event.

    ``weightOverFluxOverLivetime [GeV sr cm^2] * promptFlux [GeV^-1 cm^-2 s^-1 sr^-1]
    * promptSelfVetoCorrection * norm * (primaryEnergy / 7887 GeV)^-dgamma * livetime [s]``.
    """
    tilt = (sim["primaryEnergy"] / PROMPT_PIVOT_GEV) ** -dgamma
    return (
        sim["weightOverFluxOverLivetime"]
        * sim["promptFlux"]
        * sim["promptSelfVetoCorrection"]
        * (norm * tilt * livetime)
    )


def muon_expectation(sim, norm: float = 1.0, livetime: float = LIVETIME_S) -> np.ndarray:
    """Expected atmospheric-muon events of each simulated event:
    ``norm * muonWeightOverLivetime [s^-1] * livetime [s]``."""
    return norm * sim["muonWeightOverLivetime"] * livetime


# --------------------------------------------------------------------------- workshop format

CONVENTIONAL = FlatComponent("conventional", "conventionalWeight", "atmos_norm")
PROMPT = FlatComponent("prompt", "promptWeight", "prompt_norm")
MUON = FlatComponent("muon", "muonWeight", "muon_norm")
HESE_COMPONENTS_SPLIT = (CONVENTIONAL, PROMPT, MUON, ASTROPHYSICAL)
"""Components for a converted release with separate prompt and muon normalizations.

``atmos_norm`` then scales the conventional flux only (the release's ``conv_norm``);
with ``prompt_norm = muon_norm = atmos_norm`` the expectation equals the workshop model's
(``WORKSHOP_COMPONENTS``), whose ``atmos_norm`` scales ``atmoWeight`` = all three.
"""


def workshop_topology(morphology, double_cascades: str = "drop") -> np.ndarray:
    """Workshop topology codes from release morphologies (0 -> 0, 1 -> 1, 2 -> 2 or 0).

    ``"drop"`` keeps double cascades as code 2, which the workshop binning's topology
    edges [0, 1, 2) leave outside the bins; ``"cascade"`` merges them into cascades (0).
    """
    if double_cascades not in DOUBLE_CASCADE_CHOICES:
        raise ValueError(
            f"double_cascades must be one of {DOUBLE_CASCADE_CHOICES}, not {double_cascades!r}"
        )
    morphology = np.asarray(morphology, dtype=np.float64)
    return np.where(morphology == 2, 2.0 if double_cascades == "drop" else 0.0, morphology)


def to_workshop(
    release_sim: EventTable, release_data: EventTable, double_cascades: str = "drop"
) -> tuple[EventTable, EventTable]:
    """The release as workshop-format ``(simulation, data)`` tables.

    ``energy`` = recoDepositedEnergy (GeV), ``zenith`` = recoZenith (rad), ``topology``
    from recoMorphology (:func:`workshop_topology`), ``primaryEnergy`` / ``primaryZenith``
    as in the release; ``atmoWeight`` = conventional + prompt + muon expectation at
    nominal (norms 1, dgamma 0), kept separately as ``conventionalWeight``,
    ``promptWeight`` and ``muonWeight`` (for :data:`HESE_COMPONENTS_SPLIT`);
    ``astroWeight`` = astrophysical expectation at norm 1 and gamma 2.5.  So the
    workshop's ``astro_norm`` is the release's six-neutrino normalization at 100 TeV
    in units of 1e-18 GeV^-1 cm^-2 s^-1 sr^-1, and ``astro_gamma`` its spectral index.

    Double cascades: ``"drop"`` (topology 2, outside the workshop bins) or
    ``"cascade"`` (merged into cascades, whatever their length; the release's own fit
    bins them separately and keeps only those with recoLength in [10, 1000] m).
    """
    conventional = conventional_expectation(release_sim)
    prompt = prompt_expectation(release_sim)
    muon = muon_expectation(release_sim)
    sim_columns = {
        "astroWeight": astrophysical_expectation(release_sim),
        "atmoWeight": conventional + prompt + muon,
        "energy": release_sim["recoDepositedEnergy"],
        "primaryEnergy": release_sim["primaryEnergy"],
        "primaryZenith": release_sim["primaryZenith"],
        "topology": workshop_topology(release_sim["recoMorphology"], double_cascades),
        "zenith": release_sim["recoZenith"],
        "conventionalWeight": conventional,
        "promptWeight": prompt,
        "muonWeight": muon,
    }
    data_columns = {
        "energy": release_data["recoDepositedEnergy"],
        "topology": workshop_topology(release_data["recoMorphology"], double_cascades),
        "zenith": release_data["recoZenith"],
    }
    common = {
        "double_cascades": double_cascades,
        "livetime_s": LIVETIME_S,
        "astro_norm": "six-neutrino flux at 100 TeV, 1e-18 GeV^-1 cm^-2 s^-1 sr^-1",
    }

    def converted(table: EventTable, columns: dict) -> EventTable:
        origin = {"source": table.source, "sha256": table.sha256}
        origin.update(table.meta.get("hese_release", {}))
        meta = {"hese_release": {**origin, **common}}
        sha = hashlib.sha256(f"{table.sha256} to_workshop {double_cascades}".encode())
        return EventTable(columns, table.source, sha.hexdigest(), meta)

    return converted(release_sim, sim_columns), converted(release_data, data_columns)


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


# --------------------------------------------------------------------------- writing


def _json_column(name: str, values) -> list:
    """A column as a JSON list: integer fields as ints, lists passed through as given."""
    if not isinstance(values, np.ndarray):
        return list(values)
    if name in INTEGER_FIELDS and np.all(values == np.round(values)):
        return values.astype(np.int64).tolist()
    return values.astype(np.float64).tolist()


def write_release_folder(folder, sim_columns: dict | None, data_columns: dict | None) -> None:
    """Write columns in the release's own format (atomically, file by file).

    ``data_columns`` go to ``HESE_data.json``; ``sim_columns`` are split over the three
    simulation files as in :data:`SIMULATION_FILES` (other fields go to the observable
    file).  Either may be ``None`` to skip it.  Values are written as given (NaN as
    ``NaN``, as the release does); nothing is validated -- that is the reader's job.
    """
    folder = Path(folder)
    files: dict[str, dict] = {}
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
