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
memory, after checking every number against the JSON grammar; anything the fast
path cannot vouch for is re-read with :mod:`json`, which names the exact row and
value at fault.  Both refuse an object with a key twice.  Parsed files can be
cached (:mod:`model.io.cache`, verified on every load), so the JSON is parsed once.

Values printed rounded just outside a closed range (a zenith ``3.142`` for pi) are
set to the bound and counted in :attr:`EventTable.clamped` (see :mod:`model.io.checks`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sys
from pathlib import Path

import numpy as np

from model.errors import DataFormatError
from model.io import cache, checks
from model.io.atomic import write_text
from model.io.cache import CACHE_ENV, default_cache_dir  # noqa: F401 (re-exported)
from model.io.events import TOPOLOGY_CODES, EventTable, columns_digest
from model.io.json_text import loads_strict, parse_json

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

# field -> check (see model.io.checks)
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

_CHUNK = 1 << 24  # bytes of JSON parsed at a time
_SEPARATORS_TO_SPACE = bytes.maketrans(b"[],", b"   ")
_NUMBER_CHARS_AND_SPACE = b"0123456789.eE+- \t\r\n"
_EVENTS_KEY = re.compile(rb'"events"[ \t\n\r]*:[ \t\n\r]*\[')
_EVENTS_END = re.compile(rb"\][ \t\n\r]*\]")

# The fast path's check of the events array against the JSON grammar, with bytes.translate
# (C speed): byte classes 1..10 (whitespace deleted), then every pair of neighbours must be
# one a row "[" number ("," number)* "]" and the rows' "," allow (a number: -?(0|[1-9]
# [0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; leading zeros, one "." and one exponent apart).
_OPEN, _COMMA, _CLOSE, _ZERO, _DIGIT, _DOT, _EXP, _PLUS, _MINUS, _OTHER = range(1, 11)
_SPACE = b" \t\n\r"
_CLASS = bytearray([_OTHER]) * 256
for _chars, _cls in ((b"[", _OPEN), (b",", _COMMA), (b"]", _CLOSE), (b"0", _ZERO),
                     (b"123456789", _DIGIT), (b".", _DOT), (b"eE", _EXP), (b"+", _PLUS),
                     (b"-", _MINUS)):  # fmt: skip
    for _c in _chars:
        _CLASS[_c] = _cls
_CLASS = bytes(_CLASS)
_ALLOWED_PAIRS = bytes(  # (previous class << 4) | next class
    (prev << 4) | nxt
    for prev, nexts in {
        _OPEN: (_ZERO, _DIGIT, _MINUS),
        _COMMA: (_ZERO, _DIGIT, _MINUS, _OPEN),
        _CLOSE: (_COMMA,),
        _ZERO: (_ZERO, _DIGIT, _DOT, _EXP, _COMMA, _CLOSE),
        _DIGIT: (_ZERO, _DIGIT, _DOT, _EXP, _COMMA, _CLOSE),
        _DOT: (_ZERO, _DIGIT),
        _EXP: (_ZERO, _DIGIT, _PLUS, _MINUS),
        _PLUS: (_ZERO, _DIGIT),
        _MINUS: (_ZERO, _DIGIT),
    }.items()
    for nxt in nexts
)
# classes -> letters: separators "s", "0" "0", "1"-"9" "d", "." ".", exponent "e"; signs
# deleted (so "-0" leads a number like "0")
_CLASS_LETTERS = bytes.maketrans(bytes([_OPEN, _COMMA, _CLOSE, _ZERO, _DIGIT, _DOT, _EXP]),
                                  b"sss0d.e")  # fmt: skip
_SIGNS = bytes([_PLUS, _MINUS])
_NUMBER_OR_SPACE = bytes.maketrans(b"0123456789.eE+-\t\n\r", b"nnnnnnnnnnnnnnn   ")


FAST_PATH = "json (fast path)"  # EventTable.loaded_from of the two parsers
EXACT_PARSER = "json (exact parser)"


class _NotFast(Exception):
    """The fast parser cannot vouch for this file; use the exact one."""


# --------------------------------------------------------------------------- reading


def _events_span(raw: bytes) -> tuple[int, int, dict] | None:
    """``(start, stop, rest)``: ``raw[start:stop]`` is the text of the top-level ``"events"``
    array if it is a list of flat rows, and ``rest`` the file's object with that array
    replaced by a placeholder; ``None`` if the file is not laid out so (or not JSON)."""
    match = _EVENTS_KEY.search(raw)
    close = _EVENTS_END.search(raw, match.end()) if match else None
    if close is None:
        return None
    start, stop = match.end() - 1, close.end()
    placeholder = secrets.token_hex(16)  # unguessable: found again only where it was put
    try:
        rest = loads_strict(raw[:start] + b'"' + placeholder.encode() + b'"' + raw[stop:])
    except (ValueError, RecursionError):
        return None
    if not isinstance(rest, dict) or rest.get("events") != placeholder:
        return None
    return start, stop, rest


def _check_chunk(chunk: bytes, first: bool) -> None:
    """Raise ``_NotFast`` unless ``chunk`` is rows ``[n,..],[n,..]`` (a leading "," unless
    ``first``) of JSON numbers with only JSON whitespace around them.  (The caller checks
    that the brackets and commas alone make rows of the right length.)"""
    classes = chunk.translate(_CLASS, delete=_SPACE)
    codes = np.frombuffer(classes, dtype=np.uint8)
    if codes[0] != (_OPEN if first else _COMMA) or codes[-1] != _CLOSE:
        raise _NotFast
    # every number alone between "[" or "," and "," or "]", and well-formed but for ...
    pairs = (codes[:-1] << np.uint8(4)) | codes[1:]
    if pairs.tobytes().translate(None, delete=_ALLOWED_PAIRS):
        raise _NotFast
    if len(classes) != len(chunk):  # ... whitespace splitting one number in two, ...
        spaced = chunk.translate(_NUMBER_OR_SPACE)
        while b"  " in spaced:
            spaced = spaced.replace(b"  ", b" ")
        if b"n n" in spaced:
            raise _NotFast
    letters = classes.translate(
        _CLASS_LETTERS, delete=_SIGNS
    )  # ... leading zeros ("-0" like "0") ...
    if b"s0d" in letters or b"s00" in letters:
        raise _NotFast
    marks = letters.translate(None, delete=b"0d")  # ... and more than ".", then "e"
    if b".." in marks or b"e." in marks or b"ee" in marks:
        raise _NotFast


def _parse_fast(raw: bytes, source: str) -> tuple[dict, np.ndarray]:
    """Parse a well-formed workshop file with NumPy; raise ``_NotFast`` on anything odd.

    Accepts only what :func:`json.loads` accepts, giving the same values: the events must
    be flat rows of JSON numbers (``NaN``, ``Infinity``, overflowing numbers and ``-0``
    are left to the exact parser)."""
    span = _events_span(raw)
    if span is None:
        raise _NotFast
    start, stop, rest = span
    rest["events"] = None
    mapping = _check_mapping(rest, source)
    n_cols = len(mapping)
    body_start = start + 1  # raw[body_start:body_end] holds the rows, then only whitespace
    body_end = raw.rfind(b"]", body_start, stop - 1) + 1
    if raw[body_end : stop - 1].translate(None, delete=_SPACE):
        raise _NotFast
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
        structure = chunk.translate(None, delete=_NUMBER_CHARS_AND_SPACE)
        if pos > body_start:
            if not structure.startswith(b","):
                raise _NotFast
            structure = structure[1:]
        rows_here = structure.count(b"[")
        if structure != b",".join([row] * rows_here):
            raise _NotFast
        _check_chunk(chunk, pos == body_start)
        parsed = np.fromstring(chunk.translate(_SEPARATORS_TO_SPACE), sep=" ")
        if parsed.size != rows_here * n_cols or filled + parsed.size > values.size:
            raise _NotFast
        if not np.isfinite(parsed).all() or np.signbit(parsed[parsed == 0]).any():
            raise _NotFast  # overflow to inf; "-0" (json reads the integer 0)
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
    try:
        table = np.array(events, dtype=np.float64)
    except OverflowError:  # an integer beyond the float range
        i, j = next((i, j) for i, row in enumerate(events) for j, v in enumerate(row)
                    if abs(v) > sys.float_info.max)  # fmt: skip
        raise DataFormatError(
            source,
            f"integer {checks.short_integer(events[i][j])} is beyond the float range",
            field=names[j],
            row=i,
        ) from None
    return content, table.reshape(len(events), n_cols)


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
) -> dict[str, int]:
    """Check required fields are present, finite and physical; raise :class:`DataFormatError`.

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


def _verify_entry(raw: bytes, meta: dict, columns: dict[str, np.ndarray]) -> str | None:
    """What differs between a cache entry and the file's bytes (``None`` if nothing does):
    mapping and other keys, then sampled rows against an exact parse."""
    span = _events_span(raw)
    if span is None:
        return "cannot be checked against a file laid out like this"
    start, stop, rest = span
    mapping = rest.get("mapping")
    if not isinstance(mapping, dict) or list(mapping) != list(columns):
        return "has other fields than the file's 'mapping'"
    if json.dumps(meta) != json.dumps(_meta_of(rest)):
        return "has other top-level keys than the file"
    order = sorted(mapping, key=mapping.get)  # columns in the file's column order
    return cache.spot_check_rows(
        raw, (start + 1, stop - 1), len(columns[order[0]]),
        lambda rows: np.column_stack([columns[name][rows] for name in order]),
    )  # fmt: skip


def _meta_of(content: dict) -> dict:
    return {k: v for k, v in content.items() if k not in ("mapping", "events")}


def _parse(raw: bytes, sha: str, source: str, cache_file: Path | None):
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
    except _NotFast:
        content, table = _parse_exact(raw, source)
        how = EXACT_PARSER
    # column views of the row-major table: no second copy of the events
    columns = {name: table[:, i] for name, i in content["mapping"].items()}
    meta, digest = _meta_of(content), columns_digest(columns)
    if cache_file is not None and len(table) and (how == FAST_PATH or _events_span(raw)):
        cache.store(cache_file, sha, meta, columns, digest)
    return meta, columns, how, digest


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
        Where to keep verified caches of parsed files (:mod:`model.io.cache`); ``None``
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
    if clamped:
        digest = columns_digest(columns)
    return EventTable(columns, source, sha, meta, how, digest, clamped)


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
