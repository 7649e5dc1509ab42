"""The many-fit figures build from small synthetic inputs and draw what they claim."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from scipy import stats

from diffuse_fit.report import many_plots as mp


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def quadratic_scan(n=61, failed=()):
    """2-D scan of ts = x^2 + y^2 (x = atmos_norm - 1, y = astro_gamma - 2.5)."""
    gx, gy = np.linspace(-3, 3, n) + 1.0, np.linspace(-3, 3, n) + 2.5
    ts = ((gx[:, None] - 1.0) ** 2 + (gy[None, :] - 2.5) ** 2).tolist()
    for i, j in failed:
        ts[i][j] = None
    return {
        "parameters": ["atmos_norm", "astro_gamma"],
        "grid": {"atmos_norm": gx.tolist(), "astro_gamma": gy.tolist()},
        "ts": ts,
        "best": {"atmos_norm": 1.0, "astro_gamma": 2.5, "astro_norm": 2.0},
        "profiled": {"astro_norm": []},
    }


def wilks_contours(fig):
    """level -> vertices of the unfilled (Wilks) contour lines of the scan axes."""
    out = {}
    for cs in fig.axes[0].collections:
        if (
            isinstance(cs, ContourSet)
            and not cs.filled
            and len(cs.levels)
            and cs.get_linewidth()[0] > 1.5
        ):
            for level, path in zip(cs.levels, cs.get_paths(), strict=True):
                out[float(level)] = path.vertices
    return out


def test_scan_2d_contours_at_wilks_radius():
    fig = mp.scan_figure(quadratic_scan())
    assert isinstance(fig, Figure)
    contours = wilks_contours(fig)
    for p in mp.LEVELS:
        level = stats.chi2.ppf(p, 2)
        (vertices,) = [v for lv, v in contours.items() if lv == pytest.approx(level)]
        radius = np.hypot(vertices[:, 0] - 1.0, vertices[:, 1] - 2.5)
        np.testing.assert_allclose(radius, np.sqrt(level), rtol=0.02)
    ax = fig.axes[0]
    assert ax.get_xlabel() == mp.LABELS["atmos_norm"]
    assert ax.get_ylabel() == mp.LABELS["astro_gamma"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "best fit" in labels and any("Wilks" in t for t in labels)
    assert "profiled" in fig.get_suptitle()


def test_scan_2d_with_failed_points_and_posterior(rng):
    scan = quadratic_scan(n=21, failed=[(3, 4), (10, 10), (20, 0)])
    scan["ts"][5][5] = float("nan")
    posterior = {
        "atmos_norm": rng.normal(1.2, 0.8, 4000),
        "astro_gamma": rng.normal(2.4, 0.9, 4000),
    }
    fig = mp.scan_figure(scan, posterior)
    ax = fig.axes[0]
    filled = [c for c in ax.collections if isinstance(c, ContourSet) and c.filled]
    assert filled, "posterior credible regions are drawn"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("profile likelihood (Wilks)") for t in labels)
    assert any(t.startswith("posterior credible") for t in labels)
    assert "failed points (4)" in labels
    assert len(wilks_contours(fig)) == 2
    # the view keeps the whole grid
    assert ax.get_xlim()[0] <= -2 and ax.get_xlim()[1] >= 4


def test_scan_2d_all_failed_does_not_fail():
    scan = quadratic_scan(n=5)
    scan["ts"] = [[None] * 5 for _ in range(5)]
    fig = mp.scan_figure(scan)
    assert wilks_contours(fig) == {}


def test_scan_1d(rng):
    grid = np.linspace(0.0, 4.0, 41)
    ts = ((grid - 2.0) / 0.5) ** 2
    ts_list = [None if i == 7 else float(v) for i, v in enumerate(ts)]
    ts_list[30] = float("nan")
    scan = {
        "parameters": ["astro_norm"],
        "grid": {"astro_norm": grid.tolist()},
        "ts": ts_list,
        "best": {"astro_norm": 2.0, "atmos_norm": 1.0},
        "profiled": {},
    }
    fig = mp.scan_figure(scan, {"astro_norm": rng.normal(2.0, 0.5, 5000)})
    ax = fig.axes[0]
    horizontal = sorted(
        line.get_ydata()[0]
        for line in ax.get_lines()
        if len(set(line.get_ydata())) == 1 and line.get_xdata()[0] == 0
    )
    np.testing.assert_allclose(horizontal, [1.0, 4.0], atol=1e-3)
    spans = [p for p in ax.patches]
    assert len(spans) == 2  # the 68.3% and 95.4% credible intervals
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "failed points (2)" in labels and "best fit" in labels


def test_scan_rejects_bad_shape():
    scan = quadratic_scan(n=5)
    scan["ts"] = scan["ts"][:4]
    with pytest.raises(ValueError, match="shape"):
        mp.scan_figure(scan)


def test_pull_figure(rng):
    pulls = {
        "atmos_norm": rng.normal(0, 1, 300),
        "astro_gamma": np.r_[rng.normal(0.5, 2, 200), [np.nan] * 3, np.inf],
    }
    pulls["astro_norm"] = np.full(5, np.nan)
    fig = mp.pull_figure(pulls)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3
    assert "0 non-finite dropped" in axes[0].get_title()
    assert "4 non-finite dropped" in axes[1].get_title()
    assert "5 non-finite dropped" in axes[2].get_title()
    for ax in axes[:2]:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "N(0, 1)" in labels and any("mean" in t and "sd" in t for t in labels)
        assert len(ax.patches) > 5  # histogram bars
    sd = float(axes[1].get_legend().get_texts()[1].get_text().rsplit("sd ", 1)[1])
    assert sd == pytest.approx(2, rel=0.15)


def test_binomial_interval_clopper_pearson():
    lower, upper = mp.binomial_interval([0, 5, 10], 10, 0.6827)
    assert lower[0] == 0 and upper[2] == 1
    assert lower[1] < 0.5 < upper[1]
    # Clopper-Pearson: the lower end is where P(X >= k) is the lower tail probability
    assert stats.binom.sf(4, 10, lower[1]) == pytest.approx((1 - 0.6827) / 2, rel=1e-6)


def test_coverage_figure():
    coverage = {
        "parameters": {
            "atmos_norm": {"hessian_68": 0.66, "profile_68": 0.69, "credible_68": 0.70},
            "astro_gamma": {"hessian_68": 0.55, "profile_68": 0.67, "credible_68": None},
            "astro_norm": {"hessian_68": 0.60, "profile_68": float("nan")},
        }
    }
    fig = mp.coverage_figure(coverage, n=200)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        mp.SHORT[n] for n in coverage["parameters"]
    ]
    assert 0.6827 in [
        line.get_ydata()[0] for line in ax.get_lines() if len(set(line.get_ydata())) == 1
    ]
    points = {c.get_label(): c for c in ax.containers}
    assert set(points) == {
        "Hessian (MAP $\\pm\\sigma$)",
        "profile likelihood (Wilks)",
        "posterior credible (central)",
    }
    assert len(points["Hessian (MAP $\\pm\\sigma$)"].lines[0].get_xdata()) == 3
    assert len(points["profile likelihood (Wilks)"].lines[0].get_xdata()) == 2
    assert len(points["posterior credible (central)"].lines[0].get_xdata()) == 1


def test_uniformity_p(rng):
    L = 99
    assert mp.uniformity_p(rng.integers(0, L + 1, 500), L) > 0.01
    assert mp.uniformity_p(np.zeros(200, dtype=int), L) < 1e-6
    assert mp.uniformity_p(np.r_[rng.integers(0, L + 1, 100), [np.nan]], L) > 0.01
    # few draws per fit: one bin per rank value, unequal cells impossible to get wrong
    assert mp.uniformity_p(rng.integers(0, 4, 400), 3) > 0.01
    with pytest.raises(ValueError):
        mp.uniformity_p(np.array([0, 5, 100]), 99)


def test_uniformity_p_calibrated(rng):
    """Under uniformity the p-values are roughly uniform (a few % below 0.05)."""
    p = np.array([mp.uniformity_p(rng.integers(0, 40, 150), 39) for _ in range(300)])
    assert 0.01 < np.mean(p < 0.05) < 0.10


def test_sbc_bands_size_and_coverage(rng):
    n, L = 100, 49
    z, lower, upper = mp.sbc_bands(n, L)
    assert z[0] == 0 and z[-1] == 1
    assert np.all(upper[1:-1] - lower[1:-1] > 0)
    # at the middle the half-width lies between the pointwise and a Bonferroni-ish 95% width
    mid = np.argmin(np.abs(z - 0.5))
    half = (upper[mid] - lower[mid]) / 2
    sigma = np.sqrt(z[mid] * (1 - z[mid]) / n)
    assert 1.96 * sigma < half < 3.5 * sigma
    # uniform ranks stay inside the simultaneous band about 95% of the time
    inside = []
    for _ in range(400):
        ecdf = mp.rank_ecdf(rng.integers(0, L + 1, n), L, z)
        inside.append(np.all((ecdf >= lower - 1e-12) & (ecdf <= upper + 1e-12)))
    assert 0.9 < np.mean(inside) <= 1.0


def test_rank_ecdf_at_boundaries():
    ranks = np.array([0, 0, 1, 3])
    z = np.array([0, 1, 2, 3, 4]) / 4
    np.testing.assert_allclose(mp.rank_ecdf(ranks, 3, z), [0, 0.5, 0.75, 0.75, 1.0])


def test_sbc_figure(rng):
    L = 99
    ranks = {
        "atmos_norm": rng.integers(0, L + 1, 120),
        "astro_gamma": np.r_[np.zeros(60), rng.integers(0, L + 1, 60)],
    }
    fig = mp.sbc_figure(ranks, L)
    assert len(fig.axes) == 4
    ecdf_ax, hist_ax, biased_ax, _ = fig.axes
    assert "uniformity p" in ecdf_ax.get_title()
    band = ecdf_ax.collections[0].get_paths()[0].vertices
    assert np.ptp(band[:, 1]) > 0
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == "ECDF: 95% simultaneous band if uniform"

    def outside(ax):
        return [line for line in ax.get_lines() if line.get_color() == "tab:red"]

    assert outside(biased_ax) and not outside(ecdf_ax)
    assert hist_ax.get_title() == "rank histogram"
