"""``run_scan``, ``run_toys``, ``run_sbc`` of the Python API against their command-line twins
(issue 18, item 3): the same options give the same results.  Compared: every JSON result
but the lines that record when, how long and by which command (``provenance.created_utc``, ``workers``,
``provenance.command``, ``provenance.journal``, ``wall_time_s``), and the NetCDF datasets."""

from __future__ import annotations

import json

import pytest
import xarray as xr

import diffuse_fit as df
from diffuse_fit.cli import main

VOLATILE = {"wall_time_s", "workers"}  # and which Dask workers ran the tasks
VOLATILE_PROVENANCE = {"created_utc", "command", "journal"}


def _stable(document: dict) -> dict:
    out = {k: v for k, v in document.items() if k not in VOLATILE}
    if "provenance" in out:
        out["provenance"] = {
            k: v for k, v in out["provenance"].items() if k not in VOLATILE_PROVENANCE
        }
    return out


def _same_results(cli_dir, api_dir, json_name, netcdf=None):
    cli = json.loads((cli_dir / json_name).read_text())
    api = json.loads((api_dir / json_name).read_text())
    assert _stable(cli) == _stable(api)
    if netcdf:
        with xr.open_dataset(cli_dir / netcdf) as a, xr.open_dataset(api_dir / netcdf) as b:
            xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


@pytest.fixture(scope="module")
def toy_inputs():
    return df.load_inputs()


@pytest.mark.slow
def test_run_scan_equals_the_scan_command(tmp_path, toy_inputs):
    args = ["--param", "astro_gamma=2.6:3.8:7", "--workers", "1"]
    assert main(["scan", *args, "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    df.run_scan(
        toy_inputs,
        tmp_path / "api",
        ["astro_gamma=2.6:3.8:7"],
        workers=1,
        progressbar=False,
        say=lambda *a: None,
    )
    _same_results(tmp_path / "cli", tmp_path / "api", "scan.json")


@pytest.mark.slow
def test_run_toys_equals_the_toys_command(tmp_path, toy_inputs):
    args = ["--n", "6", "--seed", "4", "--workers", "1"]
    assert main(["toys", *args, "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    df.run_toys(
        toy_inputs, tmp_path / "api", n=6, seed=4, workers=1, progressbar=False, say=lambda *a: None
    )
    _same_results(tmp_path / "cli", tmp_path / "api", "coverage.json", "toys.nc")


@pytest.mark.slow
def test_run_sbc_equals_the_sbc_command(tmp_path, toy_inputs):
    args = [
        "--n",
        "2",
        "--seed",
        "4",
        "--workers",
        "1",
        "--draws",
        "100",
        "--tune",
        "100",
        "--draws-per-fit",
        "19",
    ]
    assert main(["sbc", *args, "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    df.run_sbc(
        toy_inputs,
        tmp_path / "api",
        n=2,
        seed=4,
        workers=1,
        draws=100,
        tune=100,
        draws_per_fit=19,
        progressbar=False,
        say=lambda *a: None,
    )
    _same_results(tmp_path / "cli", tmp_path / "api", "sbc.json")
