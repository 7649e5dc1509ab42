import numpy as np
import pytest

from diffuse_fit.binned.binning import OUTSIDE, Binning

# The notebook's binning, transcribed verbatim (bin order topology -> zenith -> energy).
energy_bins = np.logspace(np.log10(60.0e3), np.log10(1.0e7), 20 + 1)
zenith_bins = np.arccos(np.linspace(-1, 1, 10 + 1))[::-1]
topology_bins = np.linspace(0, 2, 2 + 1)

# The exact outer edges (numpy.histogram's convention: the last bin is closed).
OUTER_ENERGY, OUTER_ZENITH = (6.0e4, 1.0e7), (0.0, np.pi)


def make_bin_masks(energies, zeniths, topologies):
    n_energy_bins = len(energy_bins) - 1
    n_zenith_bins = len(zenith_bins) - 1
    n_topology_bins = len(topology_bins) - 1
    energy_mapping = np.digitize(energies, bins=energy_bins) - 1
    zenith_mapping = np.digitize(zeniths, bins=zenith_bins) - 1
    topology_mapping = np.digitize(topologies, bins=topology_bins) - 1
    bin_masks = []
    for i in range(n_topology_bins):
        for j in range(n_zenith_bins):
            for k in range(n_energy_bins):
                mask = topology_mapping == i
                mask = np.logical_and(mask, zenith_mapping == j)
                mask = np.logical_and(mask, energy_mapping == k)
                bin_masks.append(mask)
    return bin_masks


def notebook_index(energy, zenith, topology):
    """Flat bin index from the notebook's masks (-1 where no mask holds the event)."""
    masks = np.array(make_bin_masks(energy, zenith, topology))
    assert masks.sum(axis=0).max() <= 1  # the notebook's masks are disjoint
    return np.where(masks.any(axis=0), masks.argmax(axis=0), OUTSIDE)


def histogramdd_index(energy, zenith, topology):
    """Independent reference: each event's bin from np.histogramdd of that event alone.

    Edges are the stated values exactly (6e4 .. 1e7 GeV log-spaced, arccos of a uniform
    cos grid with 0 and pi at the ends); the categorical topology codes 0 and 1 become
    the unit bins [-0.5, 0.5), [0.5, 1.5], so codes 2 fall outside.
    """
    e_edges = energy_bins.copy()
    e_edges[[0, -1]] = OUTER_ENERGY
    z_edges = zenith_bins.copy()
    z_edges[[0, -1]] = OUTER_ZENITH
    edges = [np.array([-0.5, 0.5, 1.5]), z_edges, e_edges]
    out = np.full(len(energy), OUTSIDE)
    for i, point in enumerate(zip(topology, zenith, energy, strict=True)):
        hist, _ = np.histogramdd(np.array([point]), bins=edges)
        if hist.sum() == 1:
            out[i] = int(np.flatnonzero(hist.ravel())[0])
    return out


