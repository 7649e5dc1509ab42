"""``diffuse-fit report``: the figures and ``report.md`` of a sample run, from its folder alone.

The posterior (``posterior.nc``) carries the fit record in its ``constant_data`` group:
observed counts per bin, bin edges and the per-bin tables of every component
(:func:`diffuse_fit.report.predictive.record_variables`), so the report needs neither the data nor
the simulation files.  The report is added to the run through the run-folder writer: the run's
files (hard links) plus the report's files are staged and swapped in together.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from diffuse_fit.errors import DataFormatError
from diffuse_fit.io.run_folder import KINDS, Run, read_run, write_run
from diffuse_fit.messages import speaker
from diffuse_fit.report import predictive as pp

RECORD_GROUP = "constant_data"


def attach_record(tree, counts, templates, likelihood="poisson") -> None:
    """Store the fit record (counts, binning, per-bin tables, likelihood; with SAY its tables
    of squared weights) in ``tree``'s constant_data."""
    variables, attrs = pp.record_variables(counts, templates, likelihood)
    tree[RECORD_GROUP] = xr.DataTree(xr.Dataset(variables, attrs=attrs))


def read_posterior(run: Run):
    """The run's posterior (ArviZ DataTree, loaded into memory) and its fit record."""
    path = run.file("posterior.nc")
    try:
        with xr.open_datatree(path) as tree:  # arviz.from_netcdf
            tree = tree.load()
        group = tree[RECORD_GROUP].dataset if RECORD_GROUP in tree.children else xr.Dataset()
        arrays = {name: group[name].values for name in group.data_vars}
        attrs = dict(group.attrs)
        if "posterior" not in tree.children:
            raise ValueError("no posterior group")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFormatError(str(path), f"is not a readable posterior ({first})") from None
    return tree, pp.record_from_variables(arrays, attrs, str(path))


def run_report(run_dir, say=None) -> Path:
    """Write the figures, ``ppc.json`` and ``report.md`` of the sample run in ``run_dir`` into
    it (replacing an earlier report); returns the path of ``report.md``."""
    say = speaker(say)
    from diffuse_fit.report.document import write_report  # figures: matplotlib

    run = read_run(run_dir, kinds=("sample",))
    map_result, summary = run.json("map.json"), run.json("summary.json")
    idata, record = read_posterior(run)
    with write_run(run.path, "sample", replaces=run.manifest_sha256) as stage:
        for name in KINDS["sample"]:
            stage.link(run.path / name)
        written = write_report(stage, map_result, summary, idata, record)
    say(f"wrote {run.path / 'report.md'} and {len(written) - 2} figure files in {run.path}")
    return run.path / "report.md"
