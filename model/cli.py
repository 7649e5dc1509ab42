"""``diffuse-fit``: the command line (a thin layer over :mod:`diffuse_fit.api`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from diffuse_fit import __version__
from diffuse_fit.errors import DataFormatError, FitFailed, RunInterrupted, UsageError
from diffuse_fit.inference.priors import PriorError
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.messages import LOGGER, speaker
from diffuse_fit.physics.constants import TOY_SEED

TOY_DATASETS = (
    "default",
    "broken",
    "flavour",
)  # keep in step with diffuse_fit.physics.toy.TOY_DATASETS

DEFAULT_OUT = Path("results/run")
MAX_SEED = 2**32 - 1  # every sampler (nutpie, PyMC, NumPy) takes seeds in [0, 2**32)


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (``diffuse-fit: error: ...``), exit status 2."""

    def error(self, message):
        self.exit(2, f"diffuse-fit: error: {message} (see '{self.prog} --help')\n")


def _integer(low: int, high: int | None = None, what: str = "an integer"):
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"{text} is not {what} {bound}")
        return value

    return parse


def _open_unit_interval(text: str) -> float:
    """An argparse type: a float strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not strictly between 0 and 1")
    return value


SEED = _integer(0, MAX_SEED, "a seed")
_PRIOR_DEFAULTS = {"scan": "flat", "toys": "flat"}  # the other commands: "default"
COUNT = _integer(1, what="a count")


def _inputs_arguments(p: argparse.ArgumentParser, prior_default: str = "default") -> None:
    g = p.add_argument_group("inputs (default: the embedded toy dataset)")
    g.add_argument("--data", type=Path, help="observed events, workshop JSON format")
    g.add_argument("--sim", type=Path, help="simulated events, workshop JSON format")
    g.add_argument(
        "--hese-release",
        type=Path,
        metavar="DIR",
        help="folder of a downloaded IceCube HESE 7.5-year release "
        "(HESE_data.json, HESE_mc_*.json)",
    )
    g.add_argument(
        "--double-cascades",
        choices=["drop", "cascade"],
        default="drop",
        help="HESE release: drop double cascades (as the workshop binning does) "
        "or merge them with cascades",
    )
    g.add_argument(
        "--toy",
        choices=list(TOY_DATASETS),
        default="default",
        help="which embedded toy dataset: default (single power law, the workshop's "
        "best fit), broken (a broken power law, the demonstration of "
        "'compare') or flavour (the default's spectrum, all nu_mu at Earth: the "
        "demonstration of --astro-model flavour; its simulation has primaryType); "
        "all share one simulation",
    )
    g.add_argument(
        "--toy-seed",
        type=SEED,
        default=TOY_SEED,
        help=f"seed of the embedded toy dataset (default {TOY_SEED})",
    )
    g.add_argument(
        "--analysis",
        type=Path,
        metavar="FILE",
        help="an analysis specification (TOML or JSON; see 'diffuse-fit spec "
        "--schema'): its inputs, binning, components, spectrum, likelihood and "
        "priors instead of these options",
    )
    g.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the caches of parsed simulation files and of "
        "per-bin tables (cache: $DIFFUSE_FIT_CACHE or ~/.cache/diffuse-fit)",
    )
    p.add_argument(
        "--prior",
        dest="priors",
        default=prior_default,
        help="'flat' (MAP = maximum likelihood), 'default' (documented weakly "
        "informative priors), 'hese' (the HESE release's priors), or a JSON file of per-parameter priors "
        f"(default '{prior_default}')",
    )
    p.add_argument(
        "--binning",
        choices=["auto", "workshop", "hese-release"],
        default="auto",
        help="the bins: workshop (20 energy x 10 cos(zenith) x cascade/track), "
        "hese-release (the release's own 840 bins, double cascades in energy x "
        "length) or auto (default: hese-release for --hese-release, else "
        "workshop); a specification's [samples.binning] preset",
    )
    p.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="hold a parameter fixed at a value (repeat, or NAME=VALUE,NAME=VALUE): it "
        "is neither fitted nor sampled and has no prior; recorded in the run's "
        "specification (its 'fix' table)",
    )
    p.add_argument(
        "--components",
        choices=["workshop", "split", "hese"],
        default="workshop",
        help="workshop: atmospheric + astrophysical (3 parameters); split: "
        "conventional, prompt and muon normalizations apart (needs the "
        "fields conventionalWeight, promptWeight, muonWeight); hese: split plus "
        "the release's cr_delta_gamma, kpi_ratio, nunubar_ratio (needs also "
        "pionWeight, kaonWeight, primaryType)",
    )
    p.add_argument(
        "--astro-model",
        choices=["spl", "logparabola", "broken", "cutoff", "segmented", "flavour"],
        default="spl",
        help="astrophysical spectrum: spl (power law, gamma), logparabola (alpha, "
        "beta), broken (gamma1, gamma2, log10 E_break/GeV), cutoff (gamma, "
        "log10 E_cut/GeV), segmented (E^-2 in 5 segments of true energy, 60 "
        "TeV - 10 PeV: astro_norm_1..5), flavour (spl with free flavour fractions "
        "f_e, f_mu at Earth, f_tau = 1 - f_e - f_mu; needs the simulation's "
        "primaryType); see the README's 'Spectral models'",
    )
    p.add_argument(
        "--segments",
        metavar="E1,E2,...",
        default=None,
        help="with --astro-model segmented (or compare's --models segmented): the "
        "segments' edges in true neutrino energy, GeV, increasing (e.g. "
        "6e4,2e5,1e6,1e7: 3 segments); default 6e4,1.5e5,4e5,1e6,3e6,1e7",
    )
    p.add_argument(
        "--likelihood",
        choices=["poisson", "say"],
        default="poisson",
        help="poisson: the workshop's (the simulation's per-bin sums taken as exact); "
        "say: accounts for the simulation's finite statistics (Arguelles, "
        "Schneider, Yuan 2019, arXiv:1901.04645)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"run folder to write (default {DEFAULT_OUT}); replaces an earlier run there",
    )
    p.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also debugging lines (the diffuse_fit and pymc loggers)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="diffuse-fit",
        description="Bayesian binned-likelihood fit of the diffuse astrophysical neutrino flux.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_map = sub.add_parser("map", help="MAP fit (with flat priors: maximum likelihood)")
    _inputs_arguments(p_map)
    p_sample = sub.add_parser("sample", help="MAP, then NUTS posterior sampling")
    _inputs_arguments(p_sample)
    d = SamplerSettings()
    p_sample.add_argument(
        "--seed", type=SEED, default=d.seed, help=f"sampler seed, 0..{MAX_SEED} (default {d.seed})"
    )
    _sampler_arguments(p_sample, d)
    p_sample.add_argument(
        "--sampler",
        choices=["auto", "nutpie", "nutpie-numba", "pymc"],
        default=d.sampler,
        help="NUTS implementation (auto: nutpie if installed)",
    )
    p_sample.add_argument(
        "--report",
        action="store_true",
        help="also write the report (figures, report.md) into the run folder",
    )
    g = p_sample.add_argument_group("groups of posterior.nc (as PyMC's)")
    g.add_argument(
        "--no-posterior-predictive",
        dest="posterior_predictive",
        action="store_false",
        help="leave out the posterior-predictive counts (written by default)",
    )
    g.add_argument(
        "--log-likelihood",
        action="store_true",
        help="add the point-wise log-likelihood over bins (for az.loo, az.compare)",
    )
    g.add_argument(
        "--prior-predictive",
        action="store_true",
        help="add the prior and prior-predictive groups (proper priors only)",
    )
    g.add_argument(
        "--expected",
        action="store_true",
        help="add the expected events per bin at every draw (posterior.expected)",
    )
    _many_fit_parsers(sub, d)
    _compare_parser(sub, d)
    p_spec = sub.add_parser(
        "spec", help="analysis specifications: of a run, the JSON Schema, or a check of a file"
    )
    what = p_spec.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--from-run", type=Path, metavar="DIR", help="the specification the run folder DIR ran"
    )
    what.add_argument(
        "--schema", action="store_true", help="the JSON Schema of specification files"
    )
    what.add_argument("--check", type=Path, metavar="FILE", help="validate a specification file")
    p_spec.add_argument(
        "--out", type=Path, default=None, help="file to write (default: standard output)"
    )
    p_spec.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    p_spec.add_argument(
        "--verbose",
        action="store_true",
        help="also debugging lines (the diffuse_fit and pymc loggers)",
    )
    p_report = sub.add_parser("report", help="figures and report.md of a saved sample run")
    p_report.add_argument(
        "--run",
        dest="run_dir",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder of a 'sample' run (default {DEFAULT_OUT})",
    )
    p_report.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    p_report.add_argument(
        "--verbose",
        action="store_true",
        help="also debugging lines (the diffuse_fit and pymc loggers)",
    )
    return parser


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the fits run (Dask)")
    g.add_argument(
        "--workers",
        type=COUNT,
        default=None,
        help="local cluster: worker processes (default: one per core)",
    )
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="address of a running Dask scheduler (e.g. tcp://host:8786, or one "
        "started by dask-jobqueue) instead of a local cluster",
    )


def _sampler_arguments(p, d: SamplerSettings) -> None:
    p.add_argument("--draws", type=COUNT, default=d.draws, help="NUTS draws per chain (>= 1)")
    p.add_argument(
        "--tune",
        type=_integer(0, what="a number of steps"),
        default=d.tune,
        help="NUTS tuning steps per chain (>= 0)",
    )
    p.add_argument("--chains", type=COUNT, default=d.chains, help="NUTS chains (>= 1)")
    p.add_argument(
        "--target-accept",
        type=_open_unit_interval,
        default=d.target_accept,
        help="NUTS target acceptance rate, in (0, 1)",
    )


def _many_fit_parsers(sub, d: SamplerSettings) -> None:
    p_scan = sub.add_parser("scan", help="profile-likelihood scan over one or two parameters")
    _inputs_arguments(p_scan, prior_default="flat")
    p_scan.add_argument(
        "--param",
        dest="params",
        action="append",
        required=True,
        metavar="NAME=START:STOP:NUM",
        help="scanned parameter and its grid numpy.linspace(START, STOP, NUM); once or twice",
    )
    p_scan.add_argument(
        "--run",
        dest="posterior_run",
        type=Path,
        default=None,
        metavar="DIR",
        help="a 'sample' run on the same inputs: overlay its credible regions",
    )
    _cluster_arguments(p_scan)
    p_toys = sub.add_parser("toys", help="pseudo-experiments at a truth: pulls and coverage")
    _inputs_arguments(p_toys, prior_default="flat")
    p_toys.add_argument(
        "--truth",
        default="",
        metavar="NAME=VALUE,...",
        help="true parameter values (default: the toy dataset's truth)",
    )
    p_toys.add_argument("--n", type=COUNT, required=True, help="number of pseudo-experiments")
    p_toys.add_argument(
        "--seed",
        type=SEED,
        default=d.seed,
        help=f"seed of the pseudo-experiments, 0..{MAX_SEED} (default {d.seed})",
    )
    p_toys.add_argument(
        "--nuts",
        action="store_true",
        help="also sample each posterior (credible-interval coverage)",
    )
    p_toys.add_argument(
        "--resample-sim",
        type=COUNT,
        default=0,
        metavar="N",
        help="fit each pseudo-experiment with a fresh simulation of N events "
        "drawn from the given one (weights scaled up): the coverage then "
        "includes the simulation's finite statistics",
    )
    _sampler_arguments(p_toys, d)
    _cluster_arguments(p_toys)
    from_sbc = SamplerSettings(draws=500, tune=500)  # keep in step with diffuse_fit.jobs.sbc
    p_sbc = sub.add_parser("sbc", help="simulation-based calibration of the posterior (NUTS)")
    _inputs_arguments(p_sbc)
    p_sbc.add_argument("--n", type=COUNT, required=True, help="number of calibration fits")
    p_sbc.add_argument(
        "--seed",
        type=SEED,
        default=d.seed,
        help=f"seed of the calibration, 0..{MAX_SEED} (default {d.seed})",
    )
    p_sbc.add_argument(
        "--draws-per-fit",
        type=COUNT,
        default=99,
        help="posterior draws (thinned) each true value is ranked among",
    )
    _sampler_arguments(p_sbc, from_sbc)
    _cluster_arguments(p_sbc)


def _compare_parser(sub, d: SamplerSettings) -> None:
    p = sub.add_parser(
        "compare",
        help="fit several astrophysical spectra and compare them "
        "(LOO, SMC evidence, Bayes factors, likelihood-ratio tests)",
    )
    _inputs_arguments(p)
    p.add_argument(
        "--models",
        default="spl,logparabola,broken",
        metavar="M1,M2,...",
        help="spectral models to compare, at least two of spl, logparabola, broken, "
        "cutoff (default spl,logparabola,broken)",
    )
    p.add_argument(
        "--seed",
        type=SEED,
        default=d.seed,
        help=f"seed of every random step, 0..{MAX_SEED} (default {d.seed})",
    )
    _sampler_arguments(p, d)
    p.add_argument(
        "--smc-runs",
        type=_integer(0, what="a number of runs"),
        default=4,
        help="independent SMC runs per model for the evidence (their spread is its "
        "error; 0: no evidence)",
    )
    p.add_argument(
        "--smc-draws",
        type=_integer(10, what="a number of draws"),
        default=2000,
        help="particles per SMC run",
    )
    p.add_argument(
        "--lrt-toys",
        type=_integer(0, what="a number of pseudo-experiments"),
        default=500,
        help="pseudo-experiments under spl per likelihood-ratio test (0: none)",
    )
    _cluster_arguments(p)


# options that say where the inputs are: load_inputs's; every other option of a command is a
# keyword of its function in diffuse_fit.api (tests/test_cli.py checks that the two sets agree)
INPUT_OPTIONS = ("data", "sim", "hese_release", "double_cascades", "toy", "toy_seed", "no_cache")
# what an analysis specification gives instead: these options keep their defaults with it
SPEC_OPTIONS = {
    "data": None,
    "sim": None,
    "hese_release": None,
    "double_cascades": "drop",
    "toy": "default",
    "toy_seed": TOY_SEED,
    "no_cache": False,
    "components": "workshop",
    "astro_model": "spl",
    "segments": None,
    "likelihood": "poisson",
}


def _read_analysis(args):
    """The specification of ``--analysis`` (None without it); options it replaces must not
    be given beside it."""
    if getattr(args, "analysis", None) is None:
        return None
    from diffuse_fit.io.analysis import read_analysis

    spec = read_analysis(args.analysis)
    given = [k for k, default in SPEC_OPTIONS.items() if getattr(args, k) != default]
    if args.priors != _PRIOR_DEFAULTS.get(args.command, "default"):
        given.append("priors")
    if given:
        flags = ", ".join(
            "--" + {"priors": "prior", "sim": "sim"}.get(k, k).replace("_", "-") for k in given
        )
        raise UsageError(f"--analysis {args.analysis} gives the inputs and the model: drop {flags}")
    if len(spec.samples) > 1:
        from diffuse_fit.jobs.inputs import check_joint

        check_joint(spec)
    return spec


# options that become part of the analysis specification the job receives (``fix``)
SPEC_ONLY_OPTIONS = ("fix", "binning", "segments")


def api_options(args) -> dict:
    """The options of ``args`` that its command's function in :mod:`diffuse_fit.api` takes."""
    skip = (*INPUT_OPTIONS, *SPEC_ONLY_OPTIONS, "command", "quiet", "verbose")
    return {k: v for k, v in vars(args).items() if k not in skip}


