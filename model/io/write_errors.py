"""Failures while writing a run's files, as one clean ``OSError`` naming the file and device.

A full disk shows up as ``OSError`` (``ENOSPC``, ``EDQUOT``) from Python's own writes, but
as ``RuntimeError`` from HDF5 (h5py, h5netcdf).  :func:`writing` turns either into an
``OSError`` whose ``filename`` is the run file meant (not the staging path) and whose
``strerror`` names the device's mount point and its free bytes, which the command line
prints in one line (exit status 2).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

_FULL = (errno.ENOSPC, errno.EDQUOT)
_HDF5_FULL = ("errno = 28", "No space left on device", "errno = 122", "Disk quota exceeded")


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (an existing folder)."""
    path = Path(os.path.abspath(path))
    device = os.stat(path).st_dev
    while path.parent != path and os.stat(path.parent).st_dev == device:
        path = path.parent
    return path


def free_bytes(path: Path) -> int | None:
    """Bytes available to this user on the file system holding ``path``, or ``None``."""
    try:
        info = os.statvfs(path)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    return any(text in str(exc) for text in _HDF5_FULL)


def as_write_error(exc: BaseException, target: Path, folder: Path) -> OSError:
    """``exc`` (raised while writing ``target`` into ``folder``) as one clean ``OSError``."""
    if _disk_full(exc):
        try:
            where = f"the device mounted at '{mount_point(folder)}'"
        except OSError:
            where = f"the device holding '{folder}'"
        free = free_bytes(folder)
        left = "" if free is None else f", {free} bytes free"
        return OSError(errno.ENOSPC, f"no space left on {where}{left}", str(target))
    code = exc.errno if isinstance(exc, OSError) and exc.errno else errno.EIO
    reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror else "") or (
        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    )
    return OSError(code, reason, str(target))


@contextlib.contextmanager
def writing(target: Path, folder: Path) -> Iterator[None]:
    """Re-raise an ``OSError`` or ``RuntimeError`` of the block as :func:`as_write_error`."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        raise as_write_error(exc, target, folder) from None
