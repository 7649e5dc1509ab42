import copy
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffuse_fit.binned import hese_selection as hs
from diffuse_fit.binned import reference_fit
from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.errors import DataFormatError
from diffuse_fit.io import hese_release as hr
from diffuse_fit.io.events import EventTable
from diffuse_fit.io.workshop_format import (
    DATA_FIELDS,
    SIMULATION_FIELDS,
    read_data,
    read_simulation,
)
from diffuse_fit.physics import hese_toy, toy
from diffuse_fit.physics import hese_weights as hw
from diffuse_fit.physics.components import WORKSHOP_COMPONENTS

SHARED = Path(__file__).parents[2] / "shared" / "hese7"
LIVETIME = 227708167.68  # s
SCRIPT = Path(__file__).parents[1] / "scripts" / "convert_hese_release.py"
MC_FILES = ("HESE_mc_truth.json", "HESE_mc_observable.json", "HESE_mc_flux.json")
NAN = float("nan")


# --------------------------------------------------------------------------- the real 102 events


@pytest.fixture(scope="module")
def real_data():
    if not SHARED.is_dir():
        pytest.skip(f"the release's data folder {SHARED} is not on this machine")
    return hr.read_release_data(SHARED / "HESE_data.json")


def test_real_events_are_what_the_release_states(real_data):
    morphology = real_data["recoMorphology"]
    assert len(real_data) == 102
    assert [int(np.sum(morphology == code)) for code in (0, 1, 2)] == [71, 27, 4]
    assert int(np.sum(real_data["recoDepositedEnergy"] > 6.0e4)) == 60
    zenith = real_data["recoZenith"]
    assert np.all((zenith >= 0) & (zenith <= np.pi))
    length = real_data["recoLength"]  # only double cascades have a length
    assert np.all(np.isnan(length[morphology != 2])) and np.all(length[morphology == 2] > 0)
    assert all(real_data[f].dtype == np.float64 for f in real_data.fields)
    raw = (SHARED / "HESE_data.json").read_bytes()
    assert real_data.sha256 == hashlib.sha256(raw).hexdigest()


def test_real_events_double_cascade_choices(real_data):
    energy, morphology = real_data["recoDepositedEnergy"], real_data["recoMorphology"]
    in_range = (energy >= 6.0e4) & (energy < 1.0e7)  # the workshop's energy bins
    n_double_in_range = int(np.sum(in_range & (morphology == 2)))
    counts = hs.double_cascade_counts(real_data)
    assert counts["drop"]["in_bins"] == int(np.sum(in_range & (morphology != 2)))
    assert counts["cascade"]["in_bins"] == int(np.sum(in_range)) == 60
    assert counts["drop"]["dropped_by_choice"] == n_double_in_range == 2
    assert counts["cascade"]["dropped_by_choice"] == 0
    for c in counts.values():
        assert c["events"] == 102 and c["double_cascades"] == 4
        assert c["in_bins"] + c["outside_bins"] == 102


def test_real_events_convert_to_workshop_data(real_data):
    sim = hese_toy.make_toy_release(3, 2000).simulation
    sim_table = EventTable(sim, "<toy>", "0" * 64, {})
    for choice, expected in (("drop", [71, 27, 4]), ("cascade", [75, 27, 0])):
        _, data = hw.to_workshop(sim_table, real_data, choice)
        assert data.fields == [*DATA_FIELDS, "length"]  # length: the release binning's
        assert [int(np.sum(data["topology"] == t)) for t in (0, 1, 2)] == expected
        np.testing.assert_array_equal(data["energy"], real_data["recoDepositedEnergy"])
        np.testing.assert_array_equal(data["zenith"], real_data["recoZenith"])
        inside = Binning().bin_index(data["energy"], data["zenith"], data["topology"]) >= 0
        assert int(inside.sum()) == hs.double_cascade_counts(real_data)[choice]["in_bins"]


# --------------------------------------------------------------------------- a toy release


@pytest.fixture(scope="module")
def toy_release():
    return hese_toy.make_toy_release(seed=11, n=20_000)


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory, toy_release):
    folder = tmp_path_factory.mktemp("release")
    hr.write_release_folder(folder, toy_release.simulation, toy_release.data)
    return folder


