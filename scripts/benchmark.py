"""Benchmark of the PyMC model: build/compile, log-density + gradient cost vs simulation size
(Poisson and SAY likelihoods), MAP and NUTS wall times, ESS per second; NUTS compilation by
sampler ("nutpie": numba cfuncs from pytensor's disk cache, "nutpie-numba": nutpie's own
compilation).  Whole jobs in fresh processes: ``scripts/benchmark_jobs.py``.  Prints figures;
asserts nothing.  The machine's other load shows in every time: repeat, and read the minimum.

    .venv/bin/python scripts/benchmark.py [--sizes 1e4 1e5 1e6] [--draws 1000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from diffuse_fit.binned import reference_fit
from diffuse_fit.binned.dataset import bin_dataset
from diffuse_fit.binned.templates import expected_counts
from diffuse_fit.inference.map_fit import MapFitter
from diffuse_fit.inference.nuts_fitter import NutsFitter
from diffuse_fit.inference.priors import resolve_priors
from diffuse_fit.inference.pymc_model import build_model, parameter_supports, set_counts
from diffuse_fit.inference.sampling import diagnostics, sample
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.physics import toy

SELECTED_FRACTION = 0.785  # toy events passing the 30 TeV selection


def per_call(fn, *args, repeat=200):
    fn(*args)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn(*args)
    return (time.perf_counter() - t0) / repeat


def compiled_logp_dlogp(model, x):
    """The model's compiled log-density + gradient in the unconstrained space, called once."""
    logp_dlogp = model.logp_dlogp_function(ravel_inputs=True)
    logp_dlogp.set_extra_values({})
    logp_dlogp(x)
    return logp_dlogp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--prior", default="flat")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    print(
        f"{'sim events':>10s} {'tables s':>9s} {'build+compile s':>16s} "
        f"{'logp+grad ms':>13s} {'exact numpy llh ms':>19s} {'SAY s2 tables s':>16s} "
        f"{'SAY logp+grad ms':>17s}"
    )
    for size in args.sizes:
        ds = toy.generate(seed=1, n_simulated=int(size / SELECTED_FRACTION))
        t0 = time.perf_counter()
        binned = bin_dataset(ds.data, ds.simulation)
        t_tables = time.perf_counter() - t0
        t0 = time.perf_counter()
        priors = resolve_priors(args.prior, parameter_supports(binned.components))
        x = np.array([np.log(1.0), np.log(6.0), 0.0])
        logp_dlogp = compiled_logp_dlogp(build_model(binned, priors), x)
        t_build = time.perf_counter() - t0
        t_eval = per_call(logp_dlogp, x)
        t0 = time.perf_counter()
        say_binned = binned.with_variance()
        t_say_tables = time.perf_counter() - t0
        say_logp_dlogp = compiled_logp_dlogp(build_model(say_binned, priors, "say"), x)
        t_say_eval = per_call(say_logp_dlogp, x)

        def exact(b=binned):
            w = reference_fit.weight_event(b.simulation, 1.0, 6.0, 2.5)
            lam = reference_fit.get_expectation(b.sim_bin_index, w, b.binning.n_bins)
            return reference_fit.llh(b.counts, lam)

        t_exact = per_call(exact, repeat=5 if size > 3e5 else 50)
        print(
            f"{len(ds.simulation):10d} {t_tables:9.2f} {t_build:16.2f} "
            f"{t_eval * 1e3:13.4f} {t_exact * 1e3:19.2f} {t_say_tables:16.2f} "
            f"{t_say_eval * 1e3:17.4f}"
        )

    ds = toy.generate()
    binned = bin_dataset(ds.data, ds.simulation)
    model = build_model(binned, resolve_priors(args.prior, parameter_supports(binned.components)))
    t0 = time.perf_counter()
    fitter = MapFitter(model)
    result = fitter.fit()
    first = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    lam = expected_counts(binned.templates, result.values)
    t0 = time.perf_counter()
    for _ in range(20):  # pseudo-experiments: new counts, same compiled fitter
        set_counts(model, rng.poisson(lam))
        fitter.fit()
    refit = (time.perf_counter() - t0) / 20
    set_counts(model, binned.counts)
    print(
        f"\nMAP (default toy data): {first:.2f} s with compilation; "
        f"{refit * 1e3:.1f} ms per pseudo-experiment refit"
    )
    for sampler in ("nutpie", "nutpie-numba"):
        t0 = time.perf_counter()
        fitter_nuts = NutsFitter(model, sampler=sampler)  # compiled once
        compile_s = time.perf_counter() - t0
        settings = SamplerSettings(draws=args.draws, tune=1000, chains=4, seed=1, sampler=sampler)
        times, divergences = [], []
        for _ in range(5):  # pseudo-experiments: new counts, same compiled sampler
            set_counts(model, rng.poisson(lam))
            t0 = time.perf_counter()
            idata = fitter_nuts.sample(settings)
            times.append(time.perf_counter() - t0)
            divergences.append(int(idata.sample_stats["diverging"].sum()))
        set_counts(model, binned.counts)
        print(
            f"NUTS {sampler:12s} NutsFitter: compilation {compile_s:5.2f} s; refit 4 x (1000 tune "
            f"+ {args.draws} draws) median {np.median(times):.2f} s over 5 pseudo-experiments, "
            f"divergences {divergences}"
        )
    for sampler in ("nutpie", "nutpie-numba", "pymc"):
        settings = SamplerSettings(draws=args.draws, tune=1000, chains=4, seed=1, sampler=sampler)
        t0 = time.perf_counter()
        idata = sample(model, settings, progressbar=False)
        wall = time.perf_counter() - t0
        d = diagnostics(idata, list(result.values))
        print(
            f"NUTS {sampler:12s} 4 x (1000 tune + {args.draws} draws), compilation included: "
            f"{wall:6.1f} s wall, divergences {d['divergences']}, max R-hat "
            f"{d['max_r_hat']:.4f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
            f"ESS/s {d['min_ess_bulk'] / wall:.0f}"
        )


if __name__ == "__main__":
    main()
