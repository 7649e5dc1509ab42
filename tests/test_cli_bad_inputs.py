"""End to end: every bad input through ``diffuse-fit`` exits 2 with one line on stderr and
leaves the earlier run in ``--out`` byte for byte as it was."""

import json
import shutil

import numpy as np
import pytest

from diffuse_fit.binned.binning import Binning
from diffuse_fit.cli import main
from diffuse_fit.io.events import EventTable
from diffuse_fit.io.workshop_format import to_workshop_json, write_workshop_file

DATA_HEAD = '{"mapping": {"energy": 0, "zenith": 1, "topology": 2}, "events": '


@pytest.fixture(scope="module")
def files(tmp_path_factory, toy_dataset):
    """The toy dataset as workshop files, and an earlier ``map`` run made from them."""
    folder = tmp_path_factory.mktemp("inputs")
    write_workshop_file(folder / "data.json", toy_dataset.data)
    write_workshop_file(folder / "sim.json", toy_dataset.simulation)
    out = folder / "run"
    argv = ["map", "--data", str(folder / "data.json"), "--sim", str(folder / "sim.json")]
    assert main([*argv, "--no-cache", "--prior", "flat", "--out", str(out), "--quiet"]) == 0
    return folder


@pytest.fixture
def earlier_run(files, tmp_path):
    """A copy of the earlier run, and a check that it is untouched."""
    out = tmp_path / "run"
    shutil.copytree(files / "run", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def unchanged():
        after = {p.name: p.read_bytes() for p in out.iterdir()}
        assert after == before
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no stray staging

    return out, unchanged


def run_bad(argv, out, capsys):
    code = main([*argv, "--no-cache", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("diffuse-fit: error:"), err
    return lines[0]


def data_file(tmp_path, events_text: str):
    path = tmp_path / "bad_data.json"
    path.write_text(DATA_HEAD + events_text + "}")
    return path


def sim_file(tmp_path, toy_dataset, **changes):
    columns = dict(toy_dataset.simulation.columns)
    for name, change in changes.items():
        columns[name] = change(columns[name].copy())
    path = tmp_path / "bad_sim.json"
    write_workshop_file(path, EventTable(columns, "x"))
    return path


BAD_EVENTS = {
    "missing value and missing comma": "[[1e5, , 1], [0.5 2e5, 0, 2.0]]",
    "leading plus": "[[+3, 1.0, 0]]",
    "bare fraction": "[[.5, 1.0, 0]]",
    "trailing point": "[[1., 1.0, 0]]",
    "leading zero": "[[01, 1.0, 0]]",
    "two points": "[[1.2.3, 1.0, 0]]",
    "double minus": "[[--1, 1.0, 0]]",
    "empty exponent": "[[1e, 1.0, 0]]",
    "fraction twice": "[[.1.5, 1.0, 0]]",
    "400-digit integer": "[[" + "9" * 400 + ", 1.0, 0]]",
    "zenith clearly above pi": "[[1e5, 3.15, 0]]",
    "truncated": "[[1e5, 1.0, 0], [2e5, 1",
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_bad_data_file(case, files, earlier_run, tmp_path, capsys):
    out, unchanged = earlier_run
    bad = data_file(tmp_path, BAD_EVENTS[case])
    line = run_bad(["map", "--data", str(bad), "--sim", str(files / "sim.json")], out, capsys)
    assert str(bad) in line
    unchanged()


def test_duplicate_events_key(files, earlier_run, tmp_path, capsys):
    out, unchanged = earlier_run
    bad = tmp_path / "dup.json"
    bad.write_text(DATA_HEAD + '[[1e5, 1.0, 0]], "events": [[2e5, 2.0, 1]]}')
    line = run_bad(["map", "--data", str(bad), "--sim", str(files / "sim.json")], out, capsys)
    assert "events" in line and "duplicate" in line
    unchanged()


DEGENERATE = {
    "no astrophysical weight": ({"astroWeight": np.zeros_like}, "astroWeight"),
    "no atmospheric weight": ({"atmoWeight": np.zeros_like}, "atmoWeight"),
}


@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_degenerate_simulation(case, files, earlier_run, toy_dataset, tmp_path, capsys):
    out, unchanged = earlier_run
    changes, field = DEGENERATE[case]
    bad = sim_file(tmp_path, toy_dataset, **changes)
    line = run_bad(["map", "--data", str(files / "data.json"), "--sim", str(bad)], out, capsys)
    assert field in line and "unconstrained" in line
    unchanged()


def test_all_data_outside_the_bins(files, earlier_run, tmp_path, capsys):
    out, unchanged = earlier_run
    bad = data_file(tmp_path, "[[1e3, 1.0, 0], [2e8, 2.0, 1], [1e5, 1.0, 2]]")
    line = run_bad(["map", "--data", str(bad), "--sim", str(files / "sim.json")], out, capsys)
    assert "empty likelihood" in line
    unchanged()


def test_absurd_weight_fails_the_fit(files, earlier_run, toy_dataset, tmp_path, capsys):
    """One atmoWeight of 1e300 (finite, so valid input): the fit fails and says so."""

    sim = toy_dataset.simulation
    inside = Binning().bin_index(sim["energy"], sim["zenith"], sim["topology"]) >= 0

    def absurd(w):
        w[np.flatnonzero(inside)[0]] = 1e300  # an event inside the bins
        return w

    out, unchanged = earlier_run
    bad = sim_file(tmp_path, toy_dataset, atmoWeight=absurd)
    line = run_bad(["map", "--data", str(files / "data.json"), "--sim", str(bad)], out, capsys)
    assert "MAP fit failed" in line
    unchanged()


def test_out_naming_a_file(files, tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("precious")
    run_bad(["map", "--prior", "flat"], target, capsys)
    run_bad(["sample", "--draws", "10"], target / "below", capsys)
    assert target.read_text() == "precious"


def test_out_an_unrelated_folder(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    line = run_bad(["map"], folder, capsys)
    assert "not part of a run" in line
    assert (folder / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("kind", ["not utf-8", "directory", "not json", "unknown distribution"])
def test_bad_prior_file(kind, earlier_run, tmp_path, capsys):
    out, unchanged = earlier_run
    prior = tmp_path / "prior.json"
    if kind == "not utf-8":
        prior.write_bytes(b'{"astro_gamma": {"dist": "Uniform\xff"}}')
    elif kind == "directory":
        prior.mkdir()
    elif kind == "not json":
        prior.write_text("{astro_gamma: }")
    else:
        prior.write_text(json.dumps({"astro_gamma": {"dist": "Banana"}}))
    line = run_bad(["map", "--prior", str(prior)], out, capsys)
    assert str(prior) in line
    unchanged()


def test_report_on_damaged_runs(sample_run, tmp_path, capsys):
    """``report`` on a run whose posterior.nc is truncated or whose summary.json is corrupt."""
    for name, damage in (
        ("posterior.nc", lambda b: b[: len(b) // 2]),
        ("summary.json", lambda b: b.replace(b'"mean"', b'"mean', 1)),
        ("map.json", lambda b: b"garbage"),
    ):
        run = tmp_path / name
        shutil.copytree(sample_run, run)
        path = run / name
        path.write_bytes(damage(path.read_bytes()))
        before = {p.name: p.read_bytes() for p in run.iterdir()}
        assert main(["report", "--run", str(run)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("diffuse-fit: error:") and name in err[0]
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_rounded_zenith_is_clamped_not_refused(files, tmp_path, capsys):
    """pi printed with 4 significant digits (3.142) is pi; the fit runs."""
    table = EventTable(
        {"energy": np.array([1e5, 2e5]), "zenith": np.array([3.142, 1.0]), "topology": np.zeros(2)},
        "x",
    )
    path = tmp_path / "rounded.json"
    path.write_text(to_workshop_json(table))
    out = tmp_path / "run"
    argv = ["map", "--data", str(path), "--sim", str(files / "sim.json"), "--no-cache"]
    assert main([*argv, "--prior", "default", "--out", str(out)]) == 0
    provenance = json.loads((out / "map.json").read_text())["provenance"]
    assert provenance["data"]["clamped"] == {"zenith": 1}
    assert "set to its boundary: 1 zenith" in capsys.readouterr().out
