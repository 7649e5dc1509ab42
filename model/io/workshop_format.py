"""Read, validate and write the diffuse-fit workshop's JSON files.

A workshop file is one JSON object::

    {"mapping": {"energy": 0, "zenith": 1, ...},   # field name -> column index
     "events": [[e0, z0, ...], [e1, z1, ...], ...]} # one row per event

Columns are found through ``mapping``, never by position; fields beyond the
required ones, and top-level keys beyond ``mapping`` and ``events``, are kept.

Units: ``energy`` (reconstructed deposited energy) and ``primaryEnergy`` (true
neutrino energy) in GeV; ``zenith`` (reconstructed) and ``primaryZenith`` in
radians; ``atmoWeight`` / ``astroWeight`` in expected events for the file's
livetime at the nominal flux; ``topology`` 0 cascade, 1 track, 2 double cascade.
Optional simulation fields read by component sets other than the workshop's:
``conventionalWeight``, ``promptWeight``, ``muonWeight`` (expected events at nominal,
``--components split`` and ``hese``); ``pionWeight``, ``kaonWeight`` (conventional expected
events from pion and kaon decays, summing to ``conventionalWeight``) and ``primaryType``
(PDG code: > 0 neutrino, < 0 antineutrino; +-12 nu_e, +-14 nu_mu, +-16 nu_tau, +-13 an
atmospheric muon; checked when present) for ``--components hese``
(:mod:`diffuse_fit.physics.nuisance`) and ``--astro-model flavour``
(:mod:`diffuse_fit.physics.flavour`, which needs the flavour of every event with an
astrophysical weight).

Parsing: the events of a large file (the workshop's simulation is ~200 MB) are
parsed by NumPy straight from the file's bytes, about 2-3x the file's size in
memory, after checking every number against the JSON grammar; anything the fast
path cannot vouch for is re-read with :mod:`json`, which names the exact row and
value at fault.  Both refuse an object with a key twice.  Parsed files can be
cached (:mod:`diffuse_fit.io.cache`, verified on every load), so the JSON is parsed once.

Values printed rounded just outside a closed range (a zenith ``3.142`` for pi) are
set to the bound and counted in :attr:`EventTable.clamped` (see :mod:`diffuse_fit.io.checks`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from diffuse_fit.errors import DataFormatError
from diffuse_fit.io import cache, checks, fast_rows
from diffuse_fit.io.atomic import write_text
from diffuse_fit.io.cache import CACHE_ENV as CACHE_ENV  # re-exported
from diffuse_fit.io.cache import default_cache_dir as default_cache_dir  # re-exported
from diffuse_fit.io.events import TOPOLOGY_CODES, EventTable, columns_digest
from diffuse_fit.io.fast_rows import NotFast
from diffuse_fit.io.json_text import parse_json

DATA_FIELDS = ("energy", "topology", "zenith")
SIMULATION_FIELDS = (
    "astroWeight",
    "atmoWeight",
    "energy",
    "primaryEnergy",
    "primaryZenith",
    "topology",
    "zenith",
)

# field -> check (see diffuse_fit.io.checks)
_FIELD_CHECKS: dict[str, checks.Check] = {
    "astroWeight": checks.non_negative("weights"),
    "atmoWeight": checks.non_negative("weights"),
    "energy": checks.POSITIVE_ENERGY,
    "primaryEnergy": checks.POSITIVE_ENERGY,
    "zenith": checks.ZENITH,
    "primaryZenith": checks.ZENITH,
    "topology": checks.one_of(
        TOPOLOGY_CODES, "a topology code (0 cascade, 1 track, 2 double cascade)"
    ),
    "primaryType": checks.one_of(
        (-16, -14, -13, -12, 12, 13, 14, 16),
        "a PDG code (+-12 nu_e, +-14 nu_mu, +-16 nu_tau; +-13 an atmospheric muon)",
    ),
}

FAST_PATH = "json (fast path)"  # EventTable.loaded_from of the two parsers
EXACT_PARSER = "json (exact parser)"


# --------------------------------------------------------------------------- reading


def _parse_fast(raw: bytes, source: str) -> tuple[dict[str, Any], np.ndarray]:
    """Parse a well-formed workshop file with :mod:`diffuse_fit.io.fast_rows`; raise
    ``NotFast`` on anything it cannot vouch for."""
    span = fast_rows.events_span(raw)
    if span is None:
        raise NotFast
    start, stop, rest = span
    rest["events"] = None
    try:
        mapping = _check_mapping(rest, source)
    except DataFormatError:  # the span may not be what it seems ("events": [] twice, ...):
        raise NotFast from None  # the exact parser names what is wrong
    return rest, fast_rows.parse_rows(raw, start, stop, len(mapping))


def _parse_exact(raw: bytes, source: str) -> tuple[dict[str, Any], np.ndarray]:
    """Parse with :mod:`json` and check every row; errors name row, field and value."""
    content = parse_json(raw, source)
    if not isinstance(content, dict):
        raise DataFormatError(source, "top level must be a JSON object with 'mapping' and 'events'")
    mapping = _check_mapping(content, source)
    events = content.get("events")
    if events is None:
        raise DataFormatError(source, "has no 'events' list", field="events")
    if not isinstance(events, list):
        raise DataFormatError(source, "'events' must be a list of rows", field="events")
    names = {index: name for name, index in mapping.items()}
    n_cols = len(mapping)
    for i, row in enumerate(events):
        if not isinstance(row, list) or len(row) != n_cols:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise DataFormatError(
                source, f"row has {got} values, mapping has {n_cols} fields", row=i
            )
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DataFormatError(source, f"non-numeric value {value!r}", field=names[j], row=i)
    content["events"] = None
    try:
        table = np.array(events, dtype=np.float64)
    except OverflowError:  # an integer beyond the float range
        i, j = next(
            (i, j)
            for i, row in enumerate(events)
            for j, v in enumerate(row)
            if abs(v) > sys.float_info.max
        )
        raise DataFormatError(
            source,
            f"integer {checks.short_integer(events[i][j])} is beyond the float range",
            field=names[j],
            row=i,
        ) from None
    return content, table.reshape(len(events), n_cols)


def _check_mapping(content: dict[str, Any], source: str) -> dict[str, int]:
    mapping = content.get("mapping")
    if mapping is None:
        raise DataFormatError(source, "has no 'mapping' object", field="mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise DataFormatError(source, "'mapping' must be a non-empty object", field="mapping")
    for name, index in mapping.items():
        if isinstance(index, bool) or not isinstance(index, int):
            raise DataFormatError(
                source, f"column index {index!r} is not an integer", field=f"mapping.{name}"
            )
    if sorted(mapping.values()) != list(range(len(mapping))):
        raise DataFormatError(
            source,
            f"column indices {sorted(mapping.values())} are not 0..{len(mapping) - 1}",
            field="mapping",
        )
    return mapping


def validate_columns(
    columns: dict[str, np.ndarray], required: tuple[str, ...], source: str
) -> dict[str, int]:
    """Check required fields are present, finite and physical; raise :class:`DataFormatError`
    (:func:`read_workshop_file` checks the other fields are finite).

    Values printed rounded just outside a closed range are set to its bound (in place);
    returns field -> how many, for the fields where there were any."""
    for name in required:
        if name not in columns:
            raise DataFormatError(
                source,
                f"required field is missing from 'mapping' (it has {sorted(columns)})",
                field=name,
            )
    counts = {
        name: checks.check_column(columns[name], name, source, _FIELD_CHECKS.get(name))
        for name in required
    }
    return {name: n for name, n in counts.items() if n}


def _verify_entry(raw: bytes, meta: dict[str, Any], columns: dict[str, np.ndarray]) -> str | None:
    """What differs between a cache entry and the file's bytes (``None`` if nothing does):
    mapping and other keys, then sampled rows against an exact parse."""
    span = fast_rows.events_span(raw)
    if span is None:
        return "cannot be checked against a file laid out like this"
    start, stop, rest = span
    mapping = rest.get("mapping")
    if not isinstance(mapping, dict) or list(mapping) != list(columns):
        return "has other fields than the file's 'mapping'"
    if json.dumps(meta) != json.dumps(_meta_of(rest)):
        return "has other top-level keys than the file"
    order = sorted(mapping, key=lambda name: mapping[name])  # columns in the file's column order
    return cache.spot_check_rows(
        raw,
        (start + 1, stop - 1),
        len(columns[order[0]]),
        lambda rows: np.column_stack([columns[name][rows] for name in order]),
    )


def _meta_of(content: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in content.items() if k not in ("mapping", "events")}


def _parse(
    raw: bytes, sha: str, source: str, cache_file: Path | None
) -> tuple[dict[str, Any], dict[str, np.ndarray], str, str]:
    """``(meta, columns, how, digest)`` of the file's bytes (SHA-256 ``sha``), from a
    verified cache entry or parsed (then cached, if ``cache_file`` is given and the entry
    can be verified)."""
    if cache_file is not None:
        verified = cache.load(cache_file, sha, lambda meta, cols: _verify_entry(raw, meta, cols))
        if verified is not None:
            return *verified[:2], f"cache {cache_file} (verified)", verified[2]
    try:
        content, table = _parse_fast(raw, source)
        how = FAST_PATH
    except NotFast:
        content, table = _parse_exact(raw, source)
        how = EXACT_PARSER
    # column views of the row-major table: no second copy of the events
    columns = {name: table[:, i] for name, i in content["mapping"].items()}
    meta, digest = _meta_of(content), columns_digest(columns)
    if cache_file is not None and len(table) and (how == FAST_PATH or fast_rows.events_span(raw)):
        cache.store(cache_file, sha, meta, columns, digest)
    return meta, columns, how, digest


def read_workshop_file(
    path: str | os.PathLike[str],
    required: tuple[str, ...],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    allow_empty: bool = False,
) -> EventTable:
    """Read and validate one workshop-format file.

    Parameters
    ----------
    path : path-like
        The JSON file.
    required : tuple of str
        Fields that must be present (``DATA_FIELDS`` or ``SIMULATION_FIELDS``).
    cache_dir : path-like, optional
        Where to keep verified caches of parsed files (:mod:`diffuse_fit.io.cache`); ``None``
        for no cache.
    allow_empty : bool
        Accept a file with no events.

    Returns
    -------
    EventTable
        With ``loaded_from`` (``"json (fast path)"``, ``"json (exact parser)"`` or
        ``"cache <path> (verified)"``), ``columns_sha256`` and ``clamped`` set.

    Raises
    ------
    DataFormatError
        Naming the file, field, row and value of the first problem found.
    """
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(source, "does not exist") from None
    except OSError as exc:
        raise DataFormatError(source, f"cannot be read ({exc.strerror or exc})") from None
    sha = hashlib.sha256(raw).hexdigest()
    cache_file = cache.entry_path(cache_dir, sha) if cache_dir is not None else None
    meta, columns, how, digest = _parse(raw, sha, source, cache_file)
    del raw
    if not allow_empty and not next(iter(columns.values())).size:
        raise DataFormatError(source, "has no events", field="events")
    clamped = validate_columns(columns, required, source)
    for name, values in columns.items():  # every column, used by the fit or not
        if name not in required:
            checks.check_column(values, name, source)
    if clamped:
        digest = columns_digest(columns)
    return EventTable(columns, source, sha, meta, how, digest, clamped)


def read_data(path: str | os.PathLike[str], **kwargs: Any) -> EventTable:
    """Read an observed-events file (fields ``energy``, ``topology``, ``zenith``)."""
    return read_workshop_file(path, DATA_FIELDS, **kwargs)


def read_simulation(path: str | os.PathLike[str], **kwargs: Any) -> EventTable:
    """Read a simulation file (``SIMULATION_FIELDS``: weights, true and reconstructed quantities)."""
    return read_workshop_file(path, SIMULATION_FIELDS, **kwargs)


# --------------------------------------------------------------------------- writing


def to_workshop_json(
    table: EventTable, fields: Iterable[str] | None = None, meta: dict[str, Any] | None = None
) -> str:
    """The workshop-format JSON text of ``table`` (fields in the given order)."""
    fields = list(fields or table.fields)
    rows = np.column_stack([table[f] for f in fields]).tolist()
    head: dict[str, Any] = {"mapping": {name: i for i, name in enumerate(fields)}}
    head.update(meta if meta is not None else table.meta)
    lines = ",\n".join(json.dumps(row) for row in rows)
    return json.dumps(head)[:-1] + ', "events": [\n' + lines + "\n]}\n"


def write_workshop_file(
    path: str | os.PathLike[str],
    table: EventTable,
    fields: Iterable[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``table`` as a workshop-format JSON file, atomically."""
    write_text(path, to_workshop_json(table, fields, meta))