def _events_with_edges(rng, n=20_000):
    """Random events, a quarter of them on every notebook edge and the exact outer edges."""
    energy = 10 ** rng.uniform(4.0, 7.5, n)  # below, inside and above 60 TeV .. 10 PeV
    zenith = np.arccos(rng.uniform(-1, 1, n))
    topology = rng.integers(0, 3, n).astype(float)  # 2 = double cascade, outside
    k = n // 4
    energy[:k] = rng.choice(np.concatenate([energy_bins, OUTER_ENERGY]), k)
    zenith[k : 2 * k] = rng.choice(np.concatenate([zenith_bins, OUTER_ZENITH]), k)
    topology[2 * k : 3 * k] = rng.choice([0.0, 1.0, 2.0], k)
    energy[3 * k : 3 * k + k // 2] = rng.choice(OUTER_ENERGY, k // 2)  # on edges in two axes
    zenith[3 * k : 3 * k + k // 2] = rng.choice(OUTER_ZENITH, k // 2)
    return energy, zenith, topology


def test_bin_index_equals_histogramdd(rng):
    energy, zenith, topology = _events_with_edges(rng, n=4_000)
    index = Binning().bin_index(energy, zenith, topology)
    np.testing.assert_array_equal(index, histogramdd_index(energy, zenith, topology))
    on_outer = np.isin(energy, OUTER_ENERGY) | np.isin(zenith, OUTER_ZENITH)
    assert np.sum(on_outer & (index >= 0)) > 100  # exact outer edges inside, often
    assert np.all(index[topology == 2] == OUTSIDE)


def test_histogram_equals_histogramdd_counts(rng):
    energy, zenith, topology = _events_with_edges(rng)
    b = Binning()
    edges = [np.array([-0.5, 0.5, 1.5]), b.zenith_edges, b.energy_edges]
    reference, _ = np.histogramdd(np.column_stack([topology, zenith, energy]), bins=edges)
    np.testing.assert_array_equal(
        b.histogram(b.bin_index(energy, zenith, topology)), reference.ravel()
    )


def test_bin_index_differs_from_notebook_only_on_outer_edges(rng):
    """The notebook's np.digitize leaves 6e4 GeV (below its first edge 60000.00000000003),
    1e7 GeV and zenith pi outside; we count them in.  Nothing else differs."""
    energy, zenith, topology = _events_with_edges(rng)
    index = Binning().bin_index(energy, zenith, topology)
    notebook = notebook_index(energy, zenith, topology)
    on_outer = (energy == 6.0e4) | (energy == 1.0e7) | (zenith == np.pi)
    differ = index != notebook
    # every difference is an event on an outer edge that we bin and the notebook drops
    assert np.all(on_outer[differ])
    assert np.all(notebook[differ] == OUTSIDE) and np.all(index[differ] >= 0)
    # and every outer-edge event with its other observables inside differs
    np.testing.assert_array_equal(differ, on_outer & (index >= 0))
    assert differ.sum() > 100
    assert 0 < np.sum(index == OUTSIDE) < len(index)
    # away from the outer edges the histograms agree exactly
    keep = ~on_outer
    masks = np.array(make_bin_masks(energy[keep], zenith[keep], topology[keep]))
    np.testing.assert_array_equal(Binning().histogram(index[keep]), masks.sum(axis=1))
    # the interior edges are the notebook's values, bit for bit
    np.testing.assert_array_equal(Binning().energy_edges[1:-1], energy_bins[1:-1])
    np.testing.assert_array_equal(Binning().zenith_edges[1:-1], zenith_bins[1:-1])


def test_edge_conventions():
    b = Binning()
    assert b.energy_edges[0] == 6.0e4 and b.energy_edges[-1] == 1.0e7
    assert b.zenith_edges[0] == 0.0 and b.zenith_edges[-1] == np.pi
    n_e = b.shape[2]
    energy = [6.0e4, 1.0e7, np.nextafter(1.0e7, np.inf), np.nextafter(6.0e4, 0), 1e5, 1e5, 1e5]
    zenith = [1.0, 1.0, 1.0, 1.0, 0.0, np.pi, np.nextafter(np.pi, 4)]
    idx = b.bin_index(energy, zenith, [0] * 7)
    z_pi = b.bin_index([1e5], [np.pi], [0])[0] // n_e
    assert idx[0] % n_e == 0 and idx[1] % n_e == n_e - 1  # both energy end points inside
    assert idx[2] == OUTSIDE and idx[3] == OUTSIDE  # one ulp beyond them outside
    assert idx[4] // n_e == 0 and z_pi == b.shape[1] - 1 and idx[5] >= 0  # zenith 0 and pi in
    assert idx[6] == OUTSIDE
    # an interior edge belongs to the bin above it
    assert b.bin_index([b.energy_edges[5]], [1.0], [0])[0] % n_e == 5
    assert np.all(b.bin_index([1e5] * 2, [np.nan, 1.0], [0, np.nan]) == OUTSIDE)


def test_topology_is_categorical():
    b = Binning()
    n_per_topology = b.shape[1] * b.shape[2]
    idx = b.bin_index([1e5] * 5, [1.0] * 5, [0.0, 1.0, 2.0, 0.5, -1.0])
    assert idx[1] - idx[0] == n_per_topology
    assert np.all(idx[2:] == OUTSIDE)  # double cascades (2) are not pulled into the track bin
    three = Binning(topology_codes=(0, 1, 2))
    assert three.shape == (3, 10, 20)
    assert three.bin_index([1e5], [1.0], [2.0])[0] == idx[0] + 2 * n_per_topology
    assert Binning(topology_codes=(1,)).bin_index([1e5] * 2, [1.0] * 2, [0, 1])[0] == OUTSIDE
    assert b.to_dict()["topology_codes"] == [0, 1]
    assert b.to_dict()["energy_edges_GeV"][0] == 6.0e4


def test_configurable_edges():
    b = Binning(energy_edges=[1.0, 10.0, 100.0], zenith_edges=[0.0, np.pi], topology_codes=[0, 1])
    assert b.shape == (2, 1, 2) and b.n_bins == 4
    np.testing.assert_array_equal(
        b.bin_index([5.0, 50.0, 50.0, 100.0], [1.0] * 4, [0, 0, 1, 1]), [0, 1, 3, 3]
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"energy_edges": [1.0, 1.0]},
        {"zenith_edges": [0.0, np.inf]},
        {"topology_codes": []},
        {"topology_codes": [0, 0]},
        {"topology_codes": [0.5]},
    ],
)
def test_invalid_binning_is_refused(kwargs):
    with pytest.raises(ValueError, match="Binning"):
        Binning(**kwargs)
