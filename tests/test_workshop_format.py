import hashlib
import json
import struct

import numpy as np
import pytest

from diffuse_fit.errors import DataFormatError
from diffuse_fit.io import checks, fast_rows
from diffuse_fit.io import workshop_format as wf
from diffuse_fit.io.cache import FORMAT
from diffuse_fit.io.events import EventTable
from diffuse_fit.io.fast_rows import NotFast
from diffuse_fit.io.workshop_format import (
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
    """A file the fast path declines (NaN in an extra field) goes to the exact parser, which
    names the non-finite value: refused in every column, used by the fit or not."""
    data = toy_dataset.data
    path = tmp_path / "data.json"
    extra = dict(data.columns, note=np.full(len(data), 1.5))
    text = to_workshop_json(EventTable(extra, "x"))
    assert "NaN" not in text
    path.write_text(text.replace("1.5]", "NaN]", 1))
    with pytest.raises(DataFormatError, match=r"field 'note', events\[0\]: non-finite value nan"):
        read_data(path)
    path.write_text(text)
    table = read_data(path)
    np.testing.assert_array_equal(table["energy"], data["energy"])
    assert np.all(table["note"] == 1.5)


def test_cache_is_written_and_reused(tmp_path, sim_file):
    cache = tmp_path / "cache"
    first = read_simulation(sim_file, cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert [f.name for f in files] == [f"{first.sha256}.v{FORMAT}.npz"]
    assert first.loaded_from == "json (fast path)"
    second = read_simulation(sim_file, cache_dir=cache)
    assert second.loaded_from == f"cache {files[0]} (verified)"
    assert second.sha256 == first.sha256 and second.meta == first.meta
    assert second.columns_sha256 == first.columns_sha256
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
    "astroWeight": 0,
    "atmoWeight": 1,
    "energy": 2,
    "primaryEnergy": 3,
    "primaryZenith": 4,
    "topology": 5,
    "zenith": 6,
}
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
    from diffuse_fit.io.workshop_format import _parse_exact, _parse_fast

    raw = sim_file.read_bytes()
    fast_rest, fast = _parse_fast(raw, "sim")
    exact_rest, exact = _parse_exact(raw, "sim")
    np.testing.assert_array_equal(fast, exact)
    assert fast_rest == exact_rest


# --------------------------------------------------------------------------- strict JSON

HEAD = '{"mapping": {"energy": 0, "zenith": 1, "topology": 2}, "events": '


def _fast_or_none(text: str):
    try:
        return wf._parse_fast(text.encode(), "f")
    except NotFast:
        return None


# events arrays json refuses; before, the fast path loaded (or crashed on) each of them
INVALID_EVENTS = [
    "[[1e5, , 1], [0.5 2e5, 0, 2.0]]",  # an empty slot and two numbers in one
    "[[+3, 1, 0]]",
    "[[.5, 1, 0]]",
    "[[1., 1, 0]]",
    "[[01, 1, 0]]",
    "[[-01, 1, 0]]",
    "[[1.2.3, 1, 0]]",
    "[[--1, 1, 0]]",
    "[[1e, 1, 0]]",
    "[[.1.5, 1, 0]]",
    "[[1e5e5, 1, 0]]",
    "[[1e5.5, 1, 0]]",
    "[[1, 2, 3] [4, 5, 6]]",
    "[[1, 2, 3], [4, 5, 6],]",
    "[[1, 2, 3]\f]",
    "[[1, 2, 3],\v[4, 5, 6]]",
    "[[1, 2, 3 e5]]",
    "[[1, 2, 3] 5, [4, 5, 6]]",
]


@pytest.mark.parametrize("events", INVALID_EVENTS)
def test_fast_path_refuses_what_json_refuses(tmp_path, events):
    text = HEAD + events + "}"
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert _fast_or_none(text) is None
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=r"is not valid JSON: .* at line 1 column \d+"):
        read_data(path)


@pytest.mark.parametrize(
    "events",
    [
        "[[1e5, 1, 0], [2e5, 2.0, 1]]",
        "[[1E+5,1e-05,0],[1e05,0.5,2]]",
        "[ [ 1e5 ,\t1 ,\r\n0 ] ,\n[ 123456789012345678901234567890 , 0.0 , 1 ] ]",
        "[[1e5, 4.9e-324, 0], [1.7976931348623157e308, 1e-400, 0]]",
        "[[0.30000000000000004, 2.718281828459045, 0], [10.0e-1, 0e0, 1]]",
    ],
)
def test_fast_path_gives_exactly_the_json_values(events):
    text = HEAD + events + "}"
    parsed = _fast_or_none(text)
    assert parsed is not None, "the fast path should take this file"
    expected = np.array(json.loads(text)["events"], dtype=np.float64)
    assert parsed[1].tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    "events", ["[[1e999, 1, 0]]", "[[-1e999, 1, 0]]", "[[-0, 1, 0]]", "[[NaN, 1, 0]]"]
)
def test_fast_path_leaves_overflow_negative_zero_and_nan_to_json(events):
    text = HEAD + events + "}"
    assert _fast_or_none(text) is None
    _, exact = wf._parse_exact(text.encode(), "f")
    assert exact.tobytes() == np.array(json.loads(text)["events"], dtype=np.float64).tobytes()


def test_fast_path_in_small_chunks_with_trailing_space(monkeypatch, toy_dataset):
    """Chunk boundaries anywhere, also just before trailing whitespace, change nothing."""
    text = to_workshop_json(toy_dataset.simulation).replace("\n]}", "  \n \n]}")
    raw = text.encode()
    exact = wf._parse_exact(raw, "f")[1]
    for chunk in (1, 7, 64, 1000):
        monkeypatch.setattr(fast_rows, "_CHUNK", chunk)
        assert wf._parse_fast(raw, "f")[1].tobytes() == exact.tobytes()


