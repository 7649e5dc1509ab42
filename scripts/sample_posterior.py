"""Posterior sampling: same as ``diffuse-fit sample ...`` (all its options apply).

.venv/bin/python scripts/sample_posterior.py --seed 1 --draws 1000 --chains 4 --out DIR
"""

import sys

from model.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
