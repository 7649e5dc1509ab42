"""Journal entries are checked before they are reused: a bad one is named in one line and
computed again, never used, never a traceback, never blocking a rerun."""

import json
import logging
import shutil

import numpy as np
import pytest
import xarray as xr

from diffuse_fit.io.journal import ENTRY_KEY, Journal, journal_folder
from diffuse_fit.jobs.distributed import ClusterOptions
from diffuse_fit.jobs.entries import BadEntry, check_scan, check_toy
from diffuse_fit.jobs.inputs import load_inputs
from diffuse_fit.jobs.many import task_seed
from diffuse_fit.jobs.prepared import PreparedFit
from diffuse_fit.jobs.toys import run_toys

QUIET = {"say": lambda *a, **k: None, "progressbar": False}
RESULT = {"index": 3, "seed": 17, "values": [1.5, None], "name": "x"}


def _rewrite(path, change):
    entry = json.loads(path.read_text())
    change(entry)
    path.write_text(json.dumps(entry))


DAMAGE = {
    "edited_value": lambda p: _rewrite(p, lambda e: e.update(seed=18)),
    "record_missing": lambda p: _rewrite(p, lambda e: e.pop(ENTRY_KEY)),
    "mac_missing": lambda p: _rewrite(p, lambda e: e[ENTRY_KEY].pop("mac")),
    "mac_wrong_type": lambda p: _rewrite(p, lambda e: e[ENTRY_KEY].update(mac=7)),
    "result_key_missing": lambda p: _rewrite(p, lambda e: e.pop("name")),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:40]),
    "empty": lambda p: p.write_bytes(b""),
    "not_an_object": lambda p: p.write_text("[1, 2]"),
    "copied_from_another_task": lambda p: shutil.copy(p.with_name("t-1.json"), p),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_entry_is_bad_with_a_one_line_reason(tmp_path, case):
    journal = Journal(tmp_path, {"kind": "test"})
    journal.write("t-0", RESULT)
    journal.write("t-1", {**RESULT, "index": 4})
    assert journal.load("t-0") == (RESULT, None)
    DAMAGE[case](journal.path("t-0"))
    result, why = journal.load("t-0")
    assert result is None and why and "\n" not in why
    assert journal.done(["t-0", "t-1"]) == {"t-1"}
    journal.write("t-0", RESULT)  # a rerun writes it again
    assert journal.load("t-0") == (RESULT, None)


def test_entry_of_another_job_is_bad(tmp_path):
    first = Journal(tmp_path, {"kind": "test", "seed": 1})
    other = Journal(tmp_path, {"kind": "test", "seed": 2})
    first.write("t-0", RESULT)
    shutil.copy(first.path("t-0"), other.path("t-0"))
    result, why = other.load("t-0")
    assert result is None and first.digest in why
    assert other.load("t-9") == (None, None)  # missing: simply to compute


@pytest.fixture(scope="module")
def prepared():
    return PreparedFit.load(load_inputs(), "flat", say=lambda *a, **k: None)


@pytest.fixture(scope="module")
def toy_result(prepared):
    from diffuse_fit.jobs.toys import toy

    context = prepared.context(prepared.config(kind="toys"))
    args = {"index": 3, "seed": 5, "truth": dict(prepared.best.values), "nuts": False}
    return context, args, json.loads(json.dumps(toy(context, "toy-000003", args)))


def _set(path: str, value):
    def change(result):
        *head, last = path.split(".")
        target = result
        for part in head:
            target = target[int(part) if part.isdigit() else part]
        target[int(last) if last.isdigit() else last] = value

    return change


FORGED = {  # well-formed results that do not fit the task (as if signed by the key's holder)
    "other_index": (_set("index", 4), "index is 4"),
    "other_seed": (_set("seed", 1), "seed is 1"),
    "index_as_bool": (_set("index", True), "index"),
    "norm_negative": (_set("map.astro_norm", -1.0), "map.astro_norm"),
    "gamma_outside": (_set("map.astro_gamma", 9.0), "map.astro_gamma"),
    "interval_outside": (_set("profile_68.astro_norm", [-5, 1e6]), "profile_68.astro_norm"),
    "interval_reversed": (_set("profile_68.astro_gamma", [3.0, 2.0]), "not ordered"),
    "map_as_text": (_set("map", "x"), "map is str"),
    "parameter_missing": (lambda r: r["map"].pop("atmos_norm"), "map has parameters"),
    "key_missing": (lambda r: r.pop("hessian_error"), "has no hessian_error"),
    "error_negative": (_set("hessian_error.astro_gamma", -0.1), "hessian_error.astro_gamma"),
    "converged_as_number": (_set("converged", 1), "converged is int"),
}


