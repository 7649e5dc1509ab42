"""Property-based tests of the input readers on mutated files.

Every reader, given any bytes, either returns exactly what ``json.loads`` reads from them
(every column bit for bit, the field names; values printed rounded just outside a closed
range set to the bound and counted) or raises its one error type -- ``DataFormatError``
(``PriorError`` for prior files).  Any other exception fails.  The mutations are edits of
valid files: characters of JSON numbers and structure and random bytes inserted, deleted
or replaced, number tokens swapped for odd forms, keys duplicated.
"""

import json
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffuse_fit.errors import DataFormatError
from diffuse_fit.inference.priors import PriorError, resolve_priors
from diffuse_fit.io import cache
from diffuse_fit.io import hese_release as hr
from diffuse_fit.io import workshop_format as wf
from diffuse_fit.io.events import columns_digest
from diffuse_fit.io.fast_rows import NotFast
from diffuse_fit.io.json_text import loads_strict

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=500,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
NAN = float("nan")

# --------------------------------------------------------------------------- mutations

CHARS = '0123456789.eE+-, []":{}'
ODD_NUMBERS = [
    "1e999",
    "-1e999",
    "-0",
    "-0.0",
    "NaN",
    "Infinity",
    "-Infinity",
    "1" + "0" * 400,
    "01",
    "-01",
    "1.",
    ".5",
    "+3",
    "1.2.3",
    "--1",
    "1e",
    "1e+",
    ".1.5",
    "0x10",
    "1_0",
    "3.142",
    "3.1416",
    "3.15",
    "-1e-20",
    "4.9e-324",
    "1e-400",
    "0e0",
    "1E5",
    "1e05",
    "2.0000000000000001",
    "1 2",
    "",
    " ",
    "nan",
    "inf",
    "true",
    "null",
    '"1"',
    "[1]",
]
NUMBER = re.compile(rb"-?[0-9][0-9.eE+-]*|NaN")

edit = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.sampled_from(CHARS)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=2)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 3)),
    st.tuples(st.just("replace"), st.integers(0, 1 << 20), st.sampled_from(CHARS)),
    st.tuples(st.just("replace"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("number"), st.integers(0, 1 << 20), st.sampled_from(ODD_NUMBERS)),
    st.tuples(
        st.just("number"),
        st.integers(0, 1 << 20),
        st.from_regex(r"\A[+-]{0,2}[0-9]{0,3}\.?[0-9]{0,3}([eE][+-]?[0-9]{0,3})?\Z"),
    ),
)


def mutate(raw: bytes, edits, keys: list[bytes]) -> bytes:
    """Apply ``edits``; a "number" edit replaces a number token, "key" edits (in
    ``edits`` as ("key", i, k)) insert a duplicate of ``keys[k]`` after an object opening."""
    for kind, where, what in edits:
        if kind == "number":
            tokens = list(NUMBER.finditer(raw))
            if tokens:
                token = tokens[where % len(tokens)]
                raw = raw[: token.start()] + what.encode() + raw[token.end() :]
            continue
        if kind == "key":
            opens = [m.end() for m in re.finditer(rb"\{", raw)]
            if opens:
                at = opens[where % len(opens)]
                raw = raw[:at] + keys[what % len(keys)] + b", " + raw[at:]
            continue
        at = where % (len(raw) + 1)
        piece = what.encode() if isinstance(what, str) else what
        if kind == "insert":
            raw = raw[:at] + piece + raw[at:]
        elif kind == "delete":
            raw = raw[:at] + raw[at + what :]
        else:
            raw = raw[:at] + piece + raw[at + 1 :]
    return raw


number_text = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?\Z"),
)


def edits_with_keys():
    """Any edits; or only number tokens swapped, which keeps more files loadable."""
    duplicate = st.tuples(st.just("key"), st.integers(0, 1 << 20), st.integers(0, 10))
    number = st.tuples(st.just("number"), st.integers(0, 1 << 20), number_text)
    return st.one_of(
        st.lists(st.one_of(edit, duplicate), min_size=1, max_size=4),
        st.lists(number, min_size=1, max_size=3),
    )


