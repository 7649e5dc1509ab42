"""The HESE release's model: whole `diffuse-fit` jobs beside the release's own fitter.

    .venv/bin/python scripts/benchmark_hese.py --release DIR [--repeat 3] [--n 20]
        [--jobs map,toys] [--sample] [--cold] [--json FILE]
        [--release-code DIR --release-python PY [--release-modes fixed,free]]

Times, in fresh processes of the installed ``diffuse-fit`` executable (as a user runs it), on
a release-schema folder (``HESE_data.json``, ``HESE_mc_*.json`` and the spline tables) with
the release's model (``--components hese --likelihood say --prior hese``):

* ``map`` (every parameter free, the detector systematics included where the spline tables
  are at hand), and ``map`` with the detector systematics fixed at their nominal values (as
  the release's ``HESE_fit.py --fix_epsilon_dom --fix_epsilon_head_on --fix_anisotropy_scale``);
* ``toys --workers 1 --truth <the MAP's values>`` (MAP, Hessian errors and the profile
  interval of every free parameter per pseudo-experiment).  The figure per pseudo-experiment is
  the marginal cost ``(wall(--n N) - wall(--n 1)) / (N - 1)`` of two whole jobs run back to back
  (one pair per repeat), which leaves out the job's start-up, reading and compiling; the job's
  own ``wall_time_s`` of ``coverage.json`` divided by N (which includes its set-up) is logged
  and written to the JSON beside it.  Every toys run has a run folder of its own: a folder's
  journal would hand a rerun its pseudo-experiments without fitting them;
* ``sample`` (``--sample``: NUTS 4 x (1000 tune + 1000 draws); slow);

(``--jobs map,toys,sample`` chooses; ``toys`` alone still runs one untimed ``map`` for its
truth), each ``--repeat`` times after one untimed run that fills the caches (compile cache,
parsed-file cache, the OS's file cache): minimum (the job's cost on this shared machine) and
median (what a user sees).  ``--cold`` also runs each job once with an empty compile cache
(``PYTENSOR_FLAGS=base_compiledir=<tmp>``) and an empty ``DIFFUSE_FIT_CACHE``.

With ``--release-code DIR --release-python PY`` it also times the release's ``HESE_fit.py``
(DIR: the release's code, ``HESE_fit.py`` in DIR or in ``DIR/HESE-7-year-data-release``; PY:
a Python with the old numpy/scipy/astropy it needs) on the same files: a working folder of
symlinks in a temporary directory (the code, ``resources/data`` -> the release folder's JSON
files, ``resources/splines`` -> its spline tables); where ``PY -c 'import photospline'``
fails, a stand-in for photospline's ``SplineTable`` (our own code, ``PHOTOSPLINE_STANDIN``
below: astropy reads the FITS table, numpy evaluates the tensor-product B-spline) is written to
a temporary folder put on ``PYTHONPATH``.  Modes ``fixed`` (detector systematics fixed) and
``free`` (everything free: two L-BFGS-B fits, ``epsilon_dom`` below and above 0.99).  The
release has no caches to warm: its runs are timed without an untimed run first.  Its own "Fit
took ... seconds" (the minimisation alone) is reported beside the whole job.

Prints a Markdown table (job, min s, median s, target s, met?) with the targets of issue 21
(map <= 3 s, toys <= 1 s per pseudo-experiment, sample <= 60 s; warm caches; "met?" compares
the median) and writes the figures as JSON with ``--json FILE``.  Progress goes to
``logging``.  Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

log = logging.getLogger("benchmark_hese")

MODEL_ARGS = ["--components", "hese", "--likelihood", "say", "--prior", "hese"]
DETECTOR_NOMINAL = {"epsilon_dom": 0.99, "epsilon_head_on": 0.0, "anisotropy_scale": 1.0}
SAMPLE_ARGS = ["--chains", "4", "--tune", "1000", "--draws", "1000", "--seed", "1"]
TARGETS = {"map": 3.0, "toys": 1.0, "sample": 60.0}  # seconds, warm caches (issue 21)
RELEASE_MODES = {
    "fixed": ["--fix_epsilon_dom", "--fix_epsilon_head_on", "--fix_anisotropy_scale"],
    "free": [],
}
DATA_FILES = (
    "HESE_data.json",
    "HESE_mc_truth.json",
    "HESE_mc_observable.json",
    "HESE_mc_flux.json",
)
SPLINE_FOLDERS = ("DOMEffSplines", "HoleIceSplines", "AnisotropySplines")
FIT_TOOK = re.compile(r"Fit took ([0-9.eE+-]+) seconds")

# Our own stand-in for photospline's SplineTable (the release imports photospline, which is
# not installable here); written to a file for the release's runs.  Plain Python 3 with numpy
# and astropy of any version (the release needs numpy < 1.24).
PHOTOSPLINE_STANDIN = '''"""A stand-in for photospline's ``SplineTable`` (only what the HESE release calls).