def test_toy_result_fits_its_task(toy_result):
    context, args, result = toy_result
    check_toy(context, "toy-000003", args, result)  # no exception
    assert result["seed"] == task_seed(5, 3)


@pytest.mark.parametrize("case", sorted(FORGED))
def test_forged_toy_results_are_refused(toy_result, case):
    context, args, result = toy_result
    change, reason = FORGED[case]
    forged = json.loads(json.dumps(result))
    change(forged)
    with pytest.raises(BadEntry, match=reason.replace("[", r"\[")):
        check_toy(context, "toy-000003", args, forged)


def test_scan_result_must_be_at_the_tasks_points(prepared):
    context = prepared.context(prepared.config(kind="scan"))
    args = {"points": [{"astro_gamma": 2.5}, {"astro_gamma": 2.6}]}
    good = {
        "log_posterior": [-1.0, -2.0],
        "neg_log_likelihood": [1.0, 2.0],
        "values": [
            {**prepared.best.values, "astro_gamma": 2.5},
            {**prepared.best.values, "astro_gamma": 2.6},
        ],
        "converged": [True, True],
        "worker_fitter": "1-0",
    }
    check_scan(context, "chunk-00000", args, good)
    moved = json.loads(json.dumps(good))
    moved["values"][1]["astro_gamma"] = 2.7
    with pytest.raises(BadEntry, match=r"values\[1\].astro_gamma"):
        check_scan(context, "chunk-00000", args, moved)
    with pytest.raises(BadEntry, match="not a list of 2"):
        check_scan(context, "chunk-00000", args, {**good, "converged": [True]})


def test_bad_toy_entries_are_named_and_computed_again(tmp_path, caplog):
    """The issue's cases on a real ensemble: an edited entry (astro_norm 999, interval
    [-5, 1e6]), an entry copied to another index, one re-signed at another index (the
    schema catches it), a missing key, a wrong type, a truncated file.  The rerun names
    each in one line, recomputes them, and writes the same toys.nc as the first run."""
    inputs = load_inputs()
    out = tmp_path / "toys"
    cluster = ClusterOptions(workers=1)
    run_toys(inputs, "flat", out, "", 8, 3, cluster=cluster, **QUIET)
    first = xr.load_dataset(out / "toys.nc", engine="h5netcdf")
    (folder,) = [p for p in journal_folder(out).iterdir() if p.is_dir()]
    path = {i: folder / f"toy-{i:06d}.json" for i in range(8)}

    def edit(entry):
        entry["map"]["astro_norm"] = 999.0
        entry["profile_68"]["astro_norm"] = [-5, 1e6]

    _rewrite(path[3], edit)
    shutil.copy(path[1], path[4])
    _rewrite(path[2], lambda e: e.pop("seed"))
    _rewrite(path[5], lambda e: e.update(map="none"))
    path[6].write_bytes(path[6].read_bytes()[:100])
    config = json.loads((folder / "config.json").read_text())
    journal = Journal(journal_folder(out), config)
    assert journal.folder == folder
    journal.write("toy-000007", journal.load("toy-000000")[0])  # signed, but of index 0
    lines = []
    with caplog.at_level(logging.WARNING, logger="diffuse_fit.jobs.distributed"):
        run_toys(
            inputs, "flat", out, "", 8, 3, cluster=cluster, say=lines.append, progressbar=False
        )
    warnings = [r.getMessage() for r in caplog.records if r.name == "diffuse_fit.jobs.distributed"]
    assert len(warnings) == 6, warnings
    for i, message in zip((2, 3, 4, 5, 6, 7), warnings, strict=True):
        assert str(path[i]) in message and "\n" not in message and "computing it again" in message
    assert "index is 0, the task's is 7" in warnings[-1]
    assert any(
        "8 tasks, 2 already done" in str(line) and "6 to compute" in str(line) for line in lines
    ), lines
    again = xr.load_dataset(out / "toys.nc", engine="h5netcdf")
    assert again["toy"].values.tolist() == list(range(8))
    np.testing.assert_array_equal(again["map"].values, first["map"].values)
    np.testing.assert_array_equal(again["profile_68"].values, first["profile_68"].values)
    np.testing.assert_array_equal(again["seed"].values, first["seed"].values)
