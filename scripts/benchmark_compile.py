"""Benchmark of the model's compilation on a HESE release (``--components hese --likelihood
say --prior hese``, detector systematics included): the log-density + gradient graph's size
after nutpie's rewrites, the cold numba compilation of nutpie's model (run in a fresh
``PYTENSOR_FLAGS=base_compiledir=...`` to measure it cold) and the cost of one log-density +
gradient evaluation.  Prints figures; asserts nothing.

    PYTENSOR_FLAGS=base_compiledir=<empty dir> .venv/bin/python scripts/benchmark_compile.py \
        --hese-release DIR [--binned FILE.pkl]

``--binned``: a pickle of the binned dataset (written when missing, read when present), so
that repeated measurements skip the table building.
"""

from __future__ import annotations

import argparse
import pickle
import time
import warnings
from pathlib import Path

import numpy as np


def binned_dataset(release: Path, cache: Path | None):
    """The binned dataset of ``diffuse-fit sample --components hese --likelihood say``."""
    if cache is not None and cache.exists():
        with cache.open("rb") as f:
            return pickle.load(f)
    from diffuse_fit.jobs.inputs import load_inputs
    from diffuse_fit.jobs.prepared import PreparedFit

    job = PreparedFit.prepare(
        load_inputs(hese_release=release),
        "hese",
        "hese",
        say=lambda *_: None,
        likelihood="say",
        build=False,
    )
    if cache is not None:
        with cache.open("wb") as f:
            pickle.dump((job.binned, job.priors), f)
    return job.binned, job.priors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hese-release", type=Path, required=True)
    parser.add_argument("--binned", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import pytensor

    from diffuse_fit.inference import nutpie_cached
    from diffuse_fit.inference.exact_float import exact_float
    from diffuse_fit.inference.pymc_model import build_model

    binned, priors = binned_dataset(args.hese_release, args.binned)
    t0 = time.perf_counter()
    model = build_model(binned, priors, likelihood="say")
    t_build = time.perf_counter() - t0
    print(f"compiledir {pytensor.config.base_compiledir}")
    print(f"parameters {len(model.free_RVs)}, bins {len(model.coords['bin'])}")
    print(f"build_model: {t_build:.2f} s")

    t0, c0 = time.perf_counter(), time.process_time()
    with exact_float():
        compiled = nutpie_cached.compile_cached(model)
        t_compile, c_compile = time.perf_counter() - t0, time.process_time() - c0
        fn = compiled.logp_func
        nodes = len(fn.maker.fgraph.apply_nodes)
        print(
            f"nutpie compile_cached (graphs + numba): {t_compile:.1f} s wall, {c_compile:.1f} s CPU"
        )
        print(f"logp+grad graph after rewrites: {nodes} nodes")
        rng = np.random.default_rng(1)
        x = rng.normal(0.0, 0.3, compiled.n_dim)
        fn.trust_input = True
        fn(x)
        best, cpu = np.inf, np.inf
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.repeat):
                fn(x)
            best = min(best, (time.perf_counter() - t0) / args.repeat)
            cpu = min(cpu, (time.process_time() - c0) / args.repeat)
        print(
            f"logp+grad per call (pytensor function, numba): {best * 1e3:.3f} ms wall, "
            f"{cpu * 1e3:.3f} ms CPU (minimum of 5 x {args.repeat})"
        )
    from collections import Counter

    ops = Counter(type(n.op).__name__ for n in fn.maker.fgraph.apply_nodes)
    print("most frequent ops:", ", ".join(f"{k} {v}" for k, v in ops.most_common(8)))


if __name__ == "__main__":
    main()
