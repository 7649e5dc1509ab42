"""Priors on the fit parameters: named sets, JSON files, validation.

Two named sets:

``flat``
    Improper flat priors ``HalfFlat`` on both normalizations (support [0, inf)) and
    ``Uniform(1, 4)`` on the spectral index: the MAP is then the maximum-likelihood point
    and equals the workshop's scipy fit.
``default``
    Weakly informative, physically motivated:

    * ``atmos_norm ~ LogNormal(0, 0.5)``: median 1 (the nominal H3a + SIBYLL-2.3c flux),
      a factor 1.65 at one sigma, wider than the ~30% spread of atmospheric flux models.
    * ``astro_norm ~ LogNormal(log 5, 1)``: the six-neutrino flux at 100 TeV in units of
      1e-18 GeV^-1 cm^-2 s^-1 sr^-1; median 5, 95% in [0.7, 35], covering the IceCube
      measurements (HESE 7.5 yr: 6.4; through-going muons and cascades: 4-5).  Keeping
      mass away from 0 also avoids the funnel where gamma is unconstrained.
    * ``astro_gamma ~ Uniform(1, 4)``: from hard (Fermi acceleration, ~2) to the softest
      fits (~3), within the range the weight tables cover.
    * with ``--components split`` also ``prompt_norm ~ LogNormal(0, 1)`` (prompt models
      differ by factors of a few) and ``muon_norm ~ LogNormal(0, 0.5)`` (the muon
      background's simulated normalization, uncertain by ~50%).
    * with ``--astro-model`` (:mod:`diffuse_fit.physics.spectra`; ``astro_norm`` keeps its prior):
      ``logparabola``: ``astro_alpha ~ Uniform(1, 4)`` (as gamma), ``astro_beta ~
      TruncatedNormal(0, 0.2, -0.2, 0.5)`` (curvature per unit ln E; 0 is the single
      power law); ``broken``: ``astro_gamma1``, ``astro_gamma2 ~
      TruncatedNormal(2.5, 0.5, 1, 4)`` (the measured indices, 2-3, at one sigma: where
      the break leaves one side with few events, a flat prior let that index wander to
      the range's edge and NUTS diverged once in 1000 draws on the toy; with this prior 0),
      ``astro_log10_ebreak ~ Uniform(4.5, 7)`` (log10 of E_break/GeV, 30 TeV to 10 PeV,
      where the simulated events are); ``cutoff``: ``astro_gamma ~ Uniform(1, 4)``,
      ``astro_log10_ecut ~ Uniform(5, 8)`` (log10 of E_cut/GeV, 100 TeV to 100 PeV).
      ``flat`` gives every shape parameter a flat prior over its tabulated range.
    * with ``--astro-model segmented``: each segment's norm ``astro_norm_k ~ HalfNormal(20)``
      (:data:`SEGMENT_PRIOR`; units of ``astro_norm``, ``E^2 dPhi/dE = 1e-8 astro_norm_k``
      GeV cm^-2 s^-1 sr^-1): mode at 0, so that a segment the data do not see can go to 0,
      the density within 12% of its maximum up to 10 (the measured HESE flux at 100 TeV is
      about 6-9) and proper, so that SBC and the evidence apply; ``flat`` gives them
      ``HalfFlat``.

With ``--astro-model flavour`` (:mod:`diffuse_fit.physics.flavour`) every set gives the flavour
fractions ``f_e``, ``f_mu`` (``f_tau = 1 - f_e - f_mu``) the flat Dirichlet(1, 1, 1) prior on
the simplex (density 2 wherever ``f_e, f_mu >= 0`` and ``f_e + f_mu <= 1``); a prior file may
set other concentrations, ``{"f_e": {"dist": "Dirichlet", "alpha_e": 1, "alpha_mu": 2,
"alpha_tau": 1}}`` (the pair's one prior: given for either fraction, it is both's).  It is
built as ``f_e ~ Beta(alpha_e, alpha_mu + alpha_tau)`` and ``f_mu ~ Uniform(0, 1 - f_e)``
times the Beta(alpha_mu, alpha_tau) density of ``f_mu / (1 - f_e)`` (a potential, where not
flat), which is the Dirichlet's density in ``(f_e, f_mu)``; NUTS samples their logit
transforms: a stick-breaking of the simplex, whose boundary is at infinity in the sampler's
coordinates (no hard corner).  It is the only prior the fractions take.

``hese``
    The priors of the HESE 7.5-year release (``HESE_fit.py``, the list ``priors``, lines
    177-189: Gaussian ``(mean, sigma)`` within hard bounds, or flat):

    * ``atmos_norm`` (the release's ``conv_norm``) ~ N(1, 0.4) on [0, inf);
    * ``prompt_norm`` flat on [0, inf); ``astro_norm`` flat on [0, inf);
    * ``muon_norm`` ~ N(1, 0.5) on [0, inf);
    * ``astro_gamma`` flat (unbounded in the release; here Uniform(1, 4), the tables' range);
    * ``cr_delta_gamma`` ~ N(-0.05, 0.05) (unbounded in the release; here truncated to
      [-0.55, 0.45], +-10 sigma, the tables' range);
    * ``kpi_ratio`` ~ N(1, 0.1) on [0, inf); ``nunubar_ratio`` ~ N(1, 0.1) on [0, 2].

    The release adds the untruncated Gaussian log-density inside the bounds; a
    TruncatedNormal differs from it by a constant only, so the fit is the same.  The
    release's detector parameters (``epsilon_dom``, ``epsilon_head_on``,
    ``anisotropy_scale``) have its Gaussian priors within the range fitted here
    (:data:`DETECTOR_PRIORS`, in ``hese`` and ``default``).

Parameters a set does not name get a flat prior over their allowed range.

A JSON file overrides any of these, parameter by parameter, on top of ``default``::

    {"astro_gamma": {"dist": "TruncatedNormal", "mu": 2.5, "sigma": 0.5, "lower": 1, "upper": 4}}
"""

