"""A verified cache of a job's per-bin tables: ``<cache dir>/tables-<key>.v<TABLE_FORMAT>.npz``.

Building the tables of a large simulation (:func:`diffuse_fit.binned.dataset.bin_dataset`,
the SAY likelihood's tables, the detector responses) is most of a ``map`` job; the files
do not change between fits.  :func:`binned_inputs` looks the tables up under a key, a
SHA-256 over everything they depend on (:func:`table_key`): the simulation's columns, the
binning, the components' definitions, whether the SAY tables are built, the bytes of the
detector-systematics spline files (when their responses are built), the table modules'
constants, the source of the packages that compute tables (``binned`` and ``physics``) and
of the code that stores them (this module, :mod:`diffuse_fit.report.predictive`),
the versions of diffuse-fit, NumPy and SciPy, the machine type and :data:`TABLE_FORMAT`.
The observed counts are no part of an entry: they are binned again at every load (cheap),
with the checks of :func:`~diffuse_fit.binned.dataset.bin_dataset`.

An entry holds the tables' arrays as a run's fit record stores them
(:func:`diffuse_fit.report.predictive.record_variables`, no pickle), a record ``info``
(format, key, when it was built, each array's dtype and shape, a SHA-256 of the arrays) and
``mac``: an HMAC-SHA-256 of all of it under the user's key (:mod:`diffuse_fit.io.user_key`),
as the parse cache (:mod:`diffuse_fit.io.cache`).  An entry damaged, truncated, written by
another version, filed under another key or changed by anyone who cannot read the key is
refused with one warning line and the tables are built again (and stored).  A failure to
write is a warning.  ``--no-cache`` (:attr:`Inputs.use_cache` false) neither reads nor
writes; ``$DIFFUSE_FIT_CACHE`` is the folder (default ``~/.cache/diffuse-fit``).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import scipy

from diffuse_fit import binned as binned_package
from diffuse_fit import physics as physics_package
from diffuse_fit.binned import detector_tables, log_tables, nuisance_tables, spectral_tables
from diffuse_fit.binned import variance as variance_tables
from diffuse_fit.binned.dataset import BinnedDataset, bin_dataset
from diffuse_fit.binned.flavour_tables import FlavourTemplate
from diffuse_fit.binned.templates import Templates
from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.atomic import atomic_path, finite_json
from diffuse_fit.io.cache import CacheMismatch, default_cache_dir, warn
from diffuse_fit.io.events import EventTable, columns_digest
from diffuse_fit.io.hese_splines import SPLINE_FOLDERS, read_release_splines
from diffuse_fit.io.user_key import keyed_digest, same_digest
from diffuse_fit.physics import detector_parameters
from diffuse_fit.report import predictive
from diffuse_fit.report.predictive import record_from_variables, record_variables

TABLE_FORMAT = 1  # bump when the entry layout or the tables' record change
CONSTANT_MODULES: tuple[ModuleType, ...] = (
    log_tables,
    variance_tables,
    nuisance_tables,
    detector_tables,
    spectral_tables,
    detector_parameters,
)
"""Modules whose upper-case constants (tolerances, node counts, ...) enter the key."""
SOURCE_PACKAGES: tuple[ModuleType, ...] = (binned_package, physics_package)
"""Packages whose source files' bytes enter the key (any change of the table code: a miss;
this module's and the record's too)."""


def _constants(module: ModuleType) -> dict[str, Any]:
    """The module's upper-case constants as JSON-able values (numbers, strings, tuples of
    them, dicts of them, dataclass instances)."""

    def plain(value: Any) -> Any:
        if isinstance(value, bool | int | float | str) or value is None:
            return value
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if hasattr(value, "__dataclass_fields__"):
            return {"class": type(value).__name__, **plain(asdict(value))}
        raise TypeError(type(value).__name__)

    out = {}
    for name, value in vars(module).items():
        if name.isupper() and not callable(value):
            try:
                out[name] = plain(value)
            except TypeError:  # functions in a dict and the like: code, hashed with the source
                continue
    return out


def _source_digest() -> str:
    """SHA-256 of the source files of :data:`SOURCE_PACKAGES`, of this module and of the
    record it stores (:mod:`diffuse_fit.report.predictive`): names and bytes."""
    root = Path(str(binned_package.__file__)).parents[1]
    files = [p for package in SOURCE_PACKAGES for p in sorted(_folder(package).rglob("*.py"))]
    files += [Path(__file__), Path(str(predictive.__file__))]
    digest = hashlib.sha256()
    for path in files:
        data = path.read_bytes()
        digest.update(f"{path.relative_to(root)} {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def _folder(package: ModuleType) -> Path:
    return Path(str(package.__file__)).parent


def spline_files(folder: str | Path) -> list[Path]:
    """The files :func:`diffuse_fit.io.hese_splines.read_release_splines` reads, in order."""
    return [p for name in SPLINE_FOLDERS for p in sorted((Path(folder) / name).glob("*.fits"))]


def _spline_digests(folder: str | Path) -> dict[str, str]:
    return {
        f"{p.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for p in spline_files(folder)
    }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def key_record(
    simulation: EventTable,
    binning: Any,
    components: Sequence[Any],
    likelihood: str,
    splines: str | Path | None = None,
) -> dict[str, Any]:
    """What the tables depend on (:func:`table_key` hashes it): ``splines``, the folder of
    the detector-systematics tables when their responses are built (None: not built)."""
    return {
        "table_format": TABLE_FORMAT,
        "versions": {n: _version(n) for n in ("diffuse-fit", "numpy", "scipy")}
        | {"numpy_module": np.__version__, "scipy_module": scipy.__version__},
        "machine": platform.machine(),
        "source_sha256": _source_digest(),
        "constants": {m.__name__: _constants(m) for m in CONSTANT_MODULES},
        "simulation_columns_sha256": columns_digest(simulation.columns),
        "binning": binning.to_dict(),
        "components": [
            {"class": f"{type(c).__module__}.{type(c).__qualname__}", **asdict(c)}
            for c in components
        ],
        "likelihood": likelihood,
        "variance": likelihood == "say",
        "spectral_method": "auto",
        "splines": None if splines is None else _spline_digests(splines),
    }


def table_key(
    simulation: EventTable,
    binning: Any,
    components: Sequence[Any],
    likelihood: str,
    splines: str | Path | None = None,
) -> str:
    """SHA-256 (hex) of :func:`key_record`."""
    text = json.dumps(
        finite_json(key_record(simulation, binning, components, likelihood, splines)),
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def entry_path(cache_dir: str | Path, key: str) -> Path:
    """Where the entry of the tables with this key lives."""
    return Path(cache_dir) / f"tables-{key}.v{TABLE_FORMAT}.npz"


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of named arrays: for each, by name, the line ``"<name> <dtype> <shape>\\n"``
    then its bytes (C order)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name} {a.dtype.str} {list(a.shape)}\n".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def entry_mac(info_text: str, attrs_text: str, digest: str) -> str:
    """The keyed digest of an entry: its ``info`` and ``attrs`` texts and its arrays' digest."""
    return keyed_digest("diffuse-fit table cache", str(TABLE_FORMAT), info_text, attrs_text, digest)


