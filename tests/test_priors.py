import json
import math

import pytest

from diffuse_fit.inference.priors import PRIOR_SETS, Prior, PriorError, resolve_priors

SUPPORTS = {"atmos_norm": (0.0, math.inf), "astro_norm": (0.0, math.inf), "astro_gamma": (1.0, 4.0)}


def test_named_sets():
    assert resolve_priors("flat", SUPPORTS) == {k: PRIOR_SETS["flat"][k] for k in SUPPORTS}
    # the flavour fractions (--astro-model flavour): the flat Dirichlet in every set
    assert all(s["f_e"] == s["f_mu"] == Prior("Dirichlet") for s in PRIOR_SETS.values())
    assert resolve_priors("default", SUPPORTS) == {k: PRIOR_SETS["default"][k] for k in SUPPORTS}
    assert PRIOR_SETS["flat"]["astro_gamma"] == Prior("Uniform", {"lower": 1.0, "upper": 4.0})


def test_file_overrides_default(tmp_path):
    path = tmp_path / "p.json"
    spec = {"dist": "TruncatedNormal", "mu": 2.5, "sigma": 0.5, "lower": 1, "upper": 4}
    path.write_text(json.dumps({"astro_gamma": spec}))
    priors = resolve_priors(path, SUPPORTS)
    assert priors["astro_gamma"].dist == "TruncatedNormal"
    assert priors["atmos_norm"] == PRIOR_SETS["default"]["atmos_norm"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"astro_gamma": {"dist": "Uniform", "lower": 0.5, "upper": 4}}, "outside the allowed"),
        ({"astro_gamma": {"dist": "Normal", "mu": 2, "sigma": 1}}, "unknown dist"),
        ({"atmos_norm": {"dist": "LogNormal", "mu": 0}}, "needs ['mu', 'sigma']"),
        ({"atmos_norm": {"dist": "LogNormal", "mu": 0, "sigma": -1}}, "must be > 0"),
        ({"atmos_norm": {"dist": "TruncatedNormal", "mu": 1, "sigma": 1}}, "outside the allowed"),
        ({"gamma": {"dist": "Uniform", "lower": 1, "upper": 4}}, "unknown parameters ['gamma']"),
        ({"astro_norm": {"dist": "Uniform", "lower": 5, "upper": 1}}, "lower must be < upper"),
        ({"astro_norm": {"dist": "HalfNormal", "sigma": "big"}}, "not a finite number"),
    ],
)
def test_bad_priors_are_named(tmp_path, spec, message):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(PriorError) as info:
        resolve_priors(path, SUPPORTS)
    assert message in str(info.value) and str(path) in str(info.value)


def test_not_json(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{")
    with pytest.raises(PriorError, match="not valid JSON"):
        resolve_priors(path, SUPPORTS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"astro_gamma": {"dist": "Uniform", "lower": 1, "upper": 4\xff}}', "not UTF-8"),
        ("\ufeff{}".encode("utf-16"), "not UTF-8"),
        (b'{"astro_gamma": {"dist": "Uniform", "dist": "HalfFlat"}}', "'dist' twice"),
        (b"[" * 100000, "nested too deeply"),
        (b'{"astro_norm": {"dist": "HalfNormal", "sigma": 1' + b"0" * 5000 + b"}}", "4300"),
        (b'{"astro_norm": {"dist": "HalfNormal", "sigma": 1' + b"0" * 400 + b"}}", "finite"),
        (b'{"astro_norm": {"dist": ["HalfNormal"], "sigma": 1}}', "unknown dist"),
        (b"[1, 2]", "must be a JSON object"),
    ],
)
def test_unreadable_prior_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_bytes(content)
    with pytest.raises(PriorError) as info:
        resolve_priors(path, SUPPORTS)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text and len(text) < 300, text


def test_prior_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(PriorError, match="is a folder"):
        resolve_priors(tmp_path, SUPPORTS)
    with pytest.raises(PriorError, match="neither a prior set"):
        resolve_priors(tmp_path / "missing.json", SUPPORTS)