def json_or_none(raw: bytes):
    """What the strict reference parse gives, or None if it refuses the bytes."""
    try:
        return loads_strict(raw)
    except (ValueError, RecursionError):
        return None


def assert_same_bits(got: np.ndarray, expected: np.ndarray, clamped: int, bound, name: str):
    """Bitwise equal, except ``clamped`` values set to ``bound`` (pi or 0) from beyond it."""
    assert got.dtype == np.float64 and got.shape == expected.shape, name
    differ = np.flatnonzero(got.view(np.uint64) != expected.view(np.uint64))
    assert differ.size == clamped, (name, got[differ], expected[differ])
    if clamped:
        assert np.all(got[differ] == bound(expected[differ])), name


def zenith_bound(values):
    return np.where(values > np.pi, np.pi, 0.0)


CLAMP_BOUNDS = {"zenith": zenith_bound, "primaryZenith": zenith_bound, "recoZenith": zenith_bound}


# --------------------------------------------------------------------------- workshop files

SIM_FIELDS = list(wf.SIMULATION_FIELDS) + ["note"]
SIM_ROWS = [
    [1.25e-3, 2.5e-4, 1.2e5, 2.4e5, 1.0, 0, 3.1, 7],
    [0.0, 1e-10, 6.0e4, 9.9e6, 0.0, 1, 0.25, -0.5],
    [3.0e-7, 0, 123456, 1e7, 3.141, 2, 2.0, 1e300],
]
WORKSHOP = (
    '{"mapping": {' + ", ".join(f'"{f}": {i}' for i, f in enumerate(SIM_FIELDS)) + "},\n"
    ' "toy": {"seed": 1, "truth": [1.0, 6.7]},\n "events": [\n'
    + ",\n".join("[" + ", ".join(map(repr, row)) + "]" for row in SIM_ROWS)
    + "\n]}\n"
).encode()
WORKSHOP_KEYS = [
    b'"events": [[1, 2, 3, 4, 5, 6, 7, 8]]',
    b'"mapping": {"energy": 0}',
    b'"energy": 1',
    b'"toy": 2',
    b'"seed": 3',
]


def check_workshop_read(raw: bytes, tmp: Path, required) -> None:
    path = tmp / "events.json"
    path.write_bytes(raw)
    content = json_or_none(raw)
    try:
        table = wf.read_workshop_file(path, required)
    except DataFormatError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    assert content is not None, "the reader loaded bytes json refuses"
    mapping, events = content["mapping"], content["events"]
    assert table.fields == list(mapping)
    assert json.dumps(table.meta) == json.dumps(
        {k: v for k, v in content.items() if k not in ("mapping", "events")}
    )
    for name, column in mapping.items():
        expected = np.array([row[column] for row in events], dtype=np.float64)
        assert_same_bits(
            table[name], expected, table.clamped.get(name, 0), CLAMP_BOUNDS.get(name), name
        )
    assert table.columns_sha256 == columns_digest(table.columns)
    assert table.loaded_from in ("json (fast path)", "json (exact parser)")
    assert all(np.isfinite(v).all() for v in table.columns.values())  # every column


def check_fast_path(raw: bytes) -> None:
    """The fast path alone: declines, or agrees with json bit for bit."""
    try:
        rest, values = wf._parse_fast(raw, "f")
    except NotFast:
        return
    except DataFormatError:  # a bad mapping: the exact parser says so too
        with pytest.raises(DataFormatError):
            wf._parse_exact(raw, "f")
        return
    content = json_or_none(raw)
    assert content is not None, "the fast path took bytes json refuses"
    expected = np.array(content.pop("events"), dtype=np.float64)
    rest.pop("events")
    assert json.dumps(rest) == json.dumps(content)
    assert values.tobytes() == expected.tobytes() and values.shape == expected.shape


