"""Write the embedded toy dataset as workshop-format JSON files.

    .venv/bin/python scripts/make_toy_data.py --out toy/ [--seed 20190614] [--n-simulated 100000]

Writes ``hese_toy_simulation.json`` and ``hese_toy_data.json`` (the workshop's file names);
``diffuse-fit map --data toy/hese_toy_data.json --sim toy/hese_toy_simulation.json`` then
gives the same fit as ``diffuse-fit map`` without inputs.
"""

import argparse
from pathlib import Path

from diffuse_fit.io.workshop_format import write_workshop_file
from diffuse_fit.physics import toy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=toy.DEFAULT_SEED)
    parser.add_argument("--n-simulated", type=int, default=toy.DEFAULT_N_SIMULATED)
    args = parser.parse_args()
    ds = toy.generate(args.seed, args.n_simulated)
    for name, table in (("simulation", ds.simulation), ("data", ds.data)):
        path = args.out / f"hese_toy_{name}.json"
        write_workshop_file(path, table)
        print(f"wrote {path}: {len(table)} events, {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