Reads photospline's FITS tables with astropy (coefficients in the primary HDU, one numpy
axis per dimension in dimension order; ``ORDERi`` header keys the degrees; ``KNOTSi``
extensions the knot vectors) and evaluates the tensor-product B-spline, or a derivative of
it, with a vectorised Cox-de Boor recursion in numpy (no scipy needed). Written for the
diffuse-fit benchmarks; not photospline's code.
"""

import itertools

import numpy as np


def _local_basis(t, k, n_coef, x, nu):
    """The k + 1 B-splines of degree k (or their nu-th derivative) that are non-zero at x.

    Returns (first, values): values[:, j] belongs to coefficient first + j.
    """
    x = np.asarray(x, dtype=np.float64)
    ell = np.searchsorted(t, x, side="right") - 1
    ell = np.clip(ell, k, n_coef - 1)
    n = x.shape[0]
    h = np.zeros((n, k + 1))
    h[:, 0] = 1.0
    for j in range(1, k + 1):
        hh = h[:, :j].copy()
        h[:, 0] = 0.0
        derivative = j > k - nu
        for m in range(1, j + 1):
            xb = t[ell + m]
            xa = t[ell + m - j]
            span = xb - xa
            safe = np.where(span > 0.0, span, 1.0)
            if derivative:
                w = np.where(span > 0.0, j * hh[:, m - 1] / safe, 0.0)
                h[:, m - 1] -= w
                h[:, m] = w
            else:
                w = np.where(span > 0.0, hh[:, m - 1] / safe, 0.0)
                h[:, m - 1] += w * (xb - x)
                h[:, m] = w * (x - xa)
    if nu > k:
        h[:] = 0.0
    return ell - k, h


class SplineTable:
    """photospline.SplineTable(path): ``extents``, ``evaluate_simple(x, derivatives=0)``."""

    def __init__(self, path):
        from astropy.io import fits

        with fits.open(path, memmap=False) as hdus:
            header = hdus[0].header
            self.coefficients = np.asarray(hdus[0].data, dtype=np.float64)
            self.ndim = self.coefficients.ndim
            self.order = tuple(int(header["ORDER%d" % i]) for i in range(self.ndim))
            self.knots = tuple(
                np.asarray(hdus["KNOTS%d" % i].data, dtype=np.float64) for i in range(self.ndim)
            )
            names = [hdu.name for hdu in hdus]
            if "EXTENTS" in names:
                ext = np.asarray(hdus["EXTENTS"].data, dtype=np.float64).reshape(self.ndim, 2)
                self.extents = tuple((float(a), float(b)) for a, b in ext)
            else:
                self.extents = tuple(
                    (float(t[k]), float(t[n]))
                    for t, k, n in zip(self.knots, self.order, self.coefficients.shape)
                )

    def evaluate_simple(self, x, derivatives=0):
        """The spline at x (ndim coordinate arrays, or one point); bit i of ``derivatives``
        asks for the first derivative along dimension i."""
        x = [np.asarray(xi, dtype=np.float64) for xi in x]
        scalar = x[0].ndim == 0
        x = [np.atleast_1d(xi).ravel() for xi in x]
        if len(x) != self.ndim:
            raise ValueError("need %d coordinates, got %d" % (self.ndim, len(x)))
        n = x[0].shape[0]
        if n == 0:
            return np.zeros(0)
        firsts, bases = [], []
        for d in range(self.ndim):
            nu = (int(derivatives) >> d) & 1
            first, basis = _local_basis(
                self.knots[d], self.order[d], self.coefficients.shape[d], x[d], nu
            )
            firsts.append(first)
            bases.append(basis)
        out = np.zeros(n)
        for offsets in itertools.product(*(range(k + 1) for k in self.order)):
            index = tuple(f + o for f, o in zip(firsts, offsets))
            term = self.coefficients[index]
            for d, o in enumerate(offsets):
                term = term * bases[d][:, o]
            out += term
        return float(out[0]) if scalar else out

    def __call__(self, x, derivatives=0):
        return self.evaluate_simple(x, derivatives)
'''


# --- pure helpers ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--release-code`` and ``--release-python`` go together."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--release",
        type=Path,
        required=True,
        help="a release-schema folder (HESE_data.json, HESE_mc_*.json, spline tables)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per job (default 3)")
    parser.add_argument(
        "--n", type=int, default=20, help="pseudo-experiments of the long toys job (default 20)"
    )
    parser.add_argument(
        "--jobs",
        default="map,toys",
        help="our jobs to time, comma-separated: map, toys, sample (default map,toys)",
    )
    parser.add_argument("--sample", action="store_true", help="also time `sample` (slow)")
    parser.add_argument(
        "--cold", action="store_true", help="also one run per job with empty caches"
    )
    parser.add_argument("--release-code", type=Path, help="the release's code (HESE_fit.py)")
    parser.add_argument("--release-python", help="a Python interpreter that runs it")
    parser.add_argument(
        "--release-modes",
        default="fixed,free",
        help="the release's fits to time: fixed (detector systematics fixed), free "
        "(everything free); comma-separated (default fixed,free)",
    )
    parser.add_argument(
        "--release-repeat",
        type=int,
        default=None,
        help="timed runs of each release fit (default --repeat)",
    )
    parser.add_argument("--skip-ours", action="store_true", help="time only the release's fitter")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--workdir", type=Path, help="keep the run folders here (default: tmp)")
    args = parser.parse_args(argv)
    if (args.release_code is None) != (args.release_python is None):
        parser.error("--release-code and --release-python go together")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.release_repeat is None:
        args.release_repeat = args.repeat
    if args.release_repeat < 1:
        parser.error("--release-repeat must be >= 1")
    if args.n < 2:
        parser.error("--n must be >= 2 (the per-experiment cost is wall(N) - wall(1))")
    modes = [m for m in args.release_modes.split(",") if m]
    unknown = sorted(set(modes) - set(RELEASE_MODES))
    if unknown or not modes:
        parser.error(f"--release-modes: {', '.join(unknown) or 'none'} (known: fixed, free)")
    args.release_modes = modes
    jobs = [j for j in args.jobs.split(",") if j]
    unknown = sorted(set(jobs) - {"map", "toys", "sample"})
    if unknown or not jobs:
        parser.error(f"--jobs: {', '.join(unknown) or 'none'} (known: map, toys, sample)")
    if args.sample and "sample" not in jobs:
        jobs.append("sample")
    args.jobs = jobs
    if args.skip_ours and args.release_code is None:
        parser.error("--skip-ours needs --release-code")
    return args


def summary(walls: list[float]) -> dict:
    """Minimum, median and every run, seconds."""
    return {"min_s": min(walls), "median_s": statistics.median(walls), "runs_s": list(walls)}


def row(job: str, walls: list[float], target: float | None = None) -> dict:
    """A table row: the job, its timings (seconds) and its target (seconds, or None)."""
    return {"job": job, **summary(walls), "target_s": target}


def format_table(rows: list[dict]) -> str:
    """A Markdown table: job, min s, median s, target s, met? (the median against the
    target; ``-`` where a row has no target)."""
    lines = ["| job | min s | median s | target s | met? |", "|---|---|---|---|---|"]
    for r in rows:
        target = r.get("target_s")
        if target is None:
            target_text, met = "-", "-"
        else:
            target_text = f"{target:g}"
            met = "yes" if r["median_s"] <= target else "**no**"
        lines.append(
            f"| {r['job']} | {r['min_s']:.2f} | {r['median_s']:.2f} | {target_text} | {met} |"
        )
    return "\n".join(lines)


def truth_argument(map_record: dict) -> str:
    """``NAME=VALUE,...`` of the free parameters of a ``map.json`` record (its MAP)."""
    fixed = map_record.get("fixed") or {}
    names = [n for n in map_record["parameter_order"] if n not in fixed]
    return ",".join(f"{n}={float(map_record[n])!r}" for n in names)


def per_experiment(wall_one: float, wall_n: float, n: int) -> float:
    """Marginal seconds per pseudo-experiment of two whole toys jobs (``--n 1``, ``--n n``)."""
    return (wall_n - wall_one) / (n - 1)


def fit_took(stdout: str) -> float | None:
    """Seconds of the release's "Fit took ... seconds" line; None without one."""
    found = FIT_TOOK.search(stdout)
    return float(found.group(1)) if found else None


