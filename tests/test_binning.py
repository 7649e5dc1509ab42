import numpy as np

from model.binned.binning import OUTSIDE, Binning

# The notebook's binning, transcribed verbatim (bin order topology -> zenith -> energy).
energy_bins = np.logspace(np.log10(60.0e3), np.log10(1.0e7), 20 + 1)
zenith_bins = np.arccos(np.linspace(-1, 1, 10 + 1))[::-1]
topology_bins = np.linspace(0, 2, 2 + 1)


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


def _events_with_edges(rng, n=20_000):
    energy = 10 ** rng.uniform(4.0, 7.5, n)  # below, inside and above 60 TeV .. 10 PeV
    zenith = np.arccos(rng.uniform(-1, 1, n))
    topology = rng.integers(0, 3, n).astype(float)  # 2 = double cascade, outside
    k = n // 4  # a quarter of the events sit exactly on edges
    energy[:k] = rng.choice(energy_bins, k)
    zenith[k : 2 * k] = rng.choice(zenith_bins, k)
    topology[2 * k : 3 * k] = rng.choice([0.0, 1.0, 2.0], k)
    return energy, zenith, topology


def test_bin_index_equals_notebook_masks(rng):
    energy, zenith, topology = _events_with_edges(rng)
    masks = np.array(make_bin_masks(energy, zenith, topology))
    index = Binning().bin_index(energy, zenith, topology)
    expected = np.where(masks.any(axis=0), masks.argmax(axis=0), OUTSIDE)
    assert masks.sum(axis=0).max() == 1  # the notebook's masks are disjoint
    np.testing.assert_array_equal(index, expected)
    assert 0 < np.sum(index == OUTSIDE) < len(index)  # both cases exercised
    np.testing.assert_array_equal(Binning().histogram(index), masks.sum(axis=1))


def test_edge_conventions():
    b = Binning()
    e0, e_top = b.energy_edges[0], b.energy_edges[-1]
    idx = b.bin_index([e0, e_top, 5.9e4, 1e5], [0.0, 1.0, 1.0, np.pi], [0, 0, 0, 1])
    # lower edge in, upper edge out (np.digitize), below range out, zenith = pi out
    assert idx[0] == 0 and idx[1] == OUTSIDE and idx[2] == OUTSIDE and idx[3] == OUTSIDE


def test_configurable_edges():
    b = Binning(
        energy_edges=[1.0, 10.0, 100.0], zenith_edges=[0.0, np.pi], topology_edges=[0, 1, 2]
    )
    assert b.shape == (2, 1, 2) and b.n_bins == 4
    np.testing.assert_array_equal(b.bin_index([5.0, 50.0, 50.0], [1.0] * 3, [0, 0, 1]), [0, 1, 3])