from __future__ import annotations

import functools
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from diffuse_fit.io.json_text import describe_json_error, loads_strict
from diffuse_fit.io.spectrum_names import FRACTIONS
from diffuse_fit.physics.detector_parameters import DETECTOR_SYSTEMATICS

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

# dist name -> (required parameter names, optional parameter names)
DISTRIBUTIONS = {
    "HalfFlat": ((), ()),
    "LogNormal": (("mu", "sigma"), ()),
    "HalfNormal": (("sigma",), ()),
    "Gamma": (("alpha", "beta"), ()),
    "Exponential": (("lam",), ()),
    "Uniform": (("lower", "upper"), ()),
    "TruncatedNormal": (("mu", "sigma"), ("lower", "upper")),
    "Dirichlet": ((), ("alpha_e", "alpha_mu", "alpha_tau")),  # the flavour fractions' (module doc)
}
POSITIVE = {"HalfFlat", "LogNormal", "HalfNormal", "Gamma", "Exponential"}


class PriorError(ValueError):
    """A prior specification that cannot be used."""


@dataclass(frozen=True)
class Prior:
    """A prior distribution: a PyMC distribution name and its parameters."""

    dist: str
    params: dict = field(default_factory=dict)

    def support(self) -> tuple[float, float]:
        """The interval the prior puts its mass on."""
        if self.dist in POSITIVE:
            return (0.0, math.inf)
        if self.dist == "Dirichlet":
            return (0.0, 1.0)
        return (self.params.get("lower", -math.inf), self.params.get("upper", math.inf))

    def to_dict(self) -> dict:
        return {"dist": self.dist, **self.params}

    def __str__(self) -> str:
        if self.dist == "Dirichlet":  # the pair's: name the concentrations and the fractions
            return "Dirichlet({:g}, {:g}, {:g}) on (f_e, f_mu, f_tau)".format(*self.alpha())
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.dist}({args})"

    def log_density_curvature(self, x: float) -> float:
        """``d2 log p(x) / dx2`` of the prior at ``x`` inside its support (NumPy twin of the
        PyMC distribution's log-density; constants and shape play no part).

        HalfFlat, Uniform, Exponential: 0; HalfNormal, TruncatedNormal: ``-1/sigma^2``;
        LogNormal: ``(1 - (1 - (ln x - mu)) / sigma^2) / x^2``; Gamma: ``-(alpha - 1) / x^2``.
        """
        p = self.params
        if self.dist in ("HalfFlat", "Uniform", "Exponential", "Dirichlet"):
            return 0.0
        if self.dist in ("HalfNormal", "TruncatedNormal"):
            return -1.0 / p["sigma"] ** 2
        if self.dist == "LogNormal":
            return (1.0 - (1.0 - (math.log(x) - p["mu"])) / p["sigma"] ** 2) / x**2
        if self.dist == "Gamma":
            return -(p["alpha"] - 1.0) / x**2
        raise ValueError(f"no curvature for prior {self.dist}")

    def log_density(self, x: float) -> float:
        """``log p(x)`` of the prior, normalised as PyMC's log-density (NumPy twin, tested
        against PyMC); ``-inf`` outside the support; 0 for ``HalfFlat`` on ``[0, inf)``; 0 for
        ``Dirichlet``, whose density belongs to the pair of fractions
        (:func:`diffuse_fit.physics.flavour.dirichlet_terms`, added by the fitter)."""
        p, x = self.params, float(x)
        lo, hi = self.support()
        if not lo <= x <= hi:
            return -math.inf
        match self.dist:
            case "HalfFlat":
                return 0.0
            case "Dirichlet":  # the pair's density: diffuse_fit.physics.flavour
                return 0.0
            case "Uniform":
                return -math.log(hi - lo)
            case "Exponential":
                return math.log(p["lam"]) - p["lam"] * x
            case "Gamma":
                a, b = p["alpha"], p["beta"]
                return a * math.log(b) - math.lgamma(a) + (a - 1.0) * math.log(x) - b * x
        if self.dist == "LogNormal":
            if x == 0.0:
                return -math.inf
            z = (math.log(x) - p["mu"]) / p["sigma"]
            return -math.log(x) - math.log(p["sigma"]) - _HALF_LOG_2PI - 0.5 * z * z
        z = (x - p.get("mu", 0.0)) / p["sigma"]  # HalfNormal: mu = 0
        normal = -math.log(p["sigma"]) - _HALF_LOG_2PI - 0.5 * z * z
        if self.dist == "HalfNormal":
            return normal + math.log(2.0)
        return normal - self._truncation_log_mass  # TruncatedNormal

    @functools.cached_property
    def _truncation_log_mass(self) -> float:
        """``log(Phi(b) - Phi(a))`` of a TruncatedNormal (a, b its standardised bounds)."""
        from scipy.special import ndtr

        p = self.params
        lo, hi = self.support()
        a, b = (lo - p["mu"]) / p["sigma"], (hi - p["mu"]) / p["sigma"]
        return math.log(float(ndtr(b) - ndtr(a)))

    def log_density_gradient(self, x: float) -> float:
        """``d log p(x) / dx`` inside the support (NumPy twin; see :meth:`log_density_curvature`).

        HalfFlat, Uniform: 0; Exponential: ``-lam``; HalfNormal: ``-x/sigma^2``;
        TruncatedNormal: ``-(x - mu)/sigma^2``; LogNormal: ``-(1 + (ln x - mu)/sigma^2)/x``;
        Gamma: ``(alpha - 1)/x - beta``.
        """
        p = self.params
        if self.dist in ("HalfFlat", "Uniform", "Dirichlet"):
            return 0.0
        if self.dist == "Exponential":
            return -p["lam"]
        if self.dist == "HalfNormal":
            return -x / p["sigma"] ** 2
        if self.dist == "TruncatedNormal":
            return -(x - p["mu"]) / p["sigma"] ** 2
        if self.dist == "LogNormal":
            return -(1.0 + (math.log(x) - p["mu"]) / p["sigma"] ** 2) / x
        if self.dist == "Gamma":
            return (p["alpha"] - 1.0) / x - p["beta"]
        raise ValueError(f"no gradient for prior {self.dist}")

    def alpha(self) -> tuple[float, float, float]:
        """A ``Dirichlet``'s concentrations ``(alpha_e, alpha_mu, alpha_tau)`` (1 where not given)."""
        return tuple(float(self.params.get(k, 1.0)) for k in ("alpha_e", "alpha_mu", "alpha_tau"))

    @property
    def proper(self) -> bool:
        """Whether the prior is a probability distribution (``HalfFlat`` is not)."""
        return self.dist != "HalfFlat"

    def draw(self, rng, size=None):
        """Random draws from the prior (NumPy generator ``rng``); improper priors cannot be
        drawn from (:class:`PriorError`)."""
        if not self.proper:
            raise PriorError(f"cannot draw from the improper prior {self} (give a proper prior)")
        if self.dist == "FlatSimplex":
            raise PriorError(
                "the flavour fractions are drawn as a pair (draw_priors), not one by one"
            )
        p = self.params
        if self.dist == "TruncatedNormal":
            from scipy import stats

            lo, hi = self.support()
            a, b = (lo - p["mu"]) / p["sigma"], (hi - p["mu"]) / p["sigma"]
            dist = stats.truncnorm(a, b, loc=p["mu"], scale=p["sigma"])
            return dist.rvs(size=size, random_state=rng)
        return self._scipy().rvs(size=size, random_state=rng)

    def _scipy(self):
        """The frozen ``scipy.stats`` distribution of the prior (parameterised as PyMC's)."""
        from scipy import stats

        p = self.params
        match self.dist:
            case "LogNormal":
                return stats.lognorm(s=p["sigma"], scale=math.exp(p["mu"]))
            case "HalfNormal":
                return stats.halfnorm(scale=p["sigma"])
            case "Gamma":
                return stats.gamma(a=p["alpha"], scale=1.0 / p["beta"])
            case "Exponential":
                return stats.expon(scale=1.0 / p["lam"])
            case "Uniform":
                return stats.uniform(loc=p["lower"], scale=p["upper"] - p["lower"])
        raise ValueError(f"no scipy distribution for prior {self.dist}")

    def build(self, name: str, dims=None, built=None, fixed=None):
        """Create the PyMC random variable (inside a model context); ``built``: the
        parameters made so far (name -> variable) and ``fixed`` those held fixed (name ->
        value), which a flavour fraction's ``Dirichlet`` needs (module doc)."""
        import numpy as np
        import pymc as pm

        if self.dist == "Dirichlet":
            return self._build_fraction(name, dims, built or {}, fixed or {})
        # float64 arrays: PyMC turns plain Python floats into float32 constants
        params = {k: np.asarray(v, dtype=np.float64) for k, v in self.params.items()}
        return getattr(pm, self.dist)(name, **params, dims=dims)

    def _build_fraction(self, name: str, dims, built: dict, fixed: dict):
        """One flavour fraction of the Dirichlet pair (module doc): the first fitted one as
        the Dirichlet's marginal Beta (or, with the other held fixed, uniform on what is left),
        the second uniform on what the first leaves, each times a potential for the Beta
        density of its share where that is not flat."""
        import numpy as np
        import pymc as pm
        import pytensor.tensor as pt

        a = dict(zip(("f_e", "f_mu", "f_tau"), self.alpha(), strict=True))
        first, second = FRACTIONS
        other = second if name == first else first
        if name == first and other not in fixed:
            return pm.Beta(
                name, np.float64(a[first]), np.float64(a[second] + a["f_tau"]), dims=dims
            )
        rest = 1.0 - (np.float64(fixed[other]) if other in fixed else built[first])
        x = pm.Uniform(name, np.float64(0.0), rest, dims=dims)
        shape = (a[name], a["f_tau"])  # the Beta of x's share of what is left
        if shape != (1.0, 1.0):
            share = x / rest
            logp = (
                (shape[0] - 1.0) * pt.log(share)
                + (shape[1] - 1.0) * pt.log1p(-share)
                - (math.lgamma(shape[0]) + math.lgamma(shape[1]) - math.lgamma(sum(shape)))
            )
            pm.Potential(f"{name}_dirichlet", logp)
        return x


