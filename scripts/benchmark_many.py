"""The many-fit commands' wall times on the embedded toy dataset (whole jobs, fresh processes).

    .venv/bin/python scripts/benchmark_many.py [--toys 1000] [--sbc N] [--workdir DIR]

Times, on this machine: a 61 x 41 profile scan (2 workers); ``--toys`` MAP pseudo-experiments
with 1 worker and with 2 (the speed-up); and, with ``--sbc N``, an SBC run of N NUTS fits (2
workers; minutes).  Each job starts its own Dask local cluster and writes a fresh journal, so
nothing is reused between runs.  Prints a table (the README keeps it); asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "diffuse_fit.cli"]


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([*CLI, *args, "--quiet"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toys", type=int, default=1000)
    parser.add_argument("--sbc", type=int, default=0, help="SBC fits to time (0: skip)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        rows = []
        scan = [
            "scan",
            "--prior",
            "flat",
            "--param",
            "astro_gamma=2.4:4.0:61",
            "--param",
            "astro_norm=3:15:41",
            "--workers",
            "2",
        ]
        rows.append(
            (
                "61 x 41 profile scan, 2 workers",
                timed([*scan, "--out", str(work / "scan")]),
                "< 30 s",
            )
        )
        times = {}
        for workers in (1, 2):
            out = work / f"toys{workers}"
            times[workers] = timed(
                [
                    "toys",
                    "--n",
                    str(args.toys),
                    "--seed",
                    "1",
                    "--workers",
                    str(workers),
                    "--out",
                    str(out),
                ]
            )
            rows.append(
                (
                    f"{args.toys} MAP pseudo-experiments, {workers} worker(s)",
                    times[workers],
                    "< 60 s" if workers == 2 else "",
                )
            )
        rows.append(("speed-up 2 workers / 1", times[1] / times[2], ">= 1.7 x"))
        if args.sbc:
            sbc = ["sbc", "--n", str(args.sbc), "--seed", "1", "--workers", "2"]
            rows.append(
                (
                    f"SBC, {args.sbc} NUTS fits, 2 workers",
                    timed([*sbc, "--out", str(work / "sbc")]),
                    "< 15 min for 500",
                )
            )
    print("| job | wall time (s) | target |\n|---|---|---|")
    for name, value, target in rows:
        unit = "x" if name.startswith("speed-up") else ""
        print(f"| {name} | {value:.2f}{unit} | {target} |")


if __name__ == "__main__":
    main()
