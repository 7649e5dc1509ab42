"""The many-fit commands (scan, toys, sbc) on Dask: results against independent references,
reproducibility, compile-once workers, resume after a kill, one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from diffuse_fit.cli import main
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.io.journal import journal_folder
from diffuse_fit.jobs.distributed import ClusterOptions
from diffuse_fit.jobs.inputs import load_inputs
from diffuse_fit.jobs.many import task_seed
from diffuse_fit.jobs.scan import run_scan
from diffuse_fit.jobs.toys import run_toys
from tests.test_profile import scipy_profile

ONE = ClusterOptions(workers=1)
QUIET = {"say": lambda *a, **k: None, "progressbar": False}


@pytest.fixture(scope="module")
def inputs():
    return load_inputs()


@pytest.fixture(scope="module")
def scan_2d(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("scans") / "scan2d"
    params = [("astro_gamma", 2.7, 3.7, 6), ("astro_norm", 5.0, 12.0, 5)]
    return run_scan(inputs, "flat", out, params, cluster=ONE, **QUIET), out


def test_scan_minimum_is_the_map_and_ts_is_an_independent_profile(binned, inputs, tmp_path):
    from diffuse_fit.jobs.prepared import PreparedFit

    best = PreparedFit.load(inputs, "flat", say=lambda *a: None).best
    g = best.values["astro_gamma"]
    params = [("astro_gamma", g - 0.5, g + 0.5, 11)]  # the MAP is the middle grid point
    scan = run_scan(inputs, "flat", tmp_path / "scan1d", params, cluster=ONE, **QUIET)
    ts = np.array(scan["ts"])
    assert np.argmin(ts) == 5 and abs(ts[5]) < 1e-8
    for name in ("atmos_norm", "astro_norm"):
        assert scan["profiled"][name][5] == pytest.approx(best.values[name], rel=1e-6)
    best_nll = scipy_profile(binned, {})
    assert scan["best_neg_log_likelihood"] == pytest.approx(best_nll, abs=1e-6)
    for i in (0, 3, 10):
        x = scan["grid"]["astro_gamma"][i]
        assert ts[i] == pytest.approx(
            2 * (scipy_profile(binned, {"astro_gamma": x}) - best_nll), abs=1e-6
        )


def test_2d_scan_matches_an_independent_profile(binned, scan_2d):
    scan, out = scan_2d
    assert scan["parameters"] == ["astro_gamma", "astro_norm"]
    ts = np.array(scan["ts"])
    assert ts.shape == (6, 5) and np.all(np.array(scan["converged"]))
    best_nll = scipy_profile(binned, {})
    for i, j in [(0, 0), (2, 3), (5, 4)]:
        fixed = {
            "astro_gamma": scan["grid"]["astro_gamma"][i],
            "astro_norm": scan["grid"]["astro_norm"][j],
        }
        assert ts[i][j] == pytest.approx(2 * (scipy_profile(binned, fixed) - best_nll), abs=1e-6)
    assert scan["thresholds"]["0.6827"] == pytest.approx(2.2957, abs=1e-3)
    on_disk = json.loads((out / "scan.json").read_text())
    np.testing.assert_allclose(on_disk["ts"], scan["ts"], rtol=1e-15)
    assert (out / "scan.png").stat().st_size > 10_000


def test_scan_rerun_computes_nothing_and_overlays_a_sample_run(inputs, scan_2d, sample_run):
    scan, out = scan_2d
    said = []
    params = [("astro_gamma", 2.7, 3.7, 6), ("astro_norm", 5.0, 12.0, 5)]
    again = run_scan(
        inputs,
        "flat",
        out,
        params,
        cluster=ONE,
        posterior_run=sample_run,
        say=said.append,
        progressbar=False,
    )
    assert any("6 already done" in line and "0 to compute" in line for line in said)
    assert not any(line.startswith("dask:") for line in said)  # no cluster was started
    assert again["ts"] == scan["ts"]


@pytest.fixture(scope="module")
def toys_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("toys") / "toys"
    coverage = run_toys(inputs, "flat", out, "", 12, 7, cluster=ClusterOptions(workers=2), **QUIET)
    return coverage, out


def test_toys_reproduce_and_coverage_is_counted_from_the_intervals(inputs, toys_run, tmp_path):
    coverage, out = toys_run
    ds = xr.load_dataset(out / "toys.nc", engine="h5netcdf")
    assert ds.sizes["toy"] == 12 and coverage["n"] == 12
    assert ds["seed"].values.tolist() == [task_seed(7, i) for i in range(12)]
    truth = inputs.truth
    for name in ds["parameter"].values.tolist():
        x = ds.sel(parameter=name)
        inside = (x["profile_68"].sel(bound="lower") <= truth[name]) & (
            truth[name] <= x["profile_68"].sel(bound="upper")
        )
        assert coverage["parameters"][name]["profile_68"] == pytest.approx(float(inside.mean()))
        hessian = np.abs(x["map"] - truth[name]) <= x["hessian_error"]
        assert coverage["parameters"][name]["hessian_68"] == pytest.approx(float(hessian.mean()))
    # the same seed elsewhere (a fresh journal) gives the same pseudo-experiments and fits
    run_toys(inputs, "flat", tmp_path / "again", "", 3, 7, cluster=ONE, **QUIET)
    again = xr.load_dataset(tmp_path / "again" / "toys.nc", engine="h5netcdf")
    np.testing.assert_array_equal(again["seed"].values, ds["seed"].values[:3])
    np.testing.assert_allclose(again["map"].values, ds["map"].values[:3], rtol=1e-12)
    np.testing.assert_allclose(again["profile_68"].values, ds["profile_68"].values[:3], rtol=1e-12)


def test_each_worker_builds_its_fitter_once(toys_run):
    _, out = toys_run
    entries = [json.loads(p.read_text()) for p in journal_folder(out).glob("*/toy-*.json")]
    assert len(entries) == 12
    fitters = {e["worker_fitter"] for e in entries}
    assert 1 <= len(fitters) <= 2  # one per worker process, reused by every later task
    assert len({f.split("-")[0] for f in fitters}) == len(fitters)  # distinct processes


def test_toys_with_nuts_compile_once_per_worker(inputs, tmp_path):
    settings = SamplerSettings(draws=200, tune=200, chains=2)
    coverage = run_toys(
        inputs,
        "flat",
        tmp_path / "n",
        "atmos_norm=0.6,astro_norm=8,astro_gamma=3.2",
        3,
        1,
        nuts=True,
        settings=settings,
        cluster=ONE,
        **QUIET,
    )
    assert set(coverage["parameters"]["astro_gamma"]) == {"hessian_68", "profile_68", "credible_68"}
    entries = [
        json.loads(p.read_text()) for p in journal_folder(tmp_path / "n").glob("*/toy-*.json")
    ]
    assert len({e["nuts_worker_fitter"] for e in entries}) == 1
    assert {e["nuts_compilations"] for e in entries} == {1}
    ds = xr.load_dataset(tmp_path / "n" / "toys.nc", engine="h5netcdf")
    q = ds["posterior_quantiles"].values
    assert np.all(np.diff(q, axis=-1) > 0)  # quantiles increase


def test_sbc_small(tmp_path):
    out = tmp_path / "sbc"
    code = main(
        [
            "sbc",
            "--n",
            "3",
            "--seed",
            "2",
            "--draws",
            "100",
            "--tune",
            "200",
            "--chains",
            "2",
            "--draws-per-fit",
            "19",
            "--workers",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    sbc = json.loads((out / "sbc.json").read_text())
    assert sbc["n"] == 3 and sbc["draws_per_fit"] == 19
    for name, ranks in sbc["ranks"].items():
        assert len(ranks) == 3 and all(0 <= r <= 19 for r in ranks)
        assert 0.0 <= sbc["uniformity_p"][name] <= 1.0
    rng = np.random.default_rng(task_seed(2, 0))
    from diffuse_fit.inference.priors import PRIOR_SETS

    first_truth = {n: float(PRIOR_SETS["default"][n].draw(rng)) for n in sbc["ranks"]}
    assert sbc["fits"][0]["truth"] == pytest.approx(first_truth, rel=1e-12)
    assert (out / "sbc.png").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["scan", "--param", "astro_gamma=2:3"], "NAME=START:STOP:NUM"),
        (["scan", "--param", "gamma=2:3:5"], "unknown parameter 'gamma'"),
        (["scan", "--param", "astro_gamma=0.5:3:5"], "outside its prior's support"),
        (["scan", "--param", "astro_gamma=2:3:5", "--param", "astro_gamma=2:3:5"], "two different"),
        (["toys", "--n", "2", "--seed", "1", "--truth", "astro_gama=2"], "unknown parameter"),
        (["toys", "--n", "2", "--seed", "1", "--truth", "astro_gamma=x"], "is not a number"),
        (["sbc", "--n", "2", "--seed", "1", "--prior", "flat"], "must be proper"),
    ],
)
def test_bad_many_fit_options_are_one_line_errors(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_killed_ensemble_resumes_with_only_the_missing_experiments(tmp_path):
    """SIGKILL the whole command mid-run; the rerun keeps every stored experiment (not
    recomputed: the files are untouched) and computes the rest."""
    out = tmp_path / "toys"
    argv = [
        sys.executable,
        "-m",
        "diffuse_fit.cli",
        "toys",
        "--n",
        "150",
        "--seed",
        "4",
        "--workers",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    process = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    journal = journal_folder(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(journal.glob("*/toy-*.json"))) < 5:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stored = {p: p.stat().st_mtime_ns for p in journal.glob("*/toy-*.json")}
    assert 5 <= len(stored) < 150
    assert not out.exists()  # nothing half-written
    result = subprocess.run(argv[:-1], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{len(stored)} already done" in result.stdout
    assert f"{150 - len(stored)} to compute" in result.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in stored.items())
    ds = xr.load_dataset(out / "toys.nc", engine="h5netcdf")
    assert ds.sizes["toy"] == 150


def test_scan_with_say_minimum_is_the_say_map(tmp_path):
    """--likelihood reaches the many-fit commands: a SAY scan's best fit is map --likelihood say's."""
    assert (
        main(
            [
                "map",
                "--likelihood",
                "say",
                "--prior",
                "flat",
                "--out",
                str(tmp_path / "m"),
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "scan",
                "--likelihood",
                "say",
                "--param",
                "astro_gamma=2.6:3.8:4",
                "--workers",
                "1",
                "--out",
                str(tmp_path / "s"),
                "--quiet",
            ]
        )
        == 0
    )
    best = json.loads((tmp_path / "m" / "map.json").read_text())
    scan = json.loads((tmp_path / "s" / "scan.json").read_text())
    assert scan["provenance"]["likelihood"] == "say"
    assert scan["provenance"]["journal"].startswith(".s.journal/")  # no path of this machine
    assert scan["best_neg_log_likelihood"] == pytest.approx(best["neg_log_likelihood"], abs=1e-6)
    for name, value in scan["best"].items():
        assert value == pytest.approx(best[name], rel=1e-5)


def test_resampled_simulation_is_an_independent_per_event_sum(binned, inputs):
    """--resample-sim: the fit's tables are those of N events drawn without replacement
    from the simulation, weights scaled by n_total / N (checked by the workshop's
    per-event weighting of the same events)."""
    from diffuse_fit.binned import reference_fit
    from diffuse_fit.jobs.prepared import PreparedFit
    from diffuse_fit.jobs.toys import _resample_context, resampled_fitter

    prepared = PreparedFit.load(inputs, "flat", say=lambda *a: None)
    context = prepared.context({"test": 1}, **_resample_context(prepared, 10_000))
    fitter = resampled_fitter(context, 10_000, np.random.default_rng(3))
    sim = binned.simulation
    mask = np.zeros(len(sim), dtype=bool)
    mask[np.random.default_rng(3).choice(len(sim), size=10_000, replace=False)] = True
    truth = inputs.truth
    weights = reference_fit.weight_event(
        sim.select(mask), *(truth[n] for n in reference_fit.PARAMETERS)
    )
    expected = reference_fit.get_expectation(
        binned.sim_bin_index[mask], weights * len(sim) / 10_000, 400
    )
    np.testing.assert_allclose(fitter.expected(truth), expected, rtol=1e-9, atol=1e-12)
    assert abs(expected.sum() - prepared.profile.expected(truth).sum()) < 0.1 * expected.sum()


def test_resampled_toys_count_impossible_fits_as_not_covering(inputs, tmp_path):
    """With 3000 simulated events most pseudo-experiments see events in bins the resampled
    simulation leaves empty: those cannot be fitted and are counted, never hidden."""
    coverage = run_toys(
        inputs, "flat", tmp_path / "r", "", 6, 5, resample=3000, cluster=ONE, **QUIET
    )
    ds = xr.load_dataset(tmp_path / "r" / "toys.nc", engine="h5netcdf")
    impossible = ~ds["converged"].values
    assert coverage["n_not_converged"] == int(impossible.sum()) > 0
    assert np.all(np.isnan(ds["map"].values[impossible]))
    assert coverage["resample_simulation"] == 3000


def test_toys_run_on_an_existing_dask_cluster(inputs, toys_run, tmp_path):
    """--scheduler ADDRESS: the same pseudo-experiments on a cluster started elsewhere."""
    from dask.distributed import LocalCluster

    _, first = toys_run
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    ) as cluster:
        said = []
        run_toys(
            inputs,
            "flat",
            tmp_path / "remote",
            "",
            3,
            7,
            cluster=ClusterOptions(scheduler=cluster.scheduler_address),
            say=said.append,
            progressbar=False,
        )
    assert any(line.startswith(f"dask: scheduler {cluster.scheduler_address}") for line in said)
    here = xr.load_dataset(tmp_path / "remote" / "toys.nc", engine="h5netcdf")
    before = xr.load_dataset(first / "toys.nc", engine="h5netcdf")
    np.testing.assert_allclose(here["map"].values, before["map"].values[:3], rtol=1e-12)
