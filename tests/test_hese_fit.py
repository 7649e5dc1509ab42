"""A release-schema simulation through reader, converter and the PyMC MAP."""

import json

import numpy as np
import pytest

from diffuse_fit.binned import reference_fit
from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.cli import main
from diffuse_fit.inference.map_fit import find_map
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import build_model, parameter_supports, set_counts
from diffuse_fit.io import hese_release as hr
from diffuse_fit.jobs.inputs import load_inputs
from diffuse_fit.physics import hese_toy
from diffuse_fit.physics import hese_weights as hw

NAMES = ["atmos_norm", "astro_norm", "astro_gamma"]


@pytest.fixture(scope="module")
def release_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    toy = hese_toy.make_toy_release(seed=21, n=20_000)
    hr.write_release_folder(folder, toy.simulation, toy.data)
    return folder


def test_cli_map_on_release_folder_equals_reference(release_folder, tmp_path, capsys):
    """--binning workshop: the workshop's bins on the release (double cascades dropped)."""
    out = tmp_path / "fit"
    assert (
        main(
            [
                "map",
                "--hese-release",
                str(release_folder),
                "--prior",
                "flat",
                "--binning",
                "workshop",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "double cascades 'drop'" in printed and "'cascade' would keep" in printed
    result = json.loads((out / "map.json").read_text())
    inputs = load_inputs(hese_release=release_folder)
    binned = bin_dataset(inputs.data, inputs.simulation)
    ref = reference_fit.fit(
        binned.counts, binned.simulation, binned.sim_bin_index, binned.binning.n_bins
    )
    np.testing.assert_allclose([result[n] for n in NAMES], ref.x, rtol=1e-4)
    assert result["neg_log_likelihood"] == pytest.approx(ref.neg_log_likelihood, abs=1e-6)
    assert result["provenance"]["input_spec"]["hese_release"] == str(release_folder)


def test_pymc_map_recovers_asimov_truth_on_converted_release(release_folder):
    inputs = load_inputs(hese_release=release_folder, double_cascades="cascade")
    binned = bin_dataset(inputs.data, inputs.simulation)
    model = build_model(binned, resolve_priors("flat", parameter_supports(binned.components)))
    truth = {"atmos_norm": 1.3, "astro_norm": 6.37, "astro_gamma": 2.87}
    set_counts(model, expected_counts(binned.templates, truth))
    result = find_map(model)
    np.testing.assert_allclose([result.values[n] for n in NAMES], list(truth.values()), rtol=1e-4)


def test_split_components_fit_separate_normalizations(release_folder, tmp_path):
    inputs = load_inputs(hese_release=release_folder)
    binned = bin_dataset(inputs.data, inputs.simulation, components=hw.HESE_COMPONENTS_SPLIT)
    priors = resolve_priors("flat", parameter_supports(binned.components))
    assert set(priors) == {"atmos_norm", "prompt_norm", "muon_norm", "astro_norm", "astro_gamma"}
    model = build_model(binned, priors)
    truth = {
        "atmos_norm": 1.2,
        "prompt_norm": 2.0,
        "muon_norm": 0.7,
        "astro_norm": 6.0,
        "astro_gamma": 2.6,
    }
    set_counts(model, expected_counts(binned.templates, truth))
    result = find_map(model)
    # Asimov: the MAP is the truth; the weakly constrained prompt norm to a looser tolerance
    for name, value in truth.items():
        assert result.values[name] == pytest.approx(
            value, rel=1e-3 if name == "prompt_norm" else 1e-4
        )
    assert (
        main(
            [
                "map",
                "--hese-release",
                str(release_folder),
                "--components",
                "split",
                "--prior",
                "default",
                "--binning",
                "workshop",
                "--out",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    written = json.loads((tmp_path / "map.json").read_text())
    assert written["reference_fit"] is None and "muon_norm" in written


def test_release_and_data_options_conflict(release_folder, tmp_path, capsys):
    code = main(
        [
            "map",
            "--hese-release",
            str(release_folder),
            "--data",
            "d.json",
            "--sim",
            "s.json",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2 and "either --hese-release or --data/--sim" in capsys.readouterr().err


def test_missing_release_folder_is_one_line(tmp_path, capsys):
    assert main(["map", "--hese-release", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err
