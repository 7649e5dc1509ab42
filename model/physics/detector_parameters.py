"""The release's detector systematics: names, nominal values, priors, fitted ranges and
table files (no NumPy: the command line's ``--help`` and the prior sets read them).
The per-event corrections are :mod:`diffuse_fit.physics.detector`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

MORPHOLOGIES = {0: "shower", 1: "track", 2: "doublebang"}
FLAVOURS = {12: "e", 14: "mu", 16: "tau"}  # |PDG code| of the neutrino
FLUX_TABLES = {"conventional": "atmConv", "prompt": "atmPrompt", "astrophysical": "diffuseAstro"}
"""Component name -> the release's flux name in its table files (muons: none)."""
DOUBLE_CASCADE_ANISOTROPY_MAX_LOG10_L = 2.3


@dataclass(frozen=True)
class DetectorSystematic:
    """One detector systematic: its parameter, nominal value, the release's prior
    (``prior_mu``, ``prior_sigma``) and the range fitted here (``support``: the release's
    bounds where its tables are defined; see :data:`DETECTOR_SYSTEMATICS`)."""

    parameter: str
    folder: str
    prefix: str
    nominal: float
    prior_mu: float
    prior_sigma: float
    support: tuple[float, float]

    def table_path(self, component: str, morphology: int, flavour: int | None = None) -> str:
        """The table's path under the release's ``resources/splines``."""
        flux = FLUX_TABLES[component]
        if component == "astrophysical":
            # the astrophysical tables are per flavour: the caller gives one
            flux = f"{flux}_{FLAVOURS[abs(int(cast(int, flavour)))]}"
        return f"{self.folder}/{self.prefix}_{flux}_{MORPHOLOGIES[int(morphology)]}.fits"


DETECTOR_SYSTEMATICS = (
    # the release's bounds [0.8, 1.25]; its tables end at 1.204
    DetectorSystematic(
        "epsilon_dom", "DOMEffSplines", "domefficiency", 0.99, 0.99, 0.1, (0.8, 1.2)
    ),
    # the release's bounds [-3.82, 2.18]; its tables end at 1.583
    DetectorSystematic(
        "epsilon_head_on", "HoleIceSplines", "holeice", 0.0, 0.0, 0.5, (-3.82, 1.58)
    ),
    DetectorSystematic(
        "anisotropy_scale", "AnisotropySplines", "tauanisotropy", 1.0, 1.0, 0.2, (0.0, 2.0)
    ),
)
"""The release's three detector systematics (names, nominal values and priors of its
``HESE_fit.py``).  Where the release's bounds reach beyond its own tables (epsilon_dom above
1.204, epsilon_head_on above 1.583) the spline is not defined, so the range fitted here
stops just inside the tables."""
SYSTEMATIC_BY_PARAMETER = {s.parameter: s for s in DETECTOR_SYSTEMATICS}
EPSILON_DOM_SPLIT = 0.99
"""The release's ``HESE_fit.py`` fits twice, with epsilon_dom below and above this value:
its likelihood is bimodal there."""
