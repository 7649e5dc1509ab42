"""MAP fit: same as ``diffuse-fit map ...`` (all its options apply).

.venv/bin/python scripts/fit_map.py --data D.json --sim S.json --prior flat --out DIR
"""

import sys

from model.cli import main

if __name__ == "__main__":
    sys.exit(main(["map", *sys.argv[1:]]))
