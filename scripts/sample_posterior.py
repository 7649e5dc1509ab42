"""Posterior sampling (MAP, NUTS, report) with the Python API.

    .venv/bin/python scripts/sample_posterior.py [--data D.json --sim S.json] [--seed 1] [--out DIR]

Writes the run folder DIR: map.json, posterior.nc, summary.json/.txt, figures, report.md.
"""

import argparse
import sys
from pathlib import Path

import diffuse_fit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="observed events (default: the toy dataset)")
    parser.add_argument("--sim", type=Path, help="simulated events")
    parser.add_argument("--prior", default="default", help="default, flat, or a JSON file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("results/sample"))
    args = parser.parse_args()
    inputs = diffuse_fit.load_inputs(args.data, args.sim)
    summary = diffuse_fit.run_sample(
        inputs, args.out, priors=args.prior, seed=args.seed, draws=args.draws, chains=args.chains
    )
    return 0 if summary["diagnostics"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
