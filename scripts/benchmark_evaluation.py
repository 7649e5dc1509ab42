"""Benchmark: milliseconds per NumPy log-posterior evaluation of the HESE release model.

Builds the :class:`diffuse_fit.fitting.profile.ProfileFitter` exactly as
``diffuse-fit map --hese-release RELEASE --components hese --likelihood say --prior hese``
does (:meth:`diffuse_fit.jobs.prepared.PreparedFit.prepare`, no PyMC model; building the
tables takes ~15 s), finds the MAP, then times ``log_posterior`` at the MAP and at a few
other points inside the priors' supports.  Prints the figures (a script run on demand,
not a test); the CPU time (``time.process_time``) is the steadier figure on a shared machine::

    .venv/bin/python scripts/benchmark_evaluation.py --release DIR [--n 300]
        [--profile]

``--save FILE`` writes the evaluations (value, gradient, Hessian at each point) to an
``.npz`` file (with the points) and ``--compare FILE`` evaluates at such a file's points and
prints the largest differences, to check that two versions of the code compute the same
thing.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

import numpy as np

from diffuse_fit.fitting.map_core import X0
from diffuse_fit.jobs.inputs import load_inputs
from diffuse_fit.jobs.prepared import PreparedFit


def points(fitter, best: dict[str, float], n: int, seed: int = 1) -> list[dict[str, float]]:
    """The MAP and ``n`` points scattered about it inside the supports."""
    rng = np.random.default_rng(seed)
    out = [dict(best)]
    for _ in range(n):
        p = dict(best)
        for name in fitter.names:
            lo, hi = fitter.transforms[name].lo, fitter.transforms[name].hi
            x = best[name] * (1.0 + 0.1 * rng.standard_normal())
            if np.isfinite(lo):
                x = max(x, lo + 1e-3 * (abs(lo) + 1.0))
            if np.isfinite(hi):
                x = min(x, hi - 1e-3 * (abs(hi) + 1.0))
            p[name] = float(x)
        out.append(p)
    return out


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Per point (first axis) ``max |a - b| / max |b|``; the largest over the points."""
    a, b = (np.asarray(v).reshape(len(v), -1) for v in (a, b))
    return float(np.max(np.max(np.abs(a - b), axis=1) / np.max(np.abs(b), axis=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=Path, required=True)
    parser.add_argument("--n", type=int, default=300, help="evaluations per point")
    parser.add_argument("--profile", action="store_true", help="cProfile the evaluations")
    parser.add_argument("--save", type=Path, help="write the evaluations to this .npz")
    parser.add_argument("--compare", type=Path, help="compare the evaluations with this .npz")
    args = parser.parse_args()

    t0 = time.perf_counter()
    inputs = load_inputs(hese_release=args.release)
    prepared = PreparedFit.prepare(
        inputs, "hese", "hese", lambda *a, **k: None, "say", "spl", build=False
    )
    fitter = prepared.profile
    counts = np.asarray(prepared.binned.counts, dtype=np.float64)
    print(
        f"fitter built in {time.perf_counter() - t0:.1f} s: {len(fitter.names)} parameters, "
        f"{fitter.bins.size} bins"
    )
    t1 = time.perf_counter()
    best = fitter.fit(counts, x0=X0)
    print(
        f"MAP in {time.perf_counter() - t1:.2f} s (converged {best.converged}), "
        f"log p = {best.log_posterior:.10f}"
    )
    at = points(fitter, best.values, 4)
    ref = np.load(args.compare) if args.compare is not None else None
    if ref is not None:  # the points of the saved evaluations (the MAP may differ by ~1e-9)
        at = [dict(zip(fitter.names, map(float, row), strict=True)) for row in ref["points"]]
    results = [fitter.log_posterior(counts, p) for p in at]
    if args.save is not None:
        np.savez(
            args.save,
            points=np.array([[p[n] for n in fitter.names] for p in at]),
            logp=np.array([r[0] for r in results]),
            grad=np.array([r[1] for r in results]),
            hess=np.array([r[2] for r in results]),
            loglike=np.array([r[3] for r in results]),
        )
        print(f"saved the evaluations to {args.save}")
    if ref is not None:
        # the gradient vanishes at the MAP (its entries are rounding noise, ~1e-11): the
        # relative figures are over the other points, the MAP's absolute difference apart
        for key, k in (("logp", 0), ("grad", 1), ("hess", 2), ("loglike", 3)):
            mine = np.array([r[k] for r in results])
            at_map = float(np.max(np.abs(mine[0] - ref[key][0])))
            print(
                f"{key}: largest difference relative to the largest entry "
                f"{relative_difference(mine[1:], ref[key][1:]):.2e} (away from the MAP); "
                f"at the MAP largest |difference| {at_map:.2e}"
            )

    profiler = cProfile.Profile() if args.profile else None
    for label, p in zip(["MAP", *[f"point {i}" for i in range(1, len(at))]], at, strict=True):
        fitter.log_posterior(counts, p)  # warm (cached stacks)
        if profiler is not None:
            profiler.enable()
        t, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.n):
            fitter.log_posterior(counts, p)
        elapsed, used = time.perf_counter() - t, time.process_time() - cpu
        if profiler is not None:
            profiler.disable()
        print(
            f"{label:8s}: {1e3 * elapsed / args.n:.3f} ms per evaluation, "
            f"{1e3 * used / args.n:.3f} ms CPU ({args.n} evaluations)"
        )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    t2 = time.perf_counter()
    refit = fitter.fit(counts, x0=X0)
    print(f"MAP again in {time.perf_counter() - t2:.2f} s, log p = {refit.log_posterior:.10f}")


if __name__ == "__main__":
    main()