def _fixed(args, components) -> dict:
    """``--fix`` as parameter -> value, checked against the model's parameters and ranges."""
    from diffuse_fit.jobs.inputs import fixed_parameters, model_supports
    from diffuse_fit.jobs.many import parse_assignments

    supports = model_supports(components)
    fix = {}
    for text in getattr(args, "fix", []) or []:
        fix |= parse_assignments(text, list(supports), "--fix")
    return fixed_parameters(supports, fix)


def _with_cli_spec(spec, args, inputs, fix: dict):
    """The specification the job runs: ``spec`` (or today's options as one) with ``fix``
    added to its fixed parameters and ``--binning``'s preset in its samples (the command
    line's values win)."""
    preset = getattr(args, "binning", "auto")
    if not fix and preset == "auto":
        return spec
    if spec is None:
        from diffuse_fit.io.analysis import from_options

        spec = from_options(
            priors=args.priors,
            components=args.components,
            astro_model=args.astro_model,
            likelihood=args.likelihood,
            inputs=inputs.spec,
        )
    if preset != "auto":
        samples = [
            s.model_copy(update={"binning": s.binning.model_copy(update={"preset": preset})})
            for s in spec.samples
        ]
        from diffuse_fit.io.analysis import from_dict

        spec = from_dict(
            {**spec.to_dict(), "samples": [s.model_dump(mode="json") for s in samples]}, "--binning"
        )  # validated again: a preset with edges is refused
    return spec.model_copy(update={"fix": {**spec.fix, **fix}})


