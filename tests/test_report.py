"""Report figures and document, checked on their content."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer

from model.cli import main
from model.report import predictive as pp
from model.report.document import FIGURES, PPC_DRAWS, build_figures, load_run


@pytest.fixture(scope="module")
def built(sample_run, binned):
    map_result, summary, idata = load_run(sample_run)
    out = build_figures(map_result, summary, idata, binned)
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
    fig = out["figures"][f"spectrum_{axis}"]
    ax = fig.axes[0]
    assert ax.get_ylabel() == "Events per bin"
    if axis == "energy":
        assert "[GeV]" in ax.get_xlabel() and ax.get_xscale() == "log"
    observed = pp.project(binned.counts, binned.binning, axis)
    errorbars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(errorbars) == 1
    assert len(errorbars[0].lines[0].get_xdata()) == np.count_nonzero(observed)
    np.testing.assert_allclose(sorted(errorbars[0].lines[0].get_ydata()),
                               sorted(observed[observed > 0]))  # fmt: skip
    bands = out["bands"][axis]
    assert np.all(bands.band95[0] <= bands.band68[0]) and np.all(bands.band68[1] <= bands.band95[1])
    assert np.all(bands.band68[0] <= bands.mean) and np.all(bands.mean <= bands.band68[1])
    # the mean expectation is the sum of the component means
    np.testing.assert_allclose(bands.mean, sum(bands.components.values()), rtol=1e-10)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "atmospheric (posterior mean)" in labels and "expectation, 95% credible" in labels


def test_diagnostic_figures(built, sample_run):
    out, _, summary = built
    trace = out["figures"]["trace_rank"]
    assert len(trace.axes) == 6
    assert len(trace.axes[0].lines) == 2  # one trace per chain
    dev = out["figures"]["ppc_deviance"]
    points = [c for c in dev.axes[0].collections if isinstance(c, PathCollection)]
    assert len(points[0].get_offsets()) == min(PPC_DRAWS, 600)
    assert f"p = {out['ppc']['p_value']:.3f}" in dev.axes[0].get_title()
    assert 0.0 <= out["ppc"]["p_value"] <= 1.0


def test_report_command_writes_document(sample_run):
    assert main(["report", "--run", str(sample_run), "--quiet"]) == 0
    text = (sample_run / "report.md").read_text()
    for name in FIGURES:
        assert f"]({name}.png)" in text
        assert (sample_run / f"{name}.png").stat().st_size > 10_000
        assert (sample_run / f"{name}.pdf").exists()
    for section in ("## Data set", "## Priors", "## MAP", "## Posterior", "Diagnostics:"):
        assert section in text
    summary = json.loads((sample_run / "summary.json").read_text())
    assert f"{summary['parameters']['astro_gamma']['mean']:.4g}" in text


def test_report_refuses_other_data(sample_run, tmp_path, capsys, toy_dataset):
    from model.io.workshop_format import write_workshop_file

    other = toy_dataset.data.select(np.arange(len(toy_dataset.data)) > 0)
    write_workshop_file(tmp_path / "d.json", other)
    write_workshop_file(tmp_path / "s.json", toy_dataset.simulation)
    code = main(["report", "--run", str(sample_run), "--data", str(tmp_path / "d.json"),
                 "--sim", str(tmp_path / "s.json")])  # fmt: skip
    assert code == 2 and "differs from the data" in capsys.readouterr().err
