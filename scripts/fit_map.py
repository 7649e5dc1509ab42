"""MAP fit of workshop-format files (or the embedded toy dataset) with the Python API.

    .venv/bin/python scripts/fit_map.py [--data D.json --sim S.json] [--prior flat] [--out DIR]

Writes the run folder DIR (``map.json``: MAP, errors, -ln L, the workshop's scipy fit).
"""

import argparse
import sys
from pathlib import Path

import diffuse_fit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="observed events (default: the toy dataset)")
    parser.add_argument("--sim", type=Path, help="simulated events")
    parser.add_argument("--prior", default="flat", help="flat (default here), default, or a file")
    parser.add_argument("--out", type=Path, default=Path("results/map"))
    args = parser.parse_args()
    inputs = diffuse_fit.load_inputs(args.data, args.sim)
    result = diffuse_fit.run_map(inputs, args.out, priors=args.prior)
    return 0 if result["converged"] and not result["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
