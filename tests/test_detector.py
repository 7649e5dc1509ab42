"""The release's detector systematics (issue 21): per-event corrections, per-bin response
tables, their derivatives, their pytensor twin and the two-sided MAP.

References: the per-event correction ``10^(S(x, v) - S(x, nominal))`` by
:meth:`SplineTable.correction` (scipy's NdBSpline, itself checked against an independent de
Boor evaluation in ``test_hese_splines.py``) with the release's extents rule written here;
per-bin sums of the per-event weights by ``np.bincount``; finite differences.
"""

from pathlib import Path

import numpy as np
import pytest

from diffuse_fit.binned.curvature import expectation_derivatives
from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.detector_tables import reference_weights
from diffuse_fit.binned.hese_binning import release_binning
from diffuse_fit.binned.nuisance_tables import add_second
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.io import hese_release as hr
from diffuse_fit.io.hese_splines import find_spline_folder, read_release_splines
from diffuse_fit.jobs.inputs import load_inputs
from diffuse_fit.physics import detector as det
from diffuse_fit.physics import hese_toy
from diffuse_fit.physics.hese_weights import HESE_COMPONENTS_NUISANCE

SPLINES = Path(__file__).parents[2] / "shared" / "hese7" / "splines"
pytestmark = pytest.mark.skipif(not SPLINES.is_dir(), reason="../shared/hese7/splines not present")
FLUX = {
    "atmos_norm": 1.1,
    "prompt_norm": 0.7,
    "muon_norm": 0.9,
    "astro_norm": 6.0,
    "astro_gamma": 2.9,
    "cr_delta_gamma": -0.05,
    "kpi_ratio": 1.05,
    "nunubar_ratio": 0.95,
}
NOMINAL = {"epsilon_dom": 0.99, "epsilon_head_on": 0.0, "anisotropy_scale": 1.0}
REFERENCE = {
    "atmos_norm": 1.0,
    "prompt_norm": 1.0,
    "muon_norm": 1.0,
    "astro_norm": 1.0,
    "astro_gamma": 2.5,
    "cr_delta_gamma": 0.0,
    "kpi_ratio": 1.0,
    "nunubar_ratio": 1.0,
}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    toy = hese_toy.make_toy_release(seed=21, n=20_000)
    hr.write_release_folder(folder, toy.simulation, toy.data)
    (folder / "resources").mkdir()
    (folder / "resources" / "splines").symlink_to(SPLINES)
    inputs = load_inputs(hese_release=folder)
    splines = read_release_splines(inputs.splines)
    plain = bin_dataset(
        inputs.data,
        inputs.simulation,
        components=HESE_COMPONENTS_NUISANCE,
        binning=release_binning(),
        variance=True,
    )
    return folder, inputs, splines, plain, plain.with_detector(splines)


def reference_correction(systematic, component, simulation, splines, value):
    """Per-event ``D_i(value)`` with the release's rules: the table of the event's flux,
    flavour and morphology; uncorrected outside the extents at the nominal value (double
    cascades' anisotropy cut at log10 L = 2.3) and for muons."""
    out = np.ones(len(simulation))
    topology, code = np.asarray(simulation["topology"]), np.asarray(simulation["primaryType"])
    for m in (0, 1, 2):
        for flavour in (12, 14, 16):
            mask = (topology == m) & (np.abs(code) == flavour)
            if not mask.any():
                continue
            table = splines[systematic.table_path(component, m, flavour)]
            x = det.coordinates(
                systematic,
                m,
                *(np.asarray(simulation[f])[mask] for f in ("energy", "zenith", "length")),
            )
            keep = x[:, 0] <= 2.3 if (systematic.parameter == "anisotropy_scale" and m == 2) else 1
            out[mask] = np.where(keep, table.correction(x, value, systematic.nominal), 1.0)
    return out


def per_bin(binned, w):
    idx = binned.sim_bin_index
    inside = idx >= 0
    return np.bincount(idx[inside], weights=w[inside], minlength=binned.binning.n_bins)


def test_release_folder_finds_its_spline_tables(release):
    folder, inputs, splines, _, _ = release
    assert Path(inputs.splines) == folder / "resources" / "splines"
    assert len(splines) == 45
    assert find_spline_folder(folder / "nowhere") is None


