"""Coverage of two or more `diffuse-fit toys` runs side by side: one figure and a table.

    .venv/bin/python scripts/compare_coverage.py RUN [RUN ...] --out FIGURE_STEM

Each RUN is a `toys` run folder; its label is its likelihood (or folder name).  Writes
FIGURE_STEM.png and .pdf (coverage per parameter and interval kind, binomial error bars,
the nominal 68.27%) and prints a Markdown table (the README keeps it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from diffuse_fit.io.atomic import atomic_path
from diffuse_fit.io.run_folder import read_run
from diffuse_fit.report.many_plots import coverage_figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="figure path without suffix")
    args = parser.parse_args()
    merged: dict = {}
    sizes = set()
    for run_dir in args.runs:
        coverage = read_run(run_dir, kinds=("toys",)).json("coverage.json")
        label = coverage.get("likelihood") or run_dir.name
        sizes.add(coverage["n"])
        for name, kinds in coverage["parameters"].items():
            for kind, fraction in kinds.items():
                merged.setdefault(name, {})[f"{label} {kind.replace('_68', '')}"] = fraction
        impossible = coverage["n_not_converged"]
        print(f"{run_dir}: {coverage['n']} pseudo-experiments, {impossible} not fitted/converged")
    if len(sizes) != 1:
        raise SystemExit(f"the runs have different numbers of pseudo-experiments: {sorted(sizes)}")
    n = sizes.pop()
    fig = coverage_figure({"parameters": merged}, n)
    for ext in ("png", "pdf"):
        with atomic_path(args.out.with_suffix(f".{ext}")) as tmp:
            fig.savefig(tmp, format=ext, dpi=150)
    plt.close(fig)
    kinds = list(next(iter(merged.values())))
    print("| parameter | " + " | ".join(kinds) + " |\n|---|" + "---|" * len(kinds))
    for name, values in merged.items():
        print(f"| {name} | " + " | ".join(f"{values[k]:.3f}" for k in kinds) + " |")


if __name__ == "__main__":
    main()