def test_writer_splits_files_and_reader_round_trips(release_dir, toy_release):
    assert sorted(p.name for p in release_dir.iterdir()) == sorted(["HESE_data.json", *MC_FILES])
    for name, fields in hr.SIMULATION_FILES.items():
        content = json.loads((release_dir / name).read_text())
        assert sorted(content) == sorted(fields)
    assert json.loads((release_dir / "HESE_mc_truth.json").read_text())["primaryType"][0] in (
        -16,
        -14,
        -12,
        12,
        14,
        16,
        13,
    )
    sim, data = hr.read_release(release_dir)
    for table, columns in ((sim, toy_release.simulation), (data, toy_release.data)):
        assert sorted(table.fields) == sorted(columns)
        for name in columns:
            assert table[name].dtype == np.float64
            np.testing.assert_array_equal(table[name], columns[name])  # NaN == NaN here
    lines = "".join(
        f"{name} {hashlib.sha256((release_dir / name).read_bytes()).hexdigest()}\n"
        for name in MC_FILES
    )
    assert sim.sha256 == hashlib.sha256(lines.encode()).hexdigest()
    assert list(sim.meta["hese_release"]["files"]) == list(MC_FILES)


def test_release_folder_is_found_inside_a_clone(tmp_path, toy_release):
    inner = tmp_path / "HESE-7-year-data-release" / "resources" / "data"
    hr.write_release_folder(inner, toy_release.simulation, toy_release.data)
    assert hr.release_folder(tmp_path) == inner
    assert hr.release_folder(tmp_path / "HESE-7-year-data-release") == inner
    sim, data = hr.read_release(tmp_path)
    assert len(sim) == len(toy_release.simulation["primaryEnergy"])
    assert len(hr.read_release_data(tmp_path)) == len(data)


def test_toy_release_is_deterministic_and_plausible(toy_release):
    again = hese_toy.make_toy_release(seed=11, n=20_000)
    other = hese_toy.make_toy_release(seed=12, n=20_000)
    for name, values in toy_release.simulation.items():
        np.testing.assert_array_equal(again.simulation[name], values)
    assert not np.array_equal(
        other.simulation["primaryEnergy"][:10], toy_release.simulation["primaryEnergy"][:10]
    )
    sim = toy_release.simulation
    assert set(sim) == set(hr.SIMULATION_FIELDS) | set(hr.OPTIONAL_SIMULATION_FIELDS)
    muon = sim["primaryType"] == 13
    assert set(np.unique(sim["primaryType"][~muon])) == {-16, -14, -12, 12, 14, 16}
    assert muon.any() and np.all(sim["interactionType"][muon] == 0)
    assert set(np.unique(sim["interactionType"][~muon])) <= {1, 2, 3}
    assert np.all(sim["weightOverFluxOverLivetime"][muon] == 0)
    assert np.all(sim["weightOverFluxOverLivetime"][~muon] > 0)
    assert np.all(sim["muonWeightOverLivetime"][~muon] == 0)
    assert np.all(sim["muonWeightOverLivetime"][muon] > 0)
    for name in ("pionFlux", "kaonFlux", "promptFlux"):
        assert np.all(sim[name] > 0)
    for name in ("conventionalSelfVetoCorrection", "promptSelfVetoCorrection"):
        assert np.all((sim[name] >= 0) & (sim[name] <= 1))
    double = sim["recoMorphology"] == 2
    assert set(np.unique(sim["recoMorphology"])) == {0, 1, 2}
    assert np.all(np.isnan(sim["recoLength"][~double])) and np.all(sim["recoLength"][double] > 0)
    assert np.all(sim["recoDepositedEnergy"] > 2.0e4)
    # pseudo-data: drawn from the simulation, some tens to a few hundred events
    assert 50 < len(toy_release.data["recoMorphology"]) < 500
    assert set(toy_release.data) == set(hr.DATA_FIELDS)


# --------------------------------------------------------------------------- physics


