"""NUTS sampling of the model of :mod:`diffuse_fit.inference.pymc_model`, and its diagnostics."""

from __future__ import annotations

import warnings

import pymc as pm
from arviz_stats import summary

from diffuse_fit.inference.exact_float import exact_float
from diffuse_fit.inference.notices import ignore_object_mode_notice
from diffuse_fit.inference.settings import MAX_DIVERGENCES, MAX_RHAT, MIN_ESS_BULK, SamplerSettings

PYMC_SAMPLER_NAMES = {"nutpie-numba": "nutpie"}  # our sampler name -> pm.sample's


def sample(model: pm.Model, settings: SamplerSettings, progressbar: bool = True):
    """NUTS posterior of ``model`` as an ArviZ DataTree (seeded: reruns are identical).

    ``settings.sampler`` "nutpie" (the default when nutpie is installed) compiles with
    cached cfuncs (:class:`diffuse_fit.inference.nuts_fitter.NutsFitter`), "nutpie-numba" is
    ``pm.sample(nuts_sampler="nutpie")`` (nutpie's own numba compilation): same draws;
    "pymc" is PyMC's NUTS."""
    sampler = settings.resolved_sampler()
    if sampler == "nutpie":
        from diffuse_fit.inference.nuts_fitter import NutsFitter

        return NutsFitter(model, sampler="nutpie").sample(settings, progressbar=progressbar)
    with warnings.catch_warnings(), exact_float():
        ignore_object_mode_notice()
        return pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            random_seed=settings.seed,
            nuts_sampler=PYMC_SAMPLER_NAMES.get(sampler, sampler),
            progressbar=progressbar,
            nuts={"target_accept": settings.target_accept},
            model=model,
            compute_convergence_checks=False,
        )


def summary_table(idata, var_names):
    """ArviZ summary (mean, sd, 94% HDI, MCSE, ESS, R-hat) as a pandas DataFrame."""
    return summary(idata, var_names=var_names, ci_kind="hdi", ci_prob=0.94, round_to="none")


def diagnostics(idata, var_names, table=None) -> dict:
    """Divergences, worst R-hat and bulk ESS, and whether the run meets the requirements
    (``table``: the :func:`summary_table` of ``idata`` if already computed)."""
    if table is None:
        table = summary_table(idata, var_names)
    divergences = int(idata.sample_stats["diverging"].sum())
    worst_rhat = float(table["r_hat"].max())
    min_ess = float(table["ess_bulk"].min())
    problems = []
    if divergences > MAX_DIVERGENCES:
        problems.append(f"{divergences} divergent transitions (required: 0)")
    if not worst_rhat <= MAX_RHAT:
        problems.append(f"max R-hat {worst_rhat:.4f} > {MAX_RHAT}")
    if not min_ess >= MIN_ESS_BULK:
        problems.append(f"min bulk ESS {min_ess:.0f} < {MIN_ESS_BULK}")
    return {
        "divergences": divergences,
        "max_r_hat": worst_rhat,
        "min_ess_bulk": min_ess,
        "passed": not problems,
        "problems": problems,
    }