def draw_priors(priors: dict, rng) -> dict[str, float]:
    """One draw of every parameter from its prior (``rng``: a NumPy generator); the flavour
    fractions as a pair, from their Dirichlet."""
    import numpy as np

    out = {n: float(p.draw(rng)) for n, p in priors.items() if p.dist != "Dirichlet"}
    pair = [n for n in FRACTIONS if n in priors]
    if pair:
        fractions = rng.dirichlet(np.asarray(priors[pair[0]].alpha()))
        out.update({n: float(fractions[i]) for i, n in enumerate(FRACTIONS) if n in pair})
    return {n: out[n] for n in priors}


PRIOR_SETS = {
    "flat": {
        "atmos_norm": Prior("HalfFlat"),
        "astro_norm": Prior("HalfFlat"),
        "astro_gamma": Prior("Uniform", {"lower": 1.0, "upper": 4.0}),
    },
    "default": {
        "atmos_norm": Prior("LogNormal", {"mu": 0.0, "sigma": 0.5}),
        "astro_norm": Prior("LogNormal", {"mu": math.log(5.0), "sigma": 1.0}),
        "astro_gamma": Prior("Uniform", {"lower": 1.0, "upper": 4.0}),
        "prompt_norm": Prior("LogNormal", {"mu": 0.0, "sigma": 1.0}),
        "muon_norm": Prior("LogNormal", {"mu": 0.0, "sigma": 0.5}),
        # spectral models other than the single power law (--astro-model)
        "astro_alpha": Prior("Uniform", {"lower": 1.0, "upper": 4.0}),
        "astro_beta": Prior(
            "TruncatedNormal", {"mu": 0.0, "sigma": 0.2, "lower": -0.2, "upper": 0.5}
        ),
        "astro_gamma1": Prior(
            "TruncatedNormal", {"mu": 2.5, "sigma": 0.5, "lower": 1.0, "upper": 4.0}
        ),
        "astro_gamma2": Prior(
            "TruncatedNormal", {"mu": 2.5, "sigma": 0.5, "lower": 1.0, "upper": 4.0}
        ),
        "astro_log10_ebreak": Prior("Uniform", {"lower": 4.5, "upper": 7.0}),
        "astro_log10_ecut": Prior("Uniform", {"lower": 5.0, "upper": 8.0}),
    },
    "hese": {  # the release's HESE_fit.py `priors` (module doc)
        "atmos_norm": Prior("TruncatedNormal", {"mu": 1.0, "sigma": 0.4, "lower": 0.0}),
        "prompt_norm": Prior("HalfFlat"),
        "muon_norm": Prior("TruncatedNormal", {"mu": 1.0, "sigma": 0.5, "lower": 0.0}),
        "astro_norm": Prior("HalfFlat"),
        "astro_gamma": Prior("Uniform", {"lower": 1.0, "upper": 4.0}),
        "cr_delta_gamma": Prior(
            "TruncatedNormal", {"mu": -0.05, "sigma": 0.05, "lower": -0.55, "upper": 0.45}
        ),
        "kpi_ratio": Prior("TruncatedNormal", {"mu": 1.0, "sigma": 0.1, "lower": 0.0}),
        "nunubar_ratio": Prior(
            "TruncatedNormal", {"mu": 1.0, "sigma": 0.1, "lower": 0.0, "upper": 2.0}
        ),
    },
}
DETECTOR_PRIORS = {
    s.parameter: Prior(
        "TruncatedNormal",
        {"mu": s.prior_mu, "sigma": s.prior_sigma, "lower": s.support[0], "upper": s.support[1]},
    )
    for s in DETECTOR_SYSTEMATICS
}
"""The release's priors of its detector systematics (Normal, within the range fitted here:
:data:`diffuse_fit.physics.detector.DETECTOR_SYSTEMATICS`), in the ``hese`` and ``default``
sets."""
PRIOR_SETS["hese"].update(DETECTOR_PRIORS)
PRIOR_SETS["default"].update(DETECTOR_PRIORS)
for _set in PRIOR_SETS.values():  # the flavour fractions: flat on the simplex, in every set
    _set.update({name: Prior("Dirichlet") for name in FRACTIONS})
