"""Whole `diffuse-fit sample` jobs against the emcee script a user would otherwise write.

    .venv/bin/python scripts/benchmark_vs_emcee.py [--in-bins 3e4 3e5 3e6] [--workdir DIR]

For each size, writes a workshop-format toy simulation with about that many events inside
the bins (and its pseudo-data), runs ``diffuse-fit sample --prior flat`` once to warm the
caches, then times ``--repeat`` more runs in fresh processes, and ``scripts/emcee_baseline.py``
(fresh process, until every ESS >= 400; repeated as often when a run takes under a minute).
Prints the fastest wall time of each side (the machine is shared: the minimum is the job's
own cost), both minimum ESS, the ratio (emcee / diffuse-fit) and the peak memory of the
diffuse-fit job.  Needs emcee (``pip install emcee``).  Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diffuse_fit.binned.binning import Binning
from diffuse_fit.io.workshop_format import write_workshop_file
from diffuse_fit.physics import toy

HERE = Path(__file__).resolve().parent
IN_BINS_PER_GENERATED = 0.54  # toy: events inside the bins per generated interaction


def make_inputs(folder: Path, in_bins: float) -> tuple[Path, Path, int]:
    ds = toy.generate(seed=1, n_simulated=int(in_bins / IN_BINS_PER_GENERATED))
    sim = ds.simulation
    n_in = int((Binning().bin_index(sim["energy"], sim["zenith"], sim["topology"]) >= 0).sum())
    paths = folder / f"sim_{in_bins:.0e}.json", folder / f"data_{in_bins:.0e}.json"
    if not paths[0].exists():
        write_workshop_file(paths[0], sim)
        write_workshop_file(paths[1], ds.data)
    return paths[0], paths[1], n_in


def timed(argv: list[str], env: dict | None = None) -> tuple[float, str, float]:
    """Wall seconds, stdout and peak RSS (MB, by GNU time) of a fresh process."""
    t0 = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({result.returncode}): {result.stderr[-2000:]}")
    peak_kb = float(result.stderr.strip().splitlines()[-1])
    return wall, result.stdout, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-bins", type=float, nargs="+", default=[3e4, 3e5, 3e6])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side (default 3)")
    args = parser.parse_args()
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="diffuse-fit-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    cli = str(Path(sys.executable).with_name("diffuse-fit"))
    print(
        f"{'in bins':>9s} {'diffuse-fit s':>14s} {'min ESS':>8s} {'peak MB':>8s} "
        f"{'emcee s':>9s} {'min ESS':>8s} {'ratio':>7s}"
    )
    for size in args.in_bins:
        sim, data, n_in = make_inputs(folder, size)
        out = folder / f"run_{size:.0e}"
        job = [
            cli,
            "sample",
            "--data",
            str(data),
            "--sim",
            str(sim),
            "--prior",
            "flat",
            "--seed",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
        timed(job)  # warm the parse cache and the compile caches
        runs = [timed(job) for _ in range(args.repeat)]
        ours, peak = min(r[0] for r in runs), max(r[2] for r in runs)
        summary = json.loads((out / "summary.json").read_text())
        our_ess = summary["diagnostics"]["min_ess_bulk"]
        baseline = [
            sys.executable,
            str(HERE / "emcee_baseline.py"),
            "--data",
            str(data),
            "--sim",
            str(sim),
        ]
        theirs, stdout, _ = timed(baseline)
        their_ess = json.loads(stdout.strip().splitlines()[-1])["min_ess"]
        for _ in range(args.repeat - 1 if theirs < 60 else 0):
            wall, stdout, _ = timed(baseline)
            if wall < theirs:
                theirs, their_ess = wall, json.loads(stdout.strip().splitlines()[-1])["min_ess"]
        print(
            f"{n_in:9d} {ours:14.1f} {our_ess:8.0f} {peak:8.0f} {theirs:9.1f} "
            f"{their_ess:8.0f} {theirs / ours:7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
