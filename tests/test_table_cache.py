"""The verified cache of a job's per-bin tables (diffuse_fit.jobs.table_cache).

References: tables built without the cache, in the order the jobs built them before the
cache (``bin_dataset(variance=...)`` then ``with_detector``); compared field by field of
every dataclass, arrays by dtype, shape and bytes (bit for bit), so a field the entry does
not store would show.  The MAP of a job on cached tables against the same job without the
cache, every value of ``map.json`` equal.
"""

import dataclasses
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.io import hese_release as hr
from diffuse_fit.io.cache import CACHE_ENV
from diffuse_fit.io.events import EventTable
from diffuse_fit.io.hese_splines import read_release_splines
from diffuse_fit.jobs import table_cache as tc
from diffuse_fit.jobs.inputs import component_set, load_inputs, sample_binning
from diffuse_fit.jobs.prepared import PreparedFit
from diffuse_fit.physics import hese_toy

SPLINES = Path(__file__).parents[2] / "shared" / "hese7" / "splines"
needs_splines = pytest.mark.skipif(
    not SPLINES.is_dir(), reason="../shared/hese7/splines not present"
)
FROM_CACHE = "tables: from the cache "


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A small release-schema toy (2.4k simulated events) with the release's splines."""
    folder = tmp_path_factory.mktemp("release")
    toy = hese_toy.make_toy_release(seed=21, n=3000)
    hr.write_release_folder(folder, toy.simulation, toy.data)
    (folder / "resources").mkdir()
    (folder / "resources" / "splines").symlink_to(SPLINES)
    return load_inputs(hese_release=folder)


@pytest.fixture(scope="module")
def workshop():
    return load_inputs()  # the embedded workshop toy