SEGMENT_PRIOR = Prior("HalfNormal", {"sigma": 20.0})
"""The ``default`` prior of each segment norm ``astro_norm_1``, ... of the segmented spectrum
(module doc)."""
SEGMENT_NORM = re.compile(r"astro_norm_[0-9]+")


def prior_from_dict(name: str, spec: dict, source: str) -> Prior:
    """Validate one ``{"dist": ..., <params>}`` entry."""
    if not isinstance(spec, dict) or "dist" not in spec:
        raise PriorError(f"{source}: prior for '{name}' must be an object with a 'dist' key")
    dist = spec["dist"]
    if not isinstance(dist, str) or dist not in DISTRIBUTIONS:
        raise PriorError(
            f"{source}: prior for '{name}': unknown dist {dist!r} (known: {sorted(DISTRIBUTIONS)})"
        )
    required, optional = DISTRIBUTIONS[dist]
    params = {k: v for k, v in spec.items() if k != "dist"}
    missing = [k for k in required if k not in params]
    extra = [k for k in params if k not in required + optional]
    if missing or extra:
        raise PriorError(
            f"{source}: prior for '{name}': {dist} needs {list(required)}"
            + (f" (optional {list(optional)})" if optional else "")
            + f", got {sorted(params)}"
        )
    for k, v in params.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not _finite(v):
            shown = repr(v) if len(repr(v)) <= 40 else f"{repr(v)[:20]}... ({len(repr(v))} chars)"
            raise PriorError(f"{source}: prior for '{name}': {k}={shown} is not a finite number")
    for k in ("sigma", "alpha", "beta", "lam", "alpha_e", "alpha_mu", "alpha_tau"):
        if k in params and params[k] <= 0:
            raise PriorError(f"{source}: prior for '{name}': {k}={params[k]!r} must be > 0")
    if "lower" in params and "upper" in params and params["lower"] >= params["upper"]:
        raise PriorError(f"{source}: prior for '{name}': lower must be < upper")
    return Prior(dist, {k: float(v) for k, v in params.items()})


