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

Parsing: the events of a large file (the workshop's simulation is ~200 MB) are
parsed by NumPy straight from the file's bytes, about 2-3x the file's size in
memory; anything the fast path cannot vouch for is re-read with :mod:`json`,
which names the exact row and value at fault.  Parsed files can be cached as
``.npz`` keyed by the file's SHA-256, so the JSON is parsed once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from model.errors import DataFormatError
from model.io import checks
from model.io.atomic import atomic_path, write_text
from model.io.events import TOPOLOGY_CODES, EventTable
from model.io.json_text import parse_json

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

# field -> (test on a float64 array, what the test requires)
_FIELD_CHECKS = {
    "astroWeight": checks.non_negative("weights"),
    "atmoWeight": checks.non_negative("weights"),
    "energy": checks.POSITIVE_ENERGY,
    "primaryEnergy": checks.POSITIVE_ENERGY,
    "zenith": checks.ZENITH,
    "primaryZenith": checks.ZENITH,
    "topology": checks.one_of(
        TOPOLOGY_CODES, "a topology code (0 cascade, 1 track, 2 double cascade)"
    ),
}

CACHE_ENV = "DIFFUSE_FIT_CACHE"


_CHUNK = 1 << 24  # bytes of JSON parsed at a time
_SEPARATORS_TO_SPACE = bytes.maketrans(b"[],", b"   ")


class _NotFast(Exception):
    """The fast parser cannot vouch for this file; use the exact one."""


def default_cache_dir() -> Path:
    """Folder for parsed-file caches: ``$DIFFUSE_FIT_CACHE`` or ``~/.cache/diffuse-fit``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "diffuse-fit"))


# --------------------------------------------------------------------------- reading


def _parse_fast(raw: bytes, source: str) -> tuple[dict, np.ndarray]:
    """Parse a well-formed workshop file with NumPy; raise ``_NotFast`` on anything odd."""
    match = re.search(rb'"events"\s*:\s*\[', raw)
    close = re.compile(rb"\]\s*\]").search(raw, match.end()) if match else None
    if close is None:
        raise _NotFast
    start, stop = match.end() - 1, close.end()  # raw[start:stop] is the events array
    try:
        rest = json.loads(raw[:start] + b"null" + raw[stop:])
    except ValueError as exc:
        raise _NotFast from exc
    if not isinstance(rest, dict) or rest.get("events", 0) is not None:
        raise _NotFast
    mapping = _check_mapping(rest, source)
    n_cols = len(mapping)
    body_start, body_end = start + 1, stop - 1  # raw[body_start:body_end] holds the rows
    n_rows = raw.count(b"[", body_start, body_end)
    if n_rows == 0:
        raise _NotFast
    values = np.empty(n_rows * n_cols)
    row = b"[" + b"," * (n_cols - 1) + b"]"
    filled, pos = 0, body_start
    while pos < body_end:  # chunks of whole rows: memory stays ~ file size + values
        cut = raw.find(b"]", min(pos + _CHUNK, body_end - 1), body_end) + 1 or body_end
        chunk = raw[pos:cut]
        # the structure alone ("[,,],[,,]") must be identical rows of n_cols values
        structure = chunk.translate(None, delete=b"0123456789.eE+- \t\r\n")
        if pos > body_start:
            if not structure.startswith(b","):
                raise _NotFast
            structure = structure[1:]
        rows_here = structure.count(b"[")
        if structure != b",".join([row] * rows_here):
            raise _NotFast
        parsed = np.fromstring(chunk.translate(_SEPARATORS_TO_SPACE), sep=" ")
        if parsed.size != rows_here * n_cols or filled + parsed.size > values.size:
            raise _NotFast
        values[filled : filled + parsed.size] = parsed
        filled, pos = filled + parsed.size, cut
    if filled != values.size:
        raise _NotFast
    return rest, values.reshape(n_rows, n_cols)


def _parse_exact(raw: bytes, source: str) -> tuple[dict, np.ndarray]:
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
    return content, np.array(events, dtype=np.float64).reshape(len(events), n_cols)


def _check_mapping(content: dict, source: str) -> dict[str, int]:
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
) -> None:
    """Check required fields are present, finite and physical; raise :class:`DataFormatError`."""
    for name in required:
        if name not in columns:
            raise DataFormatError(
                source,
                f"required field is missing from 'mapping' (it has {sorted(columns)})",
                field=name,
            )
    for name in required:
        checks.check_column(columns[name], name, source, _FIELD_CHECKS.get(name))


def read_workshop_file(
    path: str | os.PathLike,
    required: tuple[str, ...],
    *,
    cache_dir: str | os.PathLike | None = None,
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
        Where to keep ``<sha256>.npz`` caches of parsed files; ``None`` for no cache.
    allow_empty : bool
        Accept a file with no events.

    Raises
    ------
    DataFormatError
        Naming the file, field, row and value of the first problem found.
    """
    path = Path(path)
    source = str(path)
    try:
        with open(path, "rb") as fh:
            sha = hashlib.file_digest(fh, "sha256").hexdigest()
    except FileNotFoundError:
        raise DataFormatError(source, "does not exist") from None
    except OSError as exc:
        raise DataFormatError(source, f"cannot be read ({exc.strerror})") from None
    cache = Path(cache_dir) / f"{sha}.npz" if cache_dir is not None else None
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as npz:
            columns = {k.removeprefix("col:"): npz[k] for k in npz.files if k.startswith("col:")}
            meta = json.loads(str(npz["meta"]))
    else:
        raw = path.read_bytes()
        try:
            content, table = _parse_fast(raw, source)
        except _NotFast:
            content, table = _parse_exact(raw, source)
        del raw
        # column views of the row-major table: no second copy of the events
        columns = {name: table[:, i] for name, i in content["mapping"].items()}
        meta = {k: v for k, v in content.items() if k not in ("mapping", "events")}
        if cache is not None:
            with atomic_path(cache) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(
                        fh,
                        meta=np.array(json.dumps(meta)),
                        **{f"col:{k}": v for k, v in columns.items()},
                    )
    if not allow_empty and not next(iter(columns.values())).size:
        raise DataFormatError(source, "has no events", field="events")
    validate_columns(columns, required, source)
    return EventTable(columns, source=source, sha256=sha, meta=meta)


def read_data(path, **kwargs) -> EventTable:
    """Read an observed-events file (fields ``energy``, ``topology``, ``zenith``)."""
    return read_workshop_file(path, DATA_FIELDS, **kwargs)


def read_simulation(path, **kwargs) -> EventTable:
    """Read a simulation file (``SIMULATION_FIELDS``: weights, true and reconstructed quantities)."""
    return read_workshop_file(path, SIMULATION_FIELDS, **kwargs)


# --------------------------------------------------------------------------- writing


def to_workshop_json(table: EventTable, fields=None, meta: dict | None = None) -> str:
    """The workshop-format JSON text of ``table`` (fields in the given order)."""
    fields = list(fields or table.fields)
    rows = np.column_stack([table[f] for f in fields]).tolist()
    head = {"mapping": {name: i for i, name in enumerate(fields)}}
    head.update(meta if meta is not None else table.meta)
    lines = ",\n".join(json.dumps(row) for row in rows)
    return json.dumps(head)[:-1] + ', "events": [\n' + lines + "\n]}\n"


def write_workshop_file(path, table: EventTable, fields=None, meta: dict | None = None) -> None:
    """Write ``table`` as a workshop-format JSON file, atomically."""
    write_text(path, to_workshop_json(table, fields, meta))
