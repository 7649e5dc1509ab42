"""Notices of other libraries that are not about the results, filtered by message and module
(never a whole warning category): call inside a ``warnings.catch_warnings()`` block."""

from __future__ import annotations

import warnings


def ignore_object_mode_notice() -> None:
    """pytensor's "Numba will use object mode to run ...'s perform method" (a ``UserWarning``
    from ``pytensor.link.numba``): a model with a truncated-normal prior compiles its
    initial-point draw through the Op's Python code; the values are the same, the draw is
    made once per chain.  Measured: the only warning NUTS (nutpie, PyMC) and SMC raise on the
    embedded toy with the default and flat priors; numerical warnings are left visible."""
    warnings.filterwarnings(
        "ignore",
        message="Numba will use object mode",
        category=UserWarning,
        module=r"pytensor\.",
    )
