"""Parameters held fixed (issue 20: ``--fix NAME=VALUE`` on every command, ``fix`` in a
specification).  Reference: SciPy's maximum of the workshop's per-event Poisson likelihood
over the parameters left free."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import scipy.optimize
import xarray as xr
from scipy.special import gammaln

import diffuse_fit as df
from diffuse_fit.binned.binning import Binning
from diffuse_fit.cli import main
from diffuse_fit.io.analysis import from_dict
from diffuse_fit.physics import toy

GAMMA = 2.5


def _run(tmp_path, command, *argv) -> dict:
    out = tmp_path / f"{command}{len(list(tmp_path.iterdir()))}"
    assert main([command, *argv, "--out", str(out), "--quiet"]) == 0
    return {"out": out, **json.loads((out / "map.json").read_text())}


def _scipy_fixed_gamma():
    ds = toy.generate()
    b = Binning()
    k = b.histogram(b.bin_index(ds.data["energy"], ds.data["zenith"], ds.data["topology"]))
    sim = ds.simulation
    index = b.bin_index(sim["energy"], sim["zenith"], sim["topology"])
    keep = index >= 0
    atmo, astro = np.asarray(sim["atmoWeight"])[keep], np.asarray(sim["astroWeight"])[keep]
    tilt = (np.asarray(sim["primaryEnergy"])[keep] / 1e5) ** (-(GAMMA - 2.5))

    def nll(x):
        mu = np.bincount(index[keep], weights=x[0] * atmo + x[1] * astro * tilt, minlength=b.n_bins)
        live = mu > 0
        return -np.sum(k[live] * np.log(mu[live]) - mu[live] - gammaln(k[live] + 1.0))

    return scipy.optimize.minimize(
        nll,
        [1.0, 6.0],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000},
    )


def test_fixed_index_map_equals_scipy_and_is_recorded(tmp_path):
    """--fix astro_gamma=2.5 (flat priors): the MAP of the two norms equals SciPy's (1e-6);
    the run records the value, and its specification gives it back."""
    fit = _run(tmp_path, "map", "--prior", "flat", "--fix", f"astro_gamma={GAMMA}")
    best = _scipy_fixed_gamma()
    np.testing.assert_allclose([fit["atmos_norm"], fit["astro_norm"]], best.x, rtol=1e-6)
    assert fit["neg_log_likelihood"] == pytest.approx(best.fun, abs=1e-7)
    assert fit["parameter_order"] == ["atmos_norm", "astro_norm"]
    assert fit["fixed"] == {"astro_gamma": GAMMA}
    assert fit["reference_fit"] is None  # the workshop's fit frees all three
    spec = from_dict(fit["provenance"]["analysis"])
    assert spec.fix == {"astro_gamma": GAMMA}
    # the same analysis from a specification file
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec.to_dict()))
    again = _run(tmp_path, "map", "--analysis", str(path))
    for name in ("atmos_norm", "astro_norm", "neg_log_likelihood"):
        assert again[name] == fit[name]


def test_fixed_parameter_is_a_constant_of_the_pymc_model():
    """build_model of tables with a fixed index: no astro_gamma variable; the PyMC path of
    the MAP (a model with a potential) equals the NumPy path."""
    import pymc as pm

    binned = df.bin_inputs(df.load_inputs())
    fixed = replace(binned.templates, fixed={"astro_gamma": GAMMA})
    binned = replace(binned, templates=fixed)
    from diffuse_fit.inference.priors import resolve_priors
    from diffuse_fit.inference.pymc_model import build_model

    priors = resolve_priors("flat", {"atmos_norm": (0.0, np.inf), "astro_norm": (0.0, np.inf)})
    m = build_model(binned, priors)
    assert [rv.name for rv in m.free_RVs] == ["atmos_norm", "astro_norm"]
    fast = df.fit_map(m)
    with m:
        pm.Potential("nothing", pm.math.constant(0.0))
    slow = df.fit_map(m)
    assert (fast.path, slow.path) == ("numpy", "pymc")
    best = _scipy_fixed_gamma()
    for result in (fast, slow):
        np.testing.assert_allclose(
            [result.values["atmos_norm"], result.values["astro_norm"]], best.x, rtol=1e-5
        )


def test_sample_with_a_fixed_parameter_reports(tmp_path):
    """sample --fix: the posterior has only the free parameters, the report draws the flux
    with the fixed index, and the saved record (read again by ``report``) keeps it."""
    out = tmp_path / "run"
    assert (
        main(
            [
                "sample",
                "--fix",
                f"astro_gamma={GAMMA}",
                "--draws",
                "200",
                "--tune",
                "200",
                "--chains",
                "2",
                "--report",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    tree = xr.open_datatree(out / "posterior.nc")
    assert "astro_gamma" not in tree.posterior.data_vars
    assert {"atmos_norm", "astro_norm"} <= set(tree.posterior.data_vars)
    assert "fixed at 2.5" in (out / "report.md").read_text()
    assert main(["report", "--run", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["fixed"] == {"astro_gamma": GAMMA}


@pytest.mark.parametrize(
    ("fix", "message"),
    [
        ("gamma=2", "--fix: unknown parameter 'gamma'"),
        ("astro_gamma=7", "outside the allowed range [1, 4]"),
        ("astro_gamma=2,astro_norm=3,atmos_norm=1", "every parameter is fixed"),
        ("astro_gamma", "is not NAME=VALUE"),
    ],
)
def test_bad_fix_is_one_line(tmp_path, capsys, fix, message):
    assert main(["map", "--fix", fix, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
