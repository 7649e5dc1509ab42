"""The report of a run: figures and ``report.md``, written into the run's folder.

Figures (PNG for the document, PDF for papers): ``corner``, ``flux``, ``events_energy``,
``events_zenith``, ``events_topology``, ``trace``, ``rank``, ``ppc_deviance``; with
``ppc.json`` and ``report.md``.  Everything comes from the run itself (its JSON files and the
posterior with its fit record, :class:`diffuse_fit.report.predictive.FitRecord`).
"""

from __future__ import annotations

import numpy as np

from diffuse_fit.binned.dataset import describe
from diffuse_fit.binned.joint import sample_parts
from diffuse_fit.io.run_folder import Stage
from diffuse_fit.report import plots
from diffuse_fit.report import predictive as pp
from diffuse_fit.report.figures import save_figure

PPC_DRAWS = 1000


def build_figures(map_result, summary, idata, record: pp.FitRecord, seed: int = 0) -> dict:
    """All report figures (name -> Figure) and the posterior-predictive numbers.

    ``record``: observed counts and per-bin tables (a :class:`FitRecord` or a
    :class:`~diffuse_fit.binned.dataset.BinnedDataset`)."""
    names = list(summary["parameters"])
    rng = np.random.default_rng(seed)
    draws = pp.posterior_draws(idata.posterior, names, PPC_DRAWS, rng)
    components = pp.component_expectations(record.templates, draws)
    truth = summary["provenance"].get("truth")
    points = {
        "map": {n: map_result[n] for n in names},
        "workshop": map_result.get("reference_fit"),
        "truth": truth if truth and set(names) <= set(truth) else None,
    }
    figures = {"corner": plots.corner_plot(idata.posterior, names, points)}
    bands = {}
    for name, part, where in sample_parts(record.binning):  # each sample on its own axes
        mine = {k: v[:, where] for k, v in components.items()}
        for axis in ("energy", part.second, "topology"):
            key = axis if name is None else f"{axis}_{name}"
            bands[key] = pp.predictive_bands(mine, part, axis)
            figure = plots.projection_plot(record.counts[where], bands[key], part, axis)
            if name is not None:
                figure.suptitle(f"sample {name}")
            figures[events_figure(axis, name)] = figure
    figures["flux"] = _flux_figure(summary, idata, record)
    if {"f_e", "f_mu"} <= set(names):  # the flavour composition (--astro-model flavour)
        from diffuse_fit.report.flavour import ternary_figure

        fractions = pp.parameter_draws(idata.posterior, ["f_e", "f_mu"], record.templates.fixed)
        figures["flavour"] = ternary_figure(fractions, best=points["map"], truth=truth)
    figures["trace"] = plots.trace_plot(idata, names)
    figures["rank"] = plots.rank_plot(idata, names)
    # the likelihood of the fit (recorded in its provenance): SAY needs its own discrepancy
    say = summary["provenance"].get("likelihood", "poisson") == "say"
    s2 = pp.sum_of_squares(record.templates, draws) if say else None
    check = pp.deviance_check(record.counts, components, rng, s2=s2)
    figures["ppc_deviance"] = plots.deviance_plot(check)
    return {"figures": figures, "bands": bands, "ppc": check, "points": points}


def _flavour_lines(idata, names) -> list[str]:
    """The report's paragraph on the flavour composition (``--astro-model flavour``)."""
    if not {"f_e", "f_mu"} <= set(names):
        return []
    from diffuse_fit.physics.flavour import SOURCES, at_earth
    from diffuse_fit.report.flavour import source_levels

    f_e, f_mu = (np.asarray(idata.posterior[n].values).reshape(-1) for n in ("f_e", "f_mu"))
    f_tau = 1.0 - f_e - f_mu
    levels = source_levels(f_e, f_mu)
    return [
        "The flavour composition at Earth (f_e : f_mu : f_tau of the astrophysical flux; flat "
        "Dirichlet prior): 68% / 95% highest-density credible regions of the posterior, with "
        "the source expectations after oscillation. Posterior mean f_tau = "
        f"{f_tau.mean():.3f} (sd {f_tau.std():.3f}).",
        "",
        "![flavour](flavour.png)",
        "",
        *[
            f"- {name}, at Earth {' : '.join(f'{x:.2f}' for x in at_earth(SOURCES[name]))}: "
            f"{'outside' if level > 0.95 else 'inside'} the 95% credible region (the smallest "
            f"highest-density region containing it holds {min(level, 0.999):.1%} of the draws)"
            for name, level in levels.items()
        ],
        "",
    ]