@pytest.mark.parametrize("systematic", det.DETECTOR_SYSTEMATICS, ids=lambda s: s.parameter)
@pytest.mark.parametrize("component", ["conventional", "prompt", "astrophysical"])
def test_event_corrections_equal_the_spline_ratio(release, systematic, component):
    _, inputs, splines, _, _ = release
    sim = inputs.simulation
    corrections = det.event_log_corrections(systematic, component, sim, splines)
    low, high = systematic.support
    for value in (low, 0.37 * low + 0.63 * high, high, systematic.nominal):
        expected = reference_correction(systematic, component, sim, splines, value)
        got = 10.0 ** corrections.log10(value)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.all(10.0 ** corrections.log10(systematic.nominal) == 1.0)
    assert np.mean(10.0 ** corrections.log10(high) != 1.0) > 0.5  # not vacuous


def test_responses_are_exactly_one_at_nominal(release):
    *_, plain, corrected = release
    params = {**FLUX, **NOMINAL}
    np.testing.assert_allclose(
        expected_counts(corrected.templates, params),
        expected_counts(plain.templates, FLUX),
        rtol=1e-10,
        atol=1e-300,
    )
    np.testing.assert_allclose(
        corrected.templates.sum_of_squares(params),
        plain.templates.sum_of_squares(FLUX),
        rtol=1e-10,
        atol=1e-300,
    )


@pytest.mark.parametrize("systematic", det.DETECTOR_SYSTEMATICS, ids=lambda s: s.parameter)
def test_one_systematic_at_the_reference_spectrum_equals_the_per_event_sum(release, systematic):
    """Where the response factorization is exact: one systematic away from nominal, the flux
    at its reference; tables to 1e-9 relative in every bin, at several values."""
    _, inputs, splines, _, corrected = release
    sim = inputs.simulation
    low, high = systematic.support
    for value in (low, 0.8 * low + 0.2 * high, 0.5 * (low + high), high):
        exact = np.zeros(corrected.binning.n_bins)
        for c in corrected.components:
            w = reference_weights(c, sim)
            if c.name in det.FLUX_TABLES:
                w = w * reference_correction(systematic, c.name, sim, splines, value)
            exact += per_bin(corrected, w)
        got = expected_counts(
            corrected.templates, {**REFERENCE, **NOMINAL, systematic.parameter: value}
        )
        keep = exact > 0
        np.testing.assert_allclose(got[keep], exact[keep], rtol=1e-9)


def test_factorization_error_at_a_generic_point_is_small(release):
    """All three systematics and the flux away from the reference: the per-bin response
    product differs from the per-event sum by its stated approximation (measured: 6e-4 of
    all events, 3% in the worst bin)."""
    _, inputs, splines, _, corrected = release
    sim = inputs.simulation
    point = {**FLUX, "epsilon_dom": 1.08, "epsilon_head_on": -1.0, "anisotropy_scale": 1.3}
    exact = np.zeros(corrected.binning.n_bins)
    for c in corrected.components:
        w = c.event_weights(sim, point)
        if c.name in det.FLUX_TABLES:
            for s in det.DETECTOR_SYSTEMATICS:
                w = w * reference_correction(s, c.name, sim, splines, point[s.parameter])
        exact += per_bin(corrected, w)
    got = expected_counts(corrected.templates, point)
    assert np.sum(np.abs(got - exact)) / np.sum(exact) < 2e-3
    keep = exact > 1e-3
    assert np.max(np.abs(got[keep] / exact[keep] - 1.0)) < 0.05


@pytest.mark.parametrize("what", ["expectation", "squared weights"])
def test_derivatives_against_finite_differences(release, what):
    *_, corrected = release
    t = corrected.templates
    point = {**FLUX, "epsilon_dom": 1.08, "epsilon_head_on": -1.0, "anisotropy_scale": 1.3}
    names = list(point)
    position = {n: i for i, n in enumerate(names)}
    bins = np.flatnonzero(t.covered())

    def derivatives(p):
        if what == "expectation":
            return expectation_derivatives(t, p, position, bins)
        return t.variance.derivatives(p, position, bins)

    value, jac, second = derivatives(point)
    weights = np.random.default_rng(3).normal(size=bins.size)
    hessian = np.zeros((len(names),) * 2)
    add_second(hessian, second, weights)
    eps = 1e-6
    for i, n in enumerate(names):
        up, down = (
            derivatives({**point, n: point[n] + eps}),
            derivatives({**point, n: point[n] - eps}),
        )
        fd_jac = (up[0] - down[0]) / (2 * eps)
        fd_hess = ((up[1] - down[1]) / (2 * eps)).T @ weights
        assert np.max(np.abs(fd_jac - jac[:, i])) <= 1e-6 * np.max(np.abs(jac[:, i])) + 1e-14, n
        assert np.max(np.abs(fd_hess - hessian[i])) <= 1e-6 * np.max(np.abs(hessian[i])) + 1e-12, n


