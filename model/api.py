"""The Python API: the steps of a fit as functions, for scripts and notebooks.

Every name here is importable from ``model`` itself (lazily: ``import model`` stays cheap)::

    import model

    inputs = model.load_inputs()                      # the embedded toy dataset
    binned = model.bin_inputs(inputs)                 # counts and per-bin tables
    pymc_model = model.build_model(binned, priors="flat")
    best = model.fit_map(pymc_model)                  # MAP, covariance, -ln L
    idata = model.sample(pymc_model, seed=1)          # NUTS posterior (ArviZ DataTree)
    print(model.summary(idata))

The jobs of the command line, which write a run folder (``run.json``, ``map.json``,
``posterior.nc``, ``summary.json``, figures, ``report.md``; see :mod:`model.io.run_folder`),
are :func:`run_map`, :func:`run_sample` and :func:`write_report`::

    model.run_sample(inputs, "results/mine", priors="default", seed=1, report=True)
"""

from __future__ import annotations

from model import _API
from model.binned.dataset import BinnedDataset, bin_dataset
from model.inference.settings import SamplerSettings
from model.jobs.inputs import Inputs, component_set, load_inputs  # noqa: F401 (re-exported)

__all__ = list(_API)  # the names ``model`` exposes (one list, in model/__init__.py)


