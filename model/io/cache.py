"""A verified cache of parsed event files: ``<cache dir>/<sha256>.v<FORMAT>.npz``.

An entry holds the parsed columns (float64, as parsed, before any range checks), the
file's other top-level keys, a record ``info`` (format version, SHA-256 of the source
file, number of rows, field names, :func:`~diffuse_fit.io.events.columns_digest` of the
columns) and ``mac``: an HMAC-SHA-256 of all of these under the user's secret key
(:mod:`diffuse_fit.io.user_key`, kept outside the cache folder with permissions 0600).

What it protects against: an entry damaged, truncated, written by another version, filed
under another file's hash, or changed by anyone who cannot read the key -- even one row
changed with every unkeyed digest recomputed -- fails the HMAC and is rebuilt from the
source file, with one warning line.  Loading also compares a sample of rows with an
exact parse of the source's bytes (:func:`spot_check_rows`).  What it does not protect
against: someone who can read the user's key file (the user, root) can forge an entry;
then only the sampled rows are compared.  ``--no-cache`` parses the source every time.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from diffuse_fit.io.atomic import atomic_path
from diffuse_fit.io.events import columns_digest
from diffuse_fit.io.json_text import loads_strict
from diffuse_fit.io.user_key import keyed_digest, same_digest

CACHE_ENV = "DIFFUSE_FIT_CACHE"
FORMAT = 3  # bump when the parsers or the entry layout change: old entries are ignored
SAMPLE_ROWS = 200  # random rows compared with the source on each load (plus first and last)


class CacheMismatch(Exception):
    """A cache entry does not describe the file it is filed under."""


def default_cache_dir() -> Path:
    """Folder for parsed-file caches: ``$DIFFUSE_FIT_CACHE``, or the user's cache folder
    (``platformdirs.user_cache_dir("diffuse-fit")``, e.g. ``~/.cache/diffuse-fit``)."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("diffuse-fit"))


def entry_path(cache_dir: str | os.PathLike[str], sha256: str) -> Path:
    """Where the entry of the file with this SHA-256 lives."""
    return Path(cache_dir) / f"{sha256}.v{FORMAT}.npz"


def warn(message: str) -> None:
    """One line on stderr."""
    print(f"diffuse-fit: warning: {message}", file=sys.stderr)


def entry_mac(info_text: str, meta_text: str, digest: str) -> str:
    """The keyed digest of an entry: its ``info`` and ``meta`` texts and its columns' digest
    (the columns themselves enter through :func:`~diffuse_fit.io.events.columns_digest`)."""
    return keyed_digest("diffuse-fit parse cache", str(FORMAT), info_text, meta_text, digest)


def store(
    path: Path, sha256: str, meta: dict[str, Any], columns: dict[str, np.ndarray], digest: str
) -> None:
    """Write an entry atomically; a failure (read-only folder, full disk) is a warning."""
    info = {
        "format": FORMAT,
        "source_sha256": sha256,
        "rows": len(next(iter(columns.values()))),
        "fields": list(columns),
        "columns_sha256": digest,
    }
    info_text, meta_text = json.dumps(info), json.dumps(meta)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    info=np.array(info_text),
                    meta=np.array(meta_text),
                    mac=np.array(entry_mac(info_text, meta_text, digest)),
                    # numpy's stubs: a ** argument might set savez's allow_pickle (a bool)
                    **{f"col:{k}": v for k, v in columns.items()},  # type: ignore[arg-type]
                )
    except OSError as exc:
        warn(f"cannot write the cache {path} ({exc.strerror or exc}); continuing without it")


