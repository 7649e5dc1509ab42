"""The parsed-file cache is verified on every load and rebuilt, never trusted blindly."""

import json

import numpy as np
import pytest

from diffuse_fit.io import cache
from diffuse_fit.io.events import columns_digest
from diffuse_fit.io.workshop_format import read_simulation, to_workshop_json, write_workshop_file


@pytest.fixture(scope="module")
def small_sim(toy_dataset):
    """The toy simulation's first 600 events (more than a sample's SAMPLE_ROWS + 2)."""
    sim = toy_dataset.simulation
    return sim.select(np.arange(len(sim)) < 600)


@pytest.fixture
def sim_file(tmp_path, small_sim):
    path = tmp_path / "sim.json"
    write_workshop_file(path, small_sim)
    return path


def _json_columns(path):
    content = json.loads(path.read_text())
    events = np.array(content["events"], dtype=np.float64)
    return {name: events[:, i] for name, i in content["mapping"].items()}


def _load_with_warning(path, cache_dir, capsys, expect_warning):
    table = read_simulation(path, cache_dir=cache_dir)
    err = capsys.readouterr().err
    if expect_warning:
        assert err.count("\n") == 1 and "rebuilding it from the source file" in err, err
    else:
        assert err == ""
    for name, values in _json_columns(path).items():  # always what the JSON says
        assert table[name].tobytes() == values.tobytes(), name
    return table, err


def _entry(cache_dir):
    (entry,) = cache_dir.glob("*.npz")
    return entry


def _rewrite(entry, change):
    """Rewrite the entry's arrays through ``change(arrays)``, keeping it a valid .npz."""
    with np.load(entry) as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    with open(entry, "wb") as fh:
        np.savez(fh, **arrays)


def _consistent(arrays):
    """Re-record the digest of changed columns, as a careful forger would."""
    info = json.loads(str(arrays["info"]))
    columns = {f: arrays[f"col:{f}"] for f in info["fields"]}
    info["columns_sha256"] = columns_digest(columns)
    arrays["info"] = np.array(json.dumps(info))


def _scale_all(arrays):
    arrays["col:atmoWeight"] = arrays["col:atmoWeight"] * 2
    _consistent(arrays)


def _change_last_row(arrays):
    arrays["col:energy"] = arrays["col:energy"].copy()
    arrays["col:energy"][-1] *= 1 + 1e-15
    _consistent(arrays)


FORGERIES = {
    "other_numbers_same_digest": _scale_all,
    "last_row_changed_same_digest": _change_last_row,
    "digest_not_matching": lambda a: a.update({"col:energy": a["col:energy"] + 1}),
    "other_hash": lambda a: a.update(
        info=np.array(str(a["info"]).replace('"source_sha256": "', '"source_sha256": "0'))
    ),
    "other_meta": lambda a: a.update(meta=np.array(json.dumps({"toy": {"truth": {}}}))),
    "column_missing": lambda a: a.pop("col:zenith"),
    "rows_shortened": lambda a: [
        a.update({k: v[:-1]}) for k, v in list(a.items()) if k.startswith("col:")
    ],
    "column_as_int": lambda a: a.update({"col:topology": a["col:topology"].astype(np.int64)}),
}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_forged_entries_are_caught_and_rebuilt(tmp_path, sim_file, capsys, case):
    cache_dir = tmp_path / "cache"
    first, _ = _load_with_warning(sim_file, cache_dir, capsys, expect_warning=False)
    entry = _entry(cache_dir)
    _rewrite(entry, FORGERIES[case])
    second, err = _load_with_warning(sim_file, cache_dir, capsys, expect_warning=True)
    assert str(entry) in err
    assert second.loaded_from == "json (fast path)"
    assert second.columns_sha256 == first.columns_sha256
    third, _ = _load_with_warning(sim_file, cache_dir, capsys, expect_warning=False)
    assert third.loaded_from == f"cache {entry} (verified)"  # rebuilt, and good again


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:100],
        lambda b: b"",
        lambda b: b"garbage, not a zip file at all",
        lambda b: b[:2000] + bytes(500) + b[2500:],  # zeroed in the middle
    ],
)
def test_damaged_entries_are_rebuilt(tmp_path, sim_file, capsys, damage):
    cache_dir = tmp_path / "cache"
    _load_with_warning(sim_file, cache_dir, capsys, expect_warning=False)
    entry = _entry(cache_dir)
    entry.write_bytes(damage(entry.read_bytes()))
    table, _ = _load_with_warning(sim_file, cache_dir, capsys, expect_warning=True)
    assert table.loaded_from == "json (fast path)"


def test_entry_records_what_it_holds(tmp_path, sim_file):
    table = read_simulation(sim_file, cache_dir=tmp_path)
    entry = cache.entry_path(tmp_path, table.sha256)
    assert entry.name == f"{table.sha256}.v{cache.FORMAT}.npz"
    with np.load(entry) as npz:
        info = json.loads(str(npz["info"]))
    assert info == {
        "format": cache.FORMAT,
        "source_sha256": table.sha256,
        "rows": len(table),
        "fields": table.fields,
        "columns_sha256": table.columns_sha256,
    }