def _fold_segments(args) -> None:
    """``--segments`` into the spectrum's name (``--astro-model``, or ``segmented`` among
    compare's ``--models``): ``segmented:E1,E2,...`` as every job takes it."""
    text = getattr(args, "segments", None)
    if text is None:
        return
    from diffuse_fit.io.spectrum_names import SEGMENTED, segmented_model

    try:
        name = segmented_model(text.split(","))
    except ValueError as exc:
        raise UsageError(f"--segments {text}: {exc}") from None
    if args.command == "compare":
        models = [m.strip() for m in args.models.split(",")]
        if SEGMENTED not in models:
            raise UsageError("--segments: give segmented among --models")
        args.models = [name if m == SEGMENTED else m for m in models]  # a list: edges have commas
    elif args.astro_model != SEGMENTED:
        raise UsageError(f"--segments is for --astro-model segmented, not {args.astro_model}")
    else:
        args.astro_model = name


def _check_parameter_names(args, components) -> None:
    """``--param`` and ``--truth`` name parameters of the chosen model (known without data;
    the ``hese`` components' include the detector systematics)."""
    from diffuse_fit.jobs.inputs import model_supports

    names = list(model_supports(components))
    if args.command == "scan":
        from diffuse_fit.jobs.scan import parse_param

        for text in args.params:
            name = parse_param(text)[0]
            if name not in names:
                raise UsageError(f"--param: unknown parameter {name!r} (known: {', '.join(names)})")
    if args.command == "toys" and args.truth:
        from diffuse_fit.jobs.many import parse_assignments

        parse_assignments(args.truth, names, "--truth")