def _transcribed(sim, norm=1.0, gamma=2.5, dgamma=0.0):
    """The release's weighting, written out from its README (not from the module)."""
    w, e = sim["weightOverFluxOverLivetime"], sim["primaryEnergy"]
    return {
        "astro": w * norm * 1e-18 / 6 * (e / 1e5) ** -gamma * LIVETIME,
        "conventional": w
        * (sim["pionFlux"] + sim["kaonFlux"])
        * sim["conventionalSelfVetoCorrection"]
        * (e / 2020.0) ** -dgamma
        * LIVETIME,
        "prompt": w
        * sim["promptFlux"]
        * sim["promptSelfVetoCorrection"]
        * (e / 7887.0) ** -dgamma
        * LIVETIME,
        "muon": sim["muonWeightOverLivetime"] * LIVETIME,
    }


def test_component_expectations_match_the_formulas(release_dir):
    sim, _ = hr.read_release(release_dir)
    assert hw.LIVETIME_S == LIVETIME == toy.LIVETIME_S
    for norm, gamma, dgamma in ((1.0, 2.5, 0.0), (6.37, 2.87, 0.07), (2.0, 3.3, -0.1)):
        expected = _transcribed(sim, norm, gamma, dgamma)
        got = {
            "astro": hw.astrophysical_expectation(sim, norm, gamma),
            "conventional": hw.conventional_expectation(sim, dgamma=dgamma),
            "prompt": hw.prompt_expectation(sim, dgamma=dgamma),
            "muon": hw.muon_expectation(sim),
        }
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-13, atol=0, err_msg=name)
    np.testing.assert_allclose(
        hw.conventional_expectation(sim, norm=1.3), 1.3 * hw.conventional_expectation(sim)
    )


def test_converted_weights_match_the_formulas(release_dir):
    release_sim, release_data = hr.read_release(release_dir)
    sim, data = hw.to_workshop(release_sim, release_data)
    expected = _transcribed(release_sim)
    assert sim.fields == [
        *SIMULATION_FIELDS,
        "length",
        "conventionalWeight",
        "promptWeight",
        "muonWeight",
        "pionWeight",
        "kaonWeight",
        "primaryType",
    ]
    length = np.asarray(release_sim["recoLength"], dtype=np.float64)
    np.testing.assert_array_equal(sim["length"], np.where(np.isnan(length), 0.0, length))
    for field, name in (
        ("astroWeight", "astro"),
        ("conventionalWeight", "conventional"),
        ("promptWeight", "prompt"),
        ("muonWeight", "muon"),
    ):
        np.testing.assert_allclose(sim[field], expected[name], rtol=1e-13, atol=0, err_msg=field)
    atmo = expected["conventional"] + expected["prompt"] + expected["muon"]
    np.testing.assert_allclose(sim["atmoWeight"], atmo, rtol=1e-13, atol=0)
    for field, release_field in (
        ("energy", "recoDepositedEnergy"),
        ("zenith", "recoZenith"),
        ("primaryEnergy", "primaryEnergy"),
        ("primaryZenith", "primaryZenith"),
    ):
        np.testing.assert_array_equal(sim[field], release_sim[release_field])
    # muons only in atmoWeight; neutrinos carry astro weight
    muon = release_sim["muonWeightOverLivetime"] > 0
    assert np.all(sim["astroWeight"][muon] == 0) and np.all(sim["atmoWeight"][muon] > 0)
    meta = sim.meta["hese_release"]
    assert meta["double_cascades"] == "drop" and meta["sha256"] == release_sim.sha256
    assert len(data) == len(release_data)


