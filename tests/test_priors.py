import json
import math

import pytest

from model.inference.priors import PRIOR_SETS, Prior, PriorError, resolve_priors

SUPPORTS = {"atmos_norm": (0.0, math.inf), "astro_norm": (0.0, math.inf), "astro_gamma": (1.0, 4.0)}


def test_named_sets():
    assert resolve_priors("flat", SUPPORTS) == PRIOR_SETS["flat"]
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
