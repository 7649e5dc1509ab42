"""What a result was made with: package versions, seeds, input hashes, time."""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import sys

PACKAGES = (
    "diffuse-fit",
    "numpy",
    "scipy",
    "pymc",
    "pytensor",
    "arviz",
    "arviz-plots",
    "nutpie",
    "matplotlib",
    "xarray",
    "h5netcdf",
)


def versions() -> dict[str, str | None]:
    """Python and package versions (None where a package is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def record(**extra) -> dict:
    """Provenance block for results files: versions, UTC time, command line, and ``extra``."""
    return {
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["diffuse-fit", *sys.argv[1:]]),
        "versions": versions(),
        **extra,
    }
