"""The journal of a many-fit job: one file per completed task, for results that survive a kill.

A scan, an ensemble of pseudo-experiments or a calibration runs thousands of independent
tasks.  Each result is written as soon as it arrives, atomically (temporary file + rename),
as ``<journal>/<config>/<task>.json``, where ``<config>`` is a digest of everything that
determines the results (inputs' hashes, priors, truth, seeds, sampler settings, ...).
Running the same command again reads the completed tasks back instead of recomputing
them; a process killed at any moment (even ``SIGKILL``) loses at most the tasks that were
in flight.  A different configuration uses a different sub-folder, so results of
different settings are never mixed.

The journal lives beside the run folder, ``<parent>/.<name>.journal/``, and is kept after
the run is written: asking for more pseudo-experiments later computes only the new ones.

Each entry is the task's result (a JSON object) plus ``"_journal": {"job", "key", "mac"}``:
the configuration's digest, the task's key, and an HMAC-SHA-256 under the user's secret
key (:mod:`diffuse_fit.io.user_key`) of both and of the result's canonical JSON.  :meth:`Journal.load`
returns an entry only if all of these match: an entry edited, copied to another task or
job, truncated, or written by another user is reported as bad (with the reason) and the
task is computed again -- never used.  The job's own checks of the result (schema,
index, seed, bounds) come on top (:mod:`diffuse_fit.jobs.entries`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.atomic import finite_json, json_text, write_json
from diffuse_fit.io.json_text import parse_json
from diffuse_fit.io.user_key import keyed_digest, same_digest

_KEY = re.compile(r"[A-Za-z0-9_.-]+")
ENTRY_KEY = "_journal"  # the record of an entry: job digest, task key, keyed digest


def journal_folder(out: Path) -> Path:
    """The journal of the run folder ``out``: ``<parent>/.<name>.journal``."""
    out = Path(out).resolve()
    return out.parent / f".{out.name}.journal"


def config_digest(config: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of ``config`` as canonical JSON."""
    return hashlib.sha256(json_text(config).encode()).hexdigest()[:16]


class Journal:
    """Completed task results of one job configuration.

    Parameters
    ----------
    folder : Path
        The journal folder (:func:`journal_folder`).
    config : dict
        Everything the task results depend on (JSON-serialisable); stored beside them.
    """

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.config = config
        self.digest = config_digest(config)
        self.folder = Path(folder) / self.digest
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "config.json").exists():
            write_json(self.folder / "config.json", config)

    @property
    def name(self) -> str:
        """Where the journal is, relative to the folder holding the run folder
        (``.<name>.journal/<digest>``): what results record, never a path of this machine."""
        return f"{self.folder.parent.name}/{self.folder.name}"

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"bad task key {key!r}")
        return self.folder / f"{key}.json"

    def path(self, key: str) -> Path:
        """The file of task ``key``."""
        return self._path(key)

    def _mac(self, key: str, result: dict[str, Any]) -> str:
        return keyed_digest("diffuse-fit journal", self.digest, key, json_text(result))

    def done(self, keys: Iterable[str]) -> set[str]:
        """The keys among ``keys`` whose stored entries are intact (:meth:`load`)."""
        return {k for k in keys if self.load(k)[0] is not None}

    def write(self, key: str, result: dict[str, Any]) -> None:
        """Store one task's result (atomically: a reader sees all of it or nothing)."""
        result = finite_json(result)
        if not isinstance(result, dict) or ENTRY_KEY in result:
            raise ValueError(f"a task result must be a JSON object without {ENTRY_KEY!r}")
        record = {"job": self.digest, "key": key, "mac": self._mac(key, result)}
        write_json(self._path(key), {**result, ENTRY_KEY: record})

    def load(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """``(result, None)`` for an intact entry, ``(None, None)`` if there is none, and
        ``(None, why)`` for a bad one (unreadable, not an entry, of another task or job,
        or its keyed digest not matching its content)."""
        path = self._path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"cannot be read ({exc.strerror or exc})"
        try:
            entry = parse_json(raw, str(path))
        except DataFormatError as exc:
            return None, str(exc).partition(": ")[2] or "is not valid JSON"
        record = entry.get(ENTRY_KEY) if isinstance(entry, dict) else None
        if not isinstance(record, dict) or not all(
            isinstance(record.get(k), str) for k in ("job", "key", "mac")
        ):
            return None, f"is not a journal entry (no {ENTRY_KEY!r} record with job, key, mac)"
        if record["job"] != self.digest or record["key"] != key:
            return None, (
                f"is the entry of task {record['key'][:40]!r} of job "
                f"{record['job'][:16]!r}, not of {key!r} of {self.digest!r}"
            )
        result = {k: v for k, v in entry.items() if k != ENTRY_KEY}
        if not same_digest(record["mac"], self._mac(key, result)):
            return None, (
                "its keyed digest does not match its content (edited, or written by another user)"
            )
        return result, None
