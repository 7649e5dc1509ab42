"""The Python API: the steps of a fit as functions, for scripts and notebooks.

Every name here is importable from ``diffuse_fit`` itself (lazily: ``import diffuse_fit``
stays cheap)::

    import diffuse_fit as df

    inputs = df.load_inputs()                         # the embedded toy dataset
    binned = df.bin_inputs(inputs)                    # counts and per-bin tables
    m = df.build_model(binned, priors="flat")         # a pm.Model
    best = df.fit_map(m)                              # MAP, covariance, -ln L
    idata = df.sample(m, seed=1)                      # NUTS posterior (ArviZ DataTree)
    print(df.summary(idata))

The jobs of the command line, which write a run folder (``run.json``, ``map.json``,
``posterior.nc``, ``summary.json``, figures, ``report.md``; see :mod:`diffuse_fit.io.run_folder`),
are :func:`run_map`, :func:`run_sample` and :func:`write_report`::

    df.run_sample(inputs, "results/mine", priors="default", seed=1, report=True)
"""

from __future__ import annotations

from diffuse_fit import _API
from diffuse_fit.binned.dataset import BinnedDataset, bin_dataset
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.jobs.inputs import Inputs, component_set, load_inputs  # noqa: F401 (re-exported)
from diffuse_fit.messages import speaker
from diffuse_fit.physics.spectra import register_spectrum  # noqa: F401 (re-exported)

__all__ = list(_API)  # the names ``model`` exposes (one list, in model/__init__.py)


_NUTS = SamplerSettings()  # the sampler defaults, stated once (diffuse_fit.inference.settings)
_MODEL_DEFAULTS = {"components": "workshop", "likelihood": "poisson", "astro_model": "spl"}


def _with_analysis(analysis, inputs, priors, default_priors, **options):
    """``(inputs, priors, options, spec)`` of a command given ``analysis`` (a specification
    or its file; None: the options as they are).  Options other than their defaults must
    agree with the specification; inputs not given are the specification's."""
    if analysis is None:
        if inputs is None:
            inputs = load_inputs()
        return inputs, priors, options, None
    from diffuse_fit.errors import UsageError
    from diffuse_fit.io.analysis import AnalysisSpec, read_analysis
    from diffuse_fit.jobs.inputs import analysis_inputs, check_joint

    spec = analysis if isinstance(analysis, AnalysisSpec) else read_analysis(analysis)
    if len(spec.samples) > 1:
        check_joint(spec)
    sample = spec.samples[0]
    given = {k: v for k, v in options.items() if v != _MODEL_DEFAULTS[k]}
    if priors != default_priors:
        given["priors"] = priors
    wanted = {"priors": spec.priors, **{k: _sample_option(sample, k) for k in options}}
    conflicts = [k for k, v in given.items() if v != wanted[k]]
    if conflicts:
        raise UsageError(
            f"the analysis specification sets {', '.join(conflicts)}: change it "
            "there, not as an option"
        )
    if inputs is None:
        inputs = analysis_inputs(spec)
    return inputs, spec.priors, {k: _sample_option(sample, k) for k in options}, spec


def _sample_option(sample, key: str):
    """A sample's value of the model option ``key`` (its spectrum with its segments)."""
    return sample.spectrum() if key == "astro_model" else getattr(sample, key)


def bin_inputs(
    inputs: Inputs, components: str = "workshop", binning=None, astro_model: str = "spl"
) -> BinnedDataset:
    """Bin the data and the simulation of ``inputs`` once and tabulate the per-bin weights.

    Parameters
    ----------
    inputs : Inputs
        From :func:`load_inputs`.
    components : {"workshop", "split", "hese"}
        ``workshop``: atmospheric + astrophysical (atmos_norm, astro_norm, astro_gamma);
        ``split``: conventional, prompt and muon normalizations apart (needs the fields
        ``conventionalWeight``, ``promptWeight``, ``muonWeight``).
    binning : diffuse_fit.binned.binning.Binning, optional
        Bin edges; the workshop's by default.
    astro_model : {"spl", "logparabola", "broken", "cutoff", "segmented"}
        The astrophysical spectrum (:mod:`diffuse_fit.physics.spectra`; docs/model.md).

    Examples
    --------
    >>> import diffuse_fit as df
    >>> binned = df.bin_inputs(df.load_inputs())  # the embedded toy, the workshop's bins
    >>> binned.binning.shape  # topology x zenith x energy
    (2, 10, 20)
    >>> int(binned.counts.sum())  # data events inside the bins
    120
    """
    return bin_dataset(
        inputs.data,
        inputs.simulation,
        binning=binning,
        components=component_set(components, astro_model),
    )