def events_figure(axis: str, sample: str | None = None) -> str:
    """The name of the projection on ``axis`` (of ``sample``'s bins in a joint fit)."""
    return f"events_{axis}" if sample is None else f"events_{axis}_{sample}"


def _binning_line(binning, prov) -> str:
    """The report's line on the binning (each sample's in a joint fit)."""
    second = {"zenith": "cos(zenith)", "length": "length"}
    text = "; ".join(
        f"{'' if n is None else f'sample {n}: '}{p.shape[2]} energy x "
        f"{p.shape[1]} {second[p.second]} x {p.shape[0]} topology bins"
        for n, p, _ in sample_parts(binning)
    )
    return (
        f"- Binning: {text}; weight tables accurate to "
        f"{prov['template_max_relative_error']:.1e} (relative)."
    )


def _flux_figure(summary, idata, record: pp.FitRecord):
    """The unfolded astrophysical flux ``E^2 dPhi/dE`` of the run's own spectral model: its
    posterior band, drawn solid in the sensitive energy range recorded in ``summary.json``."""
    from diffuse_fit.physics.flux import (
        astrophysical_component,
        astrophysical_components,
        is_segmented,
    )
    from diffuse_fit.report.spectrum import ENERGIES_GEV, flux_band, spectrum_figure

    model = summary["provenance"].get("astro_model", "spl")
    if is_segmented(record.templates.components):
        from diffuse_fit.report.spectrum import segment_summary, segmented_figure

        segments = astrophysical_components(record.templates.components)
        norms = [c.norm for c in segments]
        draws = pp.parameter_draws(idata.posterior, norms, record.templates.fixed)
        injected = _injected_flux(summary["provenance"].get("truth") or {}, segments)
        rows = segment_summary(segments, draws)
        for row, recorded in zip(rows, summary.get("segments", []), strict=False):
            row.update({k: v for k, v in recorded.items() if k.startswith("profile_")})
        return segmented_figure(rows, band=summary.get("power_law_band"), truth=injected)
    component = astrophysical_component(record.templates.components)
    draws = pp.parameter_draws(idata.posterior, component.parameters, record.templates.fixed)
    band = flux_band(component, draws, ENERGIES_GEV)
    limits = summary.get("sensitive_energy_range_GeV")
    return spectrum_figure({model: band}, {model: tuple(limits)} if limits else {})


def _injected_flux(truth: dict, segments) -> dict | None:
    """The injected spectrum of simulated data for the segmented figure: ``{"label",
    "energies" (GeV), "e2_flux"}`` of the built-in spectral model with the most parameters
    that ``truth`` holds (spl, logparabola, broken, cutoff); None for real data."""
    from diffuse_fit.physics.components import PowerLawComponent
    from diffuse_fit.physics.flux import e2_flux
    from diffuse_fit.physics.spectra import ASTRO_MODELS, spectral_component

    s = segments[0]
    base = PowerLawComponent(
        "astrophysical",
        s.weight_field,
        s.energy_field,
        "astro_norm",
        "astro_gamma",
        s.pivot,
        s.reference_index,
    )
    # the model of the most parameters the truth holds: a cutoff's truth holds spl's too
    held = [(model, spectral_component(base, model)) for model in ASTRO_MODELS]
    held = [(m, c) for m, c in held if set(c.parameters) <= set(truth)]
    if not held:
        return None
    model, component = max(held, key=lambda mc: len(mc[1].parameters))
    energies = np.geomspace(segments[0].low, segments[-1].high, 80)
    values = {n: truth[n] for n in component.parameters}
    shape = ", ".join(f"{n.removeprefix('astro_')} {v:g}" for n, v in values.items())
    return {
        "label": f"injected ({model}: {shape})",
        "energies": energies,
        "e2_flux": e2_flux(component, values, energies)[0],
    }