def test_huge_integer_is_a_clear_error(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(HEAD + "[[1e5, 1, 0], [" + "1" + "0" * 400 + ", 1, 0]]}")
    with pytest.raises(DataFormatError) as info:
        read_data(path)
    message = str(info.value)
    for part in [
        str(path),
        "field 'energy'",
        "events[1]",
        "10000000...0000 (401 digits)",
        "beyond the float range",
    ]:
        assert part in message, message
    assert len(message) < 200


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (HEAD + '[[1e5, 1, 0]], "events": [[2e5, 2, 1]]}', "events"),
        ('{"mapping": {"energy": 0, "energy": 1, "topology": 2}, "events": [[1, 1, 0]]}', "energy"),
        (HEAD + '[[1e5, 1, 0]], "toy": {"a": 1, "a": 2}}', "a"),
    ],
)
def test_duplicate_keys_are_refused(tmp_path, text, key):
    path = tmp_path / "dup.json"
    path.write_text(text)
    with pytest.raises(DataFormatError) as info:
        read_data(path)
    message = str(info.value)
    assert str(path) in message and f"the key '{key}' twice" in message, message
    with pytest.raises(DataFormatError, match="twice"):
        wf._parse_exact(text.encode(), "f")


def test_fast_path_reads_the_top_level_events_only(tmp_path):
    nested = '{"note": {"events": [[9, 9, 9]]}, "events": [[1e5, 1, 0]], "mapping": '
    text = nested + '{"energy": 0, "zenith": 1, "topology": 2}}'
    assert _fast_or_none(text) is None  # the first "events" is not the top-level one
    path = tmp_path / "nested.json"
    path.write_text(text)
    table = read_data(path)
    assert table["energy"].tolist() == [1e5] and table.meta == {"note": {"events": [[9, 9, 9]]}}
    assert table.loaded_from == "json (exact parser)"


# --------------------------------------------------------------------------- provenance


def test_loaded_from_and_columns_digest(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(GOOD))
    table = read_data(path)
    assert table.loaded_from == "json (fast path)" and table.clamped == {}
    digest = hashlib.sha256()  # the documented layout, built value by value
    for name in ("energy", "zenith", "topology"):
        digest.update(f"{name} 2\n".encode())
        for value in table[name]:
            digest.update(struct.pack("<d", value))
    assert table.columns_sha256 == digest.hexdigest()
    path.write_text(json.dumps(GOOD).replace("1.0", "NaN"))  # NaN: only json reads it
    with pytest.raises(DataFormatError, match="non-finite"):
        read_data(path)


# --------------------------------------------------------------------------- rounded bounds


@pytest.mark.parametrize(
    ("printed", "field"),
    [("3.142", "zenith"), ("3.1416", "zenith"), ("3.1415926535898", "primaryZenith")],
)
def test_zenith_printed_rounded_above_pi_is_pi(tmp_path, printed, field):
    assert float(printed) > np.pi
    rows = [list(SIM_ROW), list(SIM_ROW), list(SIM_ROW)]
    text = json.dumps({"mapping": SIM_MAPPING, "events": rows})
    text = (
        text.replace("1.1]", f"{printed}]", 2)
        if field == "zenith"
        else text.replace("1.0, 0", f"{printed}, 0", 2)
    )
    path = tmp_path / "sim.json"
    path.write_text(text)
    table = read_simulation(path)
    assert table.clamped == {field: 2}
    assert table[field].tolist() == [np.pi, np.pi, SIM_ROW[SIM_MAPPING[field]]]
    from diffuse_fit.io.events import columns_digest

    assert table.columns_sha256 == columns_digest(table.columns)


@pytest.mark.parametrize(
    ("field", "printed", "shown"),
    [
        ("zenith", "3.15", "3.15"),
        ("zenith", "3.1417", "3.1417"),
        ("zenith", "-0.0001", "-0.0001"),
        ("atmoWeight", "-1e-20", "-1e-20"),
        ("astroWeight", "-0.0", None),
    ],
)
def test_clearly_outside_is_still_an_error(tmp_path, field, printed, shown):
    rows = [list(SIM_ROW), list(SIM_ROW)]
    rows[1][SIM_MAPPING[field]] = "X"
    text = json.dumps({"mapping": SIM_MAPPING, "events": rows}).replace('"X"', printed)
    path = tmp_path / "sim.json"
    path.write_text(text)
    if shown is None:  # -0.0 is >= 0: accepted as it is
        assert read_simulation(path).clamped == {}
        return
    with pytest.raises(DataFormatError) as info:
        read_simulation(path)
    message = str(info.value)
    for part in [f"field '{field}'", "events[1]", f"value {shown}"]:
        assert part in message, message


def test_rounded_bound_rule():
    zenith = checks.ZENITH
    assert zenith.rounded_bound(3.142) == np.pi  # |3.142 - pi| = 4.1e-4 <= 5e-4
    assert zenith.rounded_bound(3.1416) == np.pi  # 7.3e-6 <= 5e-5
    assert zenith.rounded_bound(3.1417) is None  # 1.07e-4 > 5e-5
    assert zenith.rounded_bound(3.15) is None
    assert zenith.rounded_bound(1.0) is None  # inside: nothing to do
    assert checks.non_negative("weights").rounded_bound(-1e-20) is None  # 1e-20 > 5e-21
    assert checks.POSITIVE_ENERGY.rounded_bound(-0.0001) is None  # open bound: never
