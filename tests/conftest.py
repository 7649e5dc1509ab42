import numpy as np
import pytest

from model.binned.dataset import bin_dataset
from model.physics import toy


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def toy_dataset():
    return toy.generate()


@pytest.fixture(scope="session")
def binned(toy_dataset):
    return bin_dataset(toy_dataset.data, toy_dataset.simulation)


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory):
    """A short ``diffuse-fit sample`` run on the embedded toy dataset (default priors)."""
    from model.cli import main

    out = tmp_path_factory.mktemp("run")
    code = main(["sample", "--draws", "300", "--tune", "300", "--chains", "2", "--seed", "5",
                 "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    return out
