"""The fast NumPy evaluation (:mod:`diffuse_fit.binned.product_engine`) computes what the
earlier per-product, per-response code computed.

The reference is that earlier implementation, kept here ONLY as a reference (the section
"REFERENCE"): one product at a time (``coefficient_derivatives`` with ``math.prod``, the table's
derivatives from its differentiated Chebyshev series), detector responses one at a time from
their per-piece derivative stacks (``np.searchsorted`` piece lookup) applied by the
``(i, j, d2)``-entry chain rule, and the SAY Hessian as four weighted products.  Compared on
the HESE toy release with the detector systematics at random points: values, Jacobians and
Hessian contractions (random weights) to 1e-12 of the largest entry; the whole likelihood
and ``ProfileFitter.log_posterior`` likewise.  Finite differences of the new code are in
``tests/test_detector.py`` and ``tests/test_nuisance.py`` (unchanged); here also for a model
mixing the engine with a table it does not handle (a spectral astrophysical component).
"""

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from numpy.polynomial import chebyshev as npcheb
from scipy.special import polygamma, psi

from diffuse_fit.binned import chebyshev
from diffuse_fit.binned.curvature import expectation_derivatives, loglike_derivatives
from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.hese_binning import release_binning
from diffuse_fit.binned.log_tables import log_derivative_stack
from diffuse_fit.binned.nuisance_tables import LowRankSecond, NuisanceTemplate, add_second
from diffuse_fit.binned.product_engine import CACHE
from diffuse_fit.binned.say import say_loglike_derivatives, say_partials
from diffuse_fit.binned.templates import FlatTemplate, PowerLawTemplate
from diffuse_fit.fitting.profile import ProfileFitter
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.io import hese_release as hr
from diffuse_fit.io.hese_splines import read_release_splines
from diffuse_fit.jobs.inputs import component_set, load_inputs
from diffuse_fit.physics import hese_toy
from diffuse_fit.physics.hese_weights import HESE_COMPONENTS_NUISANCE

SPLINES = Path(__file__).parents[2] / "shared" / "hese7" / "splines"
pytestmark = pytest.mark.skipif(not SPLINES.is_dir(), reason="../shared/hese7/splines not present")
TOLERANCE = 1e-12  # of the largest entry of each compared array
CENTRE = {
    "atmos_norm": 1.1,
    "prompt_norm": 0.7,
    "muon_norm": 0.9,
    "astro_norm": 6.0,
    "astro_gamma": 2.9,
    "cr_delta_gamma": -0.05,
    "kpi_ratio": 1.05,
    "nunubar_ratio": 0.95,
    "epsilon_dom": 1.0,
    "epsilon_head_on": -0.5,
    "anisotropy_scale": 1.2,
}


# ----------------------------------------------------------------------------- REFERENCE
# The implementation before the product engine, copied here as the reference.  Not used by
# the package.


def ref_coefficient_derivatives(factors, params, position):
    n = len(position)
    values = [a + b * params[p] for p, a, b in factors]
    grad, hess = np.zeros(n), np.zeros((n, n))
    for k, (pk, _, bk) in enumerate(factors):
        rest = math.prod(v for m, v in enumerate(values) if m != k)
        grad[position[pk]] += bk * rest
        for m, (pm, _, bm) in enumerate(factors):
            if m != k:
                others = math.prod(v for q, v in enumerate(values) if q not in (k, m))
                hess[position[pk], position[pm]] += bk * bm * others
    return math.prod(values), grad, hess


def ref_pieces(table, params, position, bins):
    n = len(position)
    a, c = np.zeros(n), np.zeros(n)
    for v in table.variables:
        c[position[v]] += 1.0
    for name, coef in table.linear:
        a[position[name]] += coef
    prefactor = math.exp(sum(coef * params[name] for name, coef in table.linear))
    if table.per_bin is not None:
        return prefactor, a, c, table.per_bin[bins], None, None
    x = float(sum(params[v] for v in table.variables))
    s0, s1, s2 = (v[bins] for v in table.table.derivatives(x, "+".join(table.variables)))
    return prefactor, a, c, s0, s1, s2


def ref_sym(x, y):
    xy = x[:, None] * y
    return xy + xy.T


