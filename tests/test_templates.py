import numpy as np
import pytest

from diffuse_fit.binned.templates import expected_counts, expected_counts_exact
from diffuse_fit.physics.components import WORKSHOP_COMPONENTS

TABLE_RTOL = 1e-10  # stated accuracy of the Chebyshev tables (they are built to 1e-11)


def _exact_numpy(sim, index, n_bins, p):
    """Independent per-event sum, written out without the package's components."""
    e = sim["primaryEnergy"] / 1e5
    w = p["atmos_norm"] * sim["atmoWeight"] + p["astro_norm"] * sim["astroWeight"] * e ** -(
        p["astro_gamma"] - 2.5
    )
    out = np.zeros(n_bins)
    np.add.at(out, index[index >= 0], w[index >= 0])
    return out


def test_tables_match_exact_sum_at_random_points(binned, rng):
    n = binned.binning.n_bins
    for _ in range(30):
        p = {
            "atmos_norm": rng.uniform(0, 3),
            "astro_norm": rng.uniform(0, 20),
            "astro_gamma": rng.uniform(1, 4),
        }
        reference = _exact_numpy(binned.simulation, binned.sim_bin_index, n, p)
        np.testing.assert_allclose(
            expected_counts(binned.templates, p), reference, rtol=TABLE_RTOL, atol=0
        )
        np.testing.assert_allclose(
            expected_counts_exact(
                binned.simulation, binned.sim_bin_index, n, WORKSHOP_COMPONENTS, p
            ),
            reference,
            rtol=1e-12,
        )


def test_tables_exact_at_range_ends(binned):
    for gamma in (1.0, 4.0):
        p = {"atmos_norm": 1.0, "astro_norm": 1.0, "astro_gamma": gamma}
        reference = _exact_numpy(binned.simulation, binned.sim_bin_index, binned.binning.n_bins, p)
        np.testing.assert_allclose(expected_counts(binned.templates, p), reference, rtol=TABLE_RTOL)
    assert binned.templates.max_relative_error < 1e-11


def test_gamma_outside_table_range_is_refused(binned):
    with pytest.raises(ValueError, match="outside the tabulated range"):
        expected_counts(binned.templates, {"atmos_norm": 1, "astro_norm": 1, "astro_gamma": 4.5})
