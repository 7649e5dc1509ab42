"""The analysis specification (issue 20, item 1): a file describes the analysis, every fitting
command takes it, every run records it and gives it back; bad files are one line naming the
key path and value.  References: the command without a specification (the same analysis by
options), the committed ``results/default``, and an independent SciPy fit of the workshop's
per-event likelihood in the file's own bins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import gammaln

from diffuse_fit.cli import main
from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.analysis import AnalysisSpec, from_dict, json_schema, read_analysis
from diffuse_fit.physics import toy

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
PARAMETERS = ("atmos_norm", "astro_norm", "astro_gamma")


def _map(tmp_path, *argv) -> dict:
    out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    assert main(["map", *argv, "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "map.json").read_text()) | {"_out": out}


def test_default_specification_is_the_default_analysis(tmp_path):
    """(c) examples/default.toml is today's defaults: the same MAP as no options, and as the
    committed results/default (1e-9)."""
    with_file = _map(tmp_path, "--analysis", str(EXAMPLES / "default.toml"))
    without = _map(tmp_path)
    committed = json.loads((ROOT / "results/default/map.json").read_text())
    for name in (*PARAMETERS, "neg_log_likelihood"):
        assert with_file[name] == without[name]
        assert with_file[name] == pytest.approx(committed[name], rel=1e-9)


def _binned_by_hand(events, energy_edges, cos_edges, codes):
    """Flat bin index of each event by np.digitize on cos(zenith) (independent of Binning)."""
    e = np.digitize(events["energy"], energy_edges) - 1
    c = np.digitize(np.cos(events["zenith"]), cos_edges) - 1
    c = np.where(np.cos(events["zenith"]) == cos_edges[-1], len(cos_edges) - 2, c)
    e = np.where(events["energy"] == energy_edges[-1], len(energy_edges) - 2, e)
    t = np.full(len(e), -1)
    for i, code in enumerate(codes):
        t[events["topology"] == code] = i
    n_e, n_c = len(energy_edges) - 1, len(cos_edges) - 1
    inside = (e >= 0) & (e < n_e) & (c >= 0) & (c < n_c) & (t >= 0)
    # zenith increases as cos decreases: the zenith bin of cos bin c is n_c - 1 - c
    return np.where(inside, (t * n_c + (n_c - 1 - c)) * n_e + e, -1), len(codes) * n_c * n_e


def test_own_binning_equals_an_independent_scipy_fit(tmp_path):
    """Coarse bins from a file: the MAP (flat priors) equals SciPy's maximum of the workshop's
    per-event Poisson likelihood binned by hand in the same bins (1e-5)."""
    spec = read_analysis(EXAMPLES / "coarse_binning.toml")
    b = spec.samples[0].binning
    fit = _map(tmp_path, "--analysis", str(EXAMPLES / "coarse_binning.toml"))
    ds = toy.generate()
    data_bin, n = _binned_by_hand(ds.data, b.energy_edges_GeV, b.cos_zenith_edges, b.topology_codes)
    sim_bin, _ = _binned_by_hand(
        ds.simulation, b.energy_edges_GeV, b.cos_zenith_edges, b.topology_codes
    )
    k = np.bincount(data_bin[data_bin >= 0], minlength=n).astype(float)
    sim = ds.simulation
    keep = sim_bin >= 0
    atmo, astro = np.asarray(sim["atmoWeight"])[keep], np.asarray(sim["astroWeight"])[keep]
    energy, index = np.asarray(sim["primaryEnergy"])[keep], sim_bin[keep]

    def nll(x):
        a, norm, gamma = x
        w = a * atmo + norm * astro * (energy / 1e5) ** (-(gamma - 2.5))
        mu = np.bincount(index, weights=w, minlength=n)
        live = mu > 0
        return -np.sum(k[live] * np.log(mu[live]) - mu[live] - gammaln(k[live] + 1.0))

    best = scipy.optimize.minimize(
        nll,
        [1.0, 6.0, 2.5],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000},
    )
    np.testing.assert_allclose([fit[p] for p in PARAMETERS], best.x, rtol=1e-5)
    assert fit["neg_log_likelihood"] == pytest.approx(best.fun, abs=1e-6)
    assert fit["provenance"]["binning"]["energy_edges_GeV"] == b.energy_edges_GeV


def test_a_run_gives_its_specification_back(tmp_path):
    fit = _map(tmp_path, "--analysis", str(EXAMPLES / "coarse_binning.toml"))
    written = tmp_path / "spec.json"
    assert main(["spec", "--from-run", str(fit["_out"]), "--out", str(written), "--quiet"]) == 0
    assert from_dict(json.loads(written.read_text())) == read_analysis(
        EXAMPLES / "coarse_binning.toml"
    )
    again = _map(tmp_path, "--analysis", str(written))
    for name in (*PARAMETERS, "neg_log_likelihood"):
        assert again[name] == fit[name]
    # a run made with options records them as a specification too
    plain = _map(tmp_path, "--prior", "flat", "--astro-model", "spl")
    spec = from_dict(plain["provenance"]["analysis"])
    assert spec.priors == "flat" and spec.samples[0].inputs.toy == "default"


def test_published_schema_is_the_specifications(capsys):
    published = json.loads((ROOT / "schemas/analysis-v1.schema.json").read_text())
    assert published == json_schema()
    assert main(["spec", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out) == published


BAD = [
    ({"format_version": 2}, "format_version"),
    ({"samples": []}, "samples"),
    ({"samples": [{"colour": "red"}]}, "samples.0.colour"),
    (
        {"samples": [{"binning": {"energy_edges_GeV": [1e5, 6e4]}}]},
        "samples.0.binning.energy_edges_GeV: energy edges must be strictly increasing",
    ),
    (
        {"samples": [{"binning": {"cos_zenith_edges": [-2, 0, 1]}}]},
        "samples.0.binning.cos_zenith_edges",
    ),
    ({"samples": [{"likelihood": "gauss"}]}, "samples.0.likelihood"),
    ({"samples": [{"inputs": {"data": "d.json"}}]}, "samples.0.inputs"),
    ({"samples": [{"name": "a"}, {"name": "a"}]}, "samples: Value error, sample names"),
]


@pytest.mark.parametrize(("content", "where"), BAD)
def test_bad_specifications_are_one_line_naming_the_key(tmp_path, capsys, content, where):
    path = tmp_path / "analysis.json"
    path.write_text(json.dumps({"format": "diffuse-fit-analysis", "format_version": 1, **content}))
    assert main(["map", "--analysis", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err
    assert where.replace("Value error, ", "") in err or where in err


def test_use_time_refusals(tmp_path, capsys):
    two = {
        "format": "diffuse-fit-analysis",
        "format_version": 1,
        "samples": [{"name": "cascades"}, {"name": "tracks"}],
    }
    path = tmp_path / "two.json"
    path.write_text(json.dumps(two))
    mixed = tmp_path / "mixed.json"
    mixed.write_text(
        json.dumps(
            {**two, "samples": [{"name": "cascades"}, {"name": "tracks", "likelihood": "say"}]}
        )
    )
    assert main(["map", "--analysis", str(mixed), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "samples.tracks.likelihood = 'say' differs" in err and len(err.splitlines()) == 1
    unknown = tmp_path / "spectrum.json"
    unknown.write_text(json.dumps({**two, "samples": [{"astro_model": "plaw"}]}))
    assert main(["map", "--analysis", str(unknown), "--out", str(tmp_path / "o")]) == 2
    assert "plaw" in capsys.readouterr().err
    assert (
        main(
            [
                "map",
                "--analysis",
                str(EXAMPLES / "default.toml"),
                "--likelihood",
                "say",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "drop --likelihood" in capsys.readouterr().err


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        "format",
        "format_version",
        "priors",
        "samples",
        "name",
        "inputs",
        "binning",
        "components",
        "astro_model",
        "likelihood",
        "toy",
        "energy_edges_GeV",
        "cos_zenith_edges",
        "topology_codes",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6))
def test_any_content_is_a_specification_or_one_line(content):
    """Fuzz: whatever the content, a frozen specification or one DataFormatError line."""
    try:
        spec = from_dict(content, "<fuzz>")
    except DataFormatError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("file '<fuzz>'")
    else:
        assert isinstance(spec, AnalysisSpec) and spec.samples
        with pytest.raises(Exception, match="frozen"):
            spec.priors = "flat"


def test_the_readmes_specification_is_the_shipped_example():
    """The README's TOML block is a valid specification, the analysis of
    examples/joint_own_atmospheric.toml (the README stays true)."""
    import re
    import tomllib

    text = (ROOT / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    readme = from_dict(tomllib.loads(block))
    shipped = read_analysis(EXAMPLES / "joint_own_atmospheric.toml")
    assert readme.model_dump(exclude={"samples"}) == shipped.model_dump(exclude={"samples"})
    for a, b in zip(readme.samples, shipped.samples, strict=True):
        assert (a.name, a.binning, a.parameters, a.inputs.toy) == (
            b.name,
            b.binning,
            b.parameters,
            b.inputs.toy,
        )
