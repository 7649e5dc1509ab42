"""The HESE release's own binning (issue 21, item 1), against an independent implementation
of the release's ``binning.py`` and ``data_loader.py`` written here: np.digitize masks per
topology in the release's bin order, its loader's energy and length cuts.  0 mismatches,
including events on every edge and at the cuts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.hese_binning import release_binning
from diffuse_fit.binned.joint import JointBinning
from diffuse_fit.cli import main
from diffuse_fit.io import hese_release as hr
from diffuse_fit.io.events import EventTable
from diffuse_fit.jobs.inputs import load_inputs
from diffuse_fit.physics import hese_toy


def _reference_edges(start, width, low, high):
    """The release's walk (binning.get_bins) as a count of steps down and up."""
    down, value = 0, start
    while value > low:
        value /= 10.0**width
        down += 1
    lo = value
    up, value = 0, start
    while value < high:
        value *= 10.0**width
        up += 1
    return np.logspace(np.log10(lo), np.log10(value), down + up + 1)


def _reference_bins(energy, zenith, length, morphology):
    """Bin of each event by masks as the release builds them (-1: outside or cut)."""
    e_edges = _reference_edges(60.0e3, 0.111, 60.0e3, 1.0e7)
    z_edges = np.arccos(np.linspace(-1, 1, 11))[::-1]
    l_edges = _reference_edges(10.0, 0.1, 10.0, 1000.0)
    with np.errstate(invalid="ignore"):
        keep = (energy >= 60.0e3) & (energy <= 1.0e7)
        keep &= (morphology != 2) | ((length >= 10.0) & (length <= 1000.0))
    masks = []
    for topology, second, edges in (
        (0, zenith, z_edges),
        (1, zenith, z_edges),
        (2, length, l_edges),
    ):
        e_map = np.digitize(energy, e_edges) - 1
        s_map = np.digitize(second, edges) - 1
        for j in range(len(edges) - 1):
            for k in range(len(e_edges) - 1):
                masks.append((s_map == j) & (e_map == k) & (morphology == topology) & keep)
    masks = np.array(masks)
    assert np.all(masks.sum(axis=0) <= 1)
    return np.where(masks.any(axis=0), masks.argmax(axis=0), -1), len(masks)


def _events_on_edges(rng):
    """Events on every edge, at the cuts, just inside and outside, with NaN lengths."""
    binning = release_binning()
    cascades, _, doubles = binning.parts
    energies = np.concatenate([cascades.energy_edges, [6e4, 1e7, 1e7 * (1 + 1e-15), 59999.99]])
    zeniths = np.concatenate([cascades.zenith_edges, [0.0, np.pi, 1.0]])
    lengths = np.concatenate([doubles.zenith_edges, [10.0, 1000.0, 9.999999, 1000.0000001, np.nan]])
    e, z, length, m = (
        a.reshape(-1) for a in np.meshgrid(energies, zeniths, lengths, [0, 1, 2], indexing="ij")
    )
    n = 20_000  # and random ones
    e = np.concatenate([e, 10 ** rng.uniform(4.5, 7.3, n)])
    z = np.concatenate([z, np.arccos(rng.uniform(-1, 1, n))])
    length = np.concatenate([length, 10 ** rng.uniform(0.5, 3.3, n)])
    m = np.concatenate([m, rng.integers(0, 3, n)]).astype(np.float64)
    return e, z, length, m


def test_every_event_lands_in_the_release_bin():
    rng = np.random.default_rng(7)
    e, z, length, m = _events_on_edges(rng)
    expected, n_bins = _reference_bins(e, z, length, m)
    binning = release_binning()
    assert binning.n_bins == n_bins == 840
    assert [p.n_bins for p in binning.parts] == [210, 210, 420]
    events = EventTable({"energy": e, "zenith": z, "length": length, "topology": m}, "edges")
    got = binning.bin_events(events)
    assert np.sum(got != expected) == 0
    assert np.sum(expected >= 0) > 10_000  # the comparison is not vacuous


@pytest.fixture(scope="module")
def release_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    toy = hese_toy.make_toy_release(seed=21, n=20_000)
    hr.write_release_folder(folder, toy.simulation, toy.data)
    return folder, toy


def test_release_folder_is_fitted_in_the_release_bins(release_folder, tmp_path):
    """--hese-release bins by default as the release: counts per bin equal the reference's
    (double cascades in their own bins), and the run records the preset; --binning workshop
    gives the workshop's 400 bins."""
    folder, toy = release_folder
    out = tmp_path / "run"
    assert (
        main(
            ["map", "--hese-release", str(folder), "--prior", "flat", "--out", str(out), "--quiet"]
        )
        == 0
    )
    result = json.loads((out / "map.json").read_text())
    prov = result["provenance"]
    assert [s["name"] for s in prov["binning"]["samples"]] == [
        "cascades",
        "tracks",
        "double_cascades",
    ]
    assert prov["analysis"]["samples"][0]["binning"]["preset"] == "hese-release"
    data = toy.data
    expected, n_bins = _reference_bins(
        *(
            np.asarray(data[f], dtype=np.float64)
            for f in ("recoDepositedEnergy", "recoZenith", "recoLength", "recoMorphology")
        )
    )
    inputs = load_inputs(hese_release=folder)
    binned = bin_dataset(inputs.data, inputs.simulation, binning=release_binning())
    assert isinstance(binned.binning, JointBinning)
    np.testing.assert_array_equal(
        binned.counts, np.bincount(expected[expected >= 0], minlength=n_bins)
    )
    assert np.sum(binned.counts[420:]) == np.sum(expected >= 420) > 0  # double cascades in
    workshop = tmp_path / "workshop"
    assert (
        main(
            [
                "map",
                "--hese-release",
                str(folder),
                "--binning",
                "workshop",
                "--prior",
                "flat",
                "--out",
                str(workshop),
                "--quiet",
            ]
        )
        == 0
    )
    w = json.loads((workshop / "map.json").read_text())
    assert len(w["provenance"]["binning"]["energy_edges_GeV"]) == 21


def test_merging_double_cascades_needs_the_workshop_binning(release_folder, tmp_path, capsys):
    folder, _ = release_folder
    assert (
        main(
            [
                "map",
                "--hese-release",
                str(folder),
                "--double-cascades",
                "cascade",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "add --binning workshop" in capsys.readouterr().err
