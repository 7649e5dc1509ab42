"""Report figures and document, checked on their content."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer

from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.run_folder import read_run, write_run
from diffuse_fit.jobs.report_job import read_posterior, run_report
from diffuse_fit.report import predictive as pp
from diffuse_fit.report.document import PPC_DRAWS, build_figures


@pytest.fixture(scope="module")
def built(sample_run):
    run = read_run(sample_run)
    map_result, summary = run.json("map.json"), run.json("summary.json")
    idata, record = read_posterior(run)
    out = build_figures(map_result, summary, idata, record)
    yield out, map_result, summary
    for fig in out["figures"].values():
        plt.close(fig)


def test_poisson_interval_defining_property():
    """Garwood: P(X >= k | lower) = P(X <= k | upper) = (1 - cl) / 2."""
    from scipy.stats import poisson

    k = np.array([1, 2, 10, 50])
    lower, upper = pp.poisson_interval(k)
    tail = (1 - 0.6827) / 2
    np.testing.assert_allclose(poisson.sf(k - 1, lower), tail, rtol=1e-6)
    np.testing.assert_allclose(poisson.cdf(k, upper), tail, rtol=1e-6)
    low0, up0 = pp.poisson_interval([0])
    assert low0[0] == 0.0 and poisson.cdf(0, up0[0]) == pytest.approx(tail, rel=1e-6)


def test_projection_and_deviance(binned, rng):
    per_bin = rng.uniform(0, 2, (3, binned.binning.n_bins))
    for axis, n in zip(("topology", "zenith", "energy"), binned.binning.shape, strict=True):
        projected = pp.project(per_bin, binned.binning, axis)
        assert projected.shape == (3, n)
        np.testing.assert_allclose(projected.sum(axis=1), per_bin.sum(axis=1))
    assert pp.deviance([1.0, 0.0, 3.0], [1.0, 0.0, 3.0]) == 0.0
    assert pp.deviance([2.0, 0.0], [1.0, 0.5]) > 0.0


def test_corner_plot_content(built):
    out, map_result, summary = built
    fig = out["figures"]["corner"]
    axes = fig.axes
    assert len(axes) == 9
    assert "N_\\mathrm{atmos}" in axes[6].get_xlabel() and "GeV" in axes[7].get_xlabel()
    # 2-D panels below the diagonal carry filled 68%/95% contours
    for i in (3, 6, 7):
        assert len(axes[i].collections) >= 1
    # MAP, workshop fit and truth are marked in the (atmos, gamma) panel
    markers = {line.get_marker() for line in axes[6].lines}
    assert {"s", "x", "*"} <= markers
    map_line = next(line for line in axes[6].lines if line.get_marker() == "s")
    assert map_line.get_xdata()[0] == pytest.approx(map_result["atmos_norm"])
    assert map_line.get_ydata()[0] == pytest.approx(map_result["astro_gamma"])


@pytest.mark.parametrize("axis", ["energy", "zenith", "topology"])
def test_spectrum_plots(built, binned, axis):
    out, _, _ = built
    fig = out["figures"][f"events_{axis}"]
    ax = fig.axes[0]
    assert ax.get_ylabel() == "Events per bin"
    if axis == "energy":
        assert "[GeV]" in fig.axes[1].get_xlabel() and ax.get_xscale() == "log"
    observed = pp.project(binned.counts, binned.binning, axis)
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(errorbars) == 1
    assert len(errorbars[0].lines[0].get_xdata()) == np.count_nonzero(observed)
    np.testing.assert_allclose(
        sorted(errorbars[0].lines[0].get_ydata()), sorted(observed[observed > 0])
    )
    bands = out["bands"][axis]
    assert np.all(bands.band95[0] <= bands.band68[0]) and np.all(bands.band68[1] <= bands.band95[1])
    assert np.all(bands.band68[0] <= bands.mean) and np.all(bands.mean <= bands.band68[1])
    # the mean expectation is the sum of the component means
    np.testing.assert_allclose(bands.mean, sum(bands.components.values()), rtol=1e-10)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "atmospheric (posterior mean)" in labels and "expectation, 95% credible" in labels
    # empty bins: a 68% upper-limit marker each (Poisson upper end for k = 0)
    limits = [line for line in ax.lines if line.get_marker() == "v"]
    n_empty = int(np.sum(observed == 0))
    assert len(limits[0].get_xdata()) == n_empty if n_empty else not limits
    if n_empty:
        np.testing.assert_allclose(limits[0].get_ydata(), pp.poisson_interval(0.0)[1])
    # the ratio panel: data / posterior mean expectation, around 1
    ratio = fig.axes[1]
    assert ratio.get_ylabel() == "data / expectation"
    points = [c for c in ratio.containers if isinstance(c, ErrorbarContainer)][0].lines[0]
    shown = (observed > 0) & (bands.mean > 0)
    order = slice(None, None, -1) if axis == "zenith" else slice(None)
    expected = (observed / np.where(bands.mean > 0, bands.mean, np.nan))[order][shown[order]]
    np.testing.assert_allclose(points.get_ydata(), expected, rtol=1e-12)


def test_diagnostic_figures(built):
    out, _, summary = built
    trace = out["figures"]["trace"]
    assert len(trace.axes) == 3
    assert all(len(ax.lines) == 2 for ax in trace.axes)  # one trace per chain
    rank = out["figures"]["rank"]
    assert len(rank.axes) == 3
    legend = [t.get_text() for t in rank.axes[0].get_legend().get_texts()]
    assert legend == ["chain 0", "chain 1"]  # a legend names the chains
    colours = [line.get_color() for line in rank.axes[0].get_legend().get_lines()]
    assert colours == [line.get_color() for line in rank.axes[0].lines[:2]]
    for ax in rank.axes:
        assert len(ax.lines) == 2  # one rank ECDF per chain
        band = ax.collections[0].get_paths()[0].vertices[:, 1]  # the simultaneous band
        assert 0.01 < band.max() < 0.5 and -0.5 < band.min() < -0.01
    dev = out["figures"]["ppc_deviance"]
    points = [c for c in dev.axes[0].collections if isinstance(c, PathCollection)]
    assert len(points[0].get_offsets()) == min(PPC_DRAWS, 600)
    assert f"p = {out['ppc']['p_value']:.3f}" in dev.axes[0].get_title()
    assert 0.0 <= out["ppc"]["p_value"] <= 1.0


def test_fit_record_reproduces_tables(sample_run, binned):
    """The record stored with the posterior gives the same expectations as the inputs' tables."""
    _, record = read_posterior(read_run(sample_run))
    np.testing.assert_array_equal(record.counts, binned.counts)
    variables, attrs = pp.record_variables(binned.counts, binned.templates)
    again = pp.record_from_variables({k: v[1] for k, v in variables.items()}, attrs, "<test>")
    for gamma in (1.0, 2.2, 3.7, 4.0):
        point = {"atmos_norm": 0.7, "astro_norm": 5.0, "astro_gamma": gamma}
        theirs = binned.templates.component_counts(point)
        exact = again.templates.component_counts(point)  # in memory: bit for bit
        stored = record.templates.component_counts(point)  # the run's own tables
        for name in theirs:
            np.testing.assert_array_equal(exact[name], theirs[name])
            np.testing.assert_allclose(stored[name], theirs[name], rtol=1e-12)


