"""Posterior-predictive quantities from posterior draws, NumPy only.

For each posterior draw s the per-bin expectation of each component is
``lam_{c,b}^s = norm_c^s * T_{c,b}(shape^s)`` (the tables of :mod:`diffuse_fit.binned.templates`);
replicated counts are ``k_b^rep,s ~ Poisson(sum_c lam_{c,b}^s)``.  Projections sum bins
over the other observables.  The discrepancy statistic is the Poisson deviance
``D(k, lam) = 2 sum_b [lam_b - k_b + k_b log(k_b / lam_b)]``; its posterior-predictive
p-value is ``P(D(k^rep, lam) >= D(k^obs, lam))``.  For a fit with the SAY likelihood
(arXiv:1901.04645) the discrepancy is its twin
``D_SAY(k, mu, s2) = 2 sum_b [ln Pois(k_b | k_b) - ln L_SAY(k_b | mu_b, s2_b)]``
(equal to the Poisson deviance where ``s2_b = 0``), with ``s2_b`` the per-bin sum of
squared weights at the draw; replicated counts stay Poisson, as the model's own draws.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.special import gammaln, xlogy

from diffuse_fit.binned import nuisance_tables as nt
from diffuse_fit.binned.binning import Binning
from diffuse_fit.binned.detector_tables import ResponseTable
from diffuse_fit.binned.flavour_tables import FlavourTemplate
from diffuse_fit.binned.joint import JointBinning, sample_parts
from diffuse_fit.binned.log_tables import LogChebyshevTable
from diffuse_fit.binned.say import say_loglike
from diffuse_fit.binned.spectral_tables import SpectralEventSum, SpectralTable
from diffuse_fit.binned.templates import FlatTemplate, PowerLawTemplate, Templates
from diffuse_fit.binned.variance import FlatPair, SmoothPair, VarianceTables
from diffuse_fit.errors import DataFormatError
from diffuse_fit.physics.components import FlatComponent, PowerLawComponent, SegmentComponent
from diffuse_fit.physics.flavour import FLAVOURS, FlavourPowerLaw
from diffuse_fit.physics.spectra import SpectralComponent

AXES = ("topology", "zenith", "energy")  # the order of Binning.shape


def posterior_draws(posterior, names, n_draws: int, rng: np.random.Generator) -> dict:
    """``n_draws`` draws (without replacement when possible) of each parameter, flattened."""
    flat = {n: np.asarray(posterior[n]).reshape(-1) for n in names}
    total = len(next(iter(flat.values())))
    pick = rng.choice(total, size=min(n_draws, total), replace=False)
    return {n: v[pick] for n, v in flat.items()}


def parameter_draws(posterior, names, fixed: dict) -> dict[str, np.ndarray]:
    """Draws (chain, draw) of each parameter in ``names`` from ``posterior``; a parameter
    held fixed (``fixed``: name -> value, ``--fix``) is its value at every draw."""
    shape = (posterior["chain"].size, posterior["draw"].size)
    return {
        n: np.full(shape, float(fixed[n]))
        if n in fixed
        else np.asarray(posterior[n].values, dtype=np.float64)
        for n in names
    }


def component_expectations(templates: Templates, draws: dict) -> dict[str, np.ndarray]:
    """Expected events per bin of each component for each draw: name -> (n_draws, n_bins)."""
    n = len(next(iter(draws.values())))
    out = {t.component.name: np.empty((n, templates.binning.n_bins)) for t in templates.tables}
    for s in range(n):
        point = {k: float(v[s]) for k, v in draws.items()}
        for name, lam in templates.component_counts(point).items():
            out[name][s] = lam
    return out


def project(per_bin: np.ndarray, binning: Binning, axis: str) -> np.ndarray:
    """Sum a (..., n_bins) array over all observables but ``axis``: (..., n_axis_bins)."""
    shaped = per_bin.reshape(per_bin.shape[:-1] + binning.shape)
    keep = {"topology": 0, "zenith": 1, "length": 1, "energy": 2}[axis]
    others = tuple(per_bin.ndim - 1 + i for i in range(3) if i != keep)
    return shaped.sum(axis=others)


def poisson_interval(k, cl: float = 0.6827) -> tuple[np.ndarray, np.ndarray]:
    """Central (Garwood) confidence interval of a Poisson mean given ``k`` observed events."""
    from scipy.stats import chi2  # here: scipy.stats takes 0.4 s to import (the table cache
    # reads records with this module, in every job)

    k = np.asarray(k, dtype=np.float64)
    alpha = 1.0 - cl
    lower = np.where(k > 0, chi2.ppf(alpha / 2, 2 * k) / 2, 0.0)
    upper = chi2.ppf(1 - alpha / 2, 2 * (k + 1)) / 2
    return lower, upper


@dataclass(frozen=True)
class Bands:
    """Posterior-predictive expectation of one projection.

    ``mean``: posterior mean of the expected events per bin (= the mean of replicated
    counts); ``band68`` / ``band95``: (2, n) central credible intervals of the expected
    events; ``components``: name -> posterior mean expectation of each component.
    The data's own Poisson fluctuation is drawn on the data points, not in the bands
    (integer-valued count quantiles collapse to 0 in sparse bins).
    """

    mean: np.ndarray
    band68: np.ndarray
    band95: np.ndarray
    components: dict


def predictive_bands(components: dict, binning: Binning, axis: str) -> Bands:
    """Credible bands of the expected events projected on ``axis``."""
    projected = project(sum(components.values()), binning, axis)
    return Bands(
        mean=projected.mean(axis=0),
        band68=np.quantile(projected, [0.15865, 0.84135], axis=0),
        band95=np.quantile(projected, [0.02275, 0.97725], axis=0),
        components={k: project(v, binning, axis).mean(axis=0) for k, v in components.items()},
    )


def deviance(k, lam) -> np.ndarray:
    """Poisson deviance over the last axis (bins with lam = 0 must have k = 0 and add 0)."""
    k = np.asarray(k, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    safe = np.where(lam > 0, lam, 1.0)
    return 2.0 * np.sum(lam - k + xlogy(k, k) - xlogy(k, safe), axis=-1)


def say_deviance(k, mu, s2) -> np.ndarray:
    """SAY discrepancy ``2 sum_b [ln Pois(k_b | k_b) - ln L_SAY(k_b | mu_b, s2_b)]`` over the
    last axis (the Poisson :func:`deviance` where ``s2 = 0``)."""
    k = np.asarray(k, dtype=np.float64)
    saturated = xlogy(k, k) - k - gammaln(k + 1.0)
    return 2.0 * np.sum(saturated - say_loglike(k, mu, s2), axis=-1)


def sum_of_squares(templates: Templates, draws: dict) -> np.ndarray:
    """Per-bin sum of squared weights ``s2_b`` for each draw: (n_draws, n_bins)."""
    n = len(next(iter(draws.values())))
    return np.stack(
        [templates.sum_of_squares({k: float(v[s]) for k, v in draws.items()}) for s in range(n)]
    )


def deviance_check(counts, components: dict, rng, s2=None) -> dict:
    """Observed and replicated deviances per draw, and the posterior-predictive p-value;
    with ``s2`` (n_draws, n_bins), the SAY discrepancy (:func:`say_deviance`)."""
    lam = sum(components.values())
    replicated = rng.poisson(lam)
    if s2 is None:
        observed = deviance(np.broadcast_to(counts, lam.shape), lam)
        rep = deviance(replicated, lam)
    else:
        observed = say_deviance(np.broadcast_to(counts, lam.shape), lam, s2)
        rep = say_deviance(replicated, lam, s2)
    return {"observed": observed, "replicated": rep, "p_value": float(np.mean(rep >= observed))}


# ----------------------------------------------------------------------------- the fit record
# What the report needs of a fit, stored with its posterior: observed counts, bin edges and the
# per-bin tables of every component (flat sums; Chebyshev coefficients of log S_b and their
# interval), so that posterior-predictive expectations need neither the data nor the simulation.

RECORD_VERSION = 1
_KINDS = {
    "flat": FlatComponent,
    "segment": SegmentComponent,
    "power_law": PowerLawComponent,
    "spectral_table": SpectralComponent,
    "spectral_events": SpectralComponent,
    "flavour": FlavourPowerLaw,
}


@dataclass(frozen=True)
class FitRecord:
    """Observed counts and per-bin tables of a fit (what :func:`build_figures` needs);
    ``likelihood`` "poisson" or "say" (then ``templates.variance`` holds its tables)."""

    counts: np.ndarray
    templates: Templates
    likelihood: str = "poisson"

    @property
    def binning(self) -> Binning:
        return self.templates.binning


_BINNING_ARRAYS = ("energy_edges", "zenith_edges", "topology_codes")
_DEFAULT_RULES = {"second": "zenith", "rule": "histogram", "cuts": []}


def record_variables(counts, templates: Templates, likelihood="poisson") -> tuple[dict, dict]:
    """The record as variables ``name -> (dims, array)`` and attributes (JSON text); with
    ``likelihood="say"`` also the tables of squared weights (``templates.variance``)."""
    variables = {"counts": (("all_bin",), np.asarray(counts, dtype=np.float64))}
    parts = sample_parts(templates.binning)
    rules = []
    for i, (_, part, _) in enumerate(parts):  # edges (and topology codes) of each sample
        prefix = "binning__" if len(parts) == 1 and parts[0][0] is None else f"binning_{i}__"
        for name in _BINNING_ARRAYS:
            variables[f"{prefix}{name}"] = (
                (f"{prefix}{name}__index",),
                np.asarray(getattr(part, name)),
            )
        rules.append(
            {"second": part.second, "rule": part.rule, "cuts": [list(c) for c in part.cuts]}
        )
    described = []
    for t in templates.tables:
        c = t.component
        if isinstance(t, FlatTemplate):
            kind = "segment" if isinstance(c, SegmentComponent) else "flat"
            described.append({"kind": kind, **asdict(c)})
            variables[f"{c.name}__per_bin"] = (("all_bin",), t.per_bin)
        elif isinstance(t, nt.NuisanceTemplate):
            arrays, products = nt.products_to_record(f"{c.name}__", t.products, t.n_bins)
            described.append({"kind": "nuisance", **asdict(c), "products": products})
            variables |= arrays
        elif isinstance(t, SpectralTable):  # tensor table: one node axis per shape parameter
            described.append(
                {"kind": "spectral_table", **asdict(c), "max_relative_error": t.max_relative_error}
            )
            dims = (f"{c.name}__active_bin",) + tuple(f"{c.name}__node_{a}" for a in c.shape)
            variables[f"{c.name}__active"] = (dims[:1], np.asarray(t.active, dtype=np.int64))
            variables[f"{c.name}__log_coeffs"] = (dims, t.log_coeffs)
        elif isinstance(t, FlavourTemplate):  # one power-law table per flavour
            described.append(
                {"kind": "flavour", **asdict(c), "max_relative_error": t.max_relative_error}
            )
            for flavour, table in zip(FLAVOURS, t.tables, strict=True):
                variables |= table.record(f"{c.name}_{flavour}")
        elif isinstance(t, SpectralEventSum):  # the exact sum: the simulated events it needs
            described.append({"kind": "spectral_events", **asdict(c), "reason": t.reason})
            dims = (f"{c.name}__active_bin",)
            variables[f"{c.name}__active"] = (dims, np.asarray(t.active, dtype=np.int64))
            for name in ("event_bin", "weight", "log_energy"):
                variables[f"{c.name}__{name}"] = ((f"{c.name}__event",), getattr(t, name))
        else:
            described.append(
                {"kind": "power_law", **asdict(c), "max_relative_error": t.max_relative_error}
            )
            variables |= t.table.record(c.name)
    attrs = {
        "diffuse_fit_record_version": RECORD_VERSION,
        "components": json.dumps(described),
        "likelihood": likelihood,
    }
    if isinstance(templates.binning, JointBinning):
        attrs["samples"] = json.dumps(list(templates.binning.names))
    if templates.fixed:
        attrs["fixed"] = json.dumps(templates.fixed)
    if templates.responses:  # detector systematics (diffuse_fit.binned.detector_tables)
        attrs["responses"] = json.dumps([r.describe() for r in templates.responses])
        for r in templates.responses:
            variables |= r.record()
    if any(r != _DEFAULT_RULES for r in rules):  # a binning other than by zenith, histogram
        attrs["binning_rules"] = json.dumps(rules)
    if likelihood == "say" and isinstance(templates.variance, nt.NuisanceVariance):
        n_bins = templates.binning.n_bins
        arrays, products = nt.products_to_record("s2_", templates.variance.products, n_bins)
        variables |= arrays
        attrs["variance_products"] = json.dumps(products)
    elif likelihood == "say":
        pairs = []
        for j, p in enumerate(templates.variance.pairs):
            entry = {"norms": list(p.norms), "factor": p.factor}
            if isinstance(p, SmoothPair):
                entry |= {
                    "index": p.index,
                    "index_range": list(p.index_range),
                    "max_relative_error": p.max_relative_error,
                }
                variables |= p.table.record(f"s2_{j}")
            else:
                variables[f"s2_{j}__per_bin"] = (("all_bin",), p.per_bin)
            pairs.append(entry)
        attrs["variance_pairs"] = json.dumps(pairs)
    return variables, attrs


def _variance_from_variables(
    arrays: dict, attrs: dict, n_bins: int, responses: tuple = ()
) -> VarianceTables:
    """The SAY tables of a record (inverse of the ``likelihood="say"`` part of
    :func:`record_variables`); ``KeyError``/``ValueError`` if damaged."""
    if "variance_products" in attrs:
        described = json.loads(attrs["variance_products"])
        return nt.NuisanceVariance(
            nt.products_from_record("s2_", described, arrays, n_bins, responses)
        )
    pairs = []
    for j, d in enumerate(json.loads(attrs["variance_pairs"])):
        norms, factor = tuple(d["norms"]), float(d["factor"])
        if "index" in d:
            table = LogChebyshevTable.read(
                arrays,
                f"s2_{j}",
                n_bins,
                d["index_range"],
                d["max_relative_error"],
                f"table of squared weights {j}",
            )
            pairs.append(SmoothPair(norms, factor, d["index"], table))
        else:
            per_bin = np.asarray(arrays[f"s2_{j}__per_bin"], dtype=np.float64)
            if per_bin.shape != (n_bins,):
                raise ValueError(f"inconsistent table of squared weights {j}")
            pairs.append(FlatPair(norms, factor, per_bin))
    return VarianceTables(tuple(pairs))


def _spectral_from_variables(arrays, kind, c, n_bins, error, reason):
    """A spectral component's table or exact sum from a record; ``ValueError`` if damaged."""
    active = np.asarray(arrays[f"{c.name}__active"], dtype=np.int64)
    if np.any(active < 0) or np.any(active >= n_bins):
        raise ValueError(f"inconsistent table of {c.name}")
    if kind == "spectral_table":
        coeffs = np.asarray(arrays[f"{c.name}__log_coeffs"], dtype=np.float64)
        if coeffs.ndim != 1 + len(c.shape) or len(coeffs) != len(active):
            raise ValueError(f"inconsistent table of {c.name}")
        return SpectralTable(c, n_bins, active, coeffs, float(error))
    event_bin = np.asarray(arrays[f"{c.name}__event_bin"], dtype=np.int64)
    weight = np.asarray(arrays[f"{c.name}__weight"], dtype=np.float64)
    log_energy = np.asarray(arrays[f"{c.name}__log_energy"], dtype=np.float64)
    if not (event_bin.shape == weight.shape == log_energy.shape) or not np.all(
        np.isin(event_bin, active)
    ):
        raise ValueError(f"inconsistent events of {c.name}")
    return SpectralEventSum(c, n_bins, active, event_bin, weight, log_energy, str(reason))