def ref_plain_derivatives(products, params, position, bins):
    n = len(position)
    value, jac = np.zeros(bins.size), np.zeros((bins.size, n))
    vectors, matrices = [], []
    for p in products:
        f, fg, fh = ref_coefficient_derivatives(p.factors, params, position)
        e, a, c, s0, s1, s2 = ref_pieces(p.table, params, position, bins)
        me = p.multiplier * e
        value += me * f * s0
        jac += s0[:, None] * (me * (fg + f * a))
        vectors.append(s0)
        matrices.append(me * (fh + ref_sym(fg, a) + f * a[:, None] * a))
        if s1 is not None:
            jac += s1[:, None] * (me * f * c)
            vectors += [s1, s2]
            matrices += [me * (ref_sym(fg, c) + f * ref_sym(a, c)), me * f * c[:, None] * c]
    if not vectors:
        return value, jac, []
    return value, jac, [LowRankSecond(np.array(vectors), np.array(matrices))]


def ref_response_log_derivatives(r, v):
    """``L``, ``L'``, ``L''`` (n_bins each) from the per-piece derivative stacks."""
    p = int(np.clip(np.searchsorted(r.breaks, v, side="right") - 1, 0, len(r.breaks) - 2))
    piece = (r.breaks[p], r.breaks[p + 1])
    out = np.zeros((3, r.n_bins))
    out[:, r.active] = chebyshev.evaluate(log_derivative_stack(r.log_coeffs[p], piece), v, piece)
    return out


def ref_apply_responses(value, jac, second, responses, params, position, bins):
    if not responses:
        return value, jac, second
    g = np.zeros(bins.size)
    grad, curv = {}, {}
    for r in responses:
        lv, d1, d2 = (a[bins] for a in ref_response_log_derivatives(r, params[r.parameter]))
        g += lv
        i = position[r.parameter]
        grad[i] = grad.get(i, 0.0) + d1
        curv[i] = curv.get(i, 0.0) + d2
    rho = np.exp(g)
    scaled = []
    for entry in second:
        if isinstance(entry, LowRankSecond):
            scaled.append(LowRankSecond(entry.vectors * rho, entry.matrices))
        else:
            i, j, d2 = entry
            scaled.append((i, j, rho * d2))
    new_jac = jac * rho[:, None]
    h_rho = value * rho
    for i, gi in grad.items():
        new_jac[:, i] += h_rho * gi
        for j in np.flatnonzero(np.any(jac != 0.0, axis=0)):
            cross = rho * jac[:, j] * gi
            scaled += [(int(j), i, cross), (i, int(j), cross)]
        for k, gk in grad.items():
            scaled.append((i, k, h_rho * (gi * gk + (curv[i] if i == k else 0.0))))
    return h_rho, new_jac, scaled


def ref_products_derivatives(products, params, position, bins):
    groups = {}
    for p in products:
        groups.setdefault(p.responses, []).append(p)
    value, jac, second = 0.0, 0.0, []
    for responses, members in groups.items():
        v, j, s = ref_plain_derivatives(members, params, position, bins)
        v, j, s = ref_apply_responses(v, j, s, responses, params, position, bins)
        value, jac, second = value + v, jac + j, second + s
    return value, jac, second


def ref_expectation_derivatives(templates, params, position, bins):
    """The flat, power-law and nuisance tables only (the ones the engine takes over)."""
    n = len(position)
    lam, jac, second = np.zeros(bins.size), np.zeros((bins.size, n)), []
    for table in templates.tables:
        c = table.component
        if isinstance(table, NuisanceTemplate):
            norm = ((c.norm, 0.0, 1.0),)
            full = [type(p)(p.multiplier, norm + p.factors, p.table) for p in table.products]
            value, d1, d2 = ref_plain_derivatives(full, params, position, bins)
        else:
            d1, d2, norm = np.zeros((bins.size, n)), [], params[c.norm]
            if isinstance(table, FlatTemplate):
                unit = table.per_bin[bins]
                d1[:, position[c.norm]] += unit
            else:
                assert isinstance(table, PowerLawTemplate)
                unit, u1, u2 = (a[bins] for a in table.unit_counts_derivatives(params))
                i, j = position[c.norm], position[c.index]
                d1[:, i] += unit
                d1[:, j] += norm * u1
                d2 += [(i, j, u1), (j, i, u1), (j, j, norm * u2)]
            value = norm * unit
        responses = templates.responses_of(c.name)
        value, d1, d2 = ref_apply_responses(value, d1, d2, responses, params, position, bins)
        lam, jac, second = lam + value, jac + d1, second + d2
    return lam, jac, second


