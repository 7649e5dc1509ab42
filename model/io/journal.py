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
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from model.io.atomic import json_text, write_json
from model.io.json_text import parse_json

_KEY = re.compile(r"[A-Za-z0-9_.-]+")


def journal_folder(out: Path) -> Path:
    """The journal of the run folder ``out``: ``<parent>/.<name>.journal``."""
    out = Path(out).resolve()
    return out.parent / f".{out.name}.journal"


def config_digest(config: dict) -> str:
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

    def __init__(self, folder: Path, config: dict):
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

    def done(self, keys) -> set[str]:
        """The keys among ``keys`` whose results are stored."""
        return {k for k in keys if self._path(k).is_file()}

    def write(self, key: str, result: dict) -> None:
        """Store one task's result (atomically: a reader sees all of it or nothing)."""
        write_json(self._path(key), result)

    def read(self, key: str) -> dict:
        """One stored result; a damaged file is a one-line :class:`DataFormatError`."""
        path = self._path(key)
        return parse_json(path.read_bytes(), str(path))
