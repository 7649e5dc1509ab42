"""The unfolded astrophysical spectrum: E^2 dN/dE of every spectral model against the formulas,
the single power law as a special case, posterior bands, the sensitive energy range against a
brute-force weighted quantile, and the comparison figure's structure.

The reference fluxes below are written from the model definitions (README, "Spectral models":
``phi`` the all-flavour flux at 100 TeV in 1e-18 GeV^-1 cm^-2 s^-1 sr^-1), independently of
:mod:`diffuse_fit.physics.spectra` and :mod:`diffuse_fit.physics.flux`.
"""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.legend import Legend

from diffuse_fit.physics.components import ATMOSPHERIC, WORKSHOP_COMPONENTS
from diffuse_fit.physics.flux import astrophysical_component, e2_flux, sensitive_energy_range
from diffuse_fit.physics.spectra import ASTRO_MODELS, with_astro_model
from diffuse_fit.report.spectrum import MODEL_LABELS, X_LABEL, Y_LABEL, flux_band, spectrum_figure

E0 = 1.0e5  # GeV, 100 TeV
ENERGIES = np.geomspace(1.0e3, 1.0e7, 57)  # GeV
QS = (0.025, 0.16, 0.5, 0.84, 0.975)

PARAMETER_SETS = {  # model -> list of parameter sets (each a dict of scalars)
    "spl": [
        {"astro_norm": 6.37, "astro_gamma": 2.87},
        {"astro_norm": 1.0, "astro_gamma": 1.3},
        {"astro_norm": 0.2, "astro_gamma": 3.9},
    ],
    "logparabola": [
        {"astro_norm": 6.0, "astro_alpha": 2.5, "astro_beta": 0.12},
        {"astro_norm": 3.0, "astro_alpha": 3.4, "astro_beta": -0.15},
        {"astro_norm": 9.5, "astro_alpha": 1.8, "astro_beta": 0.45},
    ],
    "broken": [  # breaks above and below 100 TeV, hardening and softening
        {"astro_norm": 5.0, "astro_gamma1": 2.0, "astro_gamma2": 3.2, "astro_log10_ebreak": 5.6},
        {"astro_norm": 5.0, "astro_gamma1": 2.0, "astro_gamma2": 3.2, "astro_log10_ebreak": 4.6},
        {"astro_norm": 2.0, "astro_gamma1": 3.5, "astro_gamma2": 1.5, "astro_log10_ebreak": 6.7},
        {"astro_norm": 7.0, "astro_gamma1": 3.0, "astro_gamma2": 2.2, "astro_log10_ebreak": 4.7},
    ],
    "cutoff": [
        {"astro_norm": 6.0, "astro_gamma": 2.3, "astro_log10_ecut": 6.2},
        {"astro_norm": 1.5, "astro_gamma": 1.5, "astro_log10_ecut": 5.1},
        {"astro_norm": 8.0, "astro_gamma": 3.1, "astro_log10_ecut": 7.9},
    ],
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def component(model: str):
    return astrophysical_component(with_astro_model(WORKSHOP_COMPONENTS, model))


def reference_e2_flux(model: str, p: dict, energy: np.ndarray) -> np.ndarray:
    """E^2 dN/dE in GeV cm^-2 s^-1 sr^-1 at one parameter set, from the formulas."""
    e = energy / E0
    if model == "spl":
        shape = e ** -p["astro_gamma"]
    elif model == "logparabola":
        shape = e ** -(p["astro_alpha"] + p["astro_beta"] * np.log(e))
    elif model == "cutoff":
        shape = e ** -p["astro_gamma"] * np.exp(-energy / 10.0 ** p["astro_log10_ecut"])
    else:  # broken: gamma1 below E_break, gamma2 above, continuous, phi at 100 TeV
        eb = 10.0 ** p["astro_log10_ebreak"]
        g1, g2 = p["astro_gamma1"], p["astro_gamma2"]
        if eb >= E0:  # 100 TeV on the gamma1 side: (E/E0)^-g1 up to E_break, then gamma2
            shape = np.where(energy < eb, e**-g1, (eb / E0) ** -g1 * (energy / eb) ** -g2)
        else:  # 100 TeV on the gamma2 side: (E/E0)^-g2 above E_break, gamma1 below
            shape = np.where(energy < eb, (eb / E0) ** -g2 * (energy / eb) ** -g1, e**-g2)
    return energy**2 * p["astro_norm"] * 1.0e-18 * shape


def stacked(sets: list[dict]) -> dict[str, np.ndarray]:
    """Parameter sets -> one array of draws per parameter."""
    return {name: np.array([s[name] for s in sets]) for name in sets[0]}


# ------------------------------------------------------------------------------- e2_flux


@pytest.mark.parametrize("model", ASTRO_MODELS)
def test_e2_flux_matches_the_formula(model):
    sets = PARAMETER_SETS[model]
    got = e2_flux(component(model), stacked(sets), ENERGIES)
    assert got.shape == (len(sets), ENERGIES.size)
    for row, p in zip(got, sets, strict=True):
        np.testing.assert_allclose(row, reference_e2_flux(model, p, ENERGIES), rtol=1e-12, atol=0)


def test_e2_flux_is_phi_at_100_tev_times_e_squared():
    for model in ASTRO_MODELS:
        for p in PARAMETER_SETS[model]:
            value = e2_flux(component(model), p, [E0])[0, 0]
            cutoff = np.exp(-E0 / 10.0 ** p.get("astro_log10_ecut", np.inf))
            assert value == pytest.approx(p["astro_norm"] * 1e-18 * E0**2 * cutoff, rel=1e-13)


def test_e2_flux_ravels_chain_draw_arrays_and_broadcasts_scalars():
    gamma = np.array([[2.1, 2.5, 2.9], [3.0, 2.2, 2.7]])  # (chain, draw)
    got = e2_flux(component("spl"), {"astro_norm": 4.0, "astro_gamma": gamma}, ENERGIES)
    assert got.shape == (6, ENERGIES.size)
    for row, g in zip(got, gamma.reshape(-1), strict=True):
        p = {"astro_norm": 4.0, "astro_gamma": g}
        np.testing.assert_allclose(row, reference_e2_flux("spl", p, ENERGIES), rtol=1e-12)


def test_e2_flux_refusals():
    with pytest.raises(TypeError, match="not astrophysical"):
        e2_flux(ATMOSPHERIC, {"atmos_norm": [1.0]}, ENERGIES)
    with pytest.raises(KeyError, match="astro_gamma"):
        e2_flux(component("spl"), {"astro_norm": [1.0]}, ENERGIES)
    with pytest.raises(ValueError, match="numbers of draws"):
        e2_flux(component("spl"), {"astro_norm": [1.0, 2.0], "astro_gamma": [2, 3, 4]}, ENERGIES)
    with pytest.raises(ValueError, match="positive"):
        e2_flux(component("spl"), {"astro_norm": 1.0, "astro_gamma": 2.0}, [1e5, 0.0])


# ------------------------------------------------------------------- the single power law


@pytest.mark.parametrize("gamma", [1.2, 2.5, 2.87, 3.8])
def test_logparabola_with_zero_curvature_is_the_power_law(gamma):
    spl = e2_flux(component("spl"), {"astro_norm": 6.0, "astro_gamma": gamma}, ENERGIES)
    lp = e2_flux(
        component("logparabola"),
        {"astro_norm": 6.0, "astro_alpha": gamma, "astro_beta": 0.0},
        ENERGIES,
    )
    np.testing.assert_allclose(lp, spl, rtol=1e-12, atol=0)


@pytest.mark.parametrize("log10_ebreak", [4.5, 4.9, 5.0, 5.3, 6.8])
@pytest.mark.parametrize("gamma", [1.7, 2.87])
def test_broken_law_with_equal_indices_is_the_power_law(gamma, log10_ebreak):
    spl = e2_flux(component("spl"), {"astro_norm": 3.0, "astro_gamma": gamma}, ENERGIES)
    broken = e2_flux(
        component("broken"),
        {
            "astro_norm": 3.0,
            "astro_gamma1": gamma,
            "astro_gamma2": gamma,
            "astro_log10_ebreak": log10_ebreak,
        },
        ENERGIES,
    )
    np.testing.assert_allclose(broken, spl, rtol=1e-12, atol=0)


def test_cutoff_far_above_the_energies_is_the_power_law():
    spl = e2_flux(component("spl"), {"astro_norm": 3.0, "astro_gamma": 2.4}, ENERGIES)
    cut = e2_flux(
        component("cutoff"),
        {"astro_norm": 3.0, "astro_gamma": 2.4, "astro_log10_ecut": 30.0},
        ENERGIES,
    )
    np.testing.assert_allclose(cut, spl, rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------ flux_band


def random_draws(model: str, n: int, rng) -> dict[str, np.ndarray]:
    draws = {"astro_norm": rng.uniform(1.0, 10.0, n)}
    if model == "spl":
        draws["astro_gamma"] = rng.uniform(2.0, 3.5, n)
    elif model == "logparabola":
        draws |= {"astro_alpha": rng.uniform(2, 3.5, n), "astro_beta": rng.uniform(-0.2, 0.5, n)}
    elif model == "broken":
        draws |= {
            "astro_gamma1": rng.uniform(1.5, 3.5, n),
            "astro_gamma2": rng.uniform(1.5, 3.5, n),
            "astro_log10_ebreak": rng.uniform(4.5, 7.0, n),
        }
    else:
        draws |= {"astro_gamma": rng.uniform(2, 3.5, n), "astro_log10_ecut": rng.uniform(5, 8, n)}
    return draws


@pytest.mark.parametrize("model", ASTRO_MODELS)
def test_flux_band_is_the_quantile_of_the_per_draw_fluxes(model, rng):
    draws = random_draws(model, 301, rng)
    band = flux_band(component(model), draws, ENERGIES)
    direct = np.array(
        [
            reference_e2_flux(model, {k: v[i] for k, v in draws.items()}, ENERGIES)
            for i in range(301)
        ]
    )
    np.testing.assert_array_equal(band["energies"], ENERGIES)
    np.testing.assert_array_equal(band["quantiles"], QS)
    assert band["n_draws"] == 301
    assert band["e2_flux"].shape == (len(QS), ENERGIES.size)
    np.testing.assert_allclose(band["e2_flux"], np.quantile(direct, QS, axis=0), rtol=1e-12, atol=0)
    assert np.all(np.diff(band["e2_flux"], axis=0) >= 0)  # ordered quantiles at every energy


def test_flux_band_with_other_quantiles_and_chain_draw_shape(rng):
    draws = {k: v.reshape(3, 40) for k, v in random_draws("cutoff", 120, rng).items()}
    band = flux_band(component("cutoff"), draws, ENERGIES, quantiles=(0.05, 0.95))
    flat = {k: v.reshape(-1) for k, v in draws.items()}
    direct = np.array(
        [
            reference_e2_flux("cutoff", {k: v[i] for k, v in flat.items()}, ENERGIES)
            for i in range(120)
        ]
    )
    np.testing.assert_allclose(
        band["e2_flux"], np.quantile(direct, (0.05, 0.95), axis=0), rtol=1e-12
    )


# ----------------------------------------------------------------- sensitive_energy_range


def brute_force_quantile(weights, energies, q) -> float:
    """The smallest energy whose cumulative weight (events sorted by energy) reaches q of the
    total, by walking the sorted events one by one."""
    order = sorted(range(len(energies)), key=lambda i: energies[i])
    total = sum(float(w) for w in weights)
    running = 0.0
    for i in order:
        running += float(weights[i])
        if running >= q * total:
            return float(energies[i])
    raise AssertionError("unreachable")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fraction", [0.9, 0.68, 0.5])
def test_sensitive_range_against_brute_force(seed, fraction):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    weights = rng.lognormal(0.0, 2.0, n) * (rng.random(n) > 0.2)  # some events weigh nothing
    energies = 10.0 ** rng.uniform(3.0, 7.5, n)
    mask = rng.random(n) > 0.3
    mask[0] = True
    weights[0] = 1.0  # some weight in the bins
    lo, hi = sensitive_energy_range(weights, energies, mask, fraction)
    w, e = weights[mask], energies[mask]
    expected = [
        brute_force_quantile(w, e, (1 - fraction) / 2),
        brute_force_quantile(w, e, (1 + fraction) / 2),
    ]
    assert (lo, hi) == tuple(expected)
    assert lo <= hi
    # the same as NumPy's weighted inverted-CDF quantile
    np.testing.assert_array_equal(
        [lo, hi],
        np.quantile(e, [(1 - fraction) / 2, (1 + fraction) / 2], weights=w, method="inverted_cdf"),
    )


def test_sensitive_range_of_one_event_carrying_all_weight():
    energies = np.array([3e3, 4e4, 2.5e5, 7e5, 9e6])
    weights = np.array([0.0, 0.0, 0.0, 2.3, 0.0])
    assert sensitive_energy_range(weights, energies, np.ones(5, bool)) == (7e5, 7e5)
    # the heavy event outside the bins: the rest decide
    weights = np.array([1.0, 0.0, 0.0, 1e6, 1.0])
    mask = np.array([True, True, True, False, True])
    assert sensitive_energy_range(weights, energies, mask) == (3e3, 9e6)
    assert sensitive_energy_range(weights, energies, np.ones(5, bool)) == (7e5, 7e5)


def test_sensitive_range_takes_the_event_that_reaches_the_quantile_exactly():
    """Equal weights, exact ties of the cumulative weight with the quantile: the inverted CDF
    takes the first event whose cumulative weight reaches it (not the next one)."""
    energies = np.array([5e5, 1e4, 2e6, 3e4, 8e4, 1e6, 2e5, 4e6])  # unsorted on purpose
    lo, hi = sensitive_energy_range(np.ones(8), energies, np.ones(8, bool), fraction=0.5)
    assert (lo, hi) == (3e4, 1e6)  # cumulative 2 of 8 and 6 of 8
    assert (lo, hi) == (
        brute_force_quantile(np.ones(8), energies, 0.25),
        brute_force_quantile(np.ones(8), energies, 0.75),
    )


def test_sensitive_range_refusals():
    e = np.array([1e4, 1e5])
    with pytest.raises(ValueError, match="no astrophysical weight"):
        sensitive_energy_range(np.array([1.0, 0.0]), e, np.array([False, True]))
    with pytest.raises(ValueError, match="non-negative"):
        sensitive_energy_range(np.array([1.0, -0.1]), e, np.array([True, True]))
    with pytest.raises(ValueError, match="fraction"):
        sensitive_energy_range(np.array([1.0, 1.0]), e, np.array([True, True]), fraction=1.0)


# ------------------------------------------------------------------------------ the figure

RANGES = {
    "spl": (6e4, 2e6),
    "logparabola": (5e4, 1.5e6),
    "broken": (8e4, 3e6),
    "cutoff": (4e4, 1e6),
}


@pytest.fixture
def bands(rng):
    return {m: flux_band(component(m), random_draws(m, 200, rng), ENERGIES) for m in ASTRO_MODELS}


def test_spectrum_figure_structure(bands):
    fig = spectrum_figure(bands, RANGES)
    fig.canvas.draw()  # missing glyphs warn (errors under pytest)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert (ax.get_xlabel(), ax.get_ylabel()) == (X_LABEL, Y_LABEL)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == [MODEL_LABELS[m] for m in ASTRO_MODELS]
    assert len(set(MODEL_LABELS.values())) == len(MODEL_LABELS)  # distinct labels
    key = [c for c in ax.get_children() if isinstance(c, Legend) and c is not ax.get_legend()]
    assert len(key) == 1
    assert "outside the sensitive energy range" in [t.get_text() for t in key[0].get_texts()]


def test_spectrum_figure_draws_the_median_solid_exactly_inside_the_range(bands):
    fig = spectrum_figure(bands, RANGES)
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_linewidth() == 1.8]
    solid = [ln for ln in lines if ln.get_linestyle() == "-"]
    dashed = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(solid) == len(ASTRO_MODELS) and len(dashed) == 2 * len(ASTRO_MODELS)
    for line, model in zip(solid, ASTRO_MODELS, strict=True):
        x, y = line.get_data()
        assert (x[0], x[-1]) == pytest.approx(RANGES[model], rel=1e-12)
        inside = (ENERGIES > RANGES[model][0]) & (ENERGIES < RANGES[model][1])
        np.testing.assert_allclose(y[1:-1], bands[model]["e2_flux"][2][inside], rtol=1e-12)
    colours = {
        tuple(ln.get_color()) if not isinstance(ln.get_color(), str) else ln.get_color()
        for ln in solid
    }
    assert len(colours) == len(ASTRO_MODELS)


def test_spectrum_figure_survives_a_flux_underflowing_to_zero():
    energies = np.geomspace(1e4, 1e9, 40)
    band = flux_band(
        component("cutoff"),
        {"astro_norm": [5.0, 6.0], "astro_gamma": [2.5, 2.6], "astro_log10_ecut": [5.0, 5.1]},
        energies,
    )
    assert band["e2_flux"][:, -1].max() == 0.0  # exp(-1e4) underflows
    fig = spectrum_figure({"cutoff": band}, {"cutoff": (3e4, 8e5)})
    fig.canvas.draw()
    low, high = fig.axes[0].get_ylim()
    assert 0 < low < band["e2_flux"][0, energies < 8e5].min() and high > band["e2_flux"].max()


def test_spectrum_figure_needs_the_band_quantiles(rng):
    band = flux_band(component("spl"), random_draws("spl", 50, rng), ENERGIES, quantiles=(0.5,))
    with pytest.raises(ValueError, match="0.025"):
        spectrum_figure({"spl": band}, {"spl": (1e4, 1e6)})