def ref_say_partials_laa(k, a):
    """The SAY partial ``laa`` as computed before: trigamma(k + a) - trigamma(a) everywhere."""
    return polygamma(1, k + a) - polygamma(1, a)


def ref_say(templates, counts, params, names, bins):
    position = {name: i for i, name in enumerate(names)}
    k = counts[bins]
    mu, j_mu, second_mu = ref_expectation_derivatives(templates, params, position, bins)
    s2, j_s, second_s = ref_products_derivatives(
        templates.variance.products, params, position, bins
    )
    lnl, l_m, l_s, l_mm, l_ms, l_ss = say_partials(k, mu, s2)
    gradient = j_mu.T @ l_m + j_s.T @ l_s
    hessian = (
        (j_mu.T * l_mm) @ j_mu
        + (j_mu.T * l_ms) @ j_s
        + (j_s.T * l_ms) @ j_mu
        + (j_s.T * l_ss) @ j_s
    )
    add_second(hessian, second_mu, l_m)
    add_second(hessian, second_s, l_s)
    return float(np.sum(lnl)), gradient, hessian


# ----------------------------------------------------------------------------- fixtures


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
    return inputs, splines, plain, plain.with_detector(splines)


def random_points(templates, count, seed):
    """``count`` points scattered inside the supports (the centre first)."""
    rng = np.random.default_rng(seed)
    supports = templates.parameter_supports()
    out = [dict(CENTRE)]
    for _ in range(count - 1):
        point = {}
        for name, x in CENTRE.items():
            low, high = supports.get(name, (-np.inf, np.inf))
            lo, hi = max(low, x - 0.4 * abs(x) - 0.2), min(high, x + 0.4 * abs(x) + 0.2)
            point[name] = float(rng.uniform(lo, hi))
        out.append(point)
    return out


def close(got, expected, what):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, what
    scale = np.max(np.abs(expected))
    assert scale > 0, what  # not vacuous
    assert np.max(np.abs(got - expected)) <= TOLERANCE * scale, what


def contracted(second, n, weights):
    hessian = np.zeros((n, n))
    add_second(hessian, second, weights)
    return hessian


# ----------------------------------------------------------------------------- tests


def test_derivative_basis_equals_numpy_chebyshev_derivatives():
    rng = np.random.default_rng(0)
    for t in [-1.0, 1.0, 0.0, *rng.uniform(-1, 1, 5)]:
        for k in (1, 2, 7, 24, 64):
            coeffs = rng.normal(size=k) / (1 + np.arange(k)) ** 2
            got = coeffs @ chebyshev.derivative_basis(t, k)
            expected = [npcheb.chebval(t, npcheb.chebder(coeffs, m)) for m in (0, 1, 2)]
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * k**4)


def test_response_tables_equal_the_derivative_stacks_also_at_the_breaks(release):
    *_, corrected = release
    for r in corrected.templates.responses:
        low, high = r.interval
        values = [*np.linspace(low, high, 9), *r.breaks, *(r.breaks[1:-1] - 1e-9)]
        for v in values:
            v = float(min(max(v, low), high))
            expected = ref_response_log_derivatives(r, v)
            p = int(np.clip(np.searchsorted(r.breaks, v, side="right") - 1, 0, len(r.breaks) - 2))
            assert r.piece(v) == p
            stack = log_derivative_stack(r.log_coeffs[p], (r.breaks[p], r.breaks[p + 1]))
            bound = np.max(np.abs(stack).sum(axis=2), axis=1)  # >= |series| on the piece
            for got, want, most in zip(r.log_derivatives(v), expected, bound, strict=True):
                # rounding of a series: ~1e-16 of the sum of its coefficients' magnitudes
                np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13 * most)
        with pytest.raises(ValueError, match="outside the tabulated range"):
            r.log_derivatives(high + 0.1)