def test_pytensor_responses_equal_numpy_also_at_the_breaks(release):
    """The stacked responses (one gather of each systematic's piece, one product:
    :class:`diffuse_fit.inference.stacked_pt.ResponseStack`) against every table's NumPy
    ``log_values``, also at the pieces' breaks, with a finite gradient there."""
    import pytensor
    import pytensor.tensor as pt

    from diffuse_fit.inference.stacked_pt import ResponseStack

    *_, corrected = release
    bins = np.flatnonzero(corrected.templates.covered())
    responses = corrected.templates.responses
    stack = ResponseStack.of(responses, bins)
    symbols = {p: pt.dscalar(p) for p in stack.parameters}
    log_r = stack.log_values_pt(symbols)
    gradient = pytensor.grad(log_r.sum(), list(symbols.values()))
    f = pytensor.function(list(symbols.values()), [log_r, *gradient])
    middle = {p: sum(r.interval) / 2 for p, r in ((r.parameter, r) for r in responses)}
    for s, parameter in enumerate(stack.parameters):
        table = next(r for r in responses if r.parameter == parameter)
        inner = table.breaks[1:-1][:3]
        for value in [*np.linspace(*table.interval, 7), *inner]:
            point = {**middle, parameter: value}
            got, *grad = f(*(point[p] for p in stack.parameters))
            for c, component in enumerate(stack.components):
                mine = [r for r in responses if r.component == component]
                expected = sum(r.log_values(point[r.parameter]) for r in mine)[bins]
                # t is scaled by 1 - 1e-12 inside the pieces (stacked_pt.INSIDE): 1e-11 at most
                np.testing.assert_allclose(got[c], expected, rtol=1e-10, atol=1e-11)
            expected_grad = sum(
                r.log_derivatives(value)[1][bins].sum()
                for r in responses
                if r.parameter == parameter
            )
            assert np.isfinite(grad[s])
            assert grad[s] == pytest.approx(expected_grad, rel=1e-9, abs=1e-12)


def test_fit_record_keeps_the_responses(release):
    from diffuse_fit.report.predictive import record_from_variables, record_variables

    *_, corrected = release
    variables, attrs = record_variables(corrected.counts, corrected.templates, "say")
    arrays = {k: v[1] for k, v in variables.items()}
    back = record_from_variables(arrays, attrs, "<record>").templates
    point = {**FLUX, "epsilon_dom": 0.9, "epsilon_head_on": 0.7, "anisotropy_scale": 0.4}
    np.testing.assert_array_equal(
        expected_counts(back, point), expected_counts(corrected.templates, point)
    )
    np.testing.assert_array_equal(
        back.sum_of_squares(point), corrected.templates.sum_of_squares(point)
    )


def test_two_sided_map_returns_the_better_side(release):
    """The MAP with epsilon_dom free is the better of the fits started below and above 0.99
    (the release's HESE_fit.py), and no single start beats it."""
    from diffuse_fit.fitting.profile import ProfileFitter
    from diffuse_fit.inference.priors import resolve_priors

    *_, corrected = release
    priors = resolve_priors("hese", corrected.templates.parameter_supports())
    fitter = ProfileFitter(corrected.templates, priors, likelihood="say")
    best = fitter.fit(corrected.counts)
    assert best.converged
    for start in (0.85, 0.95, 1.03, 1.15):
        one = fitter.fit(corrected.counts, x0={"epsilon_dom": start})
        assert best.log_posterior >= one.log_posterior - 1e-9


