"""Convert IceCube's HESE 7.5-year public release into the workshop's JSON format.

    python scripts/convert_hese_release.py --release HESE-7-year-data-release \\
        --out-sim hese_sim.json --out-data hese_data.json [--double-cascades drop|cascade]

``--release`` is the folder holding HESE_data.json and HESE_mc_{truth,observable,flux}.json
(or a clone of the release repository: its resources/data is found).  The outputs are
written atomically; see ``diffuse_fit.physics.hese_weights.to_workshop`` for the conversion.  Bad input
prints one line naming the file, field, row and value, and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from diffuse_fit.binned.hese_selection import double_cascade_counts
from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.hese_release import read_release
from diffuse_fit.io.workshop_format import write_workshop_file
from diffuse_fit.physics.hese_weights import DOUBLE_CASCADE_CHOICES, to_workshop


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True, help="folder of the release's JSON files")
    parser.add_argument("--out-sim", required=True, help="workshop-format simulation to write")
    parser.add_argument("--out-data", required=True, help="workshop-format data to write")
    parser.add_argument(
        "--double-cascades",
        choices=DOUBLE_CASCADE_CHOICES,
        default="drop",
        help="drop them (topology 2, outside the workshop bins) or merge them into cascades",
    )
    args = parser.parse_args(argv)
    try:
        release_sim, release_data = read_release(args.release)
        sim, data = to_workshop(release_sim, release_data, args.double_cascades)
        write_workshop_file(args.out_sim, sim)
        write_workshop_file(args.out_data, data)
    except DataFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write '{exc.filename}': {exc.strerror}", file=sys.stderr)
        return 2
    counts = double_cascade_counts(release_data)
    print(f"simulation: {len(sim)} events -> {args.out_sim}")
    print(f"data: {len(data)} events -> {args.out_data}")
    for choice, c in counts.items():
        chosen = " (chosen)" if choice == args.double_cascades else ""
        print(
            f"double cascades '{choice}'{chosen}: {c['in_bins']} data events in the workshop "
            f"bins, {c['outside_bins']} outside; {c['dropped_by_choice']} of the "
            f"{c['double_cascades']} double cascades dropped by this choice"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