def load_photospline_standin() -> types.ModuleType:
    """The stand-in as a module object (for tests; the release's runs import a written copy)."""
    module = types.ModuleType("photospline")
    exec(compile(PHOTOSPLINE_STANDIN, "photospline_standin", "exec"), module.__dict__)
    return module


def write_json_atomic(path: Path, payload: dict) -> None:
    """``payload`` as JSON at ``path``, through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as stream:
            json.dump(payload, stream, indent=2)
            stream.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def find_data_folder(release: Path) -> Path:
    """The folder holding the release's four JSON files."""
    for folder in (
        release,
        release / "resources" / "data",
        release / "HESE-7-year-data-release" / "resources" / "data",
    ):
        if all((folder / name).is_file() for name in DATA_FILES):
            return folder
    raise SystemExit(f"{release}: no folder with {', '.join(DATA_FILES)}")


def find_spline_folder(release: Path) -> Path:
    """The folder holding the spline tables (``DOMEffSplines/`` etc.)."""
    for folder in (
        release / "resources" / "splines",
        release / "splines",
        release.parent / "splines",
        release / "HESE-7-year-data-release" / "resources" / "splines",
    ):
        if all((folder / name).is_dir() for name in SPLINE_FOLDERS):
            return folder
    raise SystemExit(f"{release}: no spline tables ({', '.join(SPLINE_FOLDERS)})")


