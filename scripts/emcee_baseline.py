"""The script a physicist would write instead of diffuse-fit: the baseline of the benchmark.

    .venv/bin/python scripts/emcee_baseline.py --data D.json --sim S.json [--seed 1]

The workshop's likelihood with ``np.bincount`` (every simulated event reweighted at every
step), flat priors (norms > 0, 1 < gamma < 4), emcee with 32 walkers, run in chunks of 500
steps until the effective sample size of every parameter is >= 400 (ESS = kept steps x
walkers / integrated autocorrelation time, the first 20% of the chain discarded).  Prints
one JSON line: seconds, steps, min ESS.  Deliberately independent of the package.
"""

import argparse
import json
import time

import emcee
import numpy as np
from scipy.special import gammaln

T0 = time.perf_counter()


def load(path):
    with open(path) as fh:
        content = json.load(fh)
    events = np.array(content["events"], dtype=float)
    return {name: events[:, i] for name, i in content["mapping"].items()}


def bin_index(ev):
    e_edges = np.logspace(np.log10(6e4), np.log10(1e7), 21)
    z_edges = np.arccos(np.linspace(-1, 1, 11))[::-1]
    e = np.digitize(ev["energy"], e_edges) - 1
    z = np.digitize(ev["zenith"], z_edges) - 1
    t = ev["topology"].astype(int)
    inside = (e >= 0) & (e < 20) & (z >= 0) & (z < 10) & ((t == 0) | (t == 1))
    return np.where(inside, (t * 10 + z) * 20 + e, -1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--sim", required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    data, sim = load(args.data), load(args.sim)
    k = np.bincount(bin_index(data)[bin_index(data) >= 0], minlength=400).astype(float)
    idx = bin_index(sim)
    keep = idx >= 0
    idx, atmo, astro = idx[keep], sim["atmoWeight"][keep], sim["astroWeight"][keep]
    log_e = np.log(sim["primaryEnergy"][keep] / 1e5)
    const = gammaln(k + 1).sum()

    def log_prob(theta):
        a, n, g = theta
        if a <= 0 or n <= 0 or not 1 < g < 4:
            return -np.inf
        w = a * atmo + n * astro * np.exp(-(g - 2.5) * log_e)
        lam = np.bincount(idx, weights=w, minlength=400)
        used = lam > 0
        return float(np.sum(k[used] * np.log(lam[used])) - lam.sum() - const)

    walkers = 32
    rng = np.random.default_rng(args.seed)
    start = np.array([1.0, 6.0, 2.5]) * (1 + 0.05 * rng.standard_normal((walkers, 3)))
    sampler = emcee.EnsembleSampler(walkers, 3, log_prob)
    sampler.random_state = np.random.mtrand.RandomState(args.seed).get_state()  # seeded
    t_sampling = time.perf_counter()
    state, ess = start, 0.0
    while ess < 400:
        state = sampler.run_mcmc(state, 500, progress=False)
        n = sampler.iteration
        tau = sampler.get_autocorr_time(discard=n // 5, tol=0)
        ess = float((n - n // 5) * walkers / np.max(tau))
    t_end = time.perf_counter()
    print(
        json.dumps(
            {
                "seconds": t_end - T0,
                "sampling_seconds": t_end - t_sampling,
                "steps": sampler.iteration,
                "min_ess": ess,
            }
        )
    )


if __name__ == "__main__":
    main()
