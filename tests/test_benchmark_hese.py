"""scripts/benchmark_hese.py's pure helpers (no timing is asserted).

The photospline stand-in (the script's ``PHOTOSPLINE_STANDIN``, run by the release's
``HESE_fit.py`` in the benchmark) is checked against scipy's ``NdBSpline`` built from the same
FITS file read here with astropy: values and first derivatives along every dimension at
random points inside a table's extents (and its corners), to 1e-12 relative.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "benchmark_hese.py"
SPLINES = Path(__file__).parents[2] / "shared" / "hese7" / "splines"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_hese", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmark_hese"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("benchmark_hese", None)


def test_format_table_marks_targets_met_by_the_median(bench):
    rows = [
        bench.row("`map`", [2.0, 4.0, 2.5], 3.0),  # median 2.5 <= 3
        bench.row("`sample`", [50.0, 70.0, 80.0], 60.0),  # median 70 > 60
        bench.row("release", [10.0]),
    ]
    assert rows[0]["min_s"] == 2.0 and rows[0]["median_s"] == 2.5
    assert bench.format_table(rows).splitlines() == [
        "| job | min s | median s | target s | met? |",
        "|---|---|---|---|---|",
        "| `map` | 2.00 | 2.50 | 3 | yes |",
        "| `sample` | 50.00 | 70.00 | 60 | **no** |",
        "| release | 10.00 | 10.00 | - | - |",
    ]


def test_parse_args_defaults_and_checks(bench):
    args = bench.parse_args(["--release", "/x"])
    assert (args.repeat, args.n, args.sample, args.cold) == (3, 20, False, False)
    assert args.release_code is None and args.release_modes == ["fixed", "free"]
    args = bench.parse_args(
        ["--release", "/x", "--release-code", "/c", "--release-python", "py", "--repeat", "2"]
    )
    assert args.release_repeat == 2 and args.release_modes == ["fixed", "free"]
    args = bench.parse_args(
        ["--release", "/x", "--release-code", "/c", "--release-python", "py"]
        + ["--release-modes", "free", "--release-repeat", "1", "--skip-ours"]
    )
    assert args.release_modes == ["free"] and args.release_repeat == 1 and args.skip_ours
    assert bench.parse_args(["--release", "/x"]).jobs == ["map", "toys"]
    assert bench.parse_args(["--release", "/x", "--jobs", "toys", "--sample"]).jobs == [
        "toys",
        "sample",
    ]
    for bad in (
        ["--release-code", "/c"],  # without --release-python
        ["--release-python", "py"],
        ["--n", "1"],
        ["--repeat", "0"],
        ["--release-code", "/c", "--release-python", "py", "--release-modes", "fixed,both"],
        ["--skip-ours"],
        ["--jobs", "map,scan"],
    ):
        with pytest.raises(SystemExit):
            bench.parse_args(["--release", "/x", *bad])


def test_truth_from_a_map_record_leaves_out_fixed_parameters(bench):
    record = {
        "parameter_order": ["astro_norm", "astro_gamma", "epsilon_dom"],
        "astro_norm": 4.5,
        "astro_gamma": 2.6055,
        "epsilon_dom": 0.99,
        "fixed": {"epsilon_dom": 0.99},
    }
    assert bench.truth_argument(record) == "astro_norm=4.5,astro_gamma=2.6055"
    record["fixed"] = {}
    assert bench.truth_argument(record).endswith(",epsilon_dom=0.99")


def test_per_experiment_and_fit_took(bench):
    assert bench.per_experiment(10.0, 30.0, 5) == pytest.approx(5.0)
    assert (
        bench.fit_took("Running fit\nFit took 61.597211837768555 seconds\n") == 61.597211837768555
    )
    assert bench.fit_took("no such line") is None


def test_write_json_atomic_leaves_only_the_file(bench, tmp_path):
    path = tmp_path / "sub" / "figures.json"
    bench.write_json_atomic(path, {"rows": [1, 2]})
    bench.write_json_atomic(path, {"rows": [3]})
    assert json.loads(path.read_text()) == {"rows": [3]}
    assert [p.name for p in path.parent.iterdir()] == ["figures.json"]


def test_release_workdir_links_code_data_and_splines(bench, tmp_path):
    code = tmp_path / "repo" / "HESE-7-year-data-release"
    code.mkdir(parents=True)
    for name in ("HESE_fit.py", "weighter.py"):
        (code / name).write_text(f"# {name}\n")
    release = tmp_path / "rel"
    release.mkdir()
    for name in bench.DATA_FILES:
        (release / name).write_text("{}")
    for name in bench.SPLINE_FOLDERS:
        (tmp_path / "splines" / name).mkdir(parents=True)
    (release / "resources").mkdir()
    (release / "resources" / "splines").symlink_to(tmp_path / "splines")
    work = bench.build_release_workdir(tmp_path / "repo", release, tmp_path / "work")
    assert (work / "HESE_fit.py").read_text() == "# HESE_fit.py\n"
    assert (work / "weighter.py").resolve() == (code / "weighter.py").resolve()
    for name in bench.DATA_FILES:
        assert (work / "resources" / "data" / name).resolve() == (release / name).resolve()
    assert (work / "resources" / "splines" / "DOMEffSplines").is_dir()
    with pytest.raises(SystemExit):
        bench.build_release_workdir(tmp_path / "rel", release, tmp_path / "work2")


@pytest.mark.skipif(not SPLINES.is_dir(), reason="../shared/hese7/splines not present")
@pytest.mark.parametrize(
    "table",
    [
        "HoleIceSplines/holeice_atmConv_doublebang.fits",  # (log10 E, log10 L, value)
        "AnisotropySplines/tauanisotropy_diffuseAstro_e_doublebang.fits",  # degrees (2, 1)
    ],
)
def test_photospline_standin_matches_ndbspline(bench, table):
    from astropy.io import fits
    from scipy.interpolate import NdBSpline

    path = SPLINES / table
    with fits.open(path, memmap=False) as hdus:
        coefficients = np.asarray(hdus[0].data, dtype=np.float64)
        ndim = coefficients.ndim
        degrees = tuple(int(hdus[0].header[f"ORDER{i}"]) for i in range(ndim))
        knots = tuple(np.asarray(hdus[f"KNOTS{i}"].data, dtype=np.float64) for i in range(ndim))
    reference = NdBSpline(knots, coefficients, degrees)
    extents = np.array(
        [(t[k], t[n]) for t, k, n in zip(knots, degrees, coefficients.shape, strict=True)]
    )

    spline = bench.load_photospline_standin().SplineTable(str(path))
    assert np.array_equal(np.array(spline.extents), extents)
    rng = np.random.default_rng(21)
    points = rng.uniform(extents[:, 0], extents[:, 1], size=(500, ndim))
    points[0], points[1] = extents[:, 0], extents[:, 1]  # the corners, on the outer knots
    for d in range(-1, ndim):  # -1: the value; d: the first derivative along dimension d
        nu = [0] * ndim
        bits = 0
        if d >= 0:
            nu[d], bits = 1, 1 << d
        ours = spline.evaluate_simple(points.T, bits)
        theirs = reference(points, nu=nu)
        scale = np.maximum(1.0, np.abs(theirs))
        assert np.max(np.abs(ours - theirs) / scale) < 1e-12, (table, d)
    one = spline.evaluate_simple(list(points[2]), 0)  # one point: a float
    assert isinstance(one, float) and one == pytest.approx(reference(points[2:3])[0], rel=1e-12)
    assert spline.evaluate_simple(np.zeros((ndim, 0)), 0).shape == (0,)
