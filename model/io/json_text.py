"""Parsing JSON input with errors that name the file and the position.

The parse is Python's :mod:`json` (which also accepts ``NaN`` and ``Infinity``), except
that an object with the same key twice is refused: :mod:`json` would silently keep the
last one, so two readers of the same file could disagree on what it holds.
"""

from __future__ import annotations

import json
from typing import Any

from diffuse_fit.errors import DataFormatError


class DuplicateKeyError(ValueError):
    """A JSON object holds the same key twice (``key`` is the key)."""

    def __init__(self, key: str):
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def refuse_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``object_pairs_hook`` for :func:`json.loads`: a dict, or :class:`DuplicateKeyError`."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return obj


def loads_strict(text: bytes | str) -> Any:
    """``json.loads(text)`` refusing duplicate keys; raises :class:`DuplicateKeyError`,
    :class:`json.JSONDecodeError`, ``UnicodeDecodeError``, ``ValueError`` (an integer of more
    than 4300 digits) or ``RecursionError`` (nesting too deep)."""
    return json.loads(text, object_pairs_hook=refuse_duplicates)


def describe_json_error(exc: BaseException, text: bytes | str) -> tuple[str, str | None]:
    """A one-line description of why :func:`loads_strict` failed, and the key at fault."""
    if isinstance(exc, DuplicateKeyError):
        return f"is not usable JSON: an object has the key {exc.key!r} twice", exc.key
    if isinstance(exc, UnicodeDecodeError):
        return f"is not a JSON text ({exc.reason})", None
    if isinstance(exc, json.JSONDecodeError):
        hint = " (the file looks truncated)" if exc.pos >= len(text.rstrip()) else ""
        return f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}", None
    if isinstance(exc, RecursionError):
        return "is not usable JSON: arrays or objects nested too deeply", None
    return f"is not usable JSON: {str(exc).splitlines()[0][:120]}", None


def parse_json(raw: bytes, source: str) -> Any:
    """``json.loads(raw)`` refusing duplicate keys; a :class:`DataFormatError` naming
    ``source`` and the line and column (or the duplicated key) if the bytes are not usable
    JSON (saying so when the file looks truncated)."""
    try:
        return loads_strict(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError too
        message, key = describe_json_error(exc, raw)
        raise DataFormatError(source, message, field=key) from None