@pytest.mark.parametrize("detector", [False, True], ids=["no detector", "detector"])
@pytest.mark.parametrize("what", ["expectation", "squared weights"])
def test_engine_equals_the_per_product_reference(release, detector, what):
    *_, plain, corrected = release
    t = (corrected if detector else plain).templates
    names = list(CENTRE)
    position = {n: i for i, n in enumerate(names)}
    bins = np.flatnonzero(t.covered())
    weights = np.random.default_rng(5).normal(size=bins.size)
    for point in random_points(t, 4, seed=1):
        if what == "expectation":
            got = expectation_derivatives(t, point, position, bins)
            expected = ref_expectation_derivatives(t, point, position, bins)
        else:
            got = t.variance.derivatives(point, position, bins)
            expected = ref_products_derivatives(t.variance.products, point, position, bins)
        close(got[0], expected[0], "value")
        close(got[1], expected[1], "Jacobian")
        n = len(names)
        close(contracted(got[2], n, weights), contracted(expected[2], n, weights), "Hessian")
        # the second derivatives of factor_b y_b (as apply_responses scales them)
        factor = np.random.default_rng(7).uniform(0.5, 2.0, size=bins.size)
        scaled = [e.scaled(factor) for e in got[2]]
        close(contracted(scaled, n, weights), contracted(got[2], n, weights * factor), "scaled")


def test_say_and_poisson_likelihoods_equal_the_reference(release):
    *_, corrected = release
    t = corrected.templates
    names = list(CENTRE)
    bins = np.flatnonzero(t.covered())
    counts = np.asarray(corrected.counts, dtype=np.float64)
    for point in random_points(t, 4, seed=2):
        lnl, grad, hess = say_loglike_derivatives(t, counts, point, names, bins)
        ref_lnl, ref_grad, ref_hess = ref_say(t, counts, point, names, bins)
        assert lnl == pytest.approx(ref_lnl, rel=TOLERANCE)
        close(grad, ref_grad, "SAY gradient")
        close(hess, ref_hess, "SAY Hessian")
        # Poisson: the expectation's reference with the plain Poisson derivatives
        lnl, grad, hess = loglike_derivatives(t, counts, point, names, bins)
        position = {n: i for i, n in enumerate(names)}
        lam, jac, second = ref_expectation_derivatives(t, point, position, bins)
        k = counts[bins]
        close(grad, jac.T @ (k / lam - 1.0), "Poisson gradient")
        ref_hess = -(jac.T * (k / lam**2)) @ jac
        add_second(ref_hess, second, k / lam - 1.0)
        close(hess, ref_hess, "Poisson Hessian")


def test_say_trigamma_difference_is_unchanged_bitwise():
    rng = np.random.default_rng(4)
    k = rng.poisson(0.3, size=500).astype(float)
    mu = rng.uniform(0.01, 30.0, size=500)
    s2 = mu * rng.uniform(1e-4, 1.0, size=500)
    _, _, _, l_mm, l_ms, l_ss = say_partials(k, mu, s2)
    # the partials in (alpha, beta) and the chain rule, as say_partials writes them, with the
    # earlier laa (trigamma difference computed in every bin, 0 exactly where k = 0)
    m, s = mu, s2
    a, b = m**2 / s + 1.0, m / s
    la = np.log(b) + psi(k + a) - np.log1p(b) - psi(a)
    laa = ref_say_partials_laa(k, a)
    lab = 1.0 / b - 1.0 / (1.0 + b)
    lbb = -a / b**2 + (k + a) / (1.0 + b) ** 2
    a_m, a_mm, b_m = 2.0 * m / s, 2.0 / s, 1.0 / s
    expected = laa * a_m**2 + 2.0 * lab * a_m * b_m + lbb * b_m**2 + la * a_mm
    np.testing.assert_array_equal(l_mm, expected)
    assert np.any(k == 0) and np.any(k > 0)


