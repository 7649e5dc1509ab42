"""Checks of stored task results before a many-fit job reuses them (schema, index, seed, bounds).

A journal entry that passes :meth:`diffuse_fit.io.journal.Journal.load` (intact, this task's,
written under the user's key) is still checked against what its task must return: every
key with its type, the task's index and seed (:func:`diffuse_fit.jobs.many.task_seed`), fitted
values inside their prior's support, intervals ordered, ranks in range.  Each check is
``check(context, key, args, result)`` and raises :class:`BadEntry` with the reason (one
line); the job then computes the task again.
"""

from __future__ import annotations

import math

from diffuse_fit.jobs.many import QUANTILES, task_seed


class BadEntry(ValueError):
    """A stored result that does not fit its task (the message says what)."""


def _number(value, what: str, low=-math.inf, high=math.inf, none=False) -> None:
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadEntry(f"{what} is {type(value).__name__}, not a number")
    if not (math.isfinite(value) and low <= value <= high):
        raise BadEntry(f"{what} = {value!r} is outside [{low:g}, {high:g}]")


def _integer(value, what: str, low=0, high=math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadEntry(f"{what} is {type(value).__name__}, not an integer")
    _number(value, what, low, high)


def _kind(value, kind: type, what: str):
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BadEntry(f"{what} is {type(value).__name__}, not {kind.__name__}")
    return value


def _has(result: dict, keys) -> None:
    missing = [k for k in keys if k not in result]
    if missing:
        raise BadEntry(f"has no {', '.join(missing)}")


def _per_parameter(value, names, what: str) -> dict:
    value = _kind(value, dict, what)
    if sorted(value) != sorted(names):
        raise BadEntry(f"{what} has parameters {sorted(value)[:6]}, not {sorted(names)}")
    return value


def _inside(values, priors: dict, what: str, none=False) -> None:
    values = _per_parameter(values, priors, what)
    for name, value in values.items():
        _number(value, f"{what}.{name}", *priors[name].support(), none=none)


def _index_and_seed(result: dict, args: dict) -> None:
    _has(result, ("index", "seed"))
    if result["index"] != args["index"] or isinstance(result["index"], bool):
        raise BadEntry(f"index is {result['index']!r}, the task's is {args['index']}")
    seed = task_seed(args["seed"], args["index"])
    if result["seed"] != seed or isinstance(result["seed"], bool):
        raise BadEntry(f"seed is {result['seed']!r}, the task's is {seed}")


def _nuts(result: dict, names) -> None:
    keys = (
        "posterior_quantiles",
        "divergences",
        "max_r_hat",
        "min_ess_bulk",
        "nuts_worker_fitter",
        "nuts_compilations",
    )
    _has(result, keys)
    quantiles = _per_parameter(result["posterior_quantiles"], names, "posterior_quantiles")
    for name, q in quantiles.items():
        if not isinstance(q, list) or len(q) != len(QUANTILES):
            raise BadEntry(f"posterior_quantiles.{name} is not {len(QUANTILES)} numbers")
        for v in q:
            _number(v, f"posterior_quantiles.{name}")
        if q != sorted(q):
            raise BadEntry(f"posterior_quantiles.{name} are not increasing")
    _integer(result["divergences"], "divergences")
    _number(result["max_r_hat"], "max_r_hat", none=True)
    _number(result["min_ess_bulk"], "min_ess_bulk", 0, none=True)
    _kind(result["nuts_worker_fitter"], str, "nuts_worker_fitter")
    _integer(result["nuts_compilations"], "nuts_compilations")


def check_toy(context, key: str, args: dict, result: dict) -> None:
    """A pseudo-experiment (:func:`diffuse_fit.jobs.toys.toy`)."""
    priors = context.priors
    _index_and_seed(result, args)
    _has(
        result,
        (
            "n_observed",
            "map",
            "hessian_error",
            "neg_log_likelihood",
            "log_posterior",
            "converged",
            "problems",
            "profile_68",
            "worker_fitter",
        ),
    )
    _number(result["n_observed"], "n_observed", 0)
    converged = _kind(result["converged"], bool, "converged")
    _inside(result["map"], priors, "map", none=not converged)
    for name, error in _per_parameter(result["hessian_error"], priors, "hessian_error").items():
        _number(error, f"hessian_error.{name}", 0, none=True)
    _number(result["neg_log_likelihood"], "neg_log_likelihood", none=not converged)
    _number(result["log_posterior"], "log_posterior", none=not converged)
    for problem in _kind(result["problems"], list, "problems"):
        _kind(problem, str, "a problem")
    for name, bounds in _per_parameter(result["profile_68"], priors, "profile_68").items():
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise BadEntry(f"profile_68.{name} is not [lower, upper]")
        for v in bounds:
            _number(v, f"profile_68.{name}", *priors[name].support(), none=True)
        if None not in bounds and bounds[0] > bounds[1]:
            raise BadEntry(f"profile_68.{name} = {bounds} is not ordered")
    _kind(result["worker_fitter"], str, "worker_fitter")
    if args.get("nuts"):
        _nuts(result, priors)


def check_sbc(context, key: str, args: dict, result: dict) -> None:
    """A calibration fit (:func:`diffuse_fit.jobs.sbc.sbc_fit`)."""
    _index_and_seed(result, args)
    _has(result, ("truth", "ranks", "n_observed"))
    _inside(result["truth"], context.priors, "truth")
    for name, rank in _per_parameter(result["ranks"], context.priors, "ranks").items():
        _integer(rank, f"ranks.{name}", 0, context.draws_per_fit)
    _number(result["n_observed"], "n_observed", 0)
    _nuts(result, context.priors)


def check_scan(context, key: str, args: dict, result: dict) -> None:
    """Profile fits along a row of a scan (:func:`diffuse_fit.jobs.scan.scan_points`)."""
    points = args["points"]
    _has(result, ("log_posterior", "neg_log_likelihood", "values", "converged", "worker_fitter"))
    for name in ("log_posterior", "neg_log_likelihood", "values", "converged"):
        if not isinstance(result[name], list) or len(result[name]) != len(points):
            raise BadEntry(f"{name} is not a list of {len(points)} (the task's points)")
    for i, point in enumerate(points):
        _kind(result["converged"][i], bool, f"converged[{i}]")
        _number(result["log_posterior"][i], f"log_posterior[{i}]", none=True)
        _number(result["neg_log_likelihood"][i], f"neg_log_likelihood[{i}]", none=True)
        values = result["values"][i]
        _inside(values, context.priors, f"values[{i}]", none=True)
        for name, fixed in point.items():
            if values[name] != fixed:
                raise BadEntry(f"values[{i}].{name} = {values[name]!r}, the task's point {fixed!r}")
    _kind(result["worker_fitter"], str, "worker_fitter")


def check_lrt(context, key: str, args: dict, result: dict) -> None:
    """A likelihood-ratio pseudo-experiment (:func:`diffuse_fit.jobs.compare.lrt_toy`)."""
    _index_and_seed(result, args)
    _has(
        result,
        (
            "n_observed",
            "null_neg_log_likelihood",
            "converged",
            "ts",
            "alternative_neg_log_likelihood",
            "worker_fitter",
        ),
    )
    _number(result["n_observed"], "n_observed", 0)
    _number(result["null_neg_log_likelihood"], "null_neg_log_likelihood", none=True)
    _kind(result["converged"], bool, "converged")
    for name in ("ts", "alternative_neg_log_likelihood"):
        values = _per_parameter(result[name], context.alternatives, name)
        for alt, v in values.items():
            _number(v, f"{name}.{alt}", none=True)
    _kind(result["worker_fitter"], str, "worker_fitter")
