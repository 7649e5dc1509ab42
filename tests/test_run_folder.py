"""The run folder: one writer, one reader; a run folder is always one complete run."""

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffuse_fit.errors import DataFormatError
from diffuse_fit.io import run_folder as rf
from diffuse_fit.io.atomic import json_text, write_json

FILES = {
    "map.json": {"atmos_norm": 0.8, "covariance": [[1.0, 0.1], [0.1, 2.0]], "note": "x"},
    "summary.json": {"parameters": {"astro_gamma": {"mean": 3.2, "sd": 0.2}}, "passed": True},
}


def write_sample_run(out, tag="first", fail_after=None):
    """A small complete 'sample' run (posterior.nc is opaque bytes here)."""
    with rf.write_run(out, "sample") as stage:
        stage.write_json("map.json", {**FILES["map.json"], "tag": tag})
        stage.write_bytes("posterior.nc", b"\x89HDF\r\n\x1a\n" + tag.encode() * 50)
        if fail_after == "posterior.nc":
            raise KeyboardInterrupt
        stage.write_text("summary.txt", f"summary {tag}\n")
        stage.write_json("summary.json", {**FILES["summary.json"], "tag": tag})


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def leftovers(out: Path) -> list:
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_write_then_read(tmp_path):
    out = tmp_path / "deep" / "run"
    write_sample_run(out)
    run = rf.read_run(out)
    assert run.kind == "sample"
    assert set(run.contents) == {"map.json", "posterior.nc", "summary.txt", "summary.json"}
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["format"] == "diffuse-fit-run" and manifest["format_version"] == 1
    assert {f["name"] for f in manifest["files"]} == set(run.contents)
    m = run.json("map.json")
    assert m["format"] == "diffuse-fit-run" and m["format_version"] == 1 and m["tag"] == "first"
    assert leftovers(out) == []


def test_killed_run_leaves_previous_run_intact(tmp_path):
    """Killed after some new files were staged: the folder is the previous run, unchanged."""
    out = tmp_path / "run"
    write_sample_run(out, "first")
    before = snapshot(out)
    with pytest.raises(KeyboardInterrupt):
        write_sample_run(out, "second", fail_after="posterior.nc")
    assert snapshot(out) == before
    assert rf.read_run(out).json("map.json")["tag"] == "first"
    assert leftovers(out) == []


def test_new_run_replaces_every_file(tmp_path):
    out = tmp_path / "run"
    write_sample_run(out, "first")
    with rf.write_run(out, "map") as stage:  # a map run drops the sample run's files
        stage.write_json("map.json", {"tag": "second"})
    assert sorted(p.name for p in out.iterdir()) == ["map.json", "run.json"]
    assert rf.read_run(out).json("map.json")["tag"] == "second"
    assert leftovers(out) == []


def test_swap_without_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(rf, "_exchange", lambda a, b: False)
    out = tmp_path / "run"
    write_sample_run(out, "first")
    write_sample_run(out, "second")
    assert rf.read_run(out).json("summary.json")["tag"] == "second"
    assert leftovers(out) == []


def test_stale_staging_of_dead_process_is_removed(tmp_path):
    out = tmp_path / "run"
    stale = tmp_path / ".run.staging-999999999-00ff00ff"
    stale.mkdir()
    (stale / "map.json").write_text("{}")
    alive = tmp_path / f".run.staging-{os.getppid()}-00ff00ff"  # a live process: kept
    alive.mkdir()
    write_sample_run(out)
    assert not stale.exists() and alive.exists()
    rf.read_run(out)


@pytest.mark.parametrize(
    "name",
    [
        ".run.staging-mybackup",
        ".run.old-mybackup",
        ".run.staging-999999999-00ff00f",
        ".run.staging-999999999-00ff00ff0",
        ".run.staging-999999999-00FF00FF",
        ".run.staging-0999999-00ff00ff",
        ".run.staging-999999999-00ff00ff.bak",
        ".run.stagingx-999999999-00ff00ff",
        ".run2.staging-999999999-00ff00ff",
    ],
)
def test_look_alikes_of_stale_folders_survive(tmp_path, name):
    """Only folders named exactly as write_run names its own are removed."""
    out = tmp_path / "run"
    mine = tmp_path / name
    mine.mkdir()
    (mine / "keep.txt").write_text("user data")
    stale = tmp_path / ".run.old-999999999-0123abcd"  # ours, of a dead process: removed
    stale.mkdir()
    write_sample_run(out)
    assert (mine / "keep.txt").read_text() == "user data"
    assert not stale.exists()


def test_stale_name_that_is_a_file_or_link_survives(tmp_path):
    out = tmp_path / "run"
    as_file = tmp_path / ".run.staging-999999999-00ff00ff"
    as_file.write_text("a file")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "x").write_text("x")
    (tmp_path / ".run.old-999999999-00ff00ff").symlink_to(target)
    write_sample_run(out)
    assert as_file.read_text() == "a file" and (target / "x").exists()


def test_refuses_folder_of_other_files(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "map.json").write_text("{}")
    with pytest.raises(DataFormatError, match="not part of a run.*notes.txt"):
        write_sample_run(out)
    assert (out / "notes.txt").read_text() == "keep me" and leftovers(out) == []
    write_sample_run(tmp_path / "run")
    (tmp_path / "run" / "flat").mkdir()  # a nested folder is not the run's
    with pytest.raises(DataFormatError, match="flat"):
        rf.check_output_folder(tmp_path / "run")


