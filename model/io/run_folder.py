"""A run folder: one consistent set of files, written and read in one place.

Writing (:func:`write_run`) stages every file in a hidden sibling folder
``.<name>.staging-<pid>-<random>``, writes the manifest ``run.json`` last (format, version, run
kind, every file's size and SHA-256, creation time) and then swaps the staged folder in for the
run folder in one step (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere rename the old folder
away, then the new one in).  Whatever is killed when, a reader finds the previous complete run
or the new complete run, never a mixture; leftovers of a killed run (staging folders of dead
processes, named exactly `.<name>.staging-<pid>-<8 hex>`) are removed by the next write.

Reading (:func:`read_run`) checks the manifest and every file it lists (present, same size and
SHA-256) and returns the files' bytes; anything else is a one-line :class:`DataFormatError`.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import errno
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.atomic import json_text
from diffuse_fit.io.json_text import parse_json
from diffuse_fit.io.write_errors import writing

FORMAT = "diffuse-fit-run"
FORMAT_VERSION = 1
MANIFEST = "run.json"
KINDS = {  # run kind -> files it must have
    "map": ("map.json",),
    "sample": ("map.json", "summary.json", "summary.txt", "posterior.nc"),
    "scan": ("scan.json",),
    "compare": ("compare.json", "compare.md"),
    "toys": ("toys.nc", "coverage.json"),
    "sbc": ("sbc.json",),
}
# Files of run folders written before the manifest existed (may be replaced by a new run)
_LEGACY = re.compile(
    r"(map\.json|summary\.json|summary\.txt|posterior\.nc|ppc\.json|report\.md"
    r"|\w+\.(png|pdf)|\..+\.tmp)"
)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def stamp(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` with the run format's name and version as its first keys."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **obj}


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ----------------------------------------------------------------------------- checks


def check_output_folder(out: str | os.PathLike[str]) -> Path:
    """Fail early (one-line :class:`DataFormatError`) unless a run can be written to ``out``.

    ``out`` may be missing (its parents are created), an empty folder or a previous run
    folder; it must not be a file, lie under a file, or have a parent that cannot be written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataFormatError(str(out), "is a file, not a folder; give --out a folder")
    ancestor = out.parent
    while not ancestor.exists():
        if ancestor.is_symlink():
            raise DataFormatError(str(out), f"lies under a broken link '{ancestor}'")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DataFormatError(str(out), f"lies under '{ancestor}', which is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DataFormatError(str(out), f"cannot be written: no write permission in '{ancestor}'")
    if out.is_dir():
        _check_replaceable(out)
    return out


def _check_replaceable(out: Path) -> None:
    """Refuse a folder that is neither empty nor a run folder (its files are not ours)."""
    names = sorted(p.name for p in out.iterdir())
    listed = {MANIFEST}
    if MANIFEST in names:
        with contextlib.suppress(DataFormatError):
            listed |= {f["name"] for f in _read_manifest(out)[0]["files"]}
    others = [
        n for n in names if n not in listed and not (_LEGACY.fullmatch(n) and (out / n).is_file())
    ]
    if others:
        raise DataFormatError(
            str(out),
            f"holds files that are not part of a run ({', '.join(others[:5])}"
            f"{', ...' if len(others) > 5 else ''}); refusing to replace it: choose an empty "
            "or new --out folder",
        )


# ----------------------------------------------------------------------------- writing


class Stage:
    """The files of a run being written (see :func:`write_run`)."""

    def __init__(self, folder: Path, out: Path | None = None) -> None:
        self.folder = folder
        self.out = out if out is not None else folder  # the run folder the files are for
        self.names: list[str] = []

    def _target(self, name: str) -> Path:
        if not _NAME.fullmatch(name) or name == MANIFEST or name in self.names:
            raise ValueError(f"bad or repeated run file name {name!r}")
        self.names.append(name)
        return self.folder / name

    def _writing(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Errors of writing ``name`` (a full disk: OSError, or RuntimeError from HDF5) as
        one ``OSError`` naming the run's file and the device (:mod:`diffuse_fit.io.write_errors`)."""
        return writing(self.out / name, self.folder)

    def write_bytes(self, name: str, data: bytes) -> None:
        target = self._target(name)
        with self._writing(name):
            target.write_bytes(data)

    def write_netcdf(self, name: str, obj: Any, **options: Any) -> None:
        """An xarray Dataset or DataTree as NetCDF-4 (h5netcdf), serialised in memory first:
        HDF5 never writes to the disk, so a full disk is Python's one ``OSError``, not
        HDF5's errors and a crash when its half-written file is closed.  ``options``: of
        ``to_netcdf`` (``encoding``)."""
        with self._writing(name):
            data = bytes(obj.to_netcdf(engine="h5netcdf", **options))
        self.write_bytes(name, data)

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    def write_json(self, name: str, obj: Mapping[str, Any]) -> None:
        """JSON with the format name and version first; NaN/inf written as null."""
        self.write_text(name, json_text(stamp(obj)))

    def write_with(self, name: str, writer: Callable[[Path], object]) -> None:
        """Let ``writer(path)`` write the file (figures)."""
        target = self._target(name)
        with self._writing(name):
            writer(target)

    def link(self, source: Path, name: str | None = None) -> None:
        """Add the file ``source`` unchanged (hard link; copy where links are not possible)."""
        target = self._target(name or source.name)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)


TOKEN_HEX = 8  # hex digits of the random part of a staging/old folder's token


def _token() -> str:
    """``<pid>-<8 hex digits>``: names this process's staging and old folders."""
    return f"{os.getpid()}-{secrets.token_hex(TOKEN_HEX // 2)}"


def _leftovers(out: Path) -> list[tuple[Path, int]]:
    """``(folder, pid)`` of the folders beside ``out`` named exactly as :func:`write_run`
    names its staging and old folders, ``.<name>.staging-<pid>-<8 hex>`` and
    ``.<name>.old-<pid>-<8 hex>``; any other name (``.r.staging-mybackup``) is not ours."""
    pattern = re.compile(
        rf"\.{re.escape(out.name)}\.(?:staging|old)-([1-9][0-9]{{0,9}})-[0-9a-f]{{{TOKEN_HEX}}}"
    )
    found = []
    for path in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink():
            found.append((path, int(match.group(1))))
    return found


def _remove_stale(out: Path) -> None:
    """Staging folders left by killed runs (their process is gone) and half-swapped old
    runs, named exactly as this module names them (:func:`_leftovers`)."""
    for path, pid in _leftovers(out):
        if not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours, left by an earlier interrupted write in this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(staged: Path, out: Path, token: str) -> None:
    """Make ``staged`` the folder ``out``; remove what ``out`` was."""
    try:
        os.rename(staged, out)  # out missing or an empty folder: one atomic rename
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if _exchange(staged, out):
        shutil.rmtree(staged, ignore_errors=True)  # now the previous run
        return
    old = out.parent / f".{out.name}.old-{token}"
    os.rename(out, old)
    os.rename(staged, out)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def write_run(
    out: str | os.PathLike[str],
    kind: str,
    *,
    replaces: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Iterator[Stage]:
    """Stage the files of a run of ``kind`` ("map", "sample"), then swap them in for ``out``.

    Usage::

        with write_run(out, "sample") as stage:
            stage.write_json("map.json", result)
            stage.write_netcdf("posterior.nc", tree)

    On an exception (or KeyboardInterrupt) inside the block nothing in ``out`` changes.
    ``replaces``: the SHA-256 of the ``run.json`` the new run derives from (a report adds
    files to a run): refuse if ``out`` has been replaced by another run meanwhile.
    ``extra``: more manifest keys.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    out = check_output_folder(out).resolve()  # a link: write where it points
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    token = _token()
    staged = out.parent / f".{out.name}.staging-{token}"
    staged.mkdir()
    try:
        stage = Stage(staged, out)
        yield stage
        missing = [n for n in KINDS[kind] if n not in stage.names]
        if missing:
            raise ValueError(f"a {kind} run needs {missing}")
        with writing(out / MANIFEST, staged):
            _finish(staged, stage, kind, extra)
        if out.is_dir():
            _check_replaceable(out)
        if replaces is not None and _manifest_sha(out) != replaces:
            raise DataFormatError(
                str(out),
                "was replaced by another run while this one was being written; nothing was changed",
            )
        with writing(out, out.parent):
            _swap_in(staged, out, token)
            _fsync(out.parent)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


def _finish(staged: Path, stage: Stage, kind: str, extra: Mapping[str, Any] | None) -> None:
    """Write the manifest last and flush every staged file to the disk."""
    manifest = stamp(
        {
            "kind": kind,
            "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "files": [
                {"name": n, "size": (staged / n).stat().st_size, "sha256": sha256_file(staged / n)}
                for n in stage.names
            ],
            **(extra or {}),
        }
    )
    (staged / MANIFEST).write_text(json_text(manifest))
    for path in staged.iterdir():
        _fsync(path)
    _fsync(staged)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manifest_sha(out: Path) -> str | None:
    try:
        return hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest()
    except OSError:
        return None


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Run:
    """A verified run folder: its manifest and the bytes of every file it lists."""

    path: Path
    manifest: dict[str, Any]
    contents: dict[str, bytes]  # file name -> bytes
    manifest_sha256: str

    @property
    def kind(self) -> str:
        return cast(str, self.manifest["kind"])  # checked on reading

    def has(self, name: str) -> bool:
        return name in self.contents

    def json(self, name: str) -> dict[str, Any]:
        """A JSON file of the run (a dict stamped with this format and version)."""
        obj = parse_json(self.contents[name], str(self.path / name))
        _check_stamp(obj, self.path / name)
        return cast("dict[str, Any]", obj)  # a dict: _check_stamp says so

    def file(self, name: str) -> Path:
        """Path of a verified file, for readers that need a path (NetCDF)."""
        if name not in self.contents:
            raise DataFormatError(str(self.path), f"has no {name} (a {self.kind} run)")
        return self.path / name


def _check_stamp(obj: object, where: Path) -> None:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise DataFormatError(str(where), f'is not a {FORMAT} file (no "format": "{FORMAT}")')
    version = obj.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise DataFormatError(
            str(where),
            f"has format_version {version!r}; this diffuse-fit reads version {FORMAT_VERSION}",
            field="format_version",
        )


def _bad_manifest(run: Path, what: str) -> DataFormatError:
    return DataFormatError(str(run / MANIFEST), f"is not a valid run manifest: {what}")


def _read_manifest(run: Path) -> tuple[dict[str, Any], str]:
    path = run / MANIFEST
    if not path.is_file():
        old = (run / "map.json").exists()
        hint = " (written by an older diffuse-fit; run it again)" if old else ""
        raise DataFormatError(str(run), f"is not a run folder: no {MANIFEST}{hint}")
    raw = path.read_bytes()
    manifest = parse_json(raw, str(path))
    _check_stamp(manifest, path)
    kind = manifest.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise _bad_manifest(run, f"unknown kind {kind!r}")
    files = manifest.get("files")
    if not isinstance(files, list):
        raise _bad_manifest(run, "no list of files")
    names = []
    for entry in files:
        ok = (
            isinstance(entry, dict)
            and set(entry) == {"name", "size", "sha256"}
            and isinstance(entry["name"], str)
            and _NAME.fullmatch(entry["name"])
            and entry["name"] != MANIFEST
            and type(entry["size"]) is int
            and isinstance(entry["sha256"], str)
            and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
        )
        if not ok:
            raise _bad_manifest(run, f"bad file entry {json.dumps(entry)[:80]}")
        names.append(entry["name"])
    if len(set(names)) != len(names):
        raise _bad_manifest(run, "a file is listed twice")
    missing = [n for n in KINDS[kind] if n not in names]
    if missing:
        raise _bad_manifest(run, f"a {kind} run needs {missing}")
    return manifest, hashlib.sha256(raw).hexdigest()


def read_run(run: str | os.PathLike[str], kinds: Collection[str] = tuple(KINDS)) -> Run:
    """Read and verify the run folder ``run`` (of one of ``kinds``); DataFormatError if it
    is not one complete, intact run."""
    run = Path(run)
    if not run.is_dir():
        raise DataFormatError(str(run), "is not a run folder (no such folder)")
    manifest, manifest_sha = _read_manifest(run)
    if manifest["kind"] not in kinds:
        raise DataFormatError(
            str(run), f"is a {manifest['kind']} run; need a {' or '.join(kinds)} run"
        )
    contents = {}
    for entry in manifest["files"]:
        path = run / entry["name"]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataFormatError(str(path), "is missing from the run folder") from None
        except OSError as exc:
            raise DataFormatError(str(path), f"cannot be read ({exc.strerror})") from None
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise DataFormatError(
                str(path),
                f"differs from the run's manifest ({len(data)} "
                f"bytes, manifest {entry['size']}): damaged or "
                "changed after the run",
            )
        contents[entry["name"]] = data
    return Run(run, manifest, contents, manifest_sha)