@FUZZ
@given(edits=edits_with_keys())
def test_workshop_reader_on_mutated_files(edits):
    raw = mutate(WORKSHOP, edits, WORKSHOP_KEYS)
    check_fast_path(raw)
    with tempfile.TemporaryDirectory() as tmp:
        check_workshop_read(raw, Path(tmp), wf.SIMULATION_FIELDS)
        check_workshop_read(raw, Path(tmp), wf.DATA_FIELDS)


@FUZZ
@given(
    rows=st.lists(st.lists(number_text, min_size=3, max_size=3), min_size=1, max_size=6),
    spaces=st.lists(st.sampled_from(["", " ", "\n", "\t", "\r\n", "  "]), min_size=4, max_size=4),
)
def test_fast_path_on_generated_number_tokens(rows, spaces):
    """Rows of generated tokens, with JSON whitespace here and there."""
    a, b, c, d = spaces
    body = f",{a}".join(f"[{b}" + f"{c},{d}".join(row) + f"{a}]" for row in rows)
    raw = (
        '{"mapping": {"energy": 0, "zenith": 1, "topology": 2}, "events": [' + b + body + d + "]}"
    ).encode()
    check_fast_path(raw)
    with tempfile.TemporaryDirectory() as tmp:
        check_workshop_read(raw, Path(tmp), wf.DATA_FIELDS)


# --------------------------------------------------------------------------- HESE release


def _release_texts() -> dict[str, bytes]:
    sim = {
        "primaryType": [12, -14, 13],
        "primaryEnergy": [1.0e5, 2.5e5, 3.0e4],
        "primaryZenith": [0.5, 3.141, 1.0],
        "trueLength": [NAN, 12.5, NAN],
        "interactionType": [1, 2, 0],
        "recoDepositedEnergy": [9.0e4, 1.5e5, 2.5e4],
        "recoMorphology": [0, 1, 2],
        "recoZenith": [1.1, 2.0, 0.0],
        "recoLength": [NAN, NAN, 3.0],
        "weightOverFluxOverLivetime": [1.0e3, 2.0e3, 0.0],
        "muonWeightOverLivetime": [0, 0, 1e-9],
        "pionFlux": [1.0e-18, 2.0e-18, 0.0],
        "kaonFlux": [1e-18, 1e-18, 1e-18],
        "promptFlux": [1e-19, 1e-19, 1e-19],
        "conventionalSelfVetoCorrection": [0.5, 1.0, 1.0],
        "promptSelfVetoCorrection": [0.9, 1.0, 1.0],
    }
    data = {
        "recoDepositedEnergy": [1.0e5, 2.0e5],
        "recoMorphology": [0, 2],
        "recoZenith": [1.0, 2.0],
        "recoLength": [NAN, 20.0],
        "other": ["kept", 1],
    }
    with tempfile.TemporaryDirectory() as tmp:
        hr.write_release_folder(tmp, sim, data)
        return {name: (Path(tmp) / name).read_bytes() for name in hr.ALL_FILES}


RELEASE = _release_texts()
RELEASE_KEYS = [b'"recoZenith": [1, 2]', b'"pionFlux": []', b'"primaryType": 0']


def check_release_columns(table, contents: list[dict]) -> None:
    for name in table.fields:
        source = next(c for c in contents if name in c)
        expected = np.array(source[name], dtype=np.float64)
        assert_same_bits(
            table[name], expected, table.clamped.get(name, 0), CLAMP_BOUNDS.get(name), name
        )
    assert table.columns_sha256 == columns_digest(table.columns)