def build_model(binned: BinnedDataset, priors="default", likelihood: str = "poisson"):
    """The PyMC model of ``binned`` (a ``pm.Model``).

    ``priors``: ``"default"``, ``"flat"`` (MAP = maximum likelihood), a JSON file of
    per-parameter priors, or a dict of the same form (see :mod:`diffuse_fit.inference.priors`).
    ``likelihood``: ``"poisson"`` (the workshop's) or ``"say"`` (the finite-simulation
    likelihood of arXiv:1901.04645; see the README's "Likelihood").
    """
    from diffuse_fit.inference.priors import resolve_priors
    from diffuse_fit.inference.pymc_model import build_model as _build

    priors = resolve_priors(priors, binned.templates.parameter_supports())
    return _build(binned, priors, likelihood=likelihood)


def fit_map(pymc_model, x0: dict | None = None):
    """The MAP of ``pymc_model`` from ``x0`` (default the workshop's start (1, 6, 2.5)).

    Returns a :class:`diffuse_fit.inference.map_fit.MapResult`: ``values`` (natural units),
    ``neg_log_likelihood`` (-ln L of the model's likelihood, with lgamma(k+1)), ``covariance`` (inverse
    Hessian), ``errors``, ``converged``.  To refit many datasets with one compilation use
    :class:`diffuse_fit.inference.map_fit.MapFitter`.
    """
    from diffuse_fit.inference.map_fit import find_map

    return find_map(pymc_model, x0)


def sample(
    pymc_model,
    *,
    draws: int = _NUTS.draws,
    tune: int = _NUTS.tune,
    chains: int = _NUTS.chains,
    seed: int = _NUTS.seed,
    target_accept: float = _NUTS.target_accept,
    sampler: str = _NUTS.sampler,
    progressbar: bool = True,
    posterior_predictive: bool = True,
    log_likelihood: bool = False,
    prior_predictive: bool = False,
    expected: bool = False,
):
    """NUTS posterior of ``pymc_model`` as an ArviZ DataTree (seeded: reruns are identical).

    ``sampler``: ``"auto"`` (nutpie when installed), ``"nutpie"`` (numba functions from
    pytensor's disk cache), ``"nutpie-numba"`` (the same draws, compiled afresh by
    ``nutpie.compile_pymc_model``) or ``"pymc"``.

    The tree has the groups ArviZ's tools read (:mod:`diffuse_fit.jobs.inference_data`):
    ``observed_data``, ``constant_data`` and, by default, ``posterior_predictive``; with
    ``log_likelihood=True`` (as in PyMC) the point-wise log-likelihood over bins for
    ``az.loo``; with ``prior_predictive=True`` the ``prior`` and ``prior_predictive`` groups;
    with ``expected=True`` the expected events per bin at every draw (``posterior.expected``).
    Counts and expectations are on the analysis's dims ``(topology, zenith, energy)``.
    """
    from diffuse_fit.inference.sampling import sample as _sample
    from diffuse_fit.jobs.inference_data import complete

    settings = SamplerSettings(draws, tune, chains, seed, target_accept, sampler)
    tree = _sample(pymc_model, settings, progressbar=progressbar)
    return complete(
        tree,
        pymc_model,
        seed=seed,
        posterior_predictive=posterior_predictive,
        log_likelihood=log_likelihood,
        prior_predictive=prior_predictive,
        expected=expected,
    )


def summary(idata, var_names=None):
    """ArviZ summary (mean, sd, 94% HDI, MCSE, ESS, R-hat) of the free parameters."""
    from diffuse_fit.inference.sampling import summary_table

    if var_names is None:
        var_names = [n for n in idata.posterior.data_vars if idata.posterior[n].ndim == 2]
    return summary_table(idata, list(var_names))


