"""Whole jobs on the embedded toy dataset against the speed issue's targets.

    .venv/bin/python scripts/benchmark_jobs.py [--repeat 5]

Times, in fresh processes of the installed ``diffuse-fit`` executable (as a user runs it):
``diffuse-fit --help``; ``diffuse-fit map``; ``diffuse-fit sample --prior flat`` (4 x
(1000 + 1000)) with warm caches (after one run that fills them) and its peak memory; and the
same job with cold caches: an empty pytensor/numba compile directory of its own
(``PYTENSOR_FLAGS=base_compiledir=...``), as on a fresh machine.  Warm figures are the
minimum and median of ``--repeat`` runs (this machine is shared: the minimum is the job's
cost, the median what a user sees).  Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmark_vs_emcee import timed  # this folder: scripts/ is the script's sys.path[0]

TARGETS = {"--help": 0.3, "map": 1.5, "sample": 3.0, "sample, cold caches": 20.0}
MEMORY_TARGET_MB = 400


def run(argv: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of a fresh process."""
    wall, _, peak = timed(argv, env)
    return wall, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm runs per job (default 5)")
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("diffuse-fit"))
    with tempfile.TemporaryDirectory(prefix="diffuse-fit-jobs-") as tmp:
        jobs = {
            "--help": [cli, "--help"],
            "map": [cli, "map", "--out", f"{tmp}/map", "--quiet"],
            "sample": [
                cli,
                "sample",
                "--prior",
                "flat",
                "--seed",
                "1",
                "--out",
                f"{tmp}/sample",
                "--quiet",
            ],
        }
        rows = []
        for name, argv in jobs.items():
            run(argv)  # fills the caches (and the OS's file cache)
            walls, peaks = zip(*(run(argv) for _ in range(args.repeat)), strict=True)
            rows.append((name, min(walls), statistics.median(walls), max(peaks)))
        cold_env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp}/empty-cache"}
        wall, peak = run([*jobs["sample"][:-3], "--out", f"{tmp}/cold", "--quiet"], cold_env)
        rows.append(("sample, cold caches", wall, wall, peak))
    print(
        f"{'job (toy dataset)':22s} {'min s':>7s} {'median s':>9s} {'target s':>9s} {'peak MB':>8s}"
    )
    for name, low, median, peak in rows:
        print(f"{name:22s} {low:7.2f} {median:9.2f} {TARGETS[name]:9.1f} {peak:8.0f}")
    print(f"(peak memory target of 'sample': {MEMORY_TARGET_MB} MB)")


if __name__ == "__main__":
    main()