def tables_record(templates: Templates) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The tables as arrays (name -> array) and attributes (JSON-able): a fit record
    (:func:`diffuse_fit.report.predictive.record_variables`) without the counts."""
    likelihood = "poisson" if templates.variance is None else "say"
    n_bins = templates.binning.n_bins
    variables, attrs = record_variables(np.zeros(n_bins), templates, likelihood)
    arrays = {name: np.asarray(array) for name, (_, array) in variables.items() if name != "counts"}
    flavour_errors = {  # the record keeps the largest of a flavour template's three
        t.component.name: [table.max_relative_error for table in t.tables]
        for t in templates.tables
        if isinstance(t, FlavourTemplate)
    }
    if flavour_errors:
        attrs["table_cache_flavour_errors"] = json.dumps(flavour_errors)
    return arrays, attrs


def tables_from_record(
    arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any], n_bins: int, source: str
) -> Templates:
    """Inverse of :func:`tables_record`; :class:`DataFormatError` if inconsistent."""
    record = record_from_variables({**arrays, "counts": np.zeros(n_bins)}, dict(attrs), source)
    templates = record.templates
    errors = json.loads(attrs.get("table_cache_flavour_errors", "{}"))
    if errors:
        tables = []
        for t in templates.tables:
            if isinstance(t, FlavourTemplate):
                values = errors[t.component.name]
                if len(values) != len(t.tables):
                    raise DataFormatError(source, f"inconsistent errors of {t.component.name}")
                flavours = tuple(
                    replace(table, max_relative_error=float(e))
                    for table, e in zip(t.tables, values, strict=True)
                )
                t = replace(t, tables=flavours)
            tables.append(t)
        templates = replace(templates, tables=tuple(tables))
    return templates


def store(path: Path, key: str, templates: Templates) -> bool:
    """Write an entry atomically; a failure (read-only folder, full disk) is a warning
    (returns whether it was written)."""
    arrays, attrs = tables_record(templates)
    if any(a.dtype.hasobject for a in arrays.values()):  # never pickled: not cached
        warn(f"the tables cannot be cached (object arrays); {path} not written")
        return False
    digest = arrays_digest(arrays)
    info = {
        "format": TABLE_FORMAT,
        "key": key,
        "built_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "arrays": {n: [a.dtype.str, list(a.shape)] for n, a in arrays.items()},
        "arrays_sha256": digest,
    }
    info_text, attrs_text = json.dumps(info), json.dumps(attrs)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    info=np.array(info_text),
                    attrs=np.array(attrs_text),
                    mac=np.array(entry_mac(info_text, attrs_text, digest)),
                    # numpy's stubs: a ** argument might set savez's allow_pickle (a bool)
                    **{f"arr:{n}": a for n, a in arrays.items()},  # type: ignore[arg-type]
                )
    except OSError as exc:
        warn(f"cannot write the table cache {path} ({exc.strerror or exc}); continuing without it")
        return False
    return True


def _read(path: Path, key: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """The entry's ``(info, attrs, arrays)`` if it is consistent; else :class:`CacheMismatch`."""
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
        info_text, attrs_text = str(npz["info"][()]), str(npz["attrs"][()])
        mac = str(npz["mac"][()]) if "mac" in npz.files else None
        info, attrs = json.loads(info_text), json.loads(attrs_text)
        if not isinstance(info, dict) or info.get("format") != TABLE_FORMAT:
            raise CacheMismatch("written by another version")
        if info.get("key") != key:
            raise CacheMismatch("filed under another key")
        described = info.get("arrays")
        if not isinstance(described, dict) or not isinstance(attrs, dict):
            raise CacheMismatch("has no array list")
        if sorted(npz.files) != sorted(["info", "attrs", "mac", *(f"arr:{n}" for n in described)]):
            raise CacheMismatch("holds other arrays than its array list")
        arrays = {n: npz[f"arr:{n}"] for n in described}
    for name, array in arrays.items():
        if [array.dtype.str, list(array.shape)] != described[name]:
            raise CacheMismatch(f"array {name!r} is not of its recorded dtype and shape")
    digest = arrays_digest(arrays)
    if digest != info.get("arrays_sha256"):
        raise CacheMismatch("its arrays do not match their recorded digest")
    if not same_digest(mac, entry_mac(info_text, attrs_text, digest)):
        raise CacheMismatch(
            "was not written by this user's diffuse-fit (its keyed digest "
            "does not match its content: changed or forged)"
        )
    return info, attrs, arrays