def test_profile_log_posterior_equals_the_reference(release):
    *_, corrected = release
    t = corrected.templates
    priors = resolve_priors("hese", t.parameter_supports())
    fitter = ProfileFitter(t, priors, likelihood="say")
    counts = np.asarray(corrected.counts, dtype=np.float64)
    for point in random_points(t, 3, seed=3):
        logp, grad, hess, lnl = fitter.log_posterior(counts, point)
        ref_lnl, ref_grad, ref_hess = ref_say(t, counts, point, fitter._all, fitter.bins)
        for i, name in enumerate(fitter.names):
            prior = fitter.priors[name]
            ref_lnl += prior.log_density(point[name])
            ref_grad[i] += prior.log_density_gradient(point[name])
            ref_hess[i, i] += prior.log_density_curvature(point[name])
        assert logp == pytest.approx(ref_lnl, rel=TOLERANCE)
        close(grad, ref_grad, "gradient")
        close(hess, ref_hess, "Hessian")


def test_engines_are_not_pickled_and_rebuild_the_same(release):
    *_, corrected = release
    t = corrected.templates
    names = list(CENTRE)
    bins = np.flatnonzero(t.covered())
    counts = np.asarray(corrected.counts, dtype=np.float64)
    before = say_loglike_derivatives(t, counts, CENTRE, names, bins)
    assert CACHE in t.__dict__ and CACHE in t.variance.__dict__  # engines built and kept
    back = pickle.loads(pickle.dumps(t))
    assert CACHE not in back.__dict__ and CACHE not in back.variance.__dict__
    assert all("_last" not in r.__dict__ for r in back.responses)
    after = say_loglike_derivatives(back, counts, CENTRE, names, bins)
    # the same up to rounding (BLAS kernels may round the last bit by memory alignment)
    assert after[0] == pytest.approx(before[0], rel=TOLERANCE)
    close(after[1], before[1], "gradient after pickling")
    close(after[2], before[2], "Hessian after pickling")


def test_out_of_range_parameters_are_refused(release):
    *_, corrected = release
    t = corrected.templates
    names = list(CENTRE)
    position = {n: i for i, n in enumerate(names)}
    bins = np.flatnonzero(t.covered())
    with pytest.raises(ValueError, match="astro_gamma=.* is outside the tabulated range"):
        expectation_derivatives(t, {**CENTRE, "astro_gamma": 40.0}, position, bins)
    with pytest.raises(ValueError, match="epsilon_dom=.* is outside the tabulated range"):
        t.variance.derivatives({**CENTRE, "epsilon_dom": 9.0}, position, bins)


def test_engine_with_a_table_it_does_not_handle_against_finite_differences(release):
    """A spectral astrophysical component (evaluated per table, with its responses by the
    (i, j, d2) chain rule) beside the engine's nuisance components."""
    inputs, splines, *_ = release
    binned = bin_dataset(
        inputs.data,
        inputs.simulation,
        components=component_set("hese", "logparabola", "poisson"),
        binning=release_binning(),
    ).with_detector(splines)
    t = binned.templates
    point = {
        **{k: v for k, v in CENTRE.items() if k != "astro_gamma"},
        "astro_alpha": 2.6,
        "astro_beta": 0.1,
        "epsilon_dom": 1.08,
        "anisotropy_scale": 1.3,
    }
    names = list(point)
    position = {n: i for i, n in enumerate(names)}
    bins = np.flatnonzero(t.covered())
    eps = 1e-6
    for r in t.responses:  # away from the pieces' breaks (where L' jumps a little)
        assert np.min(np.abs(r.breaks - point[r.parameter])) > 10 * eps
    value, jac, second = expectation_derivatives(t, point, position, bins)
    assert any(isinstance(e, tuple) for e in second)  # the per-table path is exercised
    weights = np.random.default_rng(6).normal(size=bins.size)
    hessian = contracted(second, len(names), weights)
    for i, name in enumerate(names):
        up = expectation_derivatives(t, {**point, name: point[name] + eps}, position, bins)
        down = expectation_derivatives(t, {**point, name: point[name] - eps}, position, bins)
        fd_jac = (up[0] - down[0]) / (2 * eps)
        fd_hess = ((up[1] - down[1]) / (2 * eps)).T @ weights
        assert np.max(np.abs(fd_jac - jac[:, i])) <= 1e-6 * np.max(np.abs(jac[:, i])), name
        assert np.max(np.abs(fd_hess - hessian[i])) <= 1e-6 * np.max(np.abs(hessian[i])), name