@FUZZ
@given(file=st.sampled_from(hr.ALL_FILES), edits=edits_with_keys())
def test_hese_release_reader_on_mutated_files(file, edits):
    texts = dict(RELEASE, **{file: mutate(RELEASE[file], edits, RELEASE_KEYS)})
    with tempfile.TemporaryDirectory() as tmp:
        for name, raw in texts.items():
            (Path(tmp) / name).write_bytes(raw)
        contents = [json_or_none(texts[name]) for name in (*hr.SIMULATION_FILES, hr.DATA_FILE)]
        try:
            table = (
                hr.read_release_data(Path(tmp) / file)
                if file == hr.DATA_FILE
                else hr.read_release_simulation(tmp)
            )
        except DataFormatError as exc:
            assert "\n" not in str(exc)
            return
    assert all(c is not None for c in contents), "the reader loaded bytes json refuses"
    if file == hr.DATA_FILE:
        assert table.fields == list(hr.DATA_FIELDS)
        check_release_columns(table, contents[-1:])
    else:
        present = {f for c in contents[:-1] for f in c}
        assert set(table.fields) == present & {
            *hr.SIMULATION_FIELDS,
            *hr.OPTIONAL_SIMULATION_FIELDS,
        }
        check_release_columns(table, contents[:-1])


# --------------------------------------------------------------------------- prior files

SUPPORTS = {"atmos_norm": (0.0, math.inf), "astro_norm": (0.0, math.inf), "astro_gamma": (1.0, 4.0)}
PRIORS = (
    b'{"astro_gamma": {"dist": "TruncatedNormal", "mu": 2.5, "sigma": 0.5, "lower": 1,'
    b' "upper": 4},\n "atmos_norm": {"dist": "LogNormal", "mu": 0, "sigma": 0.5}}\n'
)
PRIOR_KEYS = [b'"dist": "HalfFlat"', b'"astro_norm": {"dist": "HalfFlat"}', b'"mu": 1']


@FUZZ
@given(edits=edits_with_keys())
def test_prior_files_on_mutated_files(edits):
    raw = mutate(PRIORS, edits, PRIOR_KEYS)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "priors.json"
        path.write_bytes(raw)
        try:
            priors = resolve_priors(path, SUPPORTS)
        except PriorError as exc:
            assert "\n" not in str(exc)
            return
    content = json_or_none(raw)
    assert content is not None, "priors loaded from bytes json refuses"
    assert priors == resolve_priors(content, SUPPORTS)


# --------------------------------------------------------------------------- the cache

CACHE_SOURCE = WORKSHOP.replace(b", 7]", b", 7.5]")


def _expected_columns() -> dict[str, np.ndarray]:
    content = json.loads(CACHE_SOURCE)
    events = np.array(content["events"], dtype=np.float64)
    return {name: events[:, i] for name, i in content["mapping"].items()}


def _check_cached_read(path: Path, cache_dir: Path, capsys) -> None:
    table = wf.read_workshop_file(path, wf.SIMULATION_FIELDS, cache_dir=cache_dir)
    assert capsys.readouterr().err.count("\n") <= 1
    for name, values in _expected_columns().items():
        assert table[name].tobytes() == values.tobytes(), name


