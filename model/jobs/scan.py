"""``diffuse-fit scan``: the profile likelihood on a grid of one or two parameters.

At every grid point (``numpy.linspace(START, STOP, NUM)`` per scanned parameter) all other
parameters are fitted (:class:`diffuse_fit.fitting.profile.ProfileFitter`); ``ts = -2 Delta
log p`` relative to the global best fit (with flat priors, the default, ``-2 Delta ln L``:
the profile-likelihood test statistic, whose Wilks thresholds give the contours).  Rows of
the grid are tasks on Dask (:mod:`diffuse_fit.jobs.distributed`), each warm-started along its row.

Run folder: ``scan.json`` (``parameters``, ``grid``, ``ts`` nested [i][j], ``best``,
``profiled``: the fitted other parameters at each point, ``converged``, thresholds,
provenance) and the figure ``scan.png``/``.pdf`` (Wilks contours, best fit, and the
credible regions of a ``sample`` run given with ``run``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import stats

from diffuse_fit.errors import DataFormatError, UsageError
from diffuse_fit.io.journal import Journal, journal_folder
from diffuse_fit.io.run_folder import check_output_folder, read_run, write_run
from diffuse_fit.io.spectrum_names import FRACTIONS
from diffuse_fit.jobs.distributed import ClusterOptions, run_tasks
from diffuse_fit.jobs.entries import check_scan
from diffuse_fit.jobs.inputs import Inputs
from diffuse_fit.jobs.interrupt import interruptible
from diffuse_fit.jobs.many import FitContext, check_inside, fitter
from diffuse_fit.jobs.prepared import PreparedFit
from diffuse_fit.messages import speaker
from diffuse_fit.physics.flavour import outside_simplex

LEVELS = (0.6827, 0.9545)  # 1 and 2 sigma


def parse_param(text: str) -> tuple[str, float, float, int]:
    """``NAME=START:STOP:NUM`` -> (name, start, stop, num)."""
    name, sep, spec = text.partition("=")
    parts = spec.split(":")
    if not sep or len(parts) != 3 or not name:
        raise UsageError(f"--param {text!r}: expected NAME=START:STOP:NUM")
    try:
        start, stop = float(parts[0]), float(parts[1])
        num = int(parts[2])
    except ValueError:
        raise UsageError(
            f"--param {text!r}: START and STOP must be numbers, NUM an integer"
        ) from None
    if not (np.isfinite(start) and np.isfinite(stop)) or num < 1 or num > 10_000:
        raise UsageError(f"--param {text!r}: START and STOP must be finite, NUM in 1..10000")
    return name, start, stop, num


def run_scan(
    inputs: Inputs,
    prior_spec,
    out: Path,
    params: list[tuple],
    components="workshop",
    cluster: ClusterOptions | None = None,
    posterior_run: Path | None = None,
    say=None,
    progressbar=True,
    likelihood="poisson",
    astro_model="spl",
    analysis=None,
) -> dict:
    """Profile-likelihood scan; writes the run folder ``out``; returns ``scan.json``."""
    say = speaker(say)
    out = check_output_folder(out)
    cluster = cluster or ClusterOptions()
    with interruptible(out):
        prepared = PreparedFit.load(
            inputs, prior_spec, components, say, likelihood, astro_model, analysis=analysis
        )
        names = [p[0] for p in params]
        if not 1 <= len(params) <= 2 or len(set(names)) != len(names):
            raise UsageError("scan: give one or two different --param")
        for name in names:
            if name not in prepared.names:
                raise UsageError(
                    f"--param: unknown parameter {name!r} (known: {', '.join(prepared.names)})"
                )
        grid = {n: np.linspace(a, b, k) for n, a, b, k in params}
        for n, values in grid.items():
            check_inside({n: float(values.min())}, prepared.priors, "--param")
            check_inside({n: float(values.max())}, prepared.priors, "--param")
        posterior = _posterior_of(posterior_run, prepared, names) if posterior_run else None
        config = prepared.config(kind="scan", grid={n: v.tolist() for n, v in grid.items()})
        journal = Journal(journal_folder(out), config)
        tasks = _tasks(names, grid)
        t0 = time.perf_counter()
        results = run_tasks(
            scan_points,
            prepared.context(config),
            tasks,
            journal,
            cluster,
            "scan",
            say,
            progressbar,
            check=check_scan,
        )
        scan = assemble(prepared, names, grid, results)
        scan["wall_time_s"] = time.perf_counter() - t0
        scan["provenance"] = prepared.provenance(journal=journal.name)
        with write_run(out, "scan") as stage:
            stage.write_json("scan.json", scan)
            _figure(stage, scan, posterior)
    _say_summary(scan, say)
    figures = "scan.png, flavour.png" if sorted(names) == sorted(FRACTIONS) else "scan.png"
    say(f"wrote the run folder {out} (scan.json, {figures} and PDFs)")
    return scan


def _tasks(names: list[str], grid: dict) -> dict:
    """2-D: one task per row of the grid (``names[0]`` fixed); 1-D: chunks of about 1/16
    of the grid.  Each task's points are fitted in order, warm-started."""
    if len(names) == 2:
        return {
            f"row-{i:05d}": {
                "points": [{names[0]: float(x), names[1]: float(y)} for y in grid[names[1]]]
            }
            for i, x in enumerate(grid[names[0]])
        }
    values = grid[names[0]]
    size = max(1, -(-values.size // 16))
    return {
        f"chunk-{i:05d}": {
            "points": [{names[0]: float(x)} for x in values[i * size : (i + 1) * size]]
        }
        for i in range(-(-values.size // size))
    }


def assemble(prepared: PreparedFit, names: list[str], grid: dict, results: dict) -> dict:
    """``scan.json`` from the rows' results (row order = ``grid[names[0]]``)."""
    rows = [results[k] for k in sorted(results)]
    shape = tuple(len(grid[n]) for n in names)
    best = prepared.best
    log_p = np.array(
        [np.nan if x is None else x for r in rows for x in r["log_posterior"]], dtype=np.float64
    ).reshape(shape)  # None: a point outside the flavour simplex
    ts = -2.0 * (log_p - best.log_posterior)
    fitted = [v for r in rows for v in r["values"]]
    others = [n for n in prepared.names if n not in names]
    profiled = {
        n: np.array([np.nan if v[n] is None else v[n] for v in fitted], dtype=np.float64)
        .reshape(shape)
        .tolist()
        for n in others
    }
    converged = np.array([c for r in rows for c in r["converged"]]).reshape(shape).tolist()
    dof = len(names)
    ts_list = np.where(np.isfinite(ts), ts, np.nan).tolist()
    return {
        "parameters": names,
        "grid": {n: grid[n].tolist() for n in names},
        "ts": ts_list,
        "best": best.values,
        "best_neg_log_likelihood": best.neg_log_likelihood,
        "profiled": profiled,
        "converged": converged,
        "ts_definition": "-2 (log p(profiled) - log p(best)); log p = ln L + log prior "
        "(flat priors: -2 Delta ln L)",
        "thresholds": {f"{level:.4f}": float(stats.chi2.ppf(level, dof)) for level in LEVELS},
        "dof": dof,
        "prior_set": prepared.prior_spec,
        "min_ts": float(np.nanmin(ts)),
        "workers": sorted({r["worker_fitter"] for r in rows}),
    }


def _posterior_of(run_dir: Path, prepared: PreparedFit, names: list[str]) -> dict:
    """Posterior draws of ``names`` from a ``sample`` run on the same inputs."""
    import arviz as az

    run = read_run(run_dir, kinds=("sample",))
    provenance = run.json("summary.json").get("provenance", {})
    for what, table in (("data", prepared.inputs.data), ("simulation", prepared.inputs.simulation)):
        recorded = provenance.get(what, {}).get("sha256")
        if recorded != table.sha256:
            raise DataFormatError(
                str(run_dir),
                f"--run was made from other {what} "
                f"(SHA-256 {str(recorded)[:12]}... vs {table.sha256[:12]}...)",
            )
    tree = az.from_netcdf(run.file("posterior.nc"))
    missing = [n for n in names if n not in tree.posterior]
    if missing:
        raise DataFormatError(str(run_dir), f"--run has no posterior of {missing}")
    return {n: np.asarray(tree.posterior[n].values).reshape(-1) for n in names}


def _figure(stage, scan: dict, posterior) -> None:
    from diffuse_fit.report.figures import save_figure
    from diffuse_fit.report.many_plots import scan_figure

    save_figure(stage, scan_figure(scan, posterior), "scan", dpi=150)
    if sorted(scan["parameters"]) == sorted(FRACTIONS):  # the simplex as it is drawn
        from diffuse_fit.report.flavour import ternary_figure

        truth = scan.get("provenance", {}).get("truth")  # simulated inputs: the injected
        figure = ternary_figure(posterior, best=scan["best"], truth=truth, scan=scan)
        save_figure(stage, figure, "flavour", dpi=150)


def _say_summary(scan: dict, say) -> None:
    best = ", ".join(f"{k}={v:.4g}" for k, v in scan["best"].items())
    n = np.size(scan["ts"])
    bad = n - int(np.sum(scan["converged"]))
    say(
        f"scan of {' x '.join(scan['parameters'])}: {n} points in {scan['wall_time_s']:.1f} s, "
        f"best fit {best}, min ts on the grid {scan['min_ts']:.3g}"
        + (f"; {bad} points did not converge" if bad else "")
    )


def scan_points(context: FitContext, key: str, args: dict) -> dict:
    """Profile fits at ``args["points"]`` (each: scanned parameter -> value), warm-started
    along the list from the global best fit; ``log p`` and the fitted values of the other parameters
    at each point."""
    profile, fitter_id = fitter(context)
    counts = context.counts
    start = dict(context.start)
    log_posterior, neg_log_likelihood, fitted, converged = [], [], [], []
    for fixed in args["points"]:
        if outside_simplex(fixed):  # f_e + f_mu > 1: no composition (ts null in scan.json)
            log_posterior.append(None)
            neg_log_likelihood.append(None)
            fitted.append({**{n: None for n in profile.names}, **fixed})
            converged.append(True)
            continue
        fit = profile.fit(counts, fixed=fixed, x0=start)
        if not fit.converged:  # warm start led astray: from the global best instead
            retry = profile.fit(counts, fixed=fixed, x0=context.start)
            fit = retry if retry.converged or retry.log_posterior > fit.log_posterior else fit
        start = {**start, **fit.values}
        log_posterior.append(fit.log_posterior)
        neg_log_likelihood.append(fit.neg_log_likelihood)
        fitted.append(fit.values)
        converged.append(fit.converged)
    return {
        "log_posterior": log_posterior,
        "neg_log_likelihood": neg_log_likelihood,
        "values": fitted,
        "converged": converged,
        "worker_fitter": fitter_id,
    }