def load(
    path: Path, key: str, binning: Any, components: Sequence[Any]
) -> tuple[Templates, dict[str, Any]] | None:
    """The tables of a verified entry and its ``info``, or ``None`` to build them (no entry,
    or one warning line on stderr for an entry refused: never an exception).  The tables
    must be of ``binning`` and ``components`` (the live objects replace the entry's)."""
    if not path.is_file():
        return None
    try:
        info, attrs, arrays = _read(path, key)
        try:
            templates = tables_from_record(arrays, attrs, binning.n_bins, str(path))
        except DataFormatError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise CacheMismatch(f"holds inconsistent tables ({reason})") from None
        if templates.binning.to_dict() != binning.to_dict():
            raise CacheMismatch("holds the tables of another binning")
        if templates.components != tuple(components):
            raise CacheMismatch("holds the tables of other components")
    except CacheMismatch as exc:
        warn(f"table cache {path} {exc}; building the tables again")
        return None
    except Exception as exc:  # a damaged file: zip, npy or JSON errors of any kind
        reason = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        warn(f"table cache {path} is unreadable ({reason}); building the tables again")
        return None
    return replace(templates, binning=binning, components=tuple(components)), info


def binned_inputs(
    inputs: Any,
    components: Iterable[Any],
    binning: Any,
    likelihood: str,
    detector: bool,
    say: Callable[[str], None],
    cache_dir: str | Path | None = None,
) -> BinnedDataset:
    """The binned dataset of one sample's ``inputs`` (:class:`diffuse_fit.jobs.inputs.Inputs`)
    with its tables: the component tables, the SAY tables for ``likelihood="say"``, and
    the detector responses of ``inputs.splines`` if ``detector``; from the cache when it
    holds them (said), else built (and the response tables' time said) and stored.
    ``cache_dir``: the folder (default ``$DIFFUSE_FIT_CACHE`` or the user's cache folder);
    ``inputs.use_cache`` false: no cache."""
    from diffuse_fit.binned.binning import Binning

    components = tuple(components)
    binning = binning or Binning()
    splines = inputs.splines if detector else None
    path = None
    if getattr(inputs, "use_cache", True):
        folder = default_cache_dir() if cache_dir is None else Path(cache_dir)
        key = table_key(inputs.simulation, binning, components, likelihood, splines)
        path = entry_path(folder, key)
        found = load(path, key, binning, components)
        if found is not None:
            templates, info = found
            say(f"tables: from the cache {path} (built {info.get('built_utc')})")
            return bin_dataset(
                inputs.data, inputs.simulation, binning, components, templates=templates
            )
    variance = likelihood == "say"
    binned = bin_dataset(
        inputs.data,
        inputs.simulation,
        binning,
        components,
        variance=variance and splines is None,  # with responses: built once, below
    )
    if splines is not None:
        from diffuse_fit.physics.detector import DETECTOR_SYSTEMATICS

        t1 = time.perf_counter()
        binned = binned.with_detector(read_release_splines(splines))
        binned = binned.with_variance() if variance else binned
        say(
            f"detector systematics ({', '.join(s.parameter for s in DETECTOR_SYSTEMATICS)}) "
            f"from {splines}: per-bin response tables built in "
            f"{time.perf_counter() - t1:.1f} s"
        )
    if path is not None:
        store(path, key, binned.templates)
    return binned
