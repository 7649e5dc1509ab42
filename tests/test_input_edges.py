"""Small input edges (issue 19, item 8): each refused for the right reason in one line, or
accepted the same way by every reader, and no library's raw message or warning shown."""

import json
import warnings

import numpy as np
import pytest

from diffuse_fit.cli import main
from diffuse_fit.errors import DataFormatError
from diffuse_fit.inference.priors import read_prior_file, resolve_priors
from diffuse_fit.io.workshop_format import read_data

MAPPING = {"energy": 0, "topology": 1, "zenith": 2, "extra": 3}
ROWS = [[1e5, 0, 1.0, 1.5], [2e5, 1, 2.0, 2.5]]


def _file(tmp_path, text: str | bytes, name="events.json"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_empty_events_before_the_real_ones_is_refused_as_a_duplicate_key(tmp_path):
    text = f'{{"events": [], "mapping": {json.dumps(MAPPING)}, "events": {json.dumps(ROWS)}}}'
    with pytest.raises(DataFormatError) as caught:
        read_data(_file(tmp_path, text))
    assert "has the key 'events' twice" in str(caught.value)
    assert "mapping" not in str(caught.value)


def test_a_bom_is_accepted_in_workshop_and_prior_files_alike(tmp_path):
    bom = b"\xef\xbb\xbf"
    events = json.dumps({"mapping": MAPPING, "events": ROWS}).encode()
    table = read_data(_file(tmp_path, bom + events))
    assert table["extra"].tolist() == [1.5, 2.5]
    prior = {"astro_gamma": {"dist": "Uniform", "lower": 1.5, "upper": 3.5}}
    path = _file(tmp_path, bom + json.dumps(prior).encode(), "prior.json")
    assert read_prior_file(path) == prior
    supports = {"atmos_norm": (0.0, np.inf), "astro_norm": (0.0, np.inf), "astro_gamma": (1.0, 4.0)}
    assert resolve_priors(path, supports)["astro_gamma"].params == {"lower": 1.5, "upper": 3.5}


@pytest.mark.parametrize("token", ["Infinity", "-Infinity", "NaN", "1e400", "-1e999"])
@pytest.mark.parametrize("row", [0, 1])
def test_non_finite_values_are_refused_in_every_column(tmp_path, token, row):
    """Also in a column the fit does not read ("extra"), as the README says."""
    rows = [[json.dumps(v) for v in r] for r in ROWS]
    rows[row][3] = token
    body = ", ".join("[" + ", ".join(r) + "]" for r in rows)
    text = f'{{"mapping": {json.dumps(MAPPING)}, "events": [{body}]}}'
    with pytest.raises(DataFormatError) as caught:
        read_data(_file(tmp_path, text))
    message = str(caught.value)
    assert f"field 'extra', events[{row}]: non-finite value" in message and "\n" not in message


def test_one_point_scan_draws_without_warnings(tmp_path, capsys):
    out = tmp_path / "scan"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(
            ["scan", "--param", "astro_gamma=2:4:1", "--workers", "1", "--quiet", "--out", str(out)]
        )
    assert code == 0
    assert capsys.readouterr().err == ""
    shown = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert shown == [], shown
    assert (out / "scan.png").stat().st_size > 0


def test_truth_beyond_what_poisson_draws_allow_is_one_line(tmp_path, capsys):
    argv = [
        "toys",
        "--truth",
        "atmos_norm=1e308",
        "--n",
        "2",
        "--seed",
        "1",
        "--workers",
        "1",
        "--quiet",
        "--out",
        str(tmp_path / "t"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("diffuse-fit: error: --truth atmos_norm=1e+308")
    assert "lam value too large" not in err and "events in a bin" in err
    assert not (tmp_path / "t").exists()
