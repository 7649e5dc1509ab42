import numpy as np
import pytest

from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.physics import toy


@pytest.fixture(scope="session", autouse=True)
def user_key_file(tmp_path_factory):
    """The per-user key of cache and journal entries (diffuse_fit.io.user_key) and the parse
    cache in folders of the test session's own, not the user's (subprocesses inherit them)."""
    import os

    from diffuse_fit.io import user_key
    from diffuse_fit.io.cache import CACHE_ENV

    path = tmp_path_factory.mktemp("key") / "state.key"
    # the parse cache too: the session's own (test processes running side by side each have
    # their own key, and would see each other's entries as forged)
    settings = {user_key.KEY_ENV: str(path), CACHE_ENV: str(tmp_path_factory.mktemp("cache"))}
    previous = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    yield path
    for k, v in previous.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


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
    from diffuse_fit.cli import main

    out = tmp_path_factory.mktemp("run")
    code = main(
        [
            "sample",
            "--draws",
            "300",
            "--tune",
            "300",
            "--chains",
            "2",
            "--seed",
            "5",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    return out
