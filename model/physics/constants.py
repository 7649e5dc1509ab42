"""Physical constants shared by the physics modules."""

HESE_LIVETIME_S = 227708167.68
"""Livetime of IceCube's HESE 7.5-year sample, s (the release's ``HESE_fit.py``)."""

ASTRO_PIVOT_GEV = 1.0e5
"""Pivot energy of the astrophysical power law, GeV (100 TeV)."""

REFERENCE_GAMMA = 2.5
"""Spectral index at which ``astroWeight`` is given (the workshop's convention)."""

TOY_SEED = 20190614
"""Seed of the embedded toy dataset (the workshop's date)."""