def test_double_cascade_choices_on_simulation_and_data(release_dir):
    release_sim, release_data = hr.read_release(release_dir)
    morphology = release_sim["recoMorphology"]
    drop_sim, drop_data = hw.to_workshop(release_sim, release_data, "drop")
    merge_sim, merge_data = hw.to_workshop(release_sim, release_data, "cascade")
    np.testing.assert_array_equal(drop_sim["topology"], morphology)
    np.testing.assert_array_equal(merge_sim["topology"], np.where(morphology == 2, 0, morphology))
    assert drop_sim.sha256 != merge_sim.sha256
    # weights do not depend on the choice
    np.testing.assert_array_equal(drop_sim["atmoWeight"], merge_sim["atmoWeight"])
    binning = Binning()
    counts = hs.double_cascade_counts(release_data, binning)
    for choice, data in (("drop", drop_data), ("cascade", merge_data)):
        inside = binning.bin_index(data["energy"], data["zenith"], data["topology"]) >= 0
        assert counts[choice]["in_bins"] == int(inside.sum())
        assert counts[choice]["outside_bins"] == len(data) - int(inside.sum())
    gained = counts["cascade"]["in_bins"] - counts["drop"]["in_bins"]
    assert counts["drop"]["dropped_by_choice"] == gained
    with pytest.raises(ValueError, match="double_cascades"):
        hw.to_workshop(release_sim, release_data, "keep")


# --------------------------------------------------------------------------- the converter CLI and the fit