def find_release_code(code: Path) -> Path:
    """The folder holding the release's ``HESE_fit.py``."""
    for folder in (code, code / "HESE-7-year-data-release"):
        if (folder / "HESE_fit.py").is_file():
            return folder
    raise SystemExit(f"{code}: no HESE_fit.py (nor in {code}/HESE-7-year-data-release)")


def build_release_workdir(code: Path, release: Path, folder: Path) -> Path:
    """A working folder for ``HESE_fit.py``: symlinks to the code's ``*.py``,
    ``resources/data/<the four JSON files>`` and ``resources/splines``."""
    code = find_release_code(code)
    data = find_data_folder(release)
    splines = find_spline_folder(release)
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(code.glob("*.py")):
        (folder / source.name).symlink_to(source.resolve())
    (folder / "resources" / "data").mkdir(parents=True)
    for name in DATA_FILES:
        (folder / "resources" / "data" / name).symlink_to((data / name).resolve())
    (folder / "resources" / "splines").symlink_to(splines.resolve())
    return folder


# --- running --------------------------------------------------------------------------------


def timed(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of a fresh process (stops the benchmark if it fails)."""
    t0 = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return wall, result.stdout


def cold_env(tmp: Path, tag: str) -> dict:
    """The environment with an empty compile cache and an empty parsed-file cache."""
    return {
        **os.environ,
        "PYTENSOR_FLAGS": f"base_compiledir={tmp / f'cold-{tag}' / 'pytensor'}",
        "DIFFUSE_FIT_CACHE": str(tmp / f"cold-{tag}" / "files"),
    }


class Jobs:
    """The ``diffuse-fit`` command lines of the benchmark (run folders under ``tmp``)."""

    def __init__(self, cli: str, release: Path, tmp: Path):
        self.cli, self.release, self.tmp = cli, release, tmp

    def argv(self, job: str, out: str, *extra: str) -> list[str]:
        return [
            self.cli,
            job,
            "--hese-release",
            str(self.release),
            *MODEL_ARGS,
            *extra,
            "--out",
            str(self.tmp / out),
            "--quiet",
        ]

    def map(self, out: str = "map", fixed: bool = False) -> list[str]:
        fix = ",".join(f"{k}={v}" for k, v in DETECTOR_NOMINAL.items())
        return self.argv("map", out, *(["--fix", fix] if fixed else []))

    def toys(self, n: int, truth: str, out: str = "toys") -> list[str]:
        return self.argv("toys", out, "--n", str(n), "--workers", "1", "--truth", truth)

    def sample(self, out: str = "sample") -> list[str]:
        return self.argv("sample", out, *SAMPLE_ARGS)


def repeated(argv: list[str], repeat: int, label: str) -> list[float]:
    """One untimed run (fills the caches), then ``repeat`` timed ones (seconds)."""
    log.info("%s: warming the caches", label)
    timed(argv)
    walls = []
    for i in range(repeat):
        wall, _ = timed(argv)
        log.info("%s: run %d/%d %.2f s", label, i + 1, repeat, wall)
        walls.append(wall)
    return walls


def time_toys(args: argparse.Namespace, jobs: Jobs, truth: str, facts: dict) -> list[dict]:
    """Rows of the toys jobs at ``truth`` (the job's own wall times go to ``facts``)."""
    rows: list[dict] = []
    n = args.n
    # Every toys run gets a run folder of its own: a folder's journal
    # (``.<name>.journal``) would hand a rerun its pseudo-experiments without fitting them.
    log.info("toys: warming the caches")
    timed(jobs.toys(1, truth, "toys-warm"))
    marginal, whole, own = [], [], []
    for i in range(args.repeat):
        wall_one, _ = timed(jobs.toys(1, truth, f"toys-1-{i}"))
        wall_n, _ = timed(jobs.toys(args.n, truth, f"toys-n-{i}"))
        coverage = json.loads((jobs.tmp / f"toys-n-{i}" / "coverage.json").read_text())
        marginal.append(per_experiment(wall_one, wall_n, args.n))
        whole.append(wall_n)
        own.append(coverage["wall_time_s"] / args.n)
        log.info(
            "toys: pair %d/%d: --n 1 %.2f s, --n %d %.2f s: %.3f s per pseudo-experiment "
            "(the job's own wall_time_s / n: %.3f s)",
            i + 1,
            args.repeat,
            wall_one,
            args.n,
            wall_n,
            marginal[-1],
            own[-1],
        )
    rows.append(
        row(
            f"`toys`, per pseudo-experiment ((wall(--n {n}) - wall(--n 1)) / {n - 1})",
            marginal,
            TARGETS["toys"],
        )
    )
    rows.append(row(f"`toys --n {n}`, whole job", whole))
    facts["toys_own_wall_time_per_experiment_s"] = summary(own)
    return rows


def time_ours(args: argparse.Namespace, tmp: Path) -> tuple[list[dict], dict]:
    """Rows of our jobs, and facts for the JSON (the truth, the toys' own wall times)."""
    cli = str(Path(sys.executable).with_name("diffuse-fit"))
    jobs = Jobs(cli, args.release.resolve(), tmp)
    rows: list[dict] = []
    facts: dict = {}
    if "map" in args.jobs:
        walls = repeated(jobs.map(), args.repeat, "map")
        rows.append(row("`map`", walls, TARGETS["map"]))
        walls = repeated(jobs.map("map-fixed", fixed=True), args.repeat, "map, detector fixed")
        rows.append(row("`map`, detector systematics fixed", walls))
    else:
        log.info("map: one untimed run for the toys' truth")
        timed(jobs.map())
    map_record = json.loads((tmp / "map" / "map.json").read_text())
    truth = truth_argument(map_record)
    facts["truth"] = truth
    facts["map_neg_log_likelihood"] = map_record.get("neg_log_likelihood")
    n = args.n
    if "toys" in args.jobs:
        rows += time_toys(args, jobs, truth, facts)

    if "sample" in args.jobs:
        walls = repeated(jobs.sample(), args.repeat, "sample")
        rows.append(row("`sample` (4 x (1000 + 1000))", walls, TARGETS["sample"]))

    if args.cold:
        cold_jobs = {}
        if "map" in args.jobs:
            cold_jobs["map"] = jobs.map("map-cold")
        if "toys" in args.jobs:
            cold_jobs[f"toys --n {n}"] = jobs.toys(n, truth, "toys-cold")
        if "sample" in args.jobs:
            cold_jobs["sample"] = jobs.sample("sample-cold")
        for i, (name, argv) in enumerate(cold_jobs.items()):
            wall, _ = timed(argv, cold_env(tmp, str(i)))
            log.info("%s, cold caches: %.2f s", name, wall)
            rows.append(row(f"`{name}`, cold caches (whole job)", [wall]))
    return rows, facts


def python_has_photospline(python: str) -> bool:
    """Whether ``python -c 'import photospline'`` succeeds."""
    result = subprocess.run([python, "-c", "import photospline"], capture_output=True)
    return result.returncode == 0


def time_release(args: argparse.Namespace, tmp: Path) -> tuple[list[dict], dict]:
    """Rows of the release's ``HESE_fit.py`` (whole job, and its own "Fit took"), and facts."""
    run_dir = Path(tempfile.mkdtemp(prefix="hese-run-", dir=tmp))
    workdir = build_release_workdir(args.release_code, args.release.resolve(), run_dir)
    env = dict(os.environ)
    facts: dict = {"release_code": str(find_release_code(args.release_code).resolve())}
    if python_has_photospline(args.release_python):
        facts["photospline"] = "installed"
    else:
        stand = Path(tempfile.mkdtemp(prefix="photospline-standin-", dir=tmp))
        (stand / "photospline.py").write_text(PHOTOSPLINE_STANDIN)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stand), env.get("PYTHONPATH")]))
        facts["photospline"] = "stand-in (PHOTOSPLINE_STANDIN of scripts/benchmark_hese.py)"
        log.info("photospline is not importable by %s: using the stand-in", args.release_python)
    rows = []
    for mode in args.release_modes:
        walls, fits, last = [], [], ""
        for i in range(args.release_repeat):
            argv = [args.release_python, "HESE_fit.py", *RELEASE_MODES[mode]]
            wall, stdout = timed(argv, env, cwd=workdir)
            took = fit_took(stdout)
            log.info(
                "release HESE_fit.py (%s): run %d/%d %.2f s (its fit: %s s)",
                mode,
                i + 1,
                args.release_repeat,
                wall,
                "?" if took is None else f"{took:.2f}",
            )
            walls.append(wall)
            if took is not None:
                fits.append(took)
            last = stdout
        what = "detector systematics fixed" if mode == "fixed" else "all free (two fits)"
        rows.append(row(f"release `HESE_fit.py`, {what}, whole job", walls))
        if fits:
            rows.append(row(f"release `HESE_fit.py`, {what}, its 'Fit took'", fits))
        best = re.search(r"Best Fit -LLH:\s*(\S+)", last)
        facts[f"release_{mode}_neg_log_likelihood"] = float(best.group(1)) if best else None
    return rows, facts


def machine_state() -> dict:
    """Cores and the load averages (1, 5, 15 min) at the end of the run."""
    return {"cores": os.cpu_count(), "load_average": list(os.getloadavg())}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rows: list[dict] = []
    facts: dict = {}
    with tempfile.TemporaryDirectory(prefix="diffuse-fit-hese-") as scratch:
        tmp = args.workdir.resolve() if args.workdir else Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        if not args.skip_ours:
            ours, more = time_ours(args, tmp)
            rows += ours
            facts.update(more)
        if args.release_code is not None:
            theirs, more = time_release(args, tmp)
            rows += theirs
            facts.update(more)
    print(format_table(rows))
    if args.json is not None:
        payload = {
            "release": str(args.release.resolve()),
            "model": MODEL_ARGS,
            "repeat": args.repeat,
            "n_toys": args.n,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_state(),
            "rows": rows,
            **facts,
        }
        write_json_atomic(args.json, payload)
        log.info("wrote %s", args.json)


if __name__ == "__main__":
    main()