def test_large_file_rows_are_sampled(tmp_path, small_sim, capsys):
    """Beyond SAMPLE_ROWS + 2 rows only a sample is compared; the last row always is."""
    assert len(small_sim) > 2 * cache.SAMPLE_ROWS
    path = tmp_path / "sim.json"
    path.write_text(to_workshop_json(small_sim))
    _load_with_warning(path, tmp_path / "c", capsys, expect_warning=False)
    entry = _entry(tmp_path / "c")
    _rewrite(entry, _change_last_row)
    _load_with_warning(path, tmp_path / "c", capsys, expect_warning=True)


def test_sampled_rows():
    rng = np.random.default_rng(1)
    raw = b"[" + b",".join(b"[%d,%d]" % (i, -i) for i in range(10_000)) + b"]"
    rows = np.column_stack([np.arange(10_000.0), 0 - np.arange(10_000.0)])
    seen = []

    def table_rows(indices):
        seen.extend(indices.tolist())
        return rows[indices]

    assert cache.spot_check_rows(raw, (1, len(raw) - 1), 10_000, table_rows, rng) is None
    assert seen[0] == 0 and seen[-1] == 9999 and 150 < len(seen) <= cache.SAMPLE_ROWS + 2
    assert len(set(seen)) == len(seen)
    bad = rows.copy()
    bad[seen[1]] += 1  # the same rows are drawn again with the same generator
    message = cache.spot_check_rows(
        raw, (1, len(raw) - 1), 10_000, lambda i: bad[i], np.random.default_rng(1)
    )
    assert message == f"differs from the source in row {seen[1]}"


def test_unwritable_cache_folder_is_a_warning(tmp_path, sim_file, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    table = read_simulation(sim_file, cache_dir=blocker)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the cache" in err and table.loaded_from


def test_default_cache_dir(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    assert cache.default_cache_dir() == tmp_path
    monkeypatch.delenv(cache.CACHE_ENV)
    assert str(cache.default_cache_dir()) == platformdirs.user_cache_dir("diffuse-fit")


def test_one_row_forgery_is_caught_and_the_fit_is_the_uncached_one(
    tmp_path, toy_dataset, monkeypatch, capsys
):
    """One atmoWeight row of the whole toy simulation x1e4, every unkeyed digest recomputed:
    the entry's keyed digest (HMAC under the user's key) fails, one line names the entry,
    the file is parsed again and the fit is the one without any cache."""
    from diffuse_fit.binned.dataset import bin_dataset
    from diffuse_fit.fitting.map_core import fit_map
    from diffuse_fit.fitting.profile import ProfileFitter
    from diffuse_fit.inference.priors import resolve_priors
    from diffuse_fit.io.workshop_format import write_workshop_file as write
    from diffuse_fit.jobs.inputs import load_inputs
    from diffuse_fit.physics.components import parameter_supports

    data, sim = tmp_path / "data.json", tmp_path / "sim.json"
    write(data, toy_dataset.data)
    write(sim, toy_dataset.simulation)
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))

    def fit(inputs):
        binned = bin_dataset(inputs.data, inputs.simulation)
        priors = resolve_priors("flat", parameter_supports(binned.components))
        return fit_map(ProfileFitter(binned.templates, priors), binned.counts).values

    uncached = fit(load_inputs(data, sim, use_cache=False))
    load_inputs(data, sim)  # fills the cache
    entry = _entry(tmp_path / "cache")
    row = len(toy_dataset.simulation) // 2 + 7

    def forge(arrays):
        arrays["col:atmoWeight"] = arrays["col:atmoWeight"].copy()
        arrays["col:atmoWeight"][row] *= 1e4
        _consistent(arrays)

    _rewrite(entry, forge)
    capsys.readouterr()
    inputs = load_inputs(data, sim)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(entry) in err and "keyed digest" in err, err
    assert inputs.simulation.loaded_from == "json (fast path)"
    assert fit(inputs) == uncached
    again = load_inputs(data, sim)  # the entry was rebuilt from the source
    assert again.simulation.loaded_from == f"cache {entry} (verified)"
    assert capsys.readouterr().err == ""


def test_entry_of_another_key_is_rebuilt(tmp_path, sim_file, capsys, monkeypatch):
    """An entry written under another user's key (or a key that was replaced) is not used."""
    from diffuse_fit.io import user_key

    cache_dir = tmp_path / "cache"
    _load_with_warning(sim_file, cache_dir, capsys, expect_warning=False)
    monkeypatch.setenv(user_key.KEY_ENV, str(tmp_path / "other.key"))
    _, err = _load_with_warning(sim_file, cache_dir, capsys, expect_warning=True)
    assert "keyed digest" in err
    assert oct((tmp_path / "other.key").stat().st_mode & 0o777) == "0o600"


def test_key_readable_by_others_is_not_used(tmp_path, monkeypatch, caplog):
    from diffuse_fit.io import user_key

    path = tmp_path / "open.key"
    path.write_bytes(bytes(32))
    path.chmod(0o644)
    monkeypatch.setenv(user_key.KEY_ENV, str(path))
    with caplog.at_level("WARNING", logger="diffuse_fit.io.user_key"):
        key = user_key.user_key()
    assert key != bytes(32) and len(key) == 32
    assert "may be read or written by others" in caplog.text and str(path) in caplog.text
