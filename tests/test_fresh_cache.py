"""The README's two commands on a fresh machine (issue 19): draws do not depend on what
filled the compile cache.

On a fresh machine ``make fit`` runs the ``diffuse-fit`` executable on an empty pytensor
cache, then ``make test`` compiles the same log-density again in other processes.  With
numba's fastmath flags the cfuncs of a process that loaded the log-density from the cache
differed at 1e-13 from those compiled where it was compiled afresh, and the NUTS draws of the
two samplers with the same seed differed (:mod:`diffuse_fit.inference.exact_float`).  Here the
sequence runs as it does there: the executable fills an empty cache, then a new process
samples by both routes and must get the same draws bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_COMPARE = """
import json, sys
import numpy as np
from dataclasses import replace
from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import build_model, parameter_supports
from diffuse_fit.inference.sampling import sample
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.physics import toy

toy_data = toy.generate()
binned = bin_dataset(toy_data.data, toy_data.simulation)
model = build_model(binned, resolve_priors("default", parameter_supports(binned.components)))
settings = SamplerSettings(draws=300, tune=300, chains=2, seed=11, sampler="nutpie")
cached = sample(model, settings, progressbar=False)
fresh = sample(model, replace(settings, sampler="nutpie-numba"), progressbar=False)
names = ["atmos_norm", "astro_norm", "astro_gamma", "n_expected"]
diff = {n: float(np.max(np.abs(cached.posterior[n].values - fresh.posterior[n].values)))
        for n in names}
json.dump(diff, sys.stdout)
"""


def _executable() -> str:
    return str(Path(sys.executable).with_name("diffuse-fit"))


@pytest.mark.slow
def test_draws_do_not_depend_on_what_filled_the_cache(tmp_path):
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'cache'}"}
    # make fit on a fresh machine: the executable fills an empty compile cache
    subprocess.run(
        [
            _executable(),
            "sample",
            "--prior",
            "default",
            "--seed",
            "1",
            "--quiet",
            "--draws",
            "50",
            "--tune",
            "50",
            "--chains",
            "1",
            "--out",
            str(tmp_path / "run"),
        ],
        env=env,
        check=True,
        timeout=600,
    )
    # make test: another process samples by the cached route and by nutpie's own compilation
    done = subprocess.run(
        [sys.executable, "-c", _COMPARE],
        env=env,
        check=True,
        timeout=600,
        capture_output=True,
        text=True,
    )
    differences = json.loads(done.stdout)
    assert differences == {n: 0.0 for n in differences}, differences