@pytest.fixture(scope="module")
def cache_entry():
    """A source file and the bytes of its cache entry."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.json"
        path.write_bytes(CACHE_SOURCE)
        table = wf.read_workshop_file(path, wf.SIMULATION_FIELDS, cache_dir=tmp)
        entry = cache.entry_path(tmp, table.sha256)
        return entry.name, entry.read_bytes()


byte_edit = st.tuples(
    st.sampled_from(["insert", "delete", "replace"]),
    st.integers(0, 1 << 20),
    st.binary(min_size=1, max_size=4),
)


@settings(FUZZ, max_examples=150, suppress_health_check=list(HealthCheck))
@given(edits=st.lists(byte_edit, min_size=1, max_size=3), truncate=st.integers(0, 1 << 20))
def test_cache_with_damaged_bytes(cache_entry, capsys, edits, truncate):
    name, good = cache_entry
    damaged = good
    for kind, where, piece in edits:
        at = where % (len(damaged) + 1)
        cut = len(piece) if kind == "delete" else 0 if kind == "insert" else len(piece)
        damaged = damaged[:at] + (b"" if kind == "delete" else piece) + damaged[at + cut :]
    damaged = damaged[: truncate % (len(damaged) + 2)] if truncate % 3 == 0 else damaged
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.json"
        path.write_bytes(CACHE_SOURCE)
        (Path(tmp) / name).write_bytes(damaged)
        _check_cached_read(path, Path(tmp), capsys)


@settings(FUZZ, max_examples=150, suppress_health_check=list(HealthCheck))
@given(
    column=st.sampled_from(SIM_FIELDS),
    row=st.integers(0, len(SIM_ROWS) - 1),
    value=st.floats(allow_nan=True, allow_infinity=True),
    meta=st.sampled_from([None, {}, {"toy": {"seed": 2}}]),
)
def test_cache_with_forged_consistent_entries(cache_entry, capsys, column, row, value, meta):
    """Valid entries with other numbers (and a matching digest) or other keys are caught."""
    name, good = cache_entry
    with tempfile.TemporaryDirectory() as tmp:
        entry = Path(tmp) / name
        entry.write_bytes(good)
        with np.load(entry) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays[f"col:{column}"] = arrays[f"col:{column}"].copy()
        arrays[f"col:{column}"][row] = value
        if meta is not None:
            arrays["meta"] = np.array(json.dumps(meta))
        info = json.loads(str(arrays["info"]))
        info["columns_sha256"] = columns_digest({f: arrays[f"col:{f}"] for f in info["fields"]})
        arrays["info"] = np.array(json.dumps(info))
        with open(entry, "wb") as fh:
            np.savez(fh, **arrays)
        path = Path(tmp) / "sim.json"
        path.write_bytes(CACHE_SOURCE)
        _check_cached_read(path, Path(tmp), capsys)


# --------------------------------------------------------------------------- large-file cache

BIG_ROWS = [
    [
        1e-3 * (1 + i % 7),
        2e-4 * (1 + i % 5),
        1e5 + 37 * i,
        2e5 + 11 * i,
        (i % 100) / 100,
        i % 3,
        (i % 300) / 100,
        i,
    ]
    for i in range(4 * cache.SAMPLE_ROWS)
]
BIG_SOURCE = (
    '{"mapping": {' + ", ".join(f'"{f}": {i}' for i, f in enumerate(SIM_FIELDS)) + "},\n"
    ' "events": [\n' + ",\n".join("[" + ", ".join(map(repr, r)) + "]" for r in BIG_ROWS) + "\n]}\n"
).encode()


@pytest.fixture(scope="module")
def big_cache_entry():
    """A source with 4 x SAMPLE_ROWS rows (only a sample is compared) and its entry."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.json"
        path.write_bytes(BIG_SOURCE)
        table = wf.read_workshop_file(path, wf.SIMULATION_FIELDS, cache_dir=tmp)
        entry = cache.entry_path(tmp, table.sha256)
        return entry.name, entry.read_bytes()


@settings(FUZZ, max_examples=60, suppress_health_check=list(HealthCheck))
@given(
    column=st.sampled_from(SIM_FIELDS),
    row=st.integers(0, len(BIG_ROWS) - 1),
    value=st.floats(allow_nan=True, allow_infinity=True),
)
def test_cache_one_row_forged_in_a_large_file(big_cache_entry, capsys, column, row, value):
    """One value of one row changed, every unkeyed digest recomputed (the rows compared
    with the source are a sample): the entry's keyed digest catches it, one line, and the
    read is the source's values."""
    name, good = big_cache_entry
    with tempfile.TemporaryDirectory() as tmp:
        entry = Path(tmp) / name
        entry.write_bytes(good)
        with np.load(entry) as npz:
            arrays = {k: npz[k] for k in npz.files}
        original = arrays[f"col:{column}"][row]
        arrays[f"col:{column}"] = arrays[f"col:{column}"].copy()
        arrays[f"col:{column}"][row] = value
        info = json.loads(str(arrays["info"]))
        info["columns_sha256"] = columns_digest({f: arrays[f"col:{f}"] for f in info["fields"]})
        arrays["info"] = np.array(json.dumps(info))
        with open(entry, "wb") as fh:
            np.savez(fh, **arrays)
        path = Path(tmp) / "sim.json"
        path.write_bytes(BIG_SOURCE)
        table = wf.read_workshop_file(path, wf.SIMULATION_FIELDS, cache_dir=tmp)
        err = capsys.readouterr().err
        if np.float64(value).tobytes() != np.float64(original).tobytes():
            assert err.count("\n") == 1 and str(entry) in err, err
            assert table.loaded_from == "json (fast path)"
        events = np.array(BIG_ROWS, dtype=np.float64)
        for i, field in enumerate(SIM_FIELDS):
            assert table[field].tobytes() == events[:, i].tobytes(), field


