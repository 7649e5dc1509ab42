import json

import numpy as np
import pytest

from model.errors import DataFormatError
from model.io.events import EventTable
from model.io.workshop_format import (
    read_data,
    read_simulation,
    to_workshop_json,
    write_workshop_file,
)


@pytest.fixture
def sim_file(tmp_path, toy_dataset):
    path = tmp_path / "sim.json"
    write_workshop_file(path, toy_dataset.simulation)
    return path


def test_round_trip_simulation(sim_file, toy_dataset):
    table = read_simulation(sim_file)
    original = toy_dataset.simulation
    assert table.fields == original.fields  # extra fields kept, in order
    for name in original.fields:
        np.testing.assert_array_equal(table[name], original[name])
    assert table.meta == json.loads(json.dumps(original.meta))


def test_columns_found_through_mapping_not_position(tmp_path, toy_dataset):
    fields = ["zenith", "topology", "energy"]
    data = toy_dataset.data
    path = tmp_path / "data.json"
    write_workshop_file(path, data, fields=fields)
    assert json.loads(path.read_text())["mapping"] == {"zenith": 0, "topology": 1, "energy": 2}
    table = read_data(path)
    for name in fields:
        np.testing.assert_array_equal(table[name], data[name])


def test_fast_and_exact_parsers_agree(tmp_path, toy_dataset):
    """A file the fast path refuses (NaN in an extra field) parses the same with json."""
    data = toy_dataset.data
    path = tmp_path / "data.json"
    extra = dict(data.columns, note=np.full(len(data), 1.5))
    text = to_workshop_json(EventTable(extra, "x"))
    odd = text.replace("1.5]", "NaN]", 1)  # the exact parser accepts NaN in a non-required field
    path.write_text(odd)
    table = read_data(path)
    np.testing.assert_array_equal(table["energy"], data["energy"])
    assert np.isnan(table["note"][0]) and np.all(table["note"][1:] == 1.5)


def test_cache_is_written_and_reused(tmp_path, sim_file):
    cache = tmp_path / "cache"
    first = read_simulation(sim_file, cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert [f.stem for f in files] == [first.sha256]
    second = read_simulation(sim_file, cache_dir=cache)
    assert second.sha256 == first.sha256 and second.meta == first.meta
    for name in first.fields:
        np.testing.assert_array_equal(second[name], first[name])
    # a changed file gets its own cache entry
    sim_file.write_text(sim_file.read_text().replace('"events": [\n[', '"events": [\n[ ', 1))
    third = read_simulation(sim_file, cache_dir=cache)
    assert third.sha256 != first.sha256 and len(list(cache.glob("*.npz"))) == 2


GOOD = {
    "mapping": {"energy": 0, "zenith": 1, "topology": 2},
    "events": [[1e5, 1.0, 0], [2e5, 2.0, 1]],
}
SIM_MAPPING = {
    "astroWeight": 0, "atmoWeight": 1, "energy": 2, "primaryEnergy": 3,
    "primaryZenith": 4, "topology": 5, "zenith": 6,
}  # fmt: skip
SIM_ROW = [1e-3, 2e-3, 1e5, 2e5, 1.0, 0, 1.1]


def _sim(changes):
    rows = [list(SIM_ROW), list(SIM_ROW)]
    for (row, field), value in changes.items():
        rows[row][SIM_MAPPING[field]] = value
    return {"mapping": SIM_MAPPING, "events": rows}


BAD_DATA = {
    "not_json": ("this is not json", ["is not valid JSON"]),
    "truncated": (json.dumps(GOOD)[:-20], ["is not valid JSON", "truncated"]),
    "missing_mapping": ({"events": GOOD["events"]}, ["'mapping'"]),
    "missing_events": ({"mapping": GOOD["mapping"]}, ["'events'"]),
    "missing_field": (
        {"mapping": {"energy": 0, "zenith": 1}, "events": [[1e5, 1.0]]},
        ["field 'topology'", "missing from 'mapping'"],
    ),
    "row_length": (
        {"mapping": GOOD["mapping"], "events": [[1e5, 1.0, 0], [2e5, 2.0]]},
        ["events[1]", "2 values", "3 fields"],
    ),
    "non_numeric": (
        {"mapping": GOOD["mapping"], "events": [[1e5, 1.0, 0], [2e5, "up", 1]]},
        ["field 'zenith'", "events[1]", "'up'"],
    ),
    "null_value": (
        {"mapping": GOOD["mapping"], "events": [[None, 1.0, 0]]},
        ["field 'energy'", "events[0]", "None"],
    ),
    "non_finite": (
        '{"mapping": {"energy": 0, "zenith": 1, "topology": 2}, "events": [[1e5, 1.0, 0], [Infinity, 1.0, 0]]}',
        ["field 'energy'", "events[1]", "inf"],
    ),
    "energy_not_positive": (
        {"mapping": GOOD["mapping"], "events": [[1e5, 1.0, 0], [0.0, 1.0, 0]]},
        ["field 'energy'", "events[1]", "0.0", "positive"],
    ),
    "zenith_outside": (
        {"mapping": GOOD["mapping"], "events": [[1e5, 3.5, 0]]},
        ["field 'zenith'", "events[0]", "3.5", "[0, pi]"],
    ),
    "unknown_topology": (
        {"mapping": GOOD["mapping"], "events": [[1e5, 1.0, 0], [1e5, 1.0, 7]]},
        ["field 'topology'", "events[1]", "7.0", "topology code"],
    ),
    "empty": ({"mapping": GOOD["mapping"], "events": []}, ["has no events"]),
    "bad_mapping_index": (
        {"mapping": {"energy": 0, "zenith": 1, "topology": 5}, "events": [[1e5, 1.0, 0]]},
        ["'mapping'", "not 0..2"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_file_gives_clear_error(tmp_path, case):
    content, expected = BAD_DATA[case]
    path = tmp_path / f"{case}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DataFormatError) as info:
        read_data(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({(1, "astroWeight"): -1e-5}, ["field 'astroWeight'", "events[1]", "-1e-05", "negative"]),
        ({(0, "atmoWeight"): -2.0}, ["field 'atmoWeight'", "events[0]", "-2.0"]),
        ({(1, "primaryEnergy"): -5.0}, ["field 'primaryEnergy'", "events[1]", "-5.0"]),
        ({(0, "primaryZenith"): -0.1}, ["field 'primaryZenith'", "events[0]", "-0.1"]),
    ],
)
def test_bad_simulation_values(tmp_path, changes, expected):
    path = tmp_path / "sim.json"
    path.write_text(json.dumps(_sim(changes)))
    with pytest.raises(DataFormatError) as info:
        read_simulation(path)
    for part in [str(path), *expected]:
        assert part in str(info.value), str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        read_data(tmp_path / "nope.json")


def test_good_minimal_file_reads(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(GOOD))
    table = read_data(path)
    np.testing.assert_array_equal(table["energy"], [1e5, 2e5])
    assert table.sha256 is not None and len(table) == 2


def test_well_formed_file_takes_the_fast_path(sim_file, toy_dataset):
    from model.io.workshop_format import _parse_exact, _parse_fast

    raw = sim_file.read_bytes()
    fast_rest, fast = _parse_fast(raw, "sim")
    exact_rest, exact = _parse_exact(raw, "sim")
    np.testing.assert_array_equal(fast, exact)
    assert fast_rest == exact_rest