_NUTS = SamplerSettings()  # the sampler defaults, stated once (model.inference.settings)


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
    binning : model.binned.binning.Binning, optional
        Bin edges; the workshop's by default.
    astro_model : {"spl", "logparabola", "broken", "cutoff"}
        The astrophysical spectrum (:mod:`model.physics.spectra`; README "Spectral models").
    """
    return bin_dataset(inputs.data, inputs.simulation, binning=binning,
                       components=component_set(components, astro_model))  # fmt: skip


def build_model(binned: BinnedDataset, priors="default", likelihood: str = "poisson"):
    """The PyMC model of ``binned`` (a ``pm.Model``).

    ``priors``: ``"default"``, ``"flat"`` (MAP = maximum likelihood), a JSON file of
    per-parameter priors, or a dict of the same form (see :mod:`model.inference.priors`).
    ``likelihood``: ``"poisson"`` (the workshop's) or ``"say"`` (the finite-simulation
    likelihood of arXiv:1901.04645; see the README's "Likelihood").
    """
    from model.inference.priors import resolve_priors
    from model.inference.pymc_model import build_model as _build
    from model.inference.pymc_model import parameter_supports

    priors = resolve_priors(priors, parameter_supports(binned.components))
    return _build(binned, priors, likelihood=likelihood)


def fit_map(pymc_model, x0: dict | None = None):
    """The MAP of ``pymc_model`` from ``x0`` (default the workshop's start (1, 6, 2.5)).

    Returns a :class:`model.inference.map_fit.MapResult`: ``values`` (natural units),
    ``neg_log_likelihood`` (-ln L of the model's likelihood, with lgamma(k+1)), ``covariance`` (inverse
    Hessian), ``errors``, ``converged``.  To refit many datasets with one compilation use
    :class:`model.inference.map_fit.MapFitter`.
    """
    from model.inference.map_fit import find_map

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
):
    """NUTS posterior of ``pymc_model`` as an ArviZ DataTree (seeded: reruns are identical).

    ``sampler``: ``"auto"`` (nutpie when installed), ``"nutpie"`` (numba functions from
    pytensor's disk cache), ``"nutpie-numba"`` (the same draws, compiled afresh by
    ``nutpie.compile_pymc_model``) or ``"pymc"``.

    The tree has the groups ArviZ's tools read (:mod:`model.jobs.inference_data`):
    ``observed_data``, ``constant_data`` and, by default, ``posterior_predictive``; with
    ``log_likelihood=True`` (as in PyMC) the point-wise log-likelihood over bins for
    ``az.loo``; with ``prior_predictive=True`` the ``prior`` and ``prior_predictive`` groups.
    Counts are on the analysis's dims ``(topology, zenith, energy)``.
    """
    from model.inference.sampling import sample as _sample
    from model.jobs.inference_data import complete

    settings = SamplerSettings(draws, tune, chains, seed, target_accept, sampler)
    tree = _sample(pymc_model, settings, progressbar=progressbar)
    return complete(tree, pymc_model, seed=seed, posterior_predictive=posterior_predictive,
                    log_likelihood=log_likelihood, prior_predictive=prior_predictive)  # fmt: skip


def summary(idata, var_names=None):
    """ArviZ summary (mean, sd, 94% HDI, MCSE, ESS, R-hat) of the free parameters."""
    from model.inference.sampling import summary_table

    if var_names is None:
        var_names = [n for n in idata.posterior.data_vars if idata.posterior[n].ndim == 2]
    return summary_table(idata, list(var_names))


def run_map(
    inputs: Inputs, out, priors="default", components: str = "workshop", say=print,
    likelihood: str = "poisson", astro_model: str = "spl",
):  # fmt: skip
    """``diffuse-fit map``: the MAP (and, for the Poisson likelihood and the single power
    law, the workshop's scipy fit) into the run folder ``out``; returns the ``map.json``
    content.  ``astro_model``: the astrophysical spectrum (:mod:`model.physics.spectra`)."""
    from model.jobs.runs import run_map as _run_map

    return _run_map(inputs, priors, out, components=components, say=say, likelihood=likelihood,
                    astro_model=astro_model)  # fmt: skip


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
    say=print,
    likelihood: str = "poisson",
    astro_model: str = "spl",
    posterior_predictive: bool = True,
    log_likelihood: bool = False,
    prior_predictive: bool = False,
):
    """``diffuse-fit sample``: MAP, NUTS and (with ``report``) the report, into the run
    folder ``out``; returns the ``summary.json`` content.  ``likelihood``: ``"poisson"`` or
    ``"say"``; ``astro_model``: the astrophysical spectrum; the posterior's groups as
    :func:`sample`'s."""
    from model.jobs.runs import run_sample as _run_sample

    settings = SamplerSettings(draws, tune, chains, seed, target_accept, sampler)
    return _run_sample(
        inputs, priors, out, settings, components=components, progressbar=progressbar,
        say=say, report=report, likelihood=likelihood, astro_model=astro_model,
        groups=dict(posterior_predictive=posterior_predictive, log_likelihood=log_likelihood,
                    prior_predictive=prior_predictive),
    )  # fmt: skip


def run_compare(
    inputs: Inputs,
    out,
    models=("spl", "logparabola", "broken"),
    priors="default",
    *,
    seed: int = _NUTS.seed,
    smc_runs: int = 4,
    smc_draws: int = 2000,
    lrt_toys: int = 500,
    progressbar: bool = True,
    say=print,
    **nuts,
):
    """``diffuse-fit compare``: fit every astrophysical spectrum of ``models`` and compare
    them (MAP, -ln L, PSIS-LOO over bins, SMC evidence and Bayes factors, likelihood-ratio
    tests of nested pairs from ``lrt_toys`` pseudo-experiments on a local Dask cluster) into
    the run folder ``out``; returns the ``compare.json`` content.  ``nuts``: ``draws``,
    ``tune``, ``chains``, ``target_accept`` (README "Model comparison")."""
    from model.jobs.compare import run_compare as _run_compare

    settings = SamplerSettings(**{**_NUTS.to_dict(), **nuts, "seed": seed})
    return _run_compare(inputs, priors, out, list(models), seed=seed, settings=settings,
                        smc_runs=smc_runs, smc_draws=smc_draws, lrt_toys=lrt_toys,
                        say=say, progressbar=progressbar)  # fmt: skip


def write_report(run_dir, say=print):
    """``diffuse-fit report``: figures and ``report.md`` of the sample run in ``run_dir``
    (reads only the run folder); returns the path of ``report.md``."""
    from model.jobs.report_job import run_report

    return run_report(run_dir, say=say)
