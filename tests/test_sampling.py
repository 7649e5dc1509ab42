"""NUTS: recovers an Asimov truth; runs through the CLI write readable, complete files."""

import json
import signal
import threading
import time

import arviz as az
import numpy as np
import pytest

from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.cli import main
from diffuse_fit.errors import RunInterrupted
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import build_model, parameter_supports, set_counts
from diffuse_fit.inference.sampling import sample, summary_table
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.io.run_folder import read_run
from diffuse_fit.jobs import runs

NAMES = ["atmos_norm", "astro_norm", "astro_gamma"]


@pytest.mark.slow
def test_nuts_recovers_asimov_truth(binned):
    truth = {"atmos_norm": 1.0, "astro_norm": 6.7, "astro_gamma": 3.0}
    model = build_model(binned, resolve_priors("flat", parameter_supports(binned.components)))
    set_counts(model, expected_counts(binned.templates, truth))
    idata = sample(model, SamplerSettings(draws=500, tune=500, chains=2, seed=3), progressbar=False)
    table = summary_table(idata, NAMES)
    for name, value in truth.items():
        assert table.loc[name, "hdi94_lb"] < value < table.loc[name, "hdi94_ub"], table
    assert table["r_hat"].max() < 1.05
    # rerun with the same seed: bit-identical
    again = sample(model, SamplerSettings(draws=500, tune=500, chains=2, seed=3), progressbar=False)
    np.testing.assert_array_equal(idata.posterior["astro_gamma"], again.posterior["astro_gamma"])


@pytest.mark.slow
def test_sample_writes_readable_posterior(sample_run):
    idata = az.from_netcdf(sample_run / "posterior.nc")
    for name in NAMES:
        assert idata.posterior[name].shape == (2, 300)
    assert idata.attrs["diffuse_fit_seed"] == 5
    record = idata["constant_data"]  # what the report needs: counts, binning, tables
    assert record.attrs["diffuse_fit_record_version"] == 1
    assert {"counts", "atmospheric__per_bin", "astrophysical__log_coeffs"} <= set(record.data_vars)
    assert read_run(sample_run).kind == "sample"  # manifest and hashes verified


@pytest.mark.slow
def test_sample_summary_json(sample_run):
    summary = json.loads((sample_run / "summary.json").read_text())
    assert summary["format"] == "diffuse-fit-run" and summary["format_version"] == 1
    for name in NAMES:
        entry = summary["parameters"][name]
        assert set(entry) >= {"mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk"}
        assert entry["hdi_3%"] < entry["mean"] < entry["hdi_97%"]
    posterior = az.from_netcdf(sample_run / "posterior.nc").posterior
    assert summary["parameters"]["astro_gamma"]["mean"] == pytest.approx(
        float(posterior["astro_gamma"].mean()), rel=1e-12
    )
    assert summary["divergences"] == int(
        az.from_netcdf(sample_run / "posterior.nc").sample_stats["diverging"].sum()
    )
    prov = summary["provenance"]
    assert prov["sampler"]["seed"] == 5 and prov["versions"]["pymc"]
    assert len(prov["data"]["sha256"]) == 64 and prov["truth"]["astro_gamma"] == 3.0
    assert {"loaded_from", "columns_sha256", "clamped"} <= set(prov["simulation"])
    assert prov["parameters"] == NAMES and prov["component_definitions"][1]["index_range"]
    assert (sample_run / "summary.txt").read_text().count("astro_gamma") == 1
    header = (sample_run / "summary.txt").read_text().splitlines()[0].split()
    assert {"hdi_3%", "hdi_97%"} <= set(header)  # the names summary.json uses
    assert summary["units"]["astro_norm"] == "1e-18 GeV^-1 cm^-2 s^-1 sr^-1"
    assert summary["parameters"]["astro_gamma"]["unit"] == "1"


def test_map_cli_writes_contract_keys(tmp_path, binned):
    assert main(["map", "--prior", "flat", "--out", str(tmp_path), "--quiet"]) == 0
    result = json.loads((tmp_path / "map.json").read_text())
    for key in [*NAMES, "neg_log_likelihood", "covariance"]:
        assert key in result
    assert np.array(result["covariance"]).shape == (3, 3)
    assert result["astro_gamma"] == pytest.approx(result["reference_fit"]["astro_gamma"], rel=1e-4)
    assert result["format"] == "diffuse-fit-run" and result["format_version"] == 1
    assert read_run(tmp_path).kind == "map"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.json", "run.json"]
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.*"))  # no staging left


