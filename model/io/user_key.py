"""A per-user secret key, for keyed digests (HMAC-SHA-256) of state this program reuses.

The parse cache (:mod:`diffuse_fit.io.cache`) and the journals of many-fit jobs
(:mod:`diffuse_fit.io.journal`) are files that anyone who can write their folder can change.
Each entry carries an HMAC of its content under this key, so an entry is reused only if
this user's diffuse-fit wrote it: a forger who can write the cache or a journal, but not
read the key, cannot make an entry that is accepted (a changed entry is rebuilt).

The key is 32 random bytes in ``$DIFFUSE_FIT_KEY`` (a file path) or
``<user config folder>/diffuse-fit/state.key`` (``platformdirs.user_config_dir``, e.g.
``~/.config/diffuse-fit/state.key``), outside the cache, created on first use with
permissions 0600.  A key file that others may read or write, or one that cannot be read
or created, is not used: the key is then random for this process (one warning line), so
cached parses and journal entries of earlier processes are recomputed, never trusted.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

import platformdirs

KEY_ENV = "DIFFUSE_FIT_KEY"
KEY_BYTES = 32
log = logging.getLogger("diffuse_fit.io.user_key")


def key_path() -> Path:
    """Where the key lives: ``$DIFFUSE_FIT_KEY`` or the user's config folder."""
    given = os.environ.get(KEY_ENV)
    return Path(given) if given else Path(platformdirs.user_config_dir("diffuse-fit"), "state.key")


def _read_or_create(path: Path) -> bytes:
    """The key in ``path`` (created 0600 if missing); ``OSError``/``ValueError`` if it
    cannot be used."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(KEY_BYTES)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never over a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise ValueError("is not a file of this user")
        if info.st_mode & 0o077:
            raise ValueError(f"may be read or written by others (mode {info.st_mode & 0o777:o})")
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise ValueError(f"does not hold {KEY_BYTES} bytes")
    return key


@functools.cache
def _key_for(path: Path) -> bytes:
    try:
        return _read_or_create(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.warning(
            "the key file %s cannot be used (%s): cached parses and journal entries of "
            "earlier runs are recomputed, not reused",
            path,
            reason,
        )
        return secrets.token_bytes(KEY_BYTES)


def user_key() -> bytes:
    """The key (read once per process and path)."""
    return _key_for(key_path())


def keyed_digest(*parts: bytes | str) -> str:
    """HMAC-SHA-256 under :func:`user_key` of ``parts`` (each length-prefixed), hex."""
    mac = hmac.new(user_key(), digestmod=hashlib.sha256)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        mac.update(len(data).to_bytes(8, "little") + data)
    return mac.hexdigest()


def same_digest(a: object, b: str) -> bool:
    """Constant-time comparison of a recorded digest ``a`` (any JSON value) with ``b``."""
    return isinstance(a, str) and hmac.compare_digest(a.encode(), b.encode())
