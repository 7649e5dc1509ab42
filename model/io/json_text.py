"""Parsing JSON input with errors that name the file and the position."""

from __future__ import annotations

import json

from model.errors import DataFormatError


def parse_json(raw: bytes, source: str):
    """``json.loads(raw)``; a :class:`DataFormatError` naming ``source``, line and column if the
    bytes are not JSON (saying so when the file looks truncated)."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise DataFormatError(source, f"is not a JSON text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if exc.pos >= len(raw.rstrip()) else ""
        raise DataFormatError(
            source, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}"
        ) from None