def run_map(
    inputs: Inputs,
    out,
    priors="default",
    components: str = "workshop",
    say=None,
    likelihood: str = "poisson",
    astro_model: str = "spl",
    progressbar: bool = True,
    analysis=None,
):
    """``diffuse-fit map``: the MAP (and, for the Poisson likelihood and the single power
    law, the workshop's scipy fit) into the run folder ``out``; returns the ``map.json``
    content.  ``astro_model``: the astrophysical spectrum (:mod:`diffuse_fit.physics.spectra`);
    ``progressbar``: taken for the commands' common signature (the MAP takes milliseconds).
    ``analysis``: an analysis specification (:class:`diffuse_fit.io.analysis.AnalysisSpec` or
    its TOML/JSON file) giving the inputs (when ``inputs`` is None), the priors, components,
    spectrum, likelihood and binning instead of the options."""
    say = speaker(say)
    from diffuse_fit.jobs.runs import run_map as _run_map

    inputs, priors, options, spec = _with_analysis(
        analysis,
        inputs,
        priors,
        "default",
        components=components,
        likelihood=likelihood,
        astro_model=astro_model,
    )
    return _run_map(inputs, priors, out, say=say, analysis=spec, **options)


def run_sample(
    inputs: Inputs,
    out,
    priors="default",
    components: str = "workshop",
    *,
    draws: int = _NUTS.draws,
    tune: int = _NUTS.tune,
    chains: int = _NUTS.chains,
    seed: int = _NUTS.seed,
    target_accept: float = _NUTS.target_accept,
    sampler: str = _NUTS.sampler,
    report: bool = True,
    progressbar: bool = True,
    say=None,
    likelihood: str = "poisson",
    astro_model: str = "spl",
    posterior_predictive: bool = True,
    log_likelihood: bool = False,
    prior_predictive: bool = False,
    expected: bool = False,
    model=None,
    analysis=None,
):
    """``diffuse-fit sample``: MAP, NUTS and (with ``report``) the report, into the run
    folder ``out``; returns the ``summary.json`` content.  ``likelihood``: ``"poisson"`` or
    ``"say"``; ``astro_model``: the astrophysical spectrum; the posterior's groups as
    :func:`sample`'s.

    ``model``: your own ``pm.Model`` of these inputs -- one :func:`build_model` made and you
    extended (a ``pm.Potential``, another variable) -- fitted instead of the builder's: its
    MAP by PyMC's log-density of it, its posterior by NUTS, and ``report.md`` says that the
    model was extended and what was added.  ``priors``, ``components``, ``likelihood`` and
    ``astro_model`` must be those it was built with (they bin the inputs for the report).
    ``analysis``: an analysis specification (:class:`diffuse_fit.io.analysis.AnalysisSpec` or
    its TOML/JSON file) giving the inputs (when ``inputs`` is None), the priors, components,
    spectrum, likelihood and binning instead of the options."""
    say = speaker(say)
    from diffuse_fit.jobs.runs import run_sample as _run_sample

    inputs, priors, options, spec = _with_analysis(
        analysis,
        inputs,
        priors,
        "default",
        components=components,
        likelihood=likelihood,
        astro_model=astro_model,
    )
    settings = SamplerSettings(draws, tune, chains, seed, target_accept, sampler)
    return _run_sample(
        inputs,
        priors,
        out,
        settings,
        progressbar=progressbar,
        say=say,
        report=report,
        groups=dict(
            posterior_predictive=posterior_predictive,
            log_likelihood=log_likelihood,
            prior_predictive=prior_predictive,
            expected=expected,
        ),
        model=model,
        analysis=spec,
        **options,
    )


def _cluster(workers, scheduler):
    from diffuse_fit.jobs.distributed import ClusterOptions

    return ClusterOptions(scheduler=scheduler, workers=workers)


def run_scan(
    inputs: Inputs,
    out,
    params,
    *,
    priors="flat",
    components: str = "workshop",
    likelihood: str = "poisson",
    astro_model: str = "spl",
    posterior_run=None,
    workers: int | None = None,
    scheduler: str | None = None,
    progressbar: bool = True,
    say=None,
    analysis=None,
):
    """``diffuse-fit scan``: the profile likelihood on a grid of one or two parameters into
    the run folder ``out``; returns the ``scan.json`` content.  ``params``: one or two of
    ``"NAME=START:STOP:NUM"`` (or ``(name, start, stop, num)``), the grid
    ``numpy.linspace(START, STOP, NUM)``; ``posterior_run``: a ``sample`` run whose credible
    regions the figure overlays; ``workers`` / ``scheduler``: a local Dask cluster of that
    many processes (default one per core) or the address of a running scheduler.
    ``analysis``: an analysis specification (:class:`diffuse_fit.io.analysis.AnalysisSpec` or
    its TOML/JSON file) giving the inputs (when ``inputs`` is None), the priors, components,
    spectrum, likelihood and binning instead of the options."""
    say = speaker(say)
    from diffuse_fit.jobs.scan import parse_param
    from diffuse_fit.jobs.scan import run_scan as _run_scan

    inputs, priors, options, spec = _with_analysis(
        analysis,
        inputs,
        priors,
        "flat",
        components=components,
        likelihood=likelihood,
        astro_model=astro_model,
    )
    params = [parse_param(p) if isinstance(p, str) else tuple(p) for p in params]
    return _run_scan(
        inputs,
        priors,
        out,
        params,
        cluster=_cluster(workers, scheduler),
        posterior_run=posterior_run,
        say=say,
        progressbar=progressbar,
        analysis=spec,
        **options,
    )


