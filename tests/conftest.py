import numpy as np
import pytest

from model import toy
from model.dataset import bin_dataset


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def toy_dataset():
    return toy.generate()


@pytest.fixture(scope="session")
def binned(toy_dataset):
    return bin_dataset(toy_dataset.data, toy_dataset.simulation)