@pytest.fixture(scope="module")
def reported(sample_run, tmp_path_factory):
    """The report of a copy of the sample run, made with the inputs unavailable."""
    import shutil

    run = tmp_path_factory.mktemp("reported") / "run"
    shutil.copytree(sample_run, run)
    with pytest.MonkeyPatch.context() as mp:  # the report must not read the inputs
        from diffuse_fit.jobs import inputs
        from diffuse_fit.physics import toy

        def refuse(*args, **kwargs):
            raise AssertionError("the report reloaded the inputs")

        mp.setattr(inputs, "load_inputs", refuse)
        mp.setattr(toy, "generate", refuse)
        path = run_report(run, say=lambda *a: None)
    assert path == run / "report.md"
    return run


def test_report_writes_document(reported):
    text = (reported / "report.md").read_text()
    figures = [
        line[line.index("](") + 2 : -5] for line in text.splitlines() if line.startswith("![")
    ]
    assert set(figures) == {
        "corner",
        "flux",
        "events_energy",
        "events_zenith",
        "events_topology",
        "trace",
        "rank",
        "ppc_deviance",
    }
    run = read_run(reported)  # the report is part of the run: listed and verified
    for name in figures:
        assert len(run.contents[f"{name}.png"]) > 10_000 and f"{name}.pdf" in run.contents
    for section in ("## Data set", "## Priors", "## MAP", "## Posterior", "Diagnostics:"):
        assert section in text
    summary = run.json("summary.json")
    assert f"{summary['parameters']['astro_gamma']['mean']:.4g}" in text
    assert "120 inside the 400 bins" in text
    assert run.json("ppc.json")["draws"] == PPC_DRAWS


def test_report_again_replaces_report(reported):
    before = read_run(reported)
    run_report(reported, say=lambda *a: None)
    after = read_run(reported)
    assert set(after.contents) == set(before.contents)
    for name in ("map.json", "summary.json", "posterior.nc", "summary.txt", "report.md"):
        assert after.contents[name] == before.contents[name]


def test_report_of_damaged_posterior_is_one_line_error(sample_run, tmp_path):
    good = read_run(sample_run)
    for label, data in (
        ("truncated", good.contents["posterior.nc"][:5000]),
        ("garbage", b"not a netcdf file" * 10),
    ):
        out = tmp_path / label
        with write_run(out, "sample") as stage:  # a consistent manifest around a bad file
            for name in ("map.json", "summary.json", "summary.txt"):
                stage.write_bytes(name, good.contents[name])
            stage.write_bytes("posterior.nc", data)
        with pytest.raises(
            DataFormatError, match="posterior.nc': is not a readable posterior"
        ) as e:
            run_report(out, say=lambda *a: None)
        assert "\n" not in str(e.value)
    (tmp_path / "truncated" / "map.json").write_text("{}")  # changed after the run
    with pytest.raises(DataFormatError, match="differs from the run's manifest"):
        run_report(tmp_path / "truncated")


def test_corner_keeps_a_far_truth_in_view(built):
    """A truth far out in a tail widens its panel's range (it is drawn, not clipped)."""
    from diffuse_fit.report.plots import _corner_ranges

    samples = np.random.default_rng(1).normal(3.0, 0.1, (2000, 1))
    ((lo, hi),) = _corner_ranges(samples, ["astro_gamma"], {"truth": {"astro_gamma": 2.0}})
    assert lo < 2.0 < hi and hi > 3.3
    ((lo, hi),) = _corner_ranges(samples, ["astro_gamma"], {"truth": None})
    assert lo > 2.5


def test_flux_figure_of_the_runs_model(built):
    out, _, summary = built
    ax = out["figures"]["flux"].axes[0]
    assert ax.get_xscale() == "log" and "E² dΦ/dE" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["single power law"]


def test_importing_the_report_keeps_the_callers_backend():
    """No backend switch at import (issue 23): a notebook's backend stays its own."""
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg'); import diffuse_fit.report.plots, "
        "diffuse_fit.report.many_plots, diffuse_fit.report.spectrum, "
        "diffuse_fit.report.figures, diffuse_fit.report.document; "
        "print(matplotlib.get_backend())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "svg"