def run_toys(
    inputs: Inputs,
    out,
    *,
    n: int,
    seed: int = _NUTS.seed,
    truth="",
    priors="flat",
    components: str = "workshop",
    likelihood: str = "poisson",
    astro_model: str = "spl",
    nuts: bool = False,
    resample_sim: int = 0,
    draws: int = _NUTS.draws,
    tune: int = _NUTS.tune,
    chains: int = _NUTS.chains,
    target_accept: float = _NUTS.target_accept,
    workers: int | None = None,
    scheduler: str | None = None,
    progressbar: bool = True,
    say=None,
    analysis=None,
):
    """``diffuse-fit toys``: ``n`` pseudo-experiments at ``truth`` (``"NAME=VALUE,..."`` or a
    dict; default the toy dataset's truth), MAP and profile intervals (with ``nuts`` also
    NUTS credible intervals), into the run folder ``out``; returns ``coverage.json``.
    ``resample_sim``: fit each with a fresh simulation of that many events (0: the whole).
    ``analysis``: an analysis specification (:class:`diffuse_fit.io.analysis.AnalysisSpec` or
    its TOML/JSON file) giving the inputs (when ``inputs`` is None), the priors, components,
    spectrum, likelihood and binning instead of the options."""
    say = speaker(say)
    from diffuse_fit.jobs.toys import run_toys as _run_toys

    inputs, priors, options, spec = _with_analysis(
        analysis,
        inputs,
        priors,
        "flat",
        components=components,
        likelihood=likelihood,
        astro_model=astro_model,
    )
    settings = SamplerSettings(
        draws=draws, tune=tune, chains=chains, target_accept=target_accept, sampler="nutpie"
    )
    return _run_toys(
        inputs,
        priors,
        out,
        truth,
        n,
        seed,
        nuts=nuts,
        settings=settings,
        cluster=_cluster(workers, scheduler),
        say=say,
        progressbar=progressbar,
        resample=resample_sim,
        analysis=spec,
        **options,
    )


_SBC = SamplerSettings(draws=500, tune=500)  # the sbc command's NUTS defaults


def run_sbc(
    inputs: Inputs,
    out,
    *,
    n: int,
    seed: int = _NUTS.seed,
    priors="default",
    components: str = "workshop",
    likelihood: str = "poisson",
    astro_model: str = "spl",
    draws_per_fit: int = 99,
    draws: int = _SBC.draws,
    tune: int = _SBC.tune,
    chains: int = _SBC.chains,
    target_accept: float = _SBC.target_accept,
    workers: int | None = None,
    scheduler: str | None = None,
    progressbar: bool = True,
    say=None,
    analysis=None,
):
    """``diffuse-fit sbc``: ``n`` simulation-based calibration fits (truths drawn from the
    priors, NUTS on each) into the run folder ``out``; returns ``sbc.json``.
    ``analysis``: an analysis specification (:class:`diffuse_fit.io.analysis.AnalysisSpec` or
    its TOML/JSON file) giving the inputs (when ``inputs`` is None), the priors, components,
    spectrum, likelihood and binning instead of the options."""
    say = speaker(say)
    from diffuse_fit.jobs.sbc import run_sbc as _run_sbc

    inputs, priors, options, spec = _with_analysis(
        analysis,
        inputs,
        priors,
        "default",
        components=components,
        likelihood=likelihood,
        astro_model=astro_model,
    )
    settings = SamplerSettings(
        draws=draws, tune=tune, chains=chains, target_accept=target_accept, sampler="nutpie"
    )
    return _run_sbc(
        inputs,
        priors,
        out,
        n,
        seed,
        settings=settings,
        draws_per_fit=draws_per_fit,
        cluster=_cluster(workers, scheduler),
        say=say,
        progressbar=progressbar,
        analysis=spec,
        **options,
    )