def _run(args, say) -> None:
    """The subcommand's job: :mod:`diffuse_fit.api`'s function of the same name (heavy imports
    only here, after the arguments are checked)."""
    from diffuse_fit import api

    if args.command == "report":  # reads only the run folder; imports no PyMC
        api.write_report(args.run_dir, say=say)
        return
    if args.command == "spec":
        api.write_spec(
            args.out, from_run=args.from_run, schema=args.schema, check=args.check, say=say
        )
        return
    from diffuse_fit.io.run_folder import check_output_folder

    check_output_folder(args.out)  # before any work
    if getattr(args, "scheduler", None) is not None:
        from diffuse_fit.jobs.distributed import check_scheduler

        check_scheduler(args.scheduler)
    spec = _read_analysis(args)
    _fold_segments(args)
    sample = spec.samples[0] if spec is not None else args
    spectrum = sample.spectrum() if spec is not None else args.astro_model
    model = (sample.components, spectrum, sample.likelihood)
    if args.command == "compare":
        from diffuse_fit.jobs.compare import check_options

        check_options(args.models, model[2], model[1])
    from diffuse_fit.jobs.inputs import analysis_inputs, component_set, load_inputs

    # refuse bad pairs and unknown parameter names before any input is read
    _check_parameter_names(args, component_set(*model))
    fix = _fixed(args, component_set(*model))
    if "seed" in vars(args):  # every seeded command: the seed it uses, default or given
        say(f"seed: {args.seed}")
    if spec is not None:
        inputs = analysis_inputs(spec)
    else:
        inputs = load_inputs(
            args.data,
            args.sim,
            hese_release=args.hese_release,
            double_cascades=args.double_cascades,
            toy_seed=args.toy_seed,
            use_cache=not args.no_cache,
            toy_name=args.toy,
        )
    say(f"inputs: {inputs.description}")
    spec = _with_cli_spec(spec, args, inputs, fix)
    if fix:
        say("fixed: " + ", ".join(f"{k}={v:g}" for k, v in spec.fix.items()))
    function = getattr(api, f"run_{args.command}")
    options = {**api_options(args), "analysis": spec}
    function(inputs, **options, progressbar=not args.quiet, say=say)


