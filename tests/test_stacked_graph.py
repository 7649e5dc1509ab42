"""The model's stacked expectation graph (:mod:`diffuse_fit.inference.stacked_pt`) on a HESE
release with the detector systematics: its NumPy twin against the tables' own NumPy twins
(``Templates.component_counts``, ``sum_of_squares``), and the PyMC model's log-density and
gradient in the natural parameters against :meth:`ProfileFitter.log_posterior` (the NumPy
SAY or Poisson log-likelihood with exact derivatives plus the priors), at random points."""

from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.replace import graph_replace

from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.hese_binning import release_binning
from diffuse_fit.fitting.profile import ProfileFitter
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import build_model
from diffuse_fit.inference.stacked_pt import SQUARES, StackedTerms
from diffuse_fit.io import hese_release as hr
from diffuse_fit.io.hese_splines import read_release_splines
from diffuse_fit.jobs.inputs import load_inputs
from diffuse_fit.physics import hese_toy
from diffuse_fit.physics.hese_weights import HESE_COMPONENTS_NUISANCE

SPLINES = Path(__file__).parents[2] / "shared" / "hese7" / "splines"
pytestmark = pytest.mark.skipif(not SPLINES.is_dir(), reason="../shared/hese7/splines not present")


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    """The binned toy release with the SAY tables and the detector responses."""
    folder = tmp_path_factory.mktemp("release")
    toy = hese_toy.make_toy_release(seed=5, n=8_000)
    hr.write_release_folder(folder, toy.simulation, toy.data)
    (folder / "resources").mkdir()
    (folder / "resources" / "splines").symlink_to(SPLINES)
    inputs = load_inputs(hese_release=folder)
    plain = bin_dataset(
        inputs.data,
        inputs.simulation,
        components=HESE_COMPONENTS_NUISANCE,
        binning=release_binning(),
        variance=True,
    )
    return plain.with_detector(read_release_splines(inputs.splines))


def random_points(supports: dict, rng, n: int) -> list[dict]:
    """``n`` points inside the supports (norms, unbounded above, in [0.2, 3])."""
    points = []
    for _ in range(n):
        point = {}
        for name, (low, high) in supports.items():
            low, high = max(low, 0.2) if np.isinf(high) else low, min(high, 3.0)
            point[name] = rng.uniform(low + 1e-3 * (high - low), high - 1e-3 * (high - low))
        points.append(point)
    return points


def test_stacked_numpy_twin_equals_the_tables(corrected, rng):
    templates = corrected.templates
    bins = np.flatnonzero(templates.covered())
    stacked = StackedTerms.of(templates, bins, squares=True)
    assert stacked.responses is not None and len(stacked.responses.parameters) == 3
    for point in random_points(templates.parameter_supports(), rng, 5):
        got = stacked.values(point)
        expected = {k: v[bins] for k, v in templates.component_counts(point).items()}
        expected[SQUARES] = templates.sum_of_squares(point)[bins]
        for row, target in zip(got, stacked.targets, strict=True):
            np.testing.assert_allclose(row, expected[target], rtol=1e-10, atol=0, err_msg=target)


def natural_logp_and_gradient(model):
    """Compiled ``theta -> (log p, d log p / d theta)`` in the natural parameters (free
    variables' order; no Jacobian of the transforms)."""
    theta = pt.vector("theta")
    replacements = {}
    for i, rv in enumerate(model.free_RVs):
        transform = model.rvs_to_transforms.get(rv)
        replacements[model.rvs_to_values[rv]] = (
            transform.forward(theta[i], *rv.owner.inputs) if transform is not None else theta[i]
        )
    logp = graph_replace(model.logp(jacobian=False), replacements, strict=False)
    return pytensor.function([theta], [logp, pytensor.grad(logp, theta)], mode="FAST_COMPILE")


@pytest.mark.parametrize("likelihood", ["say", "poisson"])
def test_pymc_logp_and_gradient_equal_the_profile_fitter(corrected, rng, likelihood):
    templates = corrected.templates
    priors = resolve_priors("hese", templates.parameter_supports())
    model = build_model(corrected, priors, likelihood=likelihood)
    names = [rv.name for rv in model.free_RVs]
    assert len(names) == 11
    fitter = ProfileFitter(templates, priors, likelihood=likelihood)
    order = [fitter.names.index(n) for n in names]
    f = natural_logp_and_gradient(model)
    for point in random_points(templates.parameter_supports(), rng, 6):
        logp, grad = f(np.array([point[n] for n in names]))
        reference, reference_grad, _, _ = fitter.log_posterior(corrected.counts, point)
        assert float(logp) == pytest.approx(reference, rel=1e-10)
        np.testing.assert_allclose(
            grad, reference_grad[order], rtol=1e-10, atol=1e-10 * np.max(np.abs(reference_grad))
        )
