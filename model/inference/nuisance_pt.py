"""Pytensor expressions of the nuisance-parameter tables (:mod:`diffuse_fit.binned.nuisance_tables`).

NumPy twins: :meth:`diffuse_fit.binned.nuisance_tables.NuisanceTemplate.unit_counts` and
:meth:`diffuse_fit.binned.nuisance_tables.NuisanceVariance.sum_of_squares` (``[model_bins]``).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from diffuse_fit.binned.nuisance_tables import LogTable
from diffuse_fit.inference.detector_pt import component_log_response_pt
from diffuse_fit.inference.table_pt import log_table_pt as chebyshev_table_pt
from diffuse_fit.inference.table_pt import table_input


def log_table_pt(table: LogTable, params: dict, model_bins: np.ndarray):
    """``exp(sum_k a_k theta_k) S_b(sum of the variables)`` on the model bins."""
    if table.per_bin is not None:
        values = table_input(table.per_bin[model_bins])
    else:
        s = pt.add(*(params[v] for v in table.variables))
        values = chebyshev_table_pt(table.table, s, model_bins)
    if table.linear:
        values = values * pt.exp(pt.add(*(a * params[name] for name, a in table.linear)))
    return values


def products_pt(products, params: dict, model_bins: np.ndarray):
    """``sum_p multiplier_p prod_k (a_k + b_k theta_k) P_p [prod_r R_r]`` on the model bins:
    the products sharing detector responses summed first, each response table entering the
    graph once (one shared input, however many products use it)."""
    groups: dict = {}
    for p in products:
        coefficient = p.multiplier
        for name, a, b in p.factors:
            coefficient = coefficient * (a + b * params[name])
        groups.setdefault(p.responses, []).append(
            coefficient * log_table_pt(p.table, params, model_bins)
        )
    if not groups:
        return pt.zeros(model_bins.size)
    terms = []
    for responses, members in groups.items():
        total = pt.add(*members)
        if responses:  # R_c R_c': the sum of the components' log responses, each built once
            logs = []
            for component in dict.fromkeys(r.component for r in responses):
                mine = [r for r in responses if r.component == component]
                tables = tuple(dict.fromkeys(mine))  # each of the component's tables once
                log = component_log_response_pt(tables, params, model_bins)
                n = len(mine) // len(tables)  # 2 for a pair of the component's own terms
                logs.append(log if n == 1 else n * log)
            total = total * pt.exp(pt.add(*logs))
        terms.append(total)
    return pt.add(*terms)