def _read(path: Path, sha256: str) -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
    """The entry's (meta, columns, digest) if it is consistent; else :class:`CacheMismatch`."""
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
        info_text, meta_text = str(npz["info"][()]), str(npz["meta"][()])
        mac = str(npz["mac"][()]) if "mac" in npz.files else None
        info, meta = json.loads(info_text), json.loads(meta_text)
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise CacheMismatch("written by another version")
        if info.get("source_sha256") != sha256:
            raise CacheMismatch("filed under another file's hash")
        fields = info.get("fields")
        if not isinstance(fields, list) or not fields or not isinstance(meta, dict):
            raise CacheMismatch("has no field list")
        if sorted(npz.files) != sorted(["info", "meta", "mac", *(f"col:{f}" for f in fields)]):
            raise CacheMismatch("holds other arrays than its field list")
        columns = {f: npz[f"col:{f}"] for f in fields}
    for name, values in columns.items():
        if values.dtype != np.float64 or values.shape != (info.get("rows"),):
            raise CacheMismatch(f"column {name!r} is not {info.get('rows')} float64 values")
    digest = columns_digest(columns)
    if digest != info.get("columns_sha256"):
        raise CacheMismatch("its columns do not match their recorded digest")
    if not same_digest(mac, entry_mac(info_text, meta_text, digest)):
        raise CacheMismatch(
            "was not written by this user's diffuse-fit (its keyed digest "
            "does not match its content: changed or forged)"
        )
    return meta, columns, digest


def load(
    path: Path,
    sha256: str,
    verify: Callable[[dict[str, Any], dict[str, np.ndarray]], str | None],
) -> tuple[dict[str, Any], dict[str, np.ndarray], str] | None:
    """``(meta, columns, columns digest)`` of a verified entry, or ``None`` to rebuild it.

    ``verify(meta, columns)`` compares the entry with the source and returns what differs
    (or ``None``).  Any problem is one warning line on stderr, never an exception.
    """
    if not path.is_file():
        return None
    try:
        meta, columns, digest = _read(path, sha256)
        problem = verify(meta, columns)
        if problem is not None:
            raise CacheMismatch(problem)
    except CacheMismatch as exc:
        warn(f"cache {path} {exc}; rebuilding it from the source file")
        return None
    except Exception as exc:  # a damaged file: zip, npy or JSON errors of any kind
        reason = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        warn(f"cache {path} is unreadable ({reason}); rebuilding it from the source file")
        return None
    return meta, columns, digest


def _row_starts(
    raw: bytes, start: int, stop: int, n_rows: int, rng: np.random.Generator | None
) -> dict[int, int]:
    """Row index -> offset of its ``[``: every row of a small file, else the first, the
    last and the rows after :data:`SAMPLE_ROWS` random offsets (``rng`` unseeded by
    default, so which rows are compared cannot be foreseen)."""
    pos = raw.find(b"[", start, stop)
    starts = {0: pos}
    if n_rows <= SAMPLE_ROWS + 2:
        for row in range(1, n_rows):
            pos = raw.find(b"[", pos + 1, stop)
            starts[row] = pos
        return starts
    rng = rng if rng is not None else np.random.default_rng()
    row = 0
    for offset in np.sort(rng.integers(start, stop, SAMPLE_ROWS)):
        following = raw.find(b"[", max(int(offset), pos), stop)
        if following < 0:
            break
        row, pos = row + raw.count(b"[", pos, following), following
        starts[row] = pos
    starts[n_rows - 1] = raw.rfind(b"[", start, stop)
    return starts


def spot_check_rows(
    raw: bytes,
    body: tuple[int, int],
    n_rows: int,
    table_rows: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator | None = None,
) -> str | None:
    """Compare sampled rows of ``raw[body[0]:body[1]]`` (the text of ``n_rows`` flat rows
    ``[..],[..]``, one ``[`` per row) parsed by :mod:`json` with ``table_rows(indices)``
    (float64, shape (k, n_cols)), bit for bit.  Returns what differs, or ``None``."""
    start, stop = body
    if raw.count(b"[", start, stop) != n_rows or n_rows == 0:
        return f"has {n_rows} rows, the source another number"
    starts = _row_starts(raw, start, stop, n_rows, rng)
    indices = np.array(sorted(starts))
    cached = table_rows(indices)
    for k, index in enumerate(indices):
        pos = starts[int(index)]
        try:
            values = loads_strict(raw[pos : raw.find(b"]", pos, stop) + 1])
            if any(type(v) not in (int, float) for v in values):
                raise TypeError("not a row of numbers")
            parsed = np.array(values, dtype=np.float64)
        except (ValueError, TypeError, OverflowError, RecursionError):
            return f"cannot be compared with row {index} of the source"
        if (
            parsed.shape != cached[k].shape
            or (parsed.view(np.uint64) != cached[k].view(np.uint64)).any()
        ):
            return f"differs from the source in row {index}"
    return None