def read_prior_file(path: str | Path) -> dict:
    """The JSON object of a prior file (UTF-8, a leading BOM allowed; no key twice); :class:`PriorError` in one
    line for a missing, unreadable, non-UTF-8 or non-JSON file, or one that is not an
    object."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")  # a BOM, as in workshop files
    except FileNotFoundError:
        raise PriorError(
            f"prior {source!r} is neither a prior set {sorted(PRIOR_SETS)} nor a file"
        ) from None
    except IsADirectoryError:
        raise PriorError(f"{source}: is a folder, not a prior file (JSON)") from None
    except OSError as exc:
        raise PriorError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise PriorError(
            f"{source}: is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        overrides = loads_strict(text)
    except (ValueError, RecursionError) as exc:  # also JSONDecodeError, DuplicateKeyError
        raise PriorError(f"{source}: {describe_json_error(exc, text)[0]}") from None
    if not isinstance(overrides, dict):
        raise PriorError(f"{source}: must be a JSON object of parameter -> prior")
    return overrides


def _finite(number: int | float) -> bool:
    """Finite and within the float range (an integer of 400 digits is not)."""
    return math.isfinite(number) if isinstance(number, float) else abs(number) <= sys.float_info.max


def _from_set(base: dict, name: str, low: float, high: float) -> Prior:
    """The prior ``base`` (a set of :data:`PRIOR_SETS`) gives ``name``: its own, the segment
    prior for a segment norm in ``default``, else flat over ``[low, high]``."""
    if name in base:
        return base[name]
    if base is PRIOR_SETS["default"] and SEGMENT_NORM.fullmatch(name):
        return SEGMENT_PRIOR
    return _flat(low, high)


def _flat(low: float, high: float) -> Prior:
    """Flat prior over an allowed interval (used for parameters a prior set does not name)."""
    if math.isinf(high):
        return Prior("HalfFlat")
    return Prior("Uniform", {"lower": low, "upper": high})


def resolve_priors(spec: str | Path | dict, supports: dict[str, tuple[float, float]]) -> dict:
    """Priors for each parameter from a set name, a JSON file or a dict.

    Parameters
    ----------
    spec : "flat", "default", path to a JSON file, or dict
        Files and dicts override ``default`` per parameter.
    supports : dict
        Parameter -> interval its prior must stay inside (normalizations [0, inf),
        spectral indices the tabulated range).
    """
    if isinstance(spec, dict):
        source, overrides = "<priors>", spec
    elif str(spec) in PRIOR_SETS:
        source, overrides = str(spec), {}
        base = PRIOR_SETS[str(spec)]
    else:
        source, overrides = str(spec), read_prior_file(spec)
    if overrides or isinstance(spec, dict):
        base = PRIOR_SETS["default"]
    unknown = sorted(set(overrides) - set(supports))
    if unknown:
        raise PriorError(f"{source}: unknown parameters {unknown} (known: {sorted(supports)})")
    given = [n for n in FRACTIONS if n in overrides]  # the pair's one Dirichlet
    if len(given) == 2 and overrides[given[0]] != overrides[given[1]]:
        raise PriorError(
            f"{source}: the flavour fractions {', '.join(FRACTIONS)} share one Dirichlet "
            "prior; give it once (for either) or the same for both"
        )
    overrides = {**overrides, **{n: overrides[given[0]] for n in FRACTIONS}} if given else overrides
    priors = {}
    for name, (low, high) in supports.items():
        prior = (
            prior_from_dict(name, overrides[name], source)
            if name in overrides
            else _from_set(base, name, low, high)
        )
        if (name in FRACTIONS) != (prior.dist == "Dirichlet"):
            raise PriorError(
                f"{source}: prior for '{name}' {prior}: the flavour fractions "
                f"{', '.join(FRACTIONS)} take a Dirichlet (flat on the simplex by default), "
                "and only they do"
            )
        lo, hi = prior.support()
        if lo < low or hi > high:
            raise PriorError(
                f"{source}: prior for '{name}' {prior} has support [{lo}, {hi}], "
                f"outside the allowed [{low}, {high}]"
                + (" (the range of the weight tables)" if math.isfinite(high) else "")
            )
        priors[name] = prior
    return priors