def _configure_logging(quiet: bool, verbose: bool) -> None:
    """The package's messages (the ``diffuse_fit`` logger, :mod:`diffuse_fit.messages`) as
    lines: INFO (and with ``verbose`` DEBUG) as they are on stdout, warnings as
    ``diffuse-fit: warning: ...`` on stderr; ``quiet``: warnings only.  Once per process (the
    handlers write to the ``sys.stdout``/``sys.stderr`` of the moment: tests replace them)."""
    import logging

    class Lines(logging.StreamHandler):
        def __init__(self, name: str):
            super().__init__()
            self.name_of_stream = name

        @property
        def stream(self):
            return getattr(sys, self.name_of_stream)

        @stream.setter
        def stream(self, value):
            pass

    logger = logging.getLogger(LOGGER)
    if not any(type(h).__name__ == "Lines" for h in logger.handlers):
        out = Lines("stdout")
        out.setFormatter(logging.Formatter("%(message)s"))
        out.addFilter(lambda record: record.levelno < logging.WARNING)
        err = Lines("stderr")
        err.setFormatter(logging.Formatter("diffuse-fit: warning: %(message)s"))
        err.setLevel(logging.WARNING)
        logger.addHandler(out)
        logger.addHandler(err)
        logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


def main(argv=None) -> int:
    """``diffuse-fit``; returns the exit status: 0 done, 2 bad input or arguments or a failed
    fit (one line on stderr, earlier results kept), 130 interrupted (earlier results kept)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error (status 2)
        return int(exc.code or 0)
    say = speaker()  # the diffuse_fit logger (diffuse_fit.messages)
    _configure_logging(args.quiet, getattr(args, "verbose", False))
    import logging

    # PyMC's "NUTS[...]" notices (its import resets the "pymc" logger; this child stays)
    logging.getLogger("pymc.sampling").setLevel(
        logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.NOTSET
    )
    try:
        _run(args, say)
    except (DataFormatError, PriorError, FitFailed, UsageError) as exc:
        print(f"diffuse-fit: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permissions, ... while writing
        where = f" '{exc.filename}'" if exc.filename else ""
        print(f"diffuse-fit: error: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except (RunInterrupted, KeyboardInterrupt) as exc:
        message = str(exc) or "interrupted: nothing was written, earlier results are kept"
        print(f"diffuse-fit: {message}", file=sys.stderr)
        return 130
    return 0


def console_main() -> None:
    """The ``diffuse-fit`` executable: :func:`main` on ``sys.argv``, then an immediate exit.

    Every result is written (atomically) and closed, and any Dask cluster shut down, before
    :func:`main` returns; what is left is the interpreter's teardown of PyMC, numba, ArviZ
    and their extension modules, which takes 0.7-1 s of a 6 s ``sample`` job on a 2-core
    machine.  So the standard streams and logging are flushed and the process ends with
    ``os._exit`` and :func:`main`'s status.  An unexpected exception (a bug) still ends the
    normal way, with its traceback."""
    from diffuse_fit.inference import lazy_arviz

    # figures are files: the non-interactive backend, chosen here (not when a report module
    # is imported, which would change the backend of a notebook using the API); an
    # MPLBACKEND of the user's is kept
    os.environ.setdefault("MPLBACKEND", "Agg")
    lazy_arviz.install()  # matplotlib only when a job draws (0.5-0.9 s, 29 MB less for sample)
    status = main()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # reader gone (``| head``) or stream closed
        pass
    sys.stderr.flush()
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    os._exit(status)


if __name__ == "__main__":
    console_main()