def test_replaces_legacy_run_folder(tmp_path):
    """A folder of an older diffuse-fit (no run.json, only its files) may be replaced."""
    out = tmp_path / "old"
    out.mkdir()
    for name in ("map.json", "summary.json", "posterior.nc", "corner.png", ".map.json.x.tmp"):
        (out / name).write_text("old")
    with pytest.raises(DataFormatError, match="older diffuse-fit"):
        rf.read_run(out)
    write_sample_run(out)
    assert "corner.png" not in os.listdir(out)


@pytest.mark.parametrize("case", ["file", "under_file", "not_writable"])
def test_check_output_folder(tmp_path, monkeypatch, case):
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "under_file": tmp_path / "f" / "a" / "run"}.get(
        case, tmp_path / "new" / "run"
    )
    if case == "not_writable":
        monkeypatch.setattr(rf.os, "access", lambda path, mode: False)
    expected = {"file": "is a file", "under_file": "which is a file", "not_writable": "permission"}
    with pytest.raises(DataFormatError, match=expected[case]) as err:
        rf.check_output_folder(out)
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    assert rf.check_output_folder(tmp_path / "new" / "run2") == tmp_path / "new" / "run2"


def test_report_staging_refuses_replaced_run(tmp_path):
    out = tmp_path / "run"
    write_sample_run(out, "first")
    old = rf.read_run(out)
    write_sample_run(out, "second")
    with pytest.raises(DataFormatError, match="replaced by another run"):
        with rf.write_run(out, "sample", replaces=old.manifest_sha256) as stage:
            for name in rf.KINDS["sample"]:
                stage.link(old.path / name)
    assert rf.read_run(out).json("map.json")["tag"] == "second"


def test_json_is_strict_nan_as_null(tmp_path):
    write_json(tmp_path / "a.json", {"x": float("nan"), "y": [1.0, float("-inf")], "z": 2.5})
    text = (tmp_path / "a.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "x": None,
        "y": [1.0, None],
        "z": 2.5,
    }


def test_reader_errors_are_one_line(tmp_path):
    out = tmp_path / "run"
    with rf.write_run(out, "sample") as stage:  # consistent manifest, bad content
        stage.write_text("map.json", '{"format": "diffuse-fit-run", "format_version": 1, "a":')
        stage.write_bytes("posterior.nc", b"")
        stage.write_text("summary.txt", "")
        stage.write_text(
            "summary.json", json_text({"format": "diffuse-fit-run", "format_version": 99})
        )
    run = rf.read_run(out)
    with pytest.raises(DataFormatError, match="truncated"):
        run.json("map.json")
    with pytest.raises(DataFormatError, match="format_version 99"):
        run.json("summary.json")
    with pytest.raises(DataFormatError, match="no such folder"):
        rf.read_run(tmp_path / "nope")
    with pytest.raises(DataFormatError, match="need a map run"):
        rf.read_run(out, kinds=("map",))


# ----------------------------------------------------------------------------- property test

_ORIGINAL = None


def _original_run() -> Path:
    global _ORIGINAL
    if _ORIGINAL is None:
        _ORIGINAL = Path(tempfile.mkdtemp(prefix="diffuse-fit-run-")) / "run"
        write_sample_run(_ORIGINAL)
    return _ORIGINAL


def _replace_value(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _paths(obj, prefix=()):
    """Every key/index path in a JSON document."""
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    )
    out = []
    for k, v in items:
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.just([]),
    st.just({}),
)
mutations = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("delete")),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("json"), st.integers(0, 1000), values),
)
names = st.sampled_from(["run.json", "map.json", "summary.json", "summary.txt", "posterior.nc"])


@settings(
    derandomize=True, deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(st.tuples(names, mutations), min_size=1, max_size=3))
def test_reader_returns_original_or_refuses(changes):
    original = _original_run()
    expected = rf.read_run(original)
    work = Path(tempfile.mkdtemp(prefix="diffuse-fit-mut-"))
    try:
        run_dir = work / "run"
        shutil.copytree(original, run_dir)
        for name, mutation in changes:
            _mutate(run_dir / name, mutation)
        try:
            run = rf.read_run(run_dir)
            assert run.contents == expected.contents
            for name in ("map.json", "summary.json"):
                assert run.json(name) == expected.json(name)
        except DataFormatError as exc:
            assert "\n" not in str(exc)
    finally:
        shutil.rmtree(work)


def _mutate(path: Path, mutation) -> None:
    if not path.exists():
        return
    op, *args = mutation
    data = path.read_bytes()
    if op == "truncate":
        path.write_bytes(data[: args[0] % (len(data) + 1)])
    elif op == "flip" and data:
        i = args[0] % len(data)
        path.write_bytes(data[:i] + bytes([data[i] ^ args[1]]) + data[i + 1 :])
    elif op == "delete":
        path.unlink()
    elif op == "append":
        path.write_bytes(data + args[0])
    elif op == "json":
        try:
            doc = json.loads(data)
        except ValueError:
            return
        paths = _paths(doc)
        if paths:
            _replace_value(doc, paths[args[0] % len(paths)], args[1])
            path.write_text(json.dumps(doc))