def _table(rows, header) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def _prior_text(recorded: dict) -> str:
    """A recorded prior (``{"dist": ..., <params>}``) as the report writes it."""
    if recorded["dist"] == "Dirichlet":  # the pair's: its concentrations, 1 where not given
        alpha = [recorded.get(k, 1.0) for k in ("alpha_e", "alpha_mu", "alpha_tau")]
        return "Dirichlet({:g}, {:g}, {:g}) on (f_e, f_mu, f_tau)".format(*alpha)
    return (
        f"{recorded['dist']}("
        + ", ".join(f"{k}={v:g}" for k, v in recorded.items() if k != "dist")
        + ")"
    )


def render_markdown(
    map_result, summary, record: pp.FitRecord, ppc: dict, flavour: list[str] | None = None
) -> str:
    """The report text (figures linked as PNG, PDFs beside them)."""
    prov = summary["provenance"]
    names = list(summary["parameters"])
    diag = summary["diagnostics"]
    verdict = (
        "**PASSED**: 0 divergences, R-hat <= 1.01, bulk ESS >= 400 for every parameter"
        if diag["passed"]
        else "**FAILED**: " + "; ".join(diag["problems"])
    )
    ref = map_result["reference_fit"] or {}

    def error(n):  # None: unconstrained or on a bound (named under the table)
        e = map_result["errors"].get(n)
        return "-" if e is None else f"{e:.4f}"

    map_rows = [
        (n, f"{map_result[n]:.4f}", error(n), f"{ref[n]:.4f}" if n in ref else "-") for n in names
    ]
    post_rows = [
        (
            n,
            *(
                f"{summary['parameters'][n][k]:.4g}"
                for k in ("mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "r_hat")
            ),
        )
        for n in names
    ]
    priors = [(n, _prior_text(p)) for n, p in prov["priors"].items()]
    priors += [(n, f"fixed at {v:g} (--fix)") for n, v in (prov.get("fixed") or {}).items()]
    sampler = prov["sampler"]
    statistic = {"say": "SAY discrepancy"}.get(prov.get("likelihood"), "Poisson deviance")
    truth = prov.get("truth")
    lines = [
        "# Diffuse-fit report",
        "",
        f"Made {prov['created_utc']} with diffuse-fit {prov['versions']['diffuse-fit']}, "
        f"PyMC {prov['versions']['pymc']}, ArviZ {prov['versions']['arviz']}.",
        "",
        "## Data set",
        "",
        f"- Inputs: {prov['inputs']}.",
        *[f"- {line}." for line in describe(prov, record.counts)],
        _binning_line(record.binning, prov),
        f"- Data sha256 `{prov['data']['sha256'][:16]}...`, simulation sha256 "
        f"`{prov['simulation']['sha256'][:16]}...`.",
        *(
            ["- Simulated truth: " + ", ".join(f"{k} = {v}" for k, v in truth.items()) + "."]
            if truth
            else []
        ),
        "",
        f"## Priors (`{prov['prior_set']}`)",
        "",
        _table(priors, ["parameter", "prior"]),
        "",
        *(
            [
                "## The model was extended",
                "",
                f"The fitted model is not the one `build_model` made from these priors: "
                f"{prov['model_extension']}. Its MAP is PyMC's optimum of that model's "
                "log-density; the workshop's scipy fit (of the unextended model) is not shown.",
                "",
            ]
            if prov.get("model_extension")
            else []
        ),
        "## MAP",
        "",
        "Errors: square roots of the inverse-Hessian diagonal at the MAP.",
        "",
        _table(map_rows, ["parameter", "MAP", "error", "workshop scipy fit"]),
        "",
        *[f"- MAP problem: {p}" for p in map_result.get("problems", [])],
        *([""] if map_result.get("problems") else []),
        f"-LLH ({prov.get('likelihood', 'poisson')} likelihood) at the MAP: "
        f"{map_result['neg_log_likelihood']:.6f}"
        + (f" (workshop scipy fit: {ref['neg_log_likelihood']:.6f})." if ref else "."),
        "",
        "## Posterior",
        "",
        f"{sampler['chains']} chains x {sampler['draws']} draws ({sampler['tune']} tuning), "
        f"NUTS by {sampler['sampler']}, target_accept {sampler['target_accept']}, "
        f"seed {sampler['seed']}; 94% highest-density intervals.",
        "",
        _table(post_rows, ["parameter", "mean", "sd", "HDI 3%", "HDI 97%", "ESS bulk", "R-hat"]),
        "",
        f"Diagnostics: {verdict} (divergences {diag['divergences']}, max R-hat "
        f"{diag['max_r_hat']:.4f}, min bulk ESS {diag['min_ess_bulk']:.0f}).",
        "",
        f"Posterior-predictive check: {statistic} p-value {ppc['p_value']:.3f} "
        f"({PPC_DRAWS} draws; values near 0 flag a model that does not describe the data).",
        "",
        "## Figures",
        "",
        "Corner plot (68% / 95% credible regions; MAP, workshop fit and truth marked):",
        "",
        "![corner](corner.png)",
        "",
        (
            "The segmented astrophysical flux E² dΦ/dE (all flavours, ν + ν̄; E⁻² in each "
            "segment of true energy): per segment the posterior median and 68% credible "
            "interval, or the 95% upper limit where the 68% highest-density interval starts "
            "at zero flux:"
            if "segments" in summary
            else "The unfolded astrophysical flux E² dΦ/dE (all flavours, ν + ν̄): posterior "
            "median, 68% and 95% credible bands of the fitted spectrum, solid in the sensitive "
            "energy range (the central 90% of the true energy of the expected astrophysical "
            "events in the bins"
            + (
                ", {:.3g}-{:.3g} GeV".format(*summary["sensitive_energy_range_GeV"])
                if summary.get("sensitive_energy_range_GeV")
                else ""
            )
            + "):"
        ),
        "",
        "![flux](flux.png)",
        "",
        *(flavour or []),
        "Observed events (68% Poisson intervals) against the posterior-predictive expectation "
        "(dashed: posterior mean; bands: its 68% / 95% credible intervals; lines: component "
        "posterior means):",
        "",
        *[
            line
            for n, p, _ in sample_parts(record.binning)
            for axis in ("energy", p.second, "topology")
            for line in (
                f"![{axis}{'' if n is None else ' ' + n}]({events_figure(axis, n)}.png)",
                "",
            )
        ],
        "Sampler diagnostics:",
        "",
        "![traces](trace.png)",
        "",
        "![rank ECDFs](rank.png)",
        "",
        "![posterior-predictive check](ppc_deviance.png)",
        "",
        "Each figure is also saved as PDF beside its PNG.",
        "",
    ]
    return "\n".join(lines)


def write_report(stage: Stage, map_result, summary, idata, record: pp.FitRecord) -> list[str]:
    """Add the figures, ``ppc.json`` and ``report.md`` of the run to ``stage``; their names."""
    first = len(stage.names)
    built = build_figures(map_result, summary, idata, record)
    for name, fig in built["figures"].items():
        save_figure(stage, fig, name)
    stage.write_json("ppc.json", {"deviance_p_value": built["ppc"]["p_value"], "draws": PPC_DRAWS})
    flavour = _flavour_lines(idata, list(summary["parameters"]))
    stage.write_text(
        "report.md", render_markdown(map_result, summary, record, built["ppc"], flavour)
    )
    return stage.names[first:]