@pytest.mark.slow
def test_fits_held_on_a_kink_or_a_bound_are_maxima(release):
    """The anisotropy tables are linear in the parameter between knots, so log p has kinks
    (one at the nominal 1, where the prior peaks), and norms can run to their bound 0:
    Newton's method stalls there, and the fitter holds such a parameter on the kink or bound
    when log p peaks there (rises into it from both sides; into the bound).  Such a fit is a
    maximum: SciPy's bounded L-BFGS-B over the natural parameters, started from it and from
    points around it, finds no higher log p (1e-7), and the one-sided slopes of log p bracket
    0 at the kink (central finite differences on each side)."""
    import scipy.optimize

    from diffuse_fit.fitting.profile import ProfileFitter
    from diffuse_fit.inference.priors import resolve_priors

    *_, corrected = release
    priors = resolve_priors("hese", corrected.templates.parameter_supports())
    fitter = ProfileFitter(corrected.templates, priors, likelihood="say")
    truth = {**fitter.fit(corrected.counts).values, "anisotropy_scale": 1.0}
    names = fitter.names
    held = []

    class Recording(ProfileFitter):  # keeps the profile fits that were held somewhere
        def fit(self, counts, fixed=None, x0=None):
            found = super().fit(counts, fixed, x0)
            if (
                found.method == "newton-held"
                and found.converged
                and fixed == {"astro_norm": found.values["astro_norm"]}
            ):
                held.append((counts, found))
            return found

    recording = Recording(corrected.templates, priors, likelihood="say")
    rng = np.random.default_rng(4)
    for _ in range(8):  # pseudo-experiments at the nominal anisotropy: astro_norm's profile
        counts = rng.poisson(fitter.expected(truth)).astype(np.float64)
        best = recording.fit(counts, x0=truth)
        recording.interval(counts, best, "astro_norm")
        if len(held) >= 3:
            break
    assert len(held) >= 3  # the walks stop on the kink at nominal or on a bound
    for counts, fit in held[:3]:
        free = [n for n in names if n != "astro_norm"]
        bounds = [fitter.transforms[n] for n in free]
        box = [(t.lo, t.hi if np.isfinite(t.hi) else None) for t in bounds]

        def negative(x, fit=fit, free=free, counts=counts):
            values = {**fit.values, **dict(zip(free, x, strict=True))}
            return -fitter.log_posterior(counts, values, curvature=False)[0]

        x_fit = np.array([fit.values[n] for n in free])
        found = -negative(x_fit)
        assert found == pytest.approx(fit.log_posterior, abs=1e-9)
        for trial in range(2):
            x0 = x_fit if trial == 0 else x_fit * (1 + 0.01 * rng.standard_normal(x_fit.size))
            x0 = np.clip(
                x0, [b[0] for b in box], [b[1] if b[1] is not None else np.inf for b in box]
            )
            other = scipy.optimize.minimize(negative, x0, method="L-BFGS-B", bounds=box)
            assert -other.fun <= found + 1e-7
        if fit.values["anisotropy_scale"] == 1.0:
            h = 1e-6
            at = {**fit.values}
            lp = [
                fitter.log_posterior(counts, {**at, "anisotropy_scale": 1.0 + d}, False)[0]
                for d in (-2 * h, -h, h, 2 * h)
            ]
            left, right = (lp[1] - lp[0]) / h, (lp[3] - lp[2]) / h
            assert left >= -1e-4 and right <= 1e-4


def test_pymc_logp_equals_numpy_twin(release):
    """The PyMC model with the detector responses (pytensor) against the NumPy SAY
    log-likelihood plus the priors, away from nominal."""
    from diffuse_fit.binned.likelihoods import LIKELIHOODS
    from diffuse_fit.inference.priors import resolve_priors
    from diffuse_fit.inference.pymc_model import build_model

    *_, corrected = release
    priors = resolve_priors("hese", corrected.templates.parameter_supports())
    model = build_model(corrected, priors, likelihood="say")
    logp = model.compile_logp(jacobian=False)
    point = {**FLUX, "epsilon_dom": 1.08, "epsilon_head_on": -1.0, "anisotropy_scale": 1.3}
    values = {}
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms[rv]
        values[model.rvs_to_values[rv].name] = transform.forward(
            np.float64(point[rv.name]), *rv.owner.inputs
        ).eval()
    names = list(point)
    bins = np.flatnonzero(corrected.templates.covered())
    lnl, _, _ = LIKELIHOODS["say"](corrected.templates, corrected.counts, point, names, bins)
    prior = sum(priors[n].log_density(point[n]) for n in names)
    assert logp(values) == pytest.approx(lnl + prior, rel=1e-9)


def test_truth_and_scan_names_include_the_detector_systematics():
    """``toys --truth`` and ``scan --param`` accept the detector systematics of the hese
    components (checked before any input is read) and still refuse unknown names."""
    import argparse

    from diffuse_fit.cli import _check_parameter_names
    from diffuse_fit.errors import UsageError

    truth = ",".join(f"{n}={v}" for n, v in {**REFERENCE, **NOMINAL}.items())
    _check_parameter_names(
        argparse.Namespace(command="toys", truth=truth), HESE_COMPONENTS_NUISANCE
    )
    _check_parameter_names(
        argparse.Namespace(command="scan", params=["epsilon_dom=0.9:1.1:3"]),
        HESE_COMPONENTS_NUISANCE,
    )
    with pytest.raises(UsageError, match="unknown parameter 'epsilon_domm'"):
        _check_parameter_names(
            argparse.Namespace(command="scan", params=["epsilon_domm=1:2:3"]),
            HESE_COMPONENTS_NUISANCE,
        )
