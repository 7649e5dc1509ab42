"""``run_sample`` and ``write_report`` on a model the user extended (issue 18, item 3): the
extended model is the one fitted and reported, and the report says what was added."""

from __future__ import annotations

import json

import numpy as np
import pymc as pm
import pytest

import diffuse_fit as df
from diffuse_fit.errors import DataFormatError, UsageError

SHORT = dict(draws=300, tune=300, chains=2, seed=2)


@pytest.mark.slow
def test_run_sample_fits_and_reports_the_extended_model(tmp_path):
    inputs = df.load_inputs()
    m = df.build_model(df.bin_inputs(inputs), priors="default")
    with m:
        pm.Potential("gamma_constraint", pm.logp(pm.Normal.dist(2.2, 0.05), m["astro_gamma"]))
    out = tmp_path / "run"
    summary = df.run_sample(
        inputs, out, model=m, report=True, progressbar=False, say=lambda *a: None, **SHORT
    )
    map_json = json.loads((out / "map.json").read_text())
    assert map_json["map_path"] == "pymc" and map_json["reference_fit"] is None
    assert abs(map_json["astro_gamma"] - 2.2) < 0.1  # the constraint was fitted
    assert abs(summary["parameters"]["astro_gamma"]["mean"] - 2.2) < 0.15
    assert summary["provenance"]["model_extension"] == "potentials added: gamma_constraint"
    report = (out / "report.md").read_text()
    assert "The model was extended" in report and "gamma_constraint" in report
    # the report written again from the run folder alone says the same
    (out / "report.md").write_text("")  # (the run folder's check would refuse it: replaced)
    with pytest.raises(DataFormatError, match="report.md"):
        df.write_report(out, say=lambda *a: None)
    df.run_sample(
        inputs, out, model=m, report=False, progressbar=False, say=lambda *a: None, **SHORT
    )
    df.write_report(out, say=lambda *a: None)
    assert "potentials added: gamma_constraint" in (out / "report.md").read_text()


def test_run_sample_refuses_a_model_of_other_inputs(tmp_path):
    inputs = df.load_inputs()
    other = df.load_inputs(toy_seed=7)
    m = df.build_model(df.bin_inputs(other), priors="default")
    assert not np.array_equal(df.bin_inputs(other).counts, df.bin_inputs(inputs).counts)
    with pytest.raises(UsageError, match="other inputs"):
        df.run_sample(
            inputs, tmp_path / "run", model=m, progressbar=False, say=lambda *a: None, **SHORT
        )
    assert not (tmp_path / "run").exists()
