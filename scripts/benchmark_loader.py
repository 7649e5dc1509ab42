"""Benchmark: load time and peak memory for a ~200 MB workshop-format simulation file.

Writes a toy simulation with 4-significant-digit numbers (like the workshop's file) to a
temporary folder, then in fresh subprocesses measures: first load (JSON parse + validation
+ cache write), cached load, and the plain ``json.load`` of the notebook for comparison.
Peak memory is the subprocess's high-water resident set size (VmHWM, Linux).

    .venv/bin/python scripts/benchmark_loader.py [--mb 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from diffuse_fit.physics import toy

CHILD = r"""
import sys, time, json
from pathlib import Path
t0 = time.perf_counter()
mode, path, cache = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "json":
    content = json.load(open(path))
    import numpy as np
    events = np.array(content["events"])
    n = len(events)
else:
    from diffuse_fit.io.workshop_format import read_simulation
    n = len(read_simulation(path, cache_dir=cache if mode != "nocache" else None))
dt = time.perf_counter() - t0
status = Path("/proc/self/status").read_text().split("\n")
peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
print(f"{dt:.2f} {peak:.0f} {n}")
"""


def write_file(path: Path, target_mb: float) -> int:
    sim = toy.generate(seed=1, n_simulated=100_000).simulation
    fields = list(sim.fields)
    rows = np.column_stack([sim[f] for f in fields])
    row_text = [",".join(f"{v:.4g}" for v in row) for row in rows]
    block = "],\n[".join(row_text)
    repeats = max(1, int(target_mb * 1e6 / len(block)))
    with open(path, "w") as fh:
        fh.write('{"mapping": {' + ", ".join(f'"{f}": {i}' for i, f in enumerate(fields)))
        fh.write('}, "events": [\n[')
        fh.write("],\n[".join([block] * repeats))
        fh.write("]\n]}\n")
    return repeats * len(rows)


def run(mode: str, path: Path, cache: Path) -> tuple[float, float, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(cache)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200.0, help="target file size, MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, cache = Path(tmp) / "sim.json", Path(tmp) / "cache"
        t0 = time.perf_counter()
        n = write_file(path, args.mb)
        size = path.stat().st_size / 1e6
        print(f"file: {size:.0f} MB, {n} events, written in {time.perf_counter() - t0:.1f} s")
        print(f"{'load':38s} {'time s':>8s} {'peak RSS MB':>12s} {'x file':>7s}")
        for label, mode in [
            ("diffuse-fit, no cache", "nocache"),
            ("diffuse-fit, first load (writes cache)", "cache"),
            ("diffuse-fit, cached", "cache"),
            ("notebook json.load + np.array", "json"),
        ]:
            dt, peak, count = run(mode, path, cache)
            assert count == n
            print(f"{label:38s} {dt:8.2f} {peak:12.0f} {peak / size:7.1f}")


if __name__ == "__main__":
    main()