def run_compare(
    inputs: Inputs,
    out,
    models=("spl", "logparabola", "broken"),
    priors="default",
    *,
    components: str = "workshop",
    likelihood: str = "poisson",
    astro_model: str = "spl",
    seed: int = _NUTS.seed,
    draws: int = _NUTS.draws,
    tune: int = _NUTS.tune,
    chains: int = _NUTS.chains,
    target_accept: float = _NUTS.target_accept,
    smc_runs: int = 4,
    smc_draws: int = 2000,
    lrt_toys: int = 500,
    workers: int | None = None,
    scheduler: str | None = None,
    progressbar: bool = True,
    say=None,
    analysis=None,
):
    """``diffuse-fit compare``: fit every astrophysical spectrum of ``models`` and compare
    them (MAP, -ln L, PSIS-LOO over bins, SMC evidence and Bayes factors, likelihood-ratio
    tests of nested pairs from ``lrt_toys`` pseudo-experiments on Dask) into the run folder
    ``out``; returns the ``compare.json`` content (README "Model comparison").  The Poisson
    likelihood only; ``astro_model`` must stay ``"spl"`` (the models are ``models``).
    ``analysis``: an analysis specification (:class:`diffuse_fit.io.analysis.AnalysisSpec` or
    its TOML/JSON file) giving the inputs (when ``inputs`` is None), the priors, components,
    spectrum, likelihood and binning instead of the options."""
    say = speaker(say)
    from diffuse_fit.jobs.compare import check_options
    from diffuse_fit.jobs.compare import run_compare as _run_compare

    inputs, priors, options, spec = _with_analysis(
        analysis,
        inputs,
        priors,
        "default",
        components=components,
        likelihood=likelihood,
        astro_model=astro_model,
    )
    components = options["components"]
    check_options(models, options["likelihood"], options["astro_model"])
    settings = SamplerSettings(
        draws=draws, tune=tune, chains=chains, seed=seed, target_accept=target_accept
    )
    return _run_compare(
        inputs,
        priors,
        out,
        models,
        seed=seed,
        settings=settings,
        components=components,
        smc_runs=smc_runs,
        smc_draws=smc_draws,
        lrt_toys=lrt_toys,
        cluster=_cluster(workers, scheduler),
        say=say,
        progressbar=progressbar,
        analysis=spec,
    )


def write_report(run_dir, say=None):
    """``diffuse-fit report``: figures and ``report.md`` of the sample run in ``run_dir``
    (reads only the run folder); returns the path of ``report.md``."""
    say = speaker(say)
    from diffuse_fit.jobs.report_job import run_report

    return run_report(run_dir, say=say)


def write_spec(out=None, *, from_run=None, schema: bool = False, check=None, say=None):
    """``diffuse-fit spec``: an analysis specification (JSON) -- the one the run folder
    ``from_run`` ran (``diffuse-fit spec --from-run DIR``), or the published JSON Schema of
    specification files (``schema``) -- written atomically to ``out`` or printed; ``check``:
    validate a specification file (one line naming the key path and value if it is bad).
    Returns the written content."""
    say = speaker(say)
    import json

    from diffuse_fit.errors import UsageError
    from diffuse_fit.io.analysis import from_provenance, json_schema, read_analysis
    from diffuse_fit.io.atomic import write_text

    if sum(x is not None and x is not False for x in (from_run, schema or None, check)) != 1:
        raise UsageError("spec: give one of --from-run DIR, --schema, --check FILE")
    if check is not None:
        spec = read_analysis(check)
        say(f"{check}: a valid analysis specification ({len(spec.samples)} sample(s))")
        return spec.to_dict()
    if schema:
        content = json_schema()
    else:
        from diffuse_fit.io.run_folder import read_run

        run = read_run(from_run)
        provenance = _run_provenance(run)
        content = from_provenance(provenance, str(run.path)).to_dict()
    text = json.dumps(content, indent=2) + "\n"
    if out is None:
        print(text, end="")
    else:
        write_text(out, text)
        say(f"wrote {out}")
    return content


def _run_provenance(run) -> dict:
    """The provenance a run folder recorded (in its main JSON file)."""
    for name in (
        "map.json",
        "summary.json",
        "scan.json",
        "coverage.json",
        "sbc.json",
        "compare.json",
    ):
        if name in run.contents:
            document = run.json(name)
            if "provenance" in document:
                return document["provenance"]
            if name == "compare.json" and document.get("models"):
                first = next(iter(document["models"].values()))
                if "provenance" in first:
                    return first["provenance"]
    from diffuse_fit.errors import DataFormatError

    raise DataFormatError(str(run.path), "records no provenance to make a specification from")
