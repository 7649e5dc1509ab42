"""The posterior's DataTree as PyMC and ArviZ users expect it: every group ArviZ's tools read,
on the analysis's own axes.

Groups (NetCDF ``posterior.nc`` and the API's return value alike):

* ``posterior``, ``sample_stats``: the sampler's;
* ``observed_data``: ``observed``, the counts per bin, dims ``(topology, zenith, energy)``;
* ``posterior_predictive`` (by default): ``observed``, one Poisson draw of the counts per
  posterior draw, dims ``(chain, draw, topology, zenith, energy)``;
* ``log_likelihood`` (on request, as PyMC's ``log_likelihood=True``): ``observed``, the
  log-likelihood of each bin at each draw (Poisson ``k ln mu - mu - lnGamma(k + 1)``, or SAY
  with its per-bin sum of squared weights), same dims: ``az.loo`` / ``az.compare`` use it;
* ``prior``, ``prior_predictive`` (on request): ``pm.sample_prior_predictive`` (proper priors
  only), its counts on the same dims;
* ``posterior.expected`` (on request): the expected events per bin at every draw, on the
  analysis axes (float32);
* ``constant_data``: the fit record (per-bin tables, binning, components: what the report
  reads, :func:`diffuse_fit.jobs.report_job.attach_record`).

Coordinates: ``topology`` (names), ``zenith`` (bin centres, rad) with ``zenith_lower``,
``zenith_upper`` and ``cos_zenith``; ``energy`` (geometric bin centres, GeV) with
``energy_lower``, ``energy_upper``.  A joint fit of several samples, each with its own
binning, has one dim ``bin`` instead, with these coordinates (and ``sample``) per bin.  Bins no component populates have ``mu = 0``, count 0,
log-likelihood 0.

Where the model's observation is the one :func:`diffuse_fit.inference.pymc_model.build_model` made
(priors changed or potentials added do not matter:
:func:`diffuse_fit.inference.pymc_model.observation_twin` compares the graphs), the groups are
computed from the NumPy twin of its tables (no compilation; tests check them against
``pm.sample_posterior_predictive`` and ``pm.compute_log_likelihood``).  For a model whose
observation the user changed, PyMC computes them on the model's own ``bin`` dim.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import xarray as xr
from scipy.special import gammaln

from diffuse_fit.binned.joint import JointBinning
from diffuse_fit.binned.say import say_loglike
from diffuse_fit.binned.templates import Templates
from diffuse_fit.errors import UsageError
from diffuse_fit.jobs.report_job import attach_record
from diffuse_fit.report import predictive as pp

DIMS = ("topology", "zenith", "energy")  # the order of Binning.shape
TOPOLOGY_NAMES = {0: "cascade", 1: "track", 2: "double_cascade"}
PREDICTIVE_SEED_OFFSET = 1  # the predictive draws' seed: the sampler's seed + this


def analysis_coords(binning) -> dict:
    """Coordinates of the dims ``topology``, ``zenith``, ``energy`` (units GeV, rad); for a
    joint binning of several samples, of the one dim ``bin`` (each bin's ``sample``,
    topology, zenith and energy as coordinates along it)."""
    if isinstance(binning, JointBinning):
        return _joint_coords(binning)
    e, z = binning.energy_edges, binning.zenith_edges
    names = [TOPOLOGY_NAMES.get(int(c), f"topology_{int(c)}") for c in binning.topology_codes]
    energy = {
        "energy": ("energy", np.sqrt(e[:-1] * e[1:]), {"units": "GeV"}),
        "energy_lower": ("energy", e[:-1], {"units": "GeV"}),
        "energy_upper": ("energy", e[1:], {"units": "GeV"}),
    }
    if binning.second == "length":  # reconstructed length (HESE double cascades), m
        return {
            "topology": ("topology", names),
            "length": ("length", np.sqrt(z[:-1] * z[1:]), {"units": "m"}),
            "length_lower": ("length", z[:-1], {"units": "m"}),
            "length_upper": ("length", z[1:], {"units": "m"}),
            **energy,
        }
    return {
        "topology": ("topology", names),
        "zenith": ("zenith", 0.5 * (z[:-1] + z[1:]), {"units": "rad"}),
        "zenith_lower": ("zenith", z[:-1], {"units": "rad"}),
        "zenith_upper": ("zenith", z[1:], {"units": "rad"}),
        "cos_zenith": ("zenith", 0.5 * (np.cos(z[:-1]) + np.cos(z[1:]))),
        "energy": ("energy", np.sqrt(e[:-1] * e[1:]), {"units": "GeV"}),
        "energy_lower": ("energy", e[:-1], {"units": "GeV"}),
        "energy_upper": ("energy", e[1:], {"units": "GeV"}),
    }


def _joint_coords(binning: JointBinning) -> dict:
    """Per-bin coordinates along ``bin`` of a joint binning (the samples' axes flattened in
    each sample's bin order, topology-major)."""
    columns: list[dict] = []
    units: dict[str, str] = {}
    for name, part in zip(binning.names, binning.parts, strict=True):
        axes = analysis_coords(part)
        grids = np.meshgrid(
            np.arange(part.shape[0]),
            np.arange(part.shape[1]),
            np.arange(part.shape[2]),
            indexing="ij",
        )
        dims = ("topology", part.second, "energy")
        index = dict(zip(dims, (g.reshape(-1) for g in grids), strict=True))
        column = {"sample": np.full(part.n_bins, name, dtype=object)}
        for coord, (dim, values, *attrs) in axes.items():
            column[coord] = np.asarray(values)[index[dim]]
            if attrs:
                units[coord] = attrs[0]["units"]
        columns.append(column)
    out = {}
    for coord in dict.fromkeys(k for c in columns for k in c):  # a part without it: NaN / ""
        text = coord in ("sample", "topology")
        values = np.concatenate(
            [
                c.get(
                    coord,
                    np.full(
                        len(c["sample"]),
                        "" if text else np.nan,
                        dtype=object if text else np.float64,
                    ),
                )
                for c in columns
            ]
        )
        values = values.astype(str) if text else values.astype(np.float64)
        out[coord] = ("bin", values, {"units": units[coord]} if coord in units else {})
    return out


def _on_axes(per_bin: np.ndarray, binning, sample_dims=()) -> tuple:
    """``(dims, array)`` of a (..., n_bins) array on the analysis axes (one ``bin`` axis for
    a joint binning)."""
    if isinstance(binning, JointBinning):
        return (*sample_dims, "bin"), np.asarray(per_bin)
    shaped = np.asarray(per_bin).reshape(per_bin.shape[:-1] + binning.shape)
    return (*sample_dims, "topology", binning.second, "energy"), shaped


def expectations(templates: Templates, posterior, names) -> np.ndarray:
    """Expected events per bin of the whole binning at every draw: (chain, draw, n_bins)."""
    values = {n: np.asarray(posterior[n].values, dtype=np.float64) for n in names}
    n_chain, n_draw = values[names[0]].shape
    draws = {n: v.reshape(-1) for n, v in values.items()}
    per_component = pp.component_expectations(templates, draws)
    return sum(per_component.values()).reshape(n_chain, n_draw, -1)


def pointwise_log_likelihood(
    templates: Templates, counts, posterior, names, likelihood: str = "poisson", mu=None
) -> np.ndarray:
    """Log-likelihood of each bin of the whole binning at every draw, (chain, draw, n_bins):
    Poisson ``k ln mu - mu - lnGamma(k + 1)`` (0 ln 0 = 0) or SAY (:func:`say_loglike`);
    ``mu``: the :func:`expectations` of ``posterior`` if already computed."""
    k = np.asarray(counts, dtype=np.float64)
    if mu is None:
        mu = expectations(templates, posterior, names)
    if likelihood == "say":
        values = {n: np.asarray(posterior[n].values, dtype=np.float64).reshape(-1) for n in names}
        s2 = pp.sum_of_squares(templates, values).reshape(mu.shape)
        return say_loglike(np.broadcast_to(k, mu.shape), mu, s2)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mu = np.where(k > 0, np.log(mu), 0.0)
    return k * log_mu - mu - gammaln(k + 1.0)


def _sample_coords(tree) -> dict:
    return {"chain": tree.posterior["chain"].values, "draw": tree.posterior["draw"].values}


def complete(
    tree,
    model,
    *,
    seed: int,
    posterior_predictive: bool = True,
    log_likelihood: bool = False,
    prior_predictive: bool = False,
    expected: bool = False,
    prior_draws: int = 1000,
):
    """Add the groups of the module docstring to the sampler's DataTree ``tree`` of ``model``
    (in place; returned).  ``seed``: the sampler's; the predictive draws use ``seed + 1``.
    ``expected``: also the expected events per bin at every draw, ``expected`` in the
    posterior group on the analysis axes (as a ``pm.Deterministic`` would be; 3.2 MB per 1000
    draws x 4 chains x 400 bins, so on request)."""
    from diffuse_fit.inference.pymc_model import observation_twin

    twin = observation_twin(model)
    if twin is None:
        return _complete_by_pymc(
            tree, model, seed, posterior_predictive, log_likelihood, prior_predictive, prior_draws
        )
    templates = twin.templates
    binning = templates.binning
    counts = twin.full_counts(model)
    names = [rv.name for rv in model.free_RVs if rv.name in twin.priors]  # the tables'
    coords = analysis_coords(binning)
    sample = _sample_coords(tree)
    tree["observed_data"] = xr.DataTree(
        xr.Dataset({"observed": _on_axes(counts, binning)}, coords=coords)
    )
    if posterior_predictive or log_likelihood or expected:
        mu = expectations(templates, tree.posterior, names)
    if expected:
        posterior = tree.posterior.to_dataset()
        dims, values = _on_axes(mu, binning, ("chain", "draw"))
        posterior["expected"] = xr.DataArray(
            values.astype(np.float32), dims=dims, coords={**coords, **sample}
        )
        tree["posterior"] = xr.DataTree(posterior)
    if posterior_predictive:
        rng = np.random.default_rng(seed + PREDICTIVE_SEED_OFFSET)
        draws = rng.poisson(mu).astype(np.int32)  # counts per bin: int32 (half the bytes)
        tree["posterior_predictive"] = xr.DataTree(
            xr.Dataset(
                {"observed": _on_axes(draws, binning, ("chain", "draw"))},
                coords={**coords, **sample},
            )
        )
    if log_likelihood:
        loglike = pointwise_log_likelihood(
            templates, counts, tree.posterior, names, twin.likelihood, mu=mu
        )
        tree["log_likelihood"] = xr.DataTree(
            xr.Dataset(
                {"observed": _on_axes(loglike, binning, ("chain", "draw"))},
                coords={**coords, **sample},
            )
        )
    if prior_predictive:
        prior = _prior_predictive(model, prior_draws, seed)
        tree["prior"] = prior["prior"]
        model_bins = twin.bins
        flat = np.asarray(prior["prior_predictive"].dataset["observed"].values)
        full = np.zeros(flat.shape[:-1] + (binning.n_bins,))
        full[..., model_bins] = flat
        prior_sample = {d: prior["prior"][d].values for d in ("chain", "draw")}
        tree["prior_predictive"] = xr.DataTree(
            xr.Dataset(
                {"observed": _on_axes(full, binning, ("chain", "draw"))},
                coords={**coords, **prior_sample},
            )
        )
    attach_record(tree, counts, templates, twin.likelihood)
    return tree


def _prior_predictive(model, draws: int, seed: int):
    import pymc as pm

    from diffuse_fit.inference.exact_float import exact_float

    improper = [
        rv.name for rv in model.free_RVs if type(rv.owner.op).__name__ in ("FlatRV", "HalfFlatRV")
    ]
    if improper:
        raise UsageError(
            f"a prior predictive needs proper priors; {', '.join(improper)} "
            "have flat improper priors (use --prior default or a prior file)"
        )
    with exact_float(), _object_mode_notice_off():
        return pm.sample_prior_predictive(draws=draws, model=model, random_seed=seed)


@contextlib.contextmanager
def _object_mode_notice_off():
    """The observation's random draws (a ``pm.CustomDist`` with a NumPy ``random``) run in
    Python inside the compiled function: pytensor's notice of it is not the user's concern."""
    from diffuse_fit.inference.notices import ignore_object_mode_notice

    with warnings.catch_warnings():
        ignore_object_mode_notice()
        yield


def _complete_by_pymc(
    tree, model, seed, posterior_predictive, log_likelihood, prior_predictive, prior_draws
):
    """The groups by PyMC itself, for a model that is not the builder's (its own dims)."""
    import pymc as pm

    from diffuse_fit.inference.exact_float import exact_float

    with exact_float(), _object_mode_notice_off():
        if posterior_predictive:
            pm.sample_posterior_predictive(
                tree,
                model=model,
                extend_inferencedata=True,
                random_seed=seed + PREDICTIVE_SEED_OFFSET,
                progressbar=False,
            )
        if log_likelihood:
            pm.compute_log_likelihood(
                tree, model=model, extend_inferencedata=True, progressbar=False
            )
    if prior_predictive:
        prior = _prior_predictive(model, prior_draws, seed)
        for group in ("prior", "prior_predictive"):
            tree[group] = prior[group]
    return tree


# zlib level 1 with the byte shuffle: as small as level 4 for counts, and faster (0.42 s for the
# toy's whole posterior.nc, of which 0.4 s is writing the groups at all)
COMPRESSION = {"zlib": True, "complevel": 1, "shuffle": True}


def posterior_encoding(tree) -> dict:
    """``to_netcdf``'s encoding of ``tree``: the predictive counts compressed (integers: a
    few hundred kB instead of megabytes)."""
    encoding = {}
    if "posterior" in tree.children and "expected" in tree.posterior.data_vars:
        encoding["/posterior"] = {"expected": COMPRESSION}
    for group in ("posterior_predictive", "prior_predictive"):
        if group in tree.children:
            encoding[f"/{group}"] = {name: COMPRESSION for name in tree[group].dataset.data_vars}
    return encoding