def assert_identical(a, b, where="tables"):
    """``a`` and ``b`` the same: dataclasses field by field (same types), arrays bit for
    bit, numbers by their float64 bits, the rest by ``==``."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert a.tobytes() == b.tobytes(), where
        # the memory layout too: matrix products take other paths (other last bits) on a
        # transposed layout (a response table fitted as F-ordered pieces did)
        if a.size > 1:
            assert a.strides == b.strides, f"{where}: strides {a.strides} != {b.strides}"
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, tuple | list):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, int | float | np.number) and not isinstance(a, bool):
        assert isinstance(b, int | float | np.number) and not isinstance(b, bool), where
        assert struct.pack("<d", float(a)) == struct.pack("<d", float(b)), where
    else:
        assert type(a) is type(b) and a == b, where


def job(inputs, likelihood):
    """(components name, components, binning, detector?) of a job on ``inputs``."""
    name = "hese" if inputs.splines is not None else "workshop"
    return name, component_set(name, "spl", likelihood), sample_binning(None, inputs)


def reference(inputs, likelihood):
    """The tables as the jobs built them before the cache, without it."""
    name, components, binning = job(inputs, likelihood)
    binned = bin_dataset(
        inputs.data, inputs.simulation, binning, components, variance=likelihood == "say"
    )
    if inputs.splines is not None:
        binned = binned.with_detector(read_release_splines(inputs.splines))
    return binned


def cached(inputs, likelihood, cache_dir, lines=None):
    _, components, binning = job(inputs, likelihood)
    say = (lines if lines is not None else []).append
    return tc.binned_inputs(
        inputs, components, binning, likelihood, inputs.splines is not None, say, cache_dir
    )


def entries(folder):
    return sorted(Path(folder).glob("tables-*.npz"))


CASES = [
    pytest.param("release", "say", marks=needs_splines, id="release-say-detector"),
    pytest.param("release", "poisson", marks=needs_splines, id="release-poisson-detector"),
    pytest.param("workshop", "poisson", id="workshop-poisson"),
    pytest.param("workshop", "say", id="workshop-say"),
]


@pytest.mark.parametrize(("which", "likelihood"), CASES)
def test_cached_tables_are_the_built_ones_bit_for_bit(request, tmp_path, which, likelihood):
    inputs = request.getfixturevalue(which)
    fresh = reference(inputs, likelihood)
    first_lines, second_lines = [], []
    first = cached(inputs, likelihood, tmp_path, first_lines)  # a miss: built, stored
    assert not any(line.startswith(FROM_CACHE) for line in first_lines)
    assert len(entries(tmp_path)) == 1
    second = cached(inputs, likelihood, tmp_path, second_lines)  # a hit
    hits = [line for line in second_lines if line.startswith(FROM_CACHE)]
    assert len(hits) == 1 and str(entries(tmp_path)[0]) in hits[0] and "(built 20" in hits[0]
    for got in (first, second):
        assert_identical(fresh.templates, got.templates)
        assert_identical(fresh.counts, got.counts, "counts")
        assert_identical(fresh.sim_bin_index, got.sim_bin_index, "sim_bin_index")
        assert (got.n_data_outside, got.n_sim_outside) == (
            fresh.n_data_outside,
            fresh.n_sim_outside,
        )
    t = second.templates
    assert (t.variance is not None) == (likelihood == "say")
    if t.responses and t.variance is not None:  # SAY products share the response tables
        linked = [r for p in getattr(t.variance, "products", ()) for r in p.responses]
        assert linked and all(any(r is s for s in t.responses) for r in linked)


@pytest.mark.parametrize(("which", "likelihood"), CASES[::3])
def test_map_of_a_job_on_cached_tables_is_the_uncached_one(
    request, tmp_path, monkeypatch, which, likelihood
):
    inputs = request.getfixturevalue(which)
    name, _, _ = job(inputs, likelihood)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    prior = "hese" if name == "hese" else "default"
    results, said = [], []
    for use_cache in (False, True, True):  # without the cache; filling it; reading it
        lines = []
        run = dataclasses.replace(inputs, use_cache=use_cache)
        prepared = PreparedFit.prepare(run, prior, name, lines.append, likelihood, build=False)
        result = prepared.run_map()
        result.pop("wall_time_s")
        results.append(json.dumps(result))
        said.append(any(line.startswith(FROM_CACHE) for line in lines))
    assert said == [False, False, True]
    assert results[0] == results[1] == results[2]  # every value, to the last bit of its repr


@needs_splines
def test_the_key_changes_with_what_the_tables_depend_on(release, workshop, tmp_path):
    sim = release.simulation
    _, hese, binning = job(release, "say")
    base = tc.table_key(sim, binning, hese, "say", release.splines)
    assert tc.table_key(sim, binning, hese, "say", release.splines) == base
    # one simulated weight
    columns = {k: v.copy() for k, v in sim.columns.items()}
    field = next(f for f in ("astroWeight", "conventionalWeight") if f in columns)
    i = int(np.flatnonzero(columns[field] > 0)[0])
    columns[field][i] = np.nextafter(columns[field][i], np.inf)
    changed = EventTable(columns, sim.source, sim.sha256, sim.meta, sim.loaded_from)
    assert tc.table_key(changed, binning, hese, "say", release.splines) != base
    # the binning, the components, the likelihood, no detector tables
    assert tc.table_key(sim, Binning(), hese, "say", release.splines) != base
    split = component_set("split", "spl", "say")
    assert tc.table_key(sim, binning, split, "say", release.splines) != base
    other = tuple(
        dataclasses.replace(c, index_range=(1.5, 3.5)) if hasattr(c, "index_range") else c
        for c in component_set("workshop")
    )
    assert tc.table_key(sim, binning, other, "say") != tc.table_key(
        sim, binning, component_set("workshop"), "say"
    )
    assert tc.table_key(sim, binning, hese, "poisson", release.splines) != base
    assert tc.table_key(sim, binning, hese, "say") != base
    # a spline file's bytes (the same bytes elsewhere: the same key)
    copy = tmp_path / "splines"
    shutil.copytree(SPLINES, copy)
    assert tc.table_key(sim, binning, hese, "say", copy) == base
    target = tc.spline_files(copy)[3]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))
    assert tc.table_key(sim, binning, hese, "say", copy) != base
    # a constant of the table code (here the tolerance) and the source of the table code
    record = tc.key_record(sim, binning, hese, "say", release.splines)
    assert record["constants"]["diffuse_fit.binned.log_tables"]["DEFAULT_TOLERANCE"] == 1e-11
    assert record["constants"]["diffuse_fit.binned.detector_tables"]["RESPONSE_TOLERANCE"]
    assert len(record["source_sha256"]) == 64 and record["table_format"] == tc.TABLE_FORMAT


def test_changed_simulation_is_a_miss_and_rebuilt(workshop, tmp_path):
    cached(workshop, "poisson", tmp_path)
    sim = workshop.simulation
    columns = {k: v.copy() for k, v in sim.columns.items()}
    inside = reference(workshop, "poisson").sim_bin_index >= 0
    columns["astroWeight"][np.flatnonzero(inside & (columns["astroWeight"] > 0))[0]] *= 2.0
    changed = dataclasses.replace(workshop, simulation=EventTable(columns, sim.source))
    lines = []
    got = cached(changed, "poisson", tmp_path, lines)
    assert not any(line.startswith(FROM_CACHE) for line in lines)
    assert len(entries(tmp_path)) == 2
    assert_identical(reference(changed, "poisson").templates, got.templates)
    assert not np.array_equal(
        got.templates.tables[1].log_coeffs,
        cached(workshop, "poisson", tmp_path).templates.tables[1].log_coeffs,
    )


def _forge(path):
    """One coefficient changed, the entry's unkeyed digest recomputed (the HMAC kept)."""
    with np.load(path, allow_pickle=False) as npz:
        stored = {k: npz[k] for k in npz.files}
    name = next(k for k in stored if k.endswith("__log_coeffs"))
    stored[name] = stored[name].copy()
    stored[name].flat[0] += 1e-9
    arrays = {k[4:]: v for k, v in stored.items() if k.startswith("arr:")}
    info = json.loads(str(stored["info"][()]))
    info["arrays_sha256"] = tc.arrays_digest(arrays)
    stored["info"] = np.array(json.dumps(info))
    with open(path, "wb") as fh:
        np.savez(fh, **stored)