def _binning_from_variables(arrays: dict, attrs: dict):
    """The :class:`Binning` of a record, or the :class:`JointBinning` of its samples."""
    names = json.loads(attrs["samples"]) if "samples" in attrs else [None]
    rules = (
        json.loads(attrs["binning_rules"])
        if "binning_rules" in attrs
        else [_DEFAULT_RULES] * len(names)
    )
    parts = []
    for i, rule in enumerate(rules):
        prefix = "binning__" if names == [None] else f"binning_{i}__"
        arrays_of = {name: np.asarray(arrays[f"{prefix}{name}"]) for name in _BINNING_ARRAYS}
        parts.append(
            Binning(
                **arrays_of,
                second=rule["second"],
                rule=rule["rule"],
                cuts=tuple(tuple(c) for c in rule["cuts"]),
            )
        )
    return parts[0] if names == [None] else JointBinning(tuple(names), tuple(parts))


def record_from_variables(arrays: dict, attrs: dict, source: str) -> FitRecord:
    """Inverse of :func:`record_variables` (``arrays``: name -> ndarray), checked: a
    :class:`DataFormatError` naming ``source`` if anything is missing or inconsistent."""
    if attrs.get("diffuse_fit_record_version") != RECORD_VERSION:
        raise DataFormatError(
            source,
            "holds no fit record this version can read (made by an "
            "older diffuse-fit? run 'diffuse-fit sample' again)",
        )
    try:
        binning = _binning_from_variables(arrays, attrs)
        responses = tuple(
            ResponseTable.read(d, arrays, binning.n_bins)
            for d in json.loads(attrs.get("responses", "[]"))
        )
        counts = np.asarray(arrays["counts"], dtype=np.float64)
        components, tables = [], []
        for d in json.loads(attrs["components"]):
            if d["kind"] == "nuisance":
                c = nt.component_from_dict(d)
                products = nt.products_from_record(
                    f"{c.name}__", d["products"], arrays, binning.n_bins
                )
                components.append(c)
                tables.append(nt.NuisanceTemplate(c, binning.n_bins, products))
                continue
            kind = d.pop("kind")
            cls = _KINDS[kind]
            error = d.pop("max_relative_error", 0.0)
            reason = d.pop("reason", "")
            if "index_range" in d:
                d["index_range"] = tuple(d["index_range"])
            if cls is SpectralComponent:
                d["shape"] = tuple(d["shape"])
                d["shape_ranges"] = tuple(tuple(r) for r in d["shape_ranges"])
            c = cls(**d)
            if cls is FlavourPowerLaw:
                c = replace(c, fractions=tuple(c.fractions))
                flavour_tables = tuple(
                    LogChebyshevTable.read(
                        arrays,
                        f"{c.name}_{flavour}",
                        binning.n_bins,
                        c.index_range,
                        error,
                        f"table of {c.name} ({flavour})",
                    )
                    for flavour in FLAVOURS
                )
                table = FlavourTemplate(c, flavour_tables)
            elif cls is SpectralComponent:
                table = _spectral_from_variables(arrays, kind, c, binning.n_bins, error, reason)
            elif cls in (FlatComponent, SegmentComponent):
                table = FlatTemplate(c, np.asarray(arrays[f"{c.name}__per_bin"], dtype=np.float64))
            else:
                table = PowerLawTemplate(
                    c,
                    LogChebyshevTable.read(
                        arrays, c.name, binning.n_bins, c.index_range, error, f"table of {c.name}"
                    ),
                )
            components.append(c)
            tables.append(table)
        if counts.shape != (binning.n_bins,) or any(
            isinstance(t, FlatTemplate) and t.per_bin.shape != counts.shape for t in tables
        ):
            raise ValueError("per-bin arrays do not match the binning")
        likelihood = str(attrs.get("likelihood", "poisson"))  # absent: recorded before SAY
        if likelihood not in ("poisson", "say"):
            raise ValueError(f"unknown likelihood {likelihood!r}")
        variance = (
            _variance_from_variables(arrays, attrs, binning.n_bins, responses)
            if likelihood == "say"
            else None
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(source, f"has a damaged fit record ({exc})") from None
    try:
        fixed = {str(k): float(v) for k, v in json.loads(attrs.get("fixed", "{}")).items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise DataFormatError(source, f"has a damaged fit record (fixed: {exc})") from None
    templates = Templates(binning, tuple(components), tuple(tables), variance, fixed, responses)
    return FitRecord(counts, templates, likelihood)