# --------------------------------------------------------------------------- journals

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
results = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k != "_journal"), json_value, min_size=1, max_size=6
)


def _leaves(obj, path=()):
    """Paths to every value inside ``obj`` (dict keys and list indices)."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        return
    for k, v in items:
        yield (*path, k)
        yield from _leaves(v, (*path, k))


@settings(FUZZ, max_examples=300)
@given(
    result=results,
    replacement=json_value,
    pick=st.integers(0, 1 << 16),
    key=st.sampled_from(["t-0", "t-1"]),
)
def test_journal_entries_forged_but_well_formed_are_refused(result, replacement, pick, key):
    """A stored result reads back exactly; any well-formed change of its content (a value
    replaced anywhere), or the entry filed under another task, is refused with one line."""
    from diffuse_fit.io.atomic import finite_json
    from diffuse_fit.io.journal import ENTRY_KEY, Journal

    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp), {"kind": "fuzz"})
        journal.write("t-0", result)
        assert journal.load("t-0") == (json.loads(json.dumps(finite_json(result))), None)
        entry = json.loads(journal.path("t-0").read_text())
        paths = [p for p in _leaves(entry) if p[0] != ENTRY_KEY]
        target = paths[pick % len(paths)] if paths else None
        if target is not None:
            holder = entry
            for part in target[:-1]:
                holder = holder[part]
            holder[target[-1]] = replacement
        changed = {k: v for k, v in entry.items() if k != ENTRY_KEY}
        journal.path(key).write_text(json.dumps(entry))
        loaded, why = journal.load(key)
        original = json.loads(json.dumps(finite_json(result)))
        if key == "t-0" and json.dumps(changed) == json.dumps(original):
            assert loaded == original  # the "change" left it as it was
        else:
            assert loaded is None and why and "\n" not in why


@pytest.fixture(scope="module")
def toy_task():
    from diffuse_fit.jobs.inputs import load_inputs
    from diffuse_fit.jobs.prepared import PreparedFit
    from diffuse_fit.jobs.toys import toy

    prepared = PreparedFit.load(load_inputs(), "flat", say=lambda *a, **k: None)
    context = prepared.context(prepared.config(kind="toys"))
    args = {"index": 2, "seed": 9, "truth": dict(prepared.best.values), "nuts": False}
    return context, args, json.loads(json.dumps(toy(context, "toy-000002", args)))


@settings(FUZZ, max_examples=300)
@given(replacement=json_value, pick=st.integers(0, 1 << 16))
def test_toy_results_forged_with_the_key_are_checked(toy_task, replacement, pick):
    """Even signed under the user's key (its holder), a toy result with any value replaced
    either passes check_toy with every value where its task allows, or is refused with
    BadEntry in one line -- never another exception."""
    from diffuse_fit.jobs.entries import BadEntry, check_toy

    context, args, good = toy_task
    forged = json.loads(json.dumps(good))
    paths = list(_leaves(forged))
    target = paths[pick % len(paths)]
    holder = forged
    for part in target[:-1]:
        holder = holder[part]
    holder[target[-1]] = replacement
    try:
        check_toy(context, "toy-000002", args, forged)
    except BadEntry as exc:
        assert "\n" not in str(exc)
        return
    assert forged["index"] == 2 and forged["seed"] == good["seed"]
    for name, prior in context.priors.items():
        low, high = prior.support()
        value = forged["map"][name]
        assert value is None or low <= value <= high
        interval = [v for v in forged["profile_68"][name] if v is not None]
        assert all(low <= v <= high for v in interval) and interval == sorted(interval)
