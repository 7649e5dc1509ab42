"""Turn a saved run (map.json, posterior.nc, summary.json) into figures and ``report.md``.

Figures (PNG for the document, PDF for papers) are written beside the run's files:
``corner``, ``spectrum_energy``, ``spectrum_zenith``, ``spectrum_topology``, ``trace_rank``,
``ppc_deviance``.
"""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import matplotlib.pyplot as plt
import numpy as np

from model.binned.dataset import BinnedDataset
from model.errors import DataFormatError
from model.io.atomic import atomic_path, write_json, write_text
from model.report import plots
from model.report import predictive as pp

FIGURES = ("corner", "spectrum_energy", "spectrum_zenith", "spectrum_topology", "trace_rank",
           "ppc_deviance")  # fmt: skip
PPC_DRAWS = 1000


def load_run(run: Path) -> tuple[dict, dict, object]:
    """``map.json``, ``summary.json`` and the posterior of a run folder."""
    run = Path(run)
    files = {name: run / name for name in ("map.json", "summary.json", "posterior.nc")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise DataFormatError(str(run), f"is not a complete run folder: missing {missing} "
                              "(make one with 'diffuse-fit sample --out DIR')")  # fmt: skip
    return (json.loads(files["map.json"].read_text()),
            json.loads(files["summary.json"].read_text()),
            az.from_netcdf(files["posterior.nc"]))  # fmt: skip


def check_inputs_match(summary: dict, binned: BinnedDataset, run: Path) -> None:
    """Refuse to report a run against other data or simulation than it was fitted to."""
    prov = summary["provenance"]
    for key, table in (("data", binned.data), ("simulation", binned.simulation)):
        if prov[key]["sha256"] != table.sha256:
            raise DataFormatError(
                table.source, f"differs from the {key} of run '{run}' (sha256 "
                f"{table.sha256[:12]}... vs {prov[key]['sha256'][:12]}...)", field=key,
            )  # fmt: skip


def save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf`` atomically; close it."""
    paths = []
    for fmt in ("png", "pdf"):
        path = stem.with_suffix(f".{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=130)
        paths.append(path)
    plt.close(fig)
    return paths


def build_figures(map_result, summary, idata, binned: BinnedDataset, seed: int = 0) -> dict:
    """All report figures (name -> Figure) and the posterior-predictive numbers."""
    names = list(summary["parameters"])
    rng = np.random.default_rng(seed)
    draws = pp.posterior_draws(idata.posterior, names, PPC_DRAWS, rng)
    components = pp.component_expectations(binned.templates, draws)
    truth = summary["provenance"].get("truth")
    points = {
        "map": {n: map_result[n] for n in names},
        "workshop": map_result.get("reference_fit"),
        "truth": truth if truth and set(names) <= set(truth) else None,
    }
    figures = {"corner": plots.corner_plot(idata.posterior, names, points)}
    bands = {}
    for axis in ("energy", "zenith", "topology"):
        bands[axis] = pp.predictive_bands(components, binned.binning, axis)
        figures[f"spectrum_{axis}"] = plots.projection_plot(
            binned.counts, bands[axis], binned.binning, axis
        )
    figures["trace_rank"] = plots.trace_rank_plot(idata, names)
    check = pp.deviance_check(binned.counts, components, rng)
    figures["ppc_deviance"] = plots.deviance_plot(check)
    return {"figures": figures, "bands": bands, "ppc": check, "points": points}


def _table(rows, header) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(map_result, summary, binned: BinnedDataset, ppc: dict) -> str:
    """The report text (figures linked as PNG, PDFs beside them)."""
    prov = summary["provenance"]
    names = list(summary["parameters"])
    diag = summary["diagnostics"]
    verdict = ("**PASSED**: 0 divergences, R-hat <= 1.01, bulk ESS >= 400 for every parameter"
               if diag["passed"] else "**FAILED**: " + "; ".join(diag["problems"]))  # fmt: skip
    ref = map_result["reference_fit"] or {}
    map_rows = [(n, f"{map_result[n]:.4f}", f"{map_result['errors'][n]:.4f}",
                 f"{ref[n]:.4f}" if n in ref else "-") for n in names]  # fmt: skip
    post_rows = [(n, *(f"{summary['parameters'][n][k]:.4g}" for k in
                  ("mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "r_hat"))) for n in names]  # fmt: skip
    priors = [(n, f"{p['dist']}(" + ", ".join(f"{k}={v:g}" for k, v in p.items() if k != "dist")
               + ")") for n, p in prov["priors"].items()]  # fmt: skip
    sampler = prov["sampler"]
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
        *[f"- {line}." for line in binned.summary_lines()],
        f"- Binning: {binned.binning.shape[2]} energy x {binned.binning.shape[1]} cos(zenith) x "
        f"{binned.binning.shape[0]} topology bins; weight tables accurate to "
        f"{prov['template_max_relative_error']:.1e} (relative).",
        f"- Data sha256 `{prov['data']['sha256'][:16]}...`, simulation sha256 "
        f"`{prov['simulation']['sha256'][:16]}...`.",
        *(
            ["- Simulated truth: " + ", ".join(f"{k} = {v}" for k, v in truth.items()) + "."]
            if truth
            else []
        ),  # fmt: skip
        "",
        f"## Priors (`{prov['prior_set']}`)",
        "",
        _table(priors, ["parameter", "prior"]),
        "",
        "## MAP",
        "",
        "Errors: square roots of the inverse-Hessian diagonal at the MAP.",
        "",
        _table(map_rows, ["parameter", "MAP", "error", "workshop scipy fit"]),
        "",
        f"-LLH at the MAP: {map_result['neg_log_likelihood']:.6f}"
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
        f"Posterior-predictive check: Poisson deviance p-value {ppc['p_value']:.3f} "
        f"({PPC_DRAWS} draws; values near 0 flag a model that does not describe the data).",
        "",
        "## Figures",
        "",
        "Corner plot (68% / 95% credible regions; MAP, workshop fit and truth marked):",
        "",
        "![corner](corner.png)",
        "",
        "Observed events (68% Poisson intervals) against the posterior-predictive expectation "
        "(dashed: posterior mean; bands: its 68% / 95% credible intervals; lines: component "
        "posterior means):",
        "",
        "![energy](spectrum_energy.png)",
        "",
        "![zenith](spectrum_zenith.png)",
        "",
        "![topology](spectrum_topology.png)",
        "",
        "Sampler diagnostics:",
        "",
        "![trace and rank](trace_rank.png)",
        "",
        "![posterior-predictive check](ppc_deviance.png)",
        "",
        "Each figure is also saved as PDF beside its PNG.",
        "",
    ]
    return "\n".join(lines)


def make_report(
    run: Path, binned: BinnedDataset, out: Path | None = None, loaded=None, say=print
) -> Path:
    """Write the figures and ``report.md`` of the run in ``run`` (into ``out``, default ``run``);
    ``loaded``: the run's files as :func:`load_run` returns them, if already read."""
    run = Path(run)
    out = Path(out) if out is not None else run
    map_result, summary, idata = loaded if loaded is not None else load_run(run)
    check_inputs_match(summary, binned, run)
    built = build_figures(map_result, summary, idata, binned)
    for name, fig in built["figures"].items():
        save_figure(fig, out / name)
    write_json(out / "ppc.json", {"deviance_p_value": built["ppc"]["p_value"],
                                  "draws": PPC_DRAWS})  # fmt: skip
    path = out / "report.md"
    write_text(path, render_markdown(map_result, summary, binned, built["ppc"]))
    say(f"wrote {path} and {len(built['figures'])} figures (PNG + PDF) in {out}")
    return path