def _load_script():
    spec = importlib.util.spec_from_file_location("convert_hese_release", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def converted(release_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    sim, data = out / "sim.json", out / "data.json"
    argv = ["--release", str(release_dir), "--out-sim", str(sim), "--out-data", str(data)]
    assert _load_script().main(argv) == 0
    return read_simulation(sim), read_data(data)


def test_converted_files_read_back(converted, release_dir):
    sim, data = converted
    expected_sim, expected_data = hw.to_workshop(*hr.read_release(release_dir))
    for table, expected in ((sim, expected_sim), (data, expected_data)):
        assert table.fields == expected.fields
        for name in expected.fields:
            np.testing.assert_array_equal(table[name], expected[name])
    assert sim.meta["hese_release"]["livetime_s"] == LIVETIME
    assert "1e-18" in sim.meta["hese_release"]["astro_norm"]


def test_asimov_fit_on_converted_release_recovers_truth(converted):
    sim, data = converted
    binned = bin_dataset(data, sim)
    for truth in (
        {"atmos_norm": 1.0, "astro_norm": 6.37, "astro_gamma": 2.87},
        {"atmos_norm": 1.4, "astro_norm": 3.0, "astro_gamma": 2.3},
    ):
        asimov = expected_counts(binned.templates, truth)
        fit = reference_fit.fit(
            asimov, binned.simulation, binned.sim_bin_index, binned.binning.n_bins
        )
        np.testing.assert_allclose(fit.x, list(truth.values()), rtol=1e-4)


def test_split_components(converted):
    sim, data = converted
    split = bin_dataset(data, sim, components=hw.HESE_COMPONENTS_SPLIT)
    joint = bin_dataset(data, sim, components=WORKSHOP_COMPONENTS)
    astro = {"astro_norm": 5.0, "astro_gamma": 2.7}
    same = {"atmos_norm": 1.2, "prompt_norm": 1.2, "muon_norm": 1.2, **astro}
    np.testing.assert_allclose(
        expected_counts(split.templates, same),
        expected_counts(joint.templates, {"atmos_norm": 1.2, **astro}),
        rtol=1e-12,
        atol=1e-15,
    )
    params = {"atmos_norm": 0.8, "prompt_norm": 2.5, "muon_norm": 0.3, **astro}
    weights = (
        0.8 * sim["conventionalWeight"]
        + 2.5 * sim["promptWeight"]
        + 0.3 * sim["muonWeight"]
        + 5.0 * sim["astroWeight"] * (sim["primaryEnergy"] / 1e5) ** -(2.7 - 2.5)
    )
    index = split.sim_bin_index
    exact = np.bincount(index[index >= 0], weights[index >= 0], minlength=split.binning.n_bins)
    np.testing.assert_allclose(expected_counts(split.templates, params), exact, rtol=1e-9)


def test_script_runs_as_a_program(release_dir, tmp_path):
    out_sim, out_data = tmp_path / "s.json", tmp_path / "d.json"
    args = [
        "--release",
        str(release_dir),
        "--out-sim",
        str(out_sim),
        "--out-data",
        str(out_data),
        "--double-cascades",
        "cascade",
    ]
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "double cascades 'cascade' (chosen)" in done.stdout
    assert 2 not in read_data(out_data)["topology"]
    assert read_simulation(out_sim).meta["hese_release"]["double_cascades"] == "cascade"


def test_script_bad_input_exits_2_with_one_line(tmp_path, capsys):
    hr.write_release_folder(tmp_path, None, copy.deepcopy(GOOD_DATA))  # no simulation
    out = tmp_path / "out"
    argv = [
        "--release",
        str(tmp_path),
        "--out-sim",
        str(out / "s.json"),
        "--out-data",
        str(out / "d.json"),
    ]
    assert _load_script().main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HESE_mc_truth.json" in err and "does not exist" in err
    assert not out.exists()


# --------------------------------------------------------------------------- bad input

GOOD_SIM = {
    "primaryType": [12, -14, 13],
    "primaryEnergy": [1.0e5, 2.0e5, 5.0e4],
    "primaryZenith": [1.0, 2.0, 0.5],
    "trueLength": [NAN, NAN, NAN],
    "interactionType": [1, 2, 0],
    "recoDepositedEnergy": [9.0e4, 1.5e5, 2.5e4],
    "recoMorphology": [0, 1, 1],
    "recoZenith": [1.1, 2.0, 0.6],
    "recoLength": [NAN, NAN, NAN],
    "weightOverFluxOverLivetime": [1.0e3, 2.0e3, 0.0],
    "muonWeightOverLivetime": [0.0, 0.0, 1.0e-9],
    "pionFlux": [1.0e-18, 2.0e-18, 1.0e-18],
    "kaonFlux": [1.0e-18, 1.0e-18, 1.0e-18],
    "promptFlux": [1.0e-19, 1.0e-19, 1.0e-19],
    "conventionalSelfVetoCorrection": [0.5, 1.0, 1.0],
    "promptSelfVetoCorrection": [0.9, 1.0, 1.0],
}
GOOD_DATA = {
    "recoDepositedEnergy": [1.0e5, 2.0e5],
    "recoMorphology": [0, 2],
    "recoZenith": [1.0, 2.0],
    "recoLength": [NAN, 20.0],
}
FILE_OF = {f: name for name, fields in hr.SIMULATION_FILES.items() for f in fields}


def _good_release(folder):
    hr.write_release_folder(folder, copy.deepcopy(GOOD_SIM), copy.deepcopy(GOOD_DATA))


def test_good_minimal_release_reads(tmp_path):
    _good_release(tmp_path)
    sim, data = hr.read_release(tmp_path)
    assert len(sim) == 3 and len(data) == 2
    assert np.isnan(data["recoLength"][0]) and data["recoLength"][1] == 20.0


# (file or "sim" field, row, bad value, parts the message must contain besides file and field)
BAD_VALUES = [
    ("recoDepositedEnergy", 1, 0.0, ["events[1]", "0.0", "positive energy"]),
    ("primaryEnergy", 2, -5.0, ["events[2]", "-5.0", "positive energy"]),
    ("recoZenith", 0, 3.5, ["events[0]", "3.5", "[0, pi]"]),
    ("primaryZenith", 1, -0.1, ["events[1]", "-0.1", "[0, pi]"]),
    ("recoMorphology", 1, 7, ["events[1]", "7.0", "morphology code"]),
    ("interactionType", 0, 5, ["events[0]", "5.0", "interaction type"]),
    ("primaryType", 0, 12.5, ["events[0]", "12.5", "PDG"]),
    ("weightOverFluxOverLivetime", 1, -1.0e-3, ["events[1]", "-0.001", "negative"]),
    ("muonWeightOverLivetime", 2, -1.0, ["events[2]", "-1.0", "negative"]),
    ("pionFlux", 0, -1.0e-18, ["events[0]", "-1e-18", "negative"]),
    ("kaonFlux", 1, -2.0e-18, ["events[1]", "-2e-18", "negative"]),
    ("promptFlux", 2, -1.0e-19, ["events[2]", "-1e-19", "negative"]),
    ("conventionalSelfVetoCorrection", 0, -0.5, ["events[0]", "-0.5", "negative"]),
    ("promptSelfVetoCorrection", 0, -0.25, ["events[0]", "-0.25", "negative"]),
    ("recoLength", 1, -3.0, ["events[1]", "-3.0", "length"]),
    ("trueLength", 2, float("inf"), ["events[2]", "inf", "non-finite"]),
    ("recoDepositedEnergy", 0, NAN, ["events[0]", "nan", "non-finite"]),
    ("pionFlux", 1, float("-inf"), ["events[1]", "-inf", "non-finite"]),
    ("recoZenith", 1, "up", ["events[1]", "'up'", "non-numeric"]),
    ("primaryEnergy", 0, None, ["events[0]", "None", "non-numeric"]),
    ("recoMorphology", 2, True, ["events[2]", "True", "non-numeric"]),
    ("kaonFlux", 0, [1.0], ["events[0]", "[1.0]", "non-numeric"]),
]


@pytest.mark.parametrize(("field", "row", "value", "parts"), BAD_VALUES)
def test_bad_simulation_value(tmp_path, field, row, value, parts):
    sim = copy.deepcopy(GOOD_SIM)
    sim[field][row] = value
    hr.write_release_folder(tmp_path, sim, copy.deepcopy(GOOD_DATA))
    with pytest.raises(DataFormatError) as info:
        hr.read_release_simulation(tmp_path)
    message = str(info.value)
    for part in [str(tmp_path / FILE_OF[field]), f"field '{field}'", *parts]:
        assert part in message, message


@pytest.mark.parametrize(
    ("field", "row", "value", "parts"),
    [case for case in BAD_VALUES if case[0] in hr.DATA_FIELDS and case[1] < 2],  # two events
)
def test_bad_data_value(tmp_path, field, row, value, parts):
    data = copy.deepcopy(GOOD_DATA)
    data[field][row] = value
    hr.write_release_folder(tmp_path, None, data)
    with pytest.raises(DataFormatError) as info:
        hr.read_release_data(tmp_path / "HESE_data.json")
    message = str(info.value)
    for part in [str(tmp_path / "HESE_data.json"), f"field '{field}'", *parts]:
        assert part in message, message


def _edit_json(path, change):
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


STRUCTURE = {
    "not_json": (
        "HESE_mc_flux.json",
        lambda p: p.write_text("this is not json"),
        ["is not valid JSON"],
    ),
    "truncated": (
        "HESE_data.json",
        lambda p: p.write_text(p.read_text()[:-25]),
        ["is not valid JSON", "truncated"],
    ),
    "not_utf8": (
        "HESE_mc_truth.json",
        lambda p: p.write_bytes(b'{"a": \xff}'),
        ["not a JSON text"],
    ),
    "top_level_list": (
        "HESE_mc_observable.json",
        lambda p: p.write_text("[1, 2, 3]"),
        ["top level must be a JSON object", "list"],
    ),
    "data_missing_field": (
        "HESE_data.json",
        lambda p: _edit_json(p, lambda c: c.pop("recoZenith")),
        ["field 'recoZenith'", "required field is missing"],
    ),
    "sim_missing_field": (
        "HESE_mc_flux.json",
        lambda p: _edit_json(p, lambda c: c.pop("pionFlux")),
        ["field 'pionFlux'", "required field is missing", "HESE_mc_truth.json"],
    ),
    "column_lengths": (
        "HESE_data.json",
        lambda p: _edit_json(p, lambda c: c["recoZenith"].pop()),
        ["field 'recoZenith'", "has 1 values", "field 'recoDepositedEnergy' has 2"],
    ),
    "sim_column_lengths": (
        "HESE_mc_flux.json",
        lambda p: _edit_json(p, lambda c: c["promptFlux"].append(1e-19)),
        ["field 'promptFlux'", "has 4 values", "has 3"],
    ),
    "file_event_counts": (
        "HESE_mc_flux.json",
        lambda p: _edit_json(p, lambda c: [v.pop() for v in c.values()]),
        ["has 2 events", "HESE_mc_truth.json has 3", "same events"],
    ),
    "column_not_list": (
        "HESE_mc_truth.json",
        lambda p: _edit_json(p, lambda c: c.update(primaryEnergy=1e5)),
        ["field 'primaryEnergy'", "must be a list of numbers, not float"],
    ),
    "empty": (
        "HESE_data.json",
        lambda p: _edit_json(p, lambda c: [v.clear() for v in c.values()]),
        ["has no events"],
    ),
    "conflicting_duplicate": (
        "HESE_mc_observable.json",
        lambda p: _edit_json(
            p.parent / "HESE_mc_truth.json", lambda c: c.update(recoZenith=[0.1, 0.2, 0.3])
        ),
        ["field 'recoZenith'", "differs from the same field in", "HESE_mc_truth.json"],
    ),
    "huge_integer": (
        "HESE_mc_flux.json",
        lambda p: p.write_text(p.read_text().replace("1e-09", "1" + "0" * 400)),
        [
            "field 'muonWeightOverLivetime'",
            "events[2]",
            "10000000...0000 (401 digits)",
            "beyond the float range",
        ],
    ),
    "duplicate_key": (
        "HESE_mc_truth.json",
        lambda p: p.write_text(p.read_text().replace("{", '{"primaryType": [], ', 1)),
        ["'primaryType' twice"],
    ),
    "huge_integer_text": (
        "HESE_data.json",
        lambda p: p.write_text(p.read_text().replace("[0, 2]", "[0, 2" + "0" * 5000 + "]")),
        ["is not usable JSON", "4300"],
    ),
    "deep_nesting": (
        "HESE_data.json",
        lambda p: p.write_text("[" * 100000 + "]" * 100000),
        ["nested too deeply"],
    ),
}


@pytest.mark.parametrize("case", sorted(STRUCTURE))
def test_bad_structure(tmp_path, case):
    name, damage, parts = STRUCTURE[case]
    _good_release(tmp_path)
    damage(tmp_path / name)
    with pytest.raises(DataFormatError) as info:
        hr.read_release(tmp_path)
    message = str(info.value)
    for part in [str(tmp_path / name), *parts]:
        assert part in message, message


@pytest.mark.parametrize("missing", ["HESE_data.json", *MC_FILES])
def test_missing_file_says_what_the_folder_holds(tmp_path, missing):
    _good_release(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(DataFormatError) as info:
        hr.read_release(tmp_path)
    message = str(info.value)
    assert f"file '{tmp_path / missing}': does not exist" in message
    for name in ("HESE_data.json", *MC_FILES):
        assert name in message


def test_missing_folder(tmp_path):
    with pytest.raises(DataFormatError) as info:
        hr.read_release(tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and "is not a folder" in message
    assert "HESE_mc_flux.json" in message and "HESE-7-year-data-release" in message


def test_zenith_printed_rounded_above_pi_is_pi(tmp_path):
    data = copy.deepcopy(GOOD_DATA)
    data["recoZenith"] = [1.0, 3.142]
    sim = copy.deepcopy(GOOD_SIM)
    sim["primaryZenith"][2] = 3.1416
    hr.write_release_folder(tmp_path, sim, data)
    sim_table, data_table = hr.read_release(tmp_path)
    assert data_table["recoZenith"].tolist() == [1.0, np.pi] and data_table.clamped == {
        "recoZenith": 1
    }
    assert sim_table["primaryZenith"][2] == np.pi and sim_table.clamped == {"primaryZenith": 1}
    for table in (sim_table, data_table):
        assert table.loaded_from == "json (exact parser)"
        digest = hashlib.sha256()
        for name in table.fields:
            digest.update(f"{name} {len(table)}\n".encode())
            digest.update(table[name].astype("<f8").tobytes())
        assert table.columns_sha256 == digest.hexdigest()
    data["recoZenith"] = [1.0, 3.15]  # clearly outside: an error as before
    hr.write_release_folder(tmp_path, None, data)
    with pytest.raises(DataFormatError, match=r"events\[1\]: value 3.15 is outside"):
        hr.read_release_data(tmp_path)


def test_folder_in_place_of_a_file(tmp_path):
    _good_release(tmp_path)
    (tmp_path / "HESE_mc_flux.json").unlink()
    (tmp_path / "HESE_mc_flux.json").mkdir()
    with pytest.raises(DataFormatError, match=r"HESE_mc_flux.json': cannot be read \(Is a dir"):
        hr.read_release_simulation(tmp_path)