def _corrupt(path):
    data = bytearray(path.read_bytes())
    for k in range(len(data) // 3, len(data) // 3 + 64):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_key(path):
    """A valid entry of other tables filed under this one's name."""
    with np.load(path, allow_pickle=False) as npz:
        stored = {k: npz[k] for k in npz.files}
    info = json.loads(str(stored["info"][()]))
    info["key"] = "0" * 64
    stored["info"] = np.array(json.dumps(info))
    with open(path, "wb") as fh:
        np.savez(fh, **stored)


@pytest.mark.parametrize(
    ("which", "damage", "reason"),
    [
        pytest.param("release", _forge, "keyed digest", marks=needs_splines, id="release-forged"),
        pytest.param("workshop", _forge, "keyed digest", id="workshop-forged"),
        pytest.param("workshop", _corrupt, "", id="workshop-corrupted"),
        pytest.param("workshop", _truncate, "unreadable", id="workshop-truncated"),
        pytest.param("workshop", _other_key, "another key", id="workshop-other-key"),
    ],
)
def test_damaged_or_forged_entries_are_refused_and_rebuilt(
    request, tmp_path, capsys, which, damage, reason
):
    inputs = request.getfixturevalue(which)
    likelihood = "say"
    fresh = cached(inputs, likelihood, tmp_path)
    (path,) = entries(tmp_path)
    damage(path)
    capsys.readouterr()
    lines = []
    rebuilt = cached(inputs, likelihood, tmp_path, lines)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"diffuse-fit: warning: table cache {path}")
    assert reason in err[0] and "building the tables again" in err[0]
    assert not any(line.startswith(FROM_CACHE) for line in lines)
    assert_identical(fresh.templates, rebuilt.templates)
    lines = []
    again = cached(inputs, likelihood, tmp_path, lines)  # the rebuilt entry is good
    assert capsys.readouterr().err == ""
    assert any(line.startswith(FROM_CACHE) for line in lines)
    assert_identical(fresh.templates, again.templates)


