"""``diffuse-fit sbc``: simulation-based calibration of the posterior (Talts et al. 2018).

Fit ``i`` draws the parameters from the priors and the counts per bin from the model at
them (Poisson), samples the posterior with NUTS (nutpie, compiled once per worker), and
ranks each true value among ``draws_per_fit`` posterior draws thinned from all chains
(pooled; every ``total // draws_per_fit``-th).  If the posterior is calibrated, the ranks
are uniform on ``0..draws_per_fit``.  Fits are tasks on Dask, stored as they complete.

Run folder: ``sbc.json`` (``n``, ``draws_per_fit``, ``ranks``, ``uniformity_p`` -- the
chi-square p-value of uniform ranks -- and per fit the seed, truth, divergences, R-hat,
ESS), and the rank ECDF figure ``sbc.png``/``.pdf`` with simultaneous 95% bands.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from diffuse_fit.errors import UsageError
from diffuse_fit.inference.priors import draw_priors
from diffuse_fit.inference.settings import SamplerSettings
from diffuse_fit.io.journal import Journal, journal_folder
from diffuse_fit.io.run_folder import check_output_folder, write_run
from diffuse_fit.jobs.distributed import ClusterOptions, run_tasks
from diffuse_fit.jobs.entries import check_sbc
from diffuse_fit.jobs.inputs import Inputs
from diffuse_fit.jobs.interrupt import interruptible
from diffuse_fit.jobs.many import FitContext, poisson_counts, posterior_summary, task_seed
from diffuse_fit.jobs.prepared import PreparedFit
from diffuse_fit.messages import speaker

SBC_SETTINGS = SamplerSettings(draws=500, tune=500, chains=4)  # 2000 draws, thinned to 100
DRAWS_PER_FIT = 99  # ranks 0..99: 100 values


def run_sbc(
    inputs: Inputs,
    prior_spec,
    out: Path,
    n: int,
    seed: int,
    settings: SamplerSettings = SBC_SETTINGS,
    draws_per_fit: int = DRAWS_PER_FIT,
    components="workshop",
    cluster: ClusterOptions | None = None,
    say=None,
    progressbar=True,
    likelihood="poisson",
    astro_model="spl",
    analysis=None,
) -> dict:
    """``n`` calibration fits; writes the run folder ``out``; returns ``sbc.json``."""
    say = speaker(say)
    from diffuse_fit.report.many_plots import uniformity_p

    out = check_output_folder(out)
    cluster = cluster or ClusterOptions()
    total = settings.draws * settings.chains
    if not 1 <= draws_per_fit <= total:
        raise UsageError(f"--draws-per-fit {draws_per_fit} must be in 1..{total} (draws x chains)")
    with interruptible(out):
        prepared = PreparedFit.load(
            inputs, prior_spec, components, say, likelihood, astro_model, analysis=analysis
        )
        improper = [f"{k} ({p})" for k, p in prepared.priors.items() if not p.proper]
        if improper:
            raise UsageError(
                f"sbc draws the parameters from the priors, which must be proper; "
                f"improper: {', '.join(improper)} (use --prior default or a file)"
            )
        sampler = {
            k: v
            for k, v in settings.to_dict().items()
            if k in ("draws", "tune", "chains", "target_accept")
        }
        config = prepared.config(
            kind="sbc", seed=seed, sampler=sampler, draws_per_fit=draws_per_fit
        )
        journal = Journal(journal_folder(out), config)
        tasks = {f"fit-{i:06d}": {"index": i, "seed": seed} for i in range(n)}
        t0 = time.perf_counter()
        context = prepared.context(config, sampler=sampler, draws_per_fit=draws_per_fit)
        results = run_tasks(
            sbc_fit, context, tasks, journal, cluster, "sbc", say, progressbar, check=check_sbc
        )
        rows = [results[k] for k in tasks]
        ranks = {name: [r["ranks"][name] for r in rows] for name in prepared.names}
        sbc = {
            "n": n,
            "draws_per_fit": draws_per_fit,
            "ranks": ranks,
            "uniformity_p": {k: uniformity_p(np.array(v), draws_per_fit) for k, v in ranks.items()},
            "fits": [
                {
                    k: r[k]
                    for k in (
                        "index",
                        "seed",
                        "truth",
                        "divergences",
                        "max_r_hat",
                        "min_ess_bulk",
                        "n_observed",
                    )
                }
                for r in rows
            ],
            "total_divergences": int(sum(r["divergences"] for r in rows)),
            "fits_with_divergences": int(sum(r["divergences"] > 0 for r in rows)),
            "sampler": sampler,
            "seed": seed,
            "prior_set": prepared.prior_spec,
            "wall_time_s": time.perf_counter() - t0,
            "provenance": prepared.provenance(journal=journal.name),
        }
        with write_run(out, "sbc") as stage:
            stage.write_json("sbc.json", sbc)
            _figure(stage, sbc)
    say(format_sbc(sbc))
    say(f"wrote the run folder {out} (sbc.json, sbc.png, sbc.pdf)")
    return sbc


def format_sbc(sbc: dict) -> str:
    lines = [
        f"simulation-based calibration: {sbc['n']} fits, ranks among "
        f"{sbc['draws_per_fit']} posterior draws; uniformity p-values (chi-square):"
    ]
    lines += [f"  {k:12s} p = {p:.3f}" for k, p in sbc["uniformity_p"].items()]
    lines.append(
        f"  divergences: {sbc['total_divergences']} in {sbc['fits_with_divergences']} "
        f"of {sbc['n']} fits"
    )
    return "\n".join(lines)


def _figure(stage, sbc: dict) -> None:
    from diffuse_fit.report.figures import save_figure
    from diffuse_fit.report.many_plots import sbc_figure

    ranks = {k: np.array(v) for k, v in sbc["ranks"].items()}
    save_figure(stage, sbc_figure(ranks, sbc["draws_per_fit"]), "sbc", dpi=150)


def sbc_fit(context: FitContext, key: str, args: dict) -> dict:
    """One simulation-based calibration fit: parameters drawn from the priors, counts from
    the model at them, NUTS, and the rank of each true value among ``draws_per_fit``
    thinned posterior draws (all chains pooled, every ``total // draws_per_fit``-th draw)."""
    seed = task_seed(args["seed"], args["index"])
    rng = np.random.default_rng(seed)
    truth = draw_priors(context.priors, rng)
    counts = poisson_counts(context, truth, rng)
    summary, idata = posterior_summary(context, counts, seed)
    ranks = {}
    for name in context.priors:
        draws = idata.posterior[name].values.reshape(-1)  # chain-major
        step = draws.size // context.draws_per_fit
        thinned = draws[::step][: context.draws_per_fit]
        ranks[name] = int(np.sum(thinned < truth[name]))
    return {
        "index": args["index"],
        "seed": seed,
        "truth": truth,
        "ranks": ranks,
        "n_observed": float(counts.sum()),
        **summary,
    }
