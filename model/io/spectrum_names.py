"""The names of spectral models as jobs, records and specifications carry them, and the
segmented spectrum's edges inside them (NumPy-free: the specification reads them).

``segmented`` is the segmented spectrum between :data:`SEGMENT_EDGES_GEV`;
``segmented:6e4,2e5,1e7`` the same between edges of the user's (true neutrino energy, GeV).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

FLAVOUR = "flavour"  # the single power law with free flavour fractions (physics.flavour)
FRACTIONS = ("f_e", "f_mu")  # its flavour fractions at Earth (f_tau = 1 - f_e - f_mu)
SEGMENTED = "segmented"  # several components (segment_components), not a parametric spectrum
SEGMENT_EDGES_GEV = (6.0e4, 1.5e5, 4.0e5, 1.0e6, 3.0e6, 1.0e7)
"""Default segments of ``segmented`` (true neutrino energy, GeV): 60 TeV - 10 PeV in 5 about
log-equal steps, the range of the HESE analyses' differential flux."""


def segmented_model(edges: Iterable[float] | None = None) -> str:
    """The name of the segmented spectrum between ``edges`` (GeV, increasing, >= 2 of them):
    ``"segmented"`` for the default :data:`SEGMENT_EDGES_GEV` (or ``None``), else
    ``"segmented:6e4,2e5,1e7"`` -- the form ``astro_model`` takes through every job, record
    and worker (:func:`split_segmented` reads it back).  :class:`ValueError` for bad edges.

    >>> segmented_model([6e4, 2e5, 1e7])
    'segmented:60000.0,200000.0,10000000.0'
    >>> segmented_model(None)
    'segmented'
    """
    if edges is None:
        return SEGMENTED
    values = check_segment_edges(edges)
    if values == tuple(SEGMENT_EDGES_GEV):
        return SEGMENTED
    return SEGMENTED + ":" + ",".join(repr(e) for e in values)


def check_segment_edges(edges: Iterable[float]) -> tuple[float, ...]:
    """``edges`` as floats (GeV) if they are >= 2 finite, positive, strictly increasing
    energies; :class:`ValueError` naming them otherwise."""
    try:
        values = tuple(float(e) for e in edges)
    except (TypeError, ValueError):
        raise ValueError(f"segment edges must be energies in GeV, not {edges!r}") from None
    if (
        len(values) < 2
        or not all(math.isfinite(e) and e > 0 for e in values)
        or not all(b > a for a, b in zip(values, values[1:], strict=False))
    ):
        raise ValueError(
            f"segment edges must be >= 2 finite, positive, strictly increasing energies (GeV), "
            f"not {list(edges)}"
        )
    return values


def split_segmented(model: str) -> tuple[str, tuple[float, ...] | None]:
    """``(name, edges)`` of a spectral model's name: ``("segmented", edges in GeV)`` for
    ``segmented`` (the default edges) and ``segmented:E1,E2,...``; ``(model, None)`` for
    every other model.  :class:`ValueError` for unreadable edges.

    >>> split_segmented("segmented:6e4,2e5,1e7")
    ('segmented', (60000.0, 200000.0, 10000000.0))
    >>> split_segmented("spl")
    ('spl', None)
    """
    if model == SEGMENTED:
        return SEGMENTED, tuple(SEGMENT_EDGES_GEV)
    if isinstance(model, str) and model.startswith(SEGMENTED + ":"):
        text = model[len(SEGMENTED) + 1 :]
        try:
            edges = [float(e) for e in text.split(",")]
        except ValueError:
            raise ValueError(
                f"segment edges must be comma-separated energies in GeV, not {text!r}"
            ) from None
        return SEGMENTED, check_segment_edges(edges)
    return model, None