def test_map_cli_on_files_equals_embedded(tmp_path, toy_dataset):
    from diffuse_fit.io.workshop_format import write_workshop_file

    write_workshop_file(tmp_path / "d.json", toy_dataset.data)
    write_workshop_file(tmp_path / "s.json", toy_dataset.simulation)
    args = [
        "map",
        "--data",
        str(tmp_path / "d.json"),
        "--sim",
        str(tmp_path / "s.json"),
        "--no-cache",
        "--quiet",
        "--out",
    ]
    assert main([*args, str(tmp_path / "files")]) == 0
    assert main(["map", "--quiet", "--out", str(tmp_path / "toy")]) == 0
    a = json.loads((tmp_path / "files" / "map.json").read_text())
    b = json.loads((tmp_path / "toy" / "map.json").read_text())
    assert a["astro_norm"] == pytest.approx(b["astro_norm"], rel=1e-9)


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (lambda d: ["--data", str(d / "bad.json"), "--sim", str(d / "bad.json")], "bad.json"),
        (lambda d: ["--data", str(d / "x.json")], "without --sim"),
        (lambda d: ["--prior", str(d / "nope.json")], "neither a prior set"),
    ],
)
def test_cli_bad_input_is_one_line_error(tmp_path, capsys, make_args, expected):
    (tmp_path / "bad.json").write_text('{"mapping": {"energy": 0}, "events": [[-1.0]]}')
    code = main(["map", *make_args(tmp_path), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and expected in err and err.startswith("diffuse-fit: error:")
    assert not (tmp_path / "o" / "map.json").exists()


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def previous_run(tmp_path, toy_dataset):
    """A run folder holding a MAP run, and the inputs to run again."""
    from diffuse_fit.jobs.inputs import load_inputs

    inputs = load_inputs()
    out = tmp_path / "run"
    runs.run_map(inputs, "flat", out, say=lambda *a: None)
    return inputs, out, _snapshot(out)


@pytest.mark.slow
# A SIGINT that lands while a finalizer runs (numba's, during compilation) is reported by
# Python as "Exception ignored" and recorded by the run's handler; pytest would turn that
# report into an error, though the run then stops as it should.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_during_sampling_keeps_previous_run(previous_run, monkeypatch, request):
    """SIGINT while NUTS runs (nutpie swallows the KeyboardInterrupt and returns partial
    draws): the run stops promptly, raises RunInterrupted, writes nothing.  Ctrl-C is
    pressed every 0.5 s until the run ends (one that lands while numba compiles may be
    swallowed there: the next one, during sampling, must stop it)."""
    inputs, out, before = previous_run
    real_sample, sent = runs.sample, []

    def sample_while_interrupting(*args, **kwargs):
        stop = threading.Event()

        def interrupt():
            while not stop.wait(0.5):
                sent.append(time.perf_counter())
                signal.raise_signal(signal.SIGINT)

        threading.Thread(target=interrupt, daemon=True).start()
        try:
            return real_sample(*args, **kwargs)
        finally:
            stop.set()

    monkeypatch.setattr(runs, "sample", sample_while_interrupting)
    # Ctrl-C as at a terminal, whatever this process inherited (a shell that starts pytest
    # in the background hands it SIGINT ignored, which a run leaves ignored)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, inherited))
    # 2 x 5e6 draws take minutes here: far longer than an interrupted run (compilation
    # included, even with cold caches)
    settings = runs.SamplerSettings(draws=5_000_000, tune=1000, chains=2, seed=1)
    t0 = time.perf_counter()
    with pytest.raises(RunInterrupted, match="nothing was written"):
        runs.run_sample(inputs, "flat", out, settings, progressbar=False, say=lambda *a: None)
    assert sent and time.perf_counter() - t0 < 60
    assert _snapshot(out) == before and read_run(out).kind == "map"
    assert not list(out.parent.glob(".run.*"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


@pytest.mark.slow
@pytest.mark.parametrize("how", ["swallowed", "short"])
def test_interrupt_swallowed_by_sampler_is_detected(previous_run, monkeypatch, how):
    """Samplers catch KeyboardInterrupt and return what they have (nutpie, PyMC): a SIGINT
    they swallowed, or fewer draws than asked, is an interrupted run: nothing is written."""
    inputs, out, before = previous_run
    real_sample = runs.sample

    def like_nutpie(model, settings, progressbar=True):
        draws = settings.draws if how == "swallowed" else settings.draws // 2
        idata = real_sample(model, runs.SamplerSettings(draws=draws, tune=20, chains=1), False)
        if how == "swallowed":
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass  # what nutpie.sample does: abort and return the partial trace
        return idata

    monkeypatch.setattr(runs, "sample", like_nutpie)
    settings = runs.SamplerSettings(draws=40, tune=20, chains=1)
    with pytest.raises(RunInterrupted):
        runs.run_sample(inputs, "flat", out, settings, progressbar=False, say=lambda *a: None)
    assert _snapshot(out) == before


@pytest.mark.slow
def test_sample_with_report_is_one_run(previous_run):
    inputs, out, _ = previous_run
    settings = runs.SamplerSettings(draws=100, tune=100, chains=2, seed=2)
    runs.run_sample(
        inputs, "flat", out, settings, progressbar=False, say=lambda *a: None, report=True
    )
    run = read_run(out)
    assert {"report.md", "rank.png", "corner.pdf", "ppc.json", "posterior.nc"} <= set(run.contents)
    assert "## Posterior" in run.contents["report.md"].decode()
