"""The fast path of the workshop reader: the events array parsed by NumPy, checked first.

A large workshop file (the workshop's simulation is ~200 MB) is parsed by NumPy straight
from its bytes, in chunks of whole rows (memory ~ the file's size plus the values), after
every byte of the events array has been checked against the JSON grammar with
``bytes.translate`` (C speed).  It accepts only what :func:`json.loads` accepts, with the
same values; anything else raises :class:`NotFast` and the caller uses the exact parser.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import numpy as np

from diffuse_fit.io.json_text import loads_strict

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
_classes = bytearray([_OTHER]) * 256
for _chars, _cls in (
    (b"[", _OPEN),
    (b",", _COMMA),
    (b"]", _CLOSE),
    (b"0", _ZERO),
    (b"123456789", _DIGIT),
    (b".", _DOT),
    (b"eE", _EXP),
    (b"+", _PLUS),
    (b"-", _MINUS),
):
    for _c in _chars:
        _classes[_c] = _cls
_CLASS = bytes(_classes)
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
_CLASS_LETTERS = bytes.maketrans(
    bytes([_OPEN, _COMMA, _CLOSE, _ZERO, _DIGIT, _DOT, _EXP]), b"sss0d.e"
)
_SIGNS = bytes([_PLUS, _MINUS])
_NUMBER_OR_SPACE = bytes.maketrans(b"0123456789.eE+-\t\n\r", b"nnnnnnnnnnnnnnn   ")


class NotFast(Exception):
    """The fast parser cannot vouch for this file; use the exact one."""


def events_span(raw: bytes) -> tuple[int, int, dict[str, Any]] | None:
    """``(start, stop, rest)``: ``raw[start:stop]`` is the text of the top-level ``"events"``
    array if it is a list of flat rows, and ``rest`` the file's object with that array
    replaced by a placeholder; ``None`` if the file is not laid out so (or not JSON)."""
    match = _EVENTS_KEY.search(raw)
    close = _EVENTS_END.search(raw, match.end()) if match else None
    if close is None:
        return None
    assert match is not None  # close is found after a match only
    start, stop = match.end() - 1, close.end()
    placeholder = secrets.token_hex(16)  # unguessable: found again only where it was put
    try:
        rest = loads_strict(raw[:start] + b'"' + placeholder.encode() + b'"' + raw[stop:])
    except (ValueError, RecursionError):
        return None
    if not isinstance(rest, dict) or rest.get("events") != placeholder:
        return None
    return start, stop, rest


def check_chunk(chunk: bytes, first: bool) -> None:
    """Raise ``NotFast`` unless ``chunk`` is rows ``[n,..],[n,..]`` (a leading "," unless
    ``first``) of JSON numbers with only JSON whitespace around them.  (The caller checks
    that the brackets and commas alone make rows of the right length.)"""
    classes = chunk.translate(_CLASS, delete=_SPACE)
    codes = np.frombuffer(classes, dtype=np.uint8)
    if codes[0] != (_OPEN if first else _COMMA) or codes[-1] != _CLOSE:
        raise NotFast
    # every number alone between "[" or "," and "," or "]", and well-formed but for ...
    pairs = (codes[:-1] << np.uint8(4)) | codes[1:]
    if pairs.tobytes().translate(None, delete=_ALLOWED_PAIRS):
        raise NotFast
    if len(classes) != len(chunk):  # ... whitespace splitting one number in two, ...
        spaced = chunk.translate(_NUMBER_OR_SPACE)
        while b"  " in spaced:
            spaced = spaced.replace(b"  ", b" ")
        if b"n n" in spaced:
            raise NotFast
    letters = classes.translate(
        _CLASS_LETTERS, delete=_SIGNS
    )  # ... leading zeros ("-0" like "0") ...
    if b"s0d" in letters or b"s00" in letters:
        raise NotFast
    marks = letters.translate(None, delete=b"0d")  # ... and more than ".", then "e"
    if b".." in marks or b"e." in marks or b"ee" in marks:
        raise NotFast


def parse_rows(raw: bytes, start: int, stop: int, n_cols: int) -> np.ndarray:
    """The rows of ``n_cols`` JSON numbers in ``raw[start:stop]`` (the events array found by
    :func:`events_span`) as an (n_rows, n_cols) float64 array, parsed by NumPy in chunks of
    whole rows; raise :class:`NotFast` unless every byte is what :func:`json.loads` accepts
    and gives the same values for (``NaN``, ``Infinity``, overflowing numbers and ``-0`` are
    left to the exact parser)."""
    body_start = start + 1  # raw[body_start:body_end] holds the rows, then only whitespace
    body_end = raw.rfind(b"]", body_start, stop - 1) + 1
    if raw[body_end : stop - 1].translate(None, delete=_SPACE):
        raise NotFast
    n_rows = raw.count(b"[", body_start, body_end)
    if n_rows == 0:
        raise NotFast
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
                raise NotFast
            structure = structure[1:]
        rows_here = structure.count(b"[")
        if structure != b",".join([row] * rows_here):
            raise NotFast
        check_chunk(chunk, pos == body_start)
        parsed = np.fromstring(chunk.translate(_SEPARATORS_TO_SPACE), sep=" ")
        if parsed.size != rows_here * n_cols or filled + parsed.size > values.size:
            raise NotFast
        if not np.isfinite(parsed).all() or np.signbit(parsed[parsed == 0]).any():
            raise NotFast  # overflow to inf; "-0" (json reads the integer 0)
        values[filled : filled + parsed.size] = parsed
        filled, pos = filled + parsed.size, cut
    if filled != values.size:
        raise NotFast
    return values.reshape(n_rows, n_cols)