def test_unwritable_cache_folder_is_a_warning(workshop, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    got = cached(workshop, "poisson", blocker / "cache")  # a folder under a file
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "cannot write the table cache" in err[0]
    assert_identical(reference(workshop, "poisson").templates, got.templates)


def test_no_cache_neither_reads_nor_writes(workshop, tmp_path, capsys):
    off = dataclasses.replace(workshop, use_cache=False)
    cached(off, "poisson", tmp_path)
    assert entries(tmp_path) == []  # not written
    cached(workshop, "poisson", tmp_path)
    (path,) = entries(tmp_path)
    _forge(path)  # read, this entry would be refused with a warning
    before = path.read_bytes()
    capsys.readouterr()
    lines = []
    got = cached(off, "poisson", tmp_path, lines)
    assert capsys.readouterr().err == ""  # not read
    assert not any(line.startswith(FROM_CACHE) for line in lines)
    assert path.read_bytes() == before and entries(tmp_path) == [path]  # not rewritten
    assert_identical(reference(workshop, "poisson").templates, got.templates)
    assert load_inputs(use_cache=False).use_cache is False


def test_cli_map_fills_and_reads_the_cache_and_no_cache_bypasses_it(tmp_path, monkeypatch, capsys):
    from diffuse_fit.cli import main

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert main(["map", "--no-cache", "--out", str(tmp_path / "a")]) == 0
    assert entries(tmp_path / "cache") == []
    assert FROM_CACHE not in capsys.readouterr().out
    assert main(["map", "--out", str(tmp_path / "b")]) == 0
    assert len(entries(tmp_path / "cache")) == 1
    assert FROM_CACHE not in capsys.readouterr().out
    assert main(["map", "--out", str(tmp_path / "c")]) == 0
    assert FROM_CACHE in capsys.readouterr().out
    maps = [json.loads((tmp_path / r / "map.json").read_text()) for r in "abc"]
    for m in maps:
        m.pop("wall_time_s"), m.pop("provenance")
    assert maps[0] == maps[1] == maps[2]


@pytest.mark.parametrize(
    ("which", "components", "astro_model", "likelihood"),
    [
        ("workshop", "workshop", "logparabola", "poisson"),
        ("workshop", "workshop", "broken", "poisson"),
        ("workshop", "workshop", "cutoff", "poisson"),
        ("workshop", "workshop", "segmented", "say"),
        pytest.param("release", "split", "spl", "say", marks=needs_splines),
        pytest.param("release", "workshop", "flavour", "poisson", marks=needs_splines),
    ],
)
def test_every_kind_of_table_round_trips(
    request, tmp_path, capsys, which, components, astro_model, likelihood
):
    """Spectral tables (or their exact per-event sums), segments, flavour tables and the
    split components: read back from the cache without a warning, bit for bit."""
    inputs = request.getfixturevalue(which)
    chosen = component_set(components, astro_model, likelihood)
    binning = sample_binning(None, inputs)
    fresh = bin_dataset(
        inputs.data, inputs.simulation, binning, chosen, variance=likelihood == "say"
    )
    lines = []
    for _ in range(2):
        got = tc.binned_inputs(inputs, chosen, binning, likelihood, False, lines.append, tmp_path)
        assert_identical(fresh.templates, got.templates)
    assert sum(line.startswith(FROM_CACHE) for line in lines) == 1
    assert capsys.readouterr().err == ""
