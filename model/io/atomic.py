"""Atomic file writes: write a temporary file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it onto ``path`` on success.

    An exception (or an interrupted run) leaves ``path`` as it was: either absent or
    the previous complete version, never half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def finite_json(obj: Any) -> Any:
    """``obj`` with NaN and +-inf replaced by None and NumPy scalars/arrays made plain Python."""
    if isinstance(obj, dict):
        return {str(k): finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str):  # NumPy scalars and arrays
        return finite_json(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def json_text(obj: object) -> str:
    """Indented, strictly valid JSON (non-finite numbers written as null)."""
    return json.dumps(finite_json(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: object) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (NaN/inf as null)."""
    write_text(path, json_text(obj))
