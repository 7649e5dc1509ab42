"""Spectral models of the astrophysical flux beyond the single power law (NumPy, exact).

Every model keeps the normalization parameter ``astro_norm`` (``phi``, the six-neutrino flux
in units of 1e-18 GeV^-1 cm^-2 s^-1 sr^-1, as for the single power law) and reweights each
simulated event from the simulation's reference power law ``(E / pivot)^-2.5`` by
``exp(f(x; shape))``, ``x = ln(E_true / pivot)``, pivot 100 TeV:

* ``spl`` (today's :class:`diffuse_fit.physics.components.PowerLawComponent`):
  ``phi (E / 100 TeV)^-gamma``;
* ``logparabola``: ``phi (E / 100 TeV)^-(alpha + beta ln(E / 100 TeV))``, so
  ``f = -(alpha - 2.5) x - beta x^2`` (``beta = 0`` is the single power law);
* ``broken``: index ``gamma1`` below ``E_break``, ``gamma2`` above, continuous at
  ``E_break`` and equal to ``phi`` at 100 TeV:
  ``f = -(gamma1 - 2.5) x - (gamma2 - gamma1) (max(x, x_b) - max(0, x_b))``,
  ``x_b = ln(E_break / pivot)``, ``E_break = 10^astro_log10_ebreak`` GeV
  (``gamma1 = gamma2`` is the single power law);
* ``cutoff``: ``phi (E / 100 TeV)^-gamma exp(-E / E_cut)``, so
  ``f = -(gamma - 2.5) x - E / E_cut``, ``E_cut = 10^astro_log10_ecut`` GeV.

:meth:`SpectralComponent.log_tilt` takes an array namespace (``numpy`` here; the PyMC model
passes ``pytensor.tensor``, whose functions have the same names) so that the per-event
formula is written once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from diffuse_fit.io.events import EventTable
from diffuse_fit.io.spectrum_names import (  # noqa: F401 (re-exported)
    FLAVOUR,
    SEGMENT_EDGES_GEV,
    SEGMENTED,
    check_segment_edges,
    segmented_model,
    split_segmented,
)
from diffuse_fit.physics.components import Params, PowerLawComponent, SegmentComponent
from diffuse_fit.physics.flavour import FlavourPowerLaw

Derivatives = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``f``, ``df/ds_a`` (n_shape, n) and ``d2f/ds_a ds_b`` (n_shape, n_shape, n) per event."""

LN10 = math.log(10.0)
ASTRO_MODELS = ("spl", "logparabola", "broken", "cutoff")
"""The built-in parametric spectral models; :func:`astro_models` adds ``segmented`` and those
registered by the user."""

# model -> (shape parameter names, their allowed (tabulated) ranges)
SHAPES = {
    "logparabola": (("astro_alpha", "astro_beta"), ((1.0, 4.0), (-0.2, 0.5))),
    "broken": (
        ("astro_gamma1", "astro_gamma2", "astro_log10_ebreak"),
        ((1.0, 4.0), (1.0, 4.0), (4.5, 7.0)),
    ),
    "cutoff": (("astro_gamma", "astro_log10_ecut"), ((1.0, 4.0), (5.0, 8.0))),
}


@dataclass(frozen=True)
class Spectrum:
    """A spectral model registered from Python (:func:`register_spectrum`).

    ``log_flux(x, values, xp)``: ``ln(phi(E) / phi(pivot))``, the log of the flux's energy
    dependence relative to its value at the pivot, at ``x = ln(E / pivot)``; ``values`` the
    shape parameters in ``shape`` order; ``xp`` the array namespace (``numpy``, or
    ``pytensor.tensor`` in the PyMC model: write ``xp.exp``, not ``np.exp``).  ``ranges``:
    each shape parameter's allowed interval (its support, its flat prior's range, the
    table's box).  ``derivatives(x, values)``: optional exact ``(f, df/ds, d2f/ds2)`` of
    ``f = log_flux + reference_index * x`` (shapes (n,), (d, n), (d, d, n)); without it
    the NumPy fitter uses central differences of ``log_flux`` (first derivatives to
    ~1e-10, second to ~1e-6 relative: the optimum is unaffected, its Hessian is).
    ``smooth``: whether ``log_flux`` is analytic in the shape parameters (a kink makes
    every table fail; such a model is evaluated by the exact per-event sum)."""

    name: str
    shape: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]
    log_flux: Callable[..., Any]
    smooth: bool = True
    derivatives: Callable[..., Derivatives] | None = None


_REGISTERED: dict[str, Spectrum] = {}


def register_spectrum(
    name: str,
    parameters: dict[str, tuple[float, float]],
    log_flux: Callable[..., Any],
    *,
    smooth: bool = True,
    derivatives: Callable[..., Derivatives] | None = None,
) -> Spectrum:
    """Make the spectral model ``name`` known to every command and function of this process
    (``astro_model=name``, ``--astro-model name``, a specification's ``astro_model``)
    without changing the package.

    ``parameters``: shape parameter name -> ``(low, high)`` allowed range, in order;
    ``log_flux``: see :class:`Spectrum`.  The normalization stays ``astro_norm`` (the flux
    at the 100 TeV pivot).  Jobs whose workers are other processes (``--workers`` > 1 with
    ``toys``/``sbc``) need the registration in a module those processes import too.

    Example: a power law with an exponential cut-off at ``E_cut = 10^astro_lg_ecut`` GeV::

        register_spectrum(
            "my_cutoff", {"astro_gamma": (1.0, 4.0), "astro_lg_ecut": (5.0, 8.0)},
            lambda x, v, xp: -v[0] * x - xp.exp(x + math.log(1e5) - math.log(10) * v[1]))
    """
    if name in (*ASTRO_MODELS, SEGMENTED, FLAVOUR):
        raise ValueError(f"{name!r} is a built-in spectral model; choose another name")
    if not parameters:
        raise ValueError("a spectrum needs at least one shape parameter")
    ranges = []
    for pname, interval in parameters.items():
        low, high = map(float, interval)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"parameter {pname}: range must be finite, low < high, not {interval}")
        ranges.append((low, high))
    spectrum = Spectrum(name, tuple(parameters), tuple(ranges), log_flux, smooth, derivatives)
    _REGISTERED[name] = spectrum
    return spectrum


def astro_models() -> tuple[str, ...]:
    """Every spectral model known: the built-in ones, then those registered."""
    return (*ASTRO_MODELS, SEGMENTED, FLAVOUR, *_REGISTERED)


def _registered(model: str) -> Spectrum:
    try:
        return _REGISTERED[model]
    except KeyError:
        raise ValueError(
            f"unknown spectral model {model!r} (known: {', '.join(astro_models())}; "
            "register one with diffuse_fit.register_spectrum)"
        ) from None


@dataclass(frozen=True)
class SpectralComponent:
    """Expected events ``norm * w * exp(f(x; shape))``, ``x = ln(E_true / pivot)``.

    ``weight_field`` is the expected events at ``norm = 1`` for the reference power law
    ``(E / pivot)^-reference_index``; ``energy_field`` the true neutrino energy in GeV;
    ``pivot`` in GeV; ``model`` one of ``logparabola``, ``broken``, ``cutoff`` (module
    docstring); ``shape`` its parameter names and ``shape_ranges`` their allowed ranges.
    """

    name: str
    weight_field: str
    energy_field: str
    norm: str
    model: str
    shape: tuple[str, ...]
    shape_ranges: tuple[tuple[float, float], ...]
    pivot: float = 1.0e5  # GeV
    reference_index: float = 2.5

    @property
    def parameters(self) -> tuple[str, ...]:
        return (self.norm, *self.shape)

    @property
    def smooth(self) -> bool:
        """Whether ``f`` is analytic in the shape parameters (``broken`` has a kink in
        ``E_break`` at every simulated event's energy)."""
        if self.model in ASTRO_MODELS:
            return self.model != "broken"
        return _registered(self.model).smooth

    @property
    def separable(self) -> bool:
        """Whether ``f`` is a sum of one term per shape parameter
        (:meth:`log_tilt_factor`)."""
        return self.model in ("logparabola", "cutoff")

    def log_energy(self, events: EventTable) -> np.ndarray:
        """ln(E_true / pivot) of each event."""
        return np.log(events[self.energy_field] / self.pivot)

    def log_tilt(self, x: Any, values: Sequence[Any], xp: Any = np) -> Any:
        """``f(x; shape)`` (module docstring); ``values`` the shape parameters in
        ``shape`` order (scalars or arrays broadcasting against ``x``); ``xp`` the
        array namespace (``numpy`` or ``pytensor.tensor``)."""
        r = self.reference_index
        if self.model == "logparabola":
            alpha, beta = values
            return -(alpha - r) * x - beta * x * x
        if self.model == "cutoff":
            gamma, log10_ecut = values
            return -(gamma - r) * x - xp.exp(x + math.log(self.pivot) - LN10 * log10_ecut)
        if self.model == "broken":
            g1, g2, log10_eb = values
            xb = LN10 * log10_eb - math.log(self.pivot)
            return -(g1 - r) * x - (g2 - g1) * (xp.maximum(x, xb) - xp.maximum(0.0, xb))
        return _registered(self.model).log_flux(x, values, xp) + r * x

    def log_tilt_factor(self, x: np.ndarray, axis: int, value: float | np.ndarray) -> np.ndarray:
        """``f_a(x; s_a)`` of the models whose ``f`` is a sum of one term per shape
        parameter (``logparabola``, ``cutoff``; NumPy): ``f = f_0 + f_1``."""
        r = self.reference_index
        if axis == 0:
            return -(value - r) * x
        if self.model == "logparabola":
            return cast(np.ndarray, -value * x * x)
        if self.model == "cutoff":
            return -np.exp(x + math.log(self.pivot) - LN10 * value)
        raise ValueError(f"the {self.model} model does not separate in its shape parameters")

    def log_tilt_derivatives(self, x: np.ndarray, values: Sequence[float]) -> Derivatives:
        """``f``, ``df/ds_a`` (n_shape, n) and ``d2f/ds_a ds_b`` (n_shape, n_shape, n) per
        event (NumPy).  ``broken``: the derivatives almost everywhere (``df/d log10 E_break``
        jumps where ``E_break`` crosses a simulated energy; its derivative there, a delta
        function, is left out)."""
        x = np.asarray(x, dtype=np.float64)
        if self.model not in ASTRO_MODELS:
            return self._registered_derivatives(x, values)
        f = self.log_tilt(x, values)
        d = len(self.shape)
        d1, d2 = np.zeros((d, x.size)), np.zeros((d, d, x.size))
        if self.model == "logparabola":
            d1[0], d1[1] = -x, -x * x
        elif self.model == "cutoff":
            q = np.exp(x + math.log(self.pivot) - LN10 * values[1])  # E / E_cut
            d1[0], d1[1] = -x, LN10 * q
            d2[1, 1] = -(LN10**2) * q
        else:  # broken
            g1, g2, log10_eb = values
            xb = LN10 * log10_eb - math.log(self.pivot)
            above = np.maximum(x, xb) - max(0.0, xb)
            step = (x < xb).astype(np.float64) - float(xb > 0.0)
            d1[0], d1[1], d1[2] = -x + above, -above, -(g2 - g1) * LN10 * step
            d2[0, 2] = d2[2, 0] = LN10 * step
            d2[1, 2] = d2[2, 1] = -LN10 * step
        return f, d1, d2

    def _registered_derivatives(self, x: np.ndarray, values: npt.ArrayLike) -> Derivatives:
        """A registered spectrum's ``f``, ``df/ds``, ``d2f/ds2``: its own, or central
        differences (steps ``1e-4`` of each range for the first derivatives, ``1e-3`` for
        the second: errors ~1e-9 and ~1e-6 relative)."""
        spectrum = _registered(self.model)
        if spectrum.derivatives is not None:
            return spectrum.derivatives(x, values)
        values = np.asarray(values, dtype=np.float64)
        d = values.size
        f = self.log_tilt(x, list(values))
        d1, d2 = np.zeros((d, x.size)), np.zeros((d, d, x.size))

        def at(shift: np.ndarray) -> Any:
            return self.log_tilt(x, list(values + shift))

        steps = [1e-4 * (hi - lo) for lo, hi in self.shape_ranges]
        for a in range(d):
            ea = np.eye(d)[a] * steps[a]
            d1[a] = (at(ea) - at(-ea)) / (2 * steps[a])
            big = np.eye(d)[a] * 10 * steps[a]
            d2[a, a] = (at(big) - 2 * f + at(-big)) / (10 * steps[a]) ** 2
            for c in range(a):
                ec = np.eye(d)[c] * 10 * steps[c]
                d2[a, c] = d2[c, a] = (
                    at(big + ec) - at(big - ec) - at(-big + ec) + at(-big - ec)
                ) / (4 * 100 * steps[a] * steps[c])
        return f, d1, d2

    def event_weights(self, events: EventTable, params: Params) -> np.ndarray:
        """Expected events of each simulated event at ``params``."""
        values = [params[s] for s in self.shape]
        tilt = np.exp(self.log_tilt(self.log_energy(events), values))
        return cast(np.ndarray, params[self.norm] * events[self.weight_field] * tilt)


def spectral_component(
    power_law: PowerLawComponent, model: str
) -> PowerLawComponent | SpectralComponent:
    """The astrophysical component ``power_law`` with the spectrum ``model`` (same weight,
    energy and norm fields; ``spl`` returns it unchanged)."""
    if model not in astro_models():
        raise ValueError(f"astro model must be one of {list(astro_models())}, not {model!r}")
    if model == "spl":
        return power_law
    if model == "segmented":
        raise ValueError("segmented is several components: use with_astro_model")
    if model in SHAPES:
        shape, ranges = SHAPES[model]
    else:
        shape, ranges = _registered(model).shape, _registered(model).ranges
    return SpectralComponent(
        power_law.name,
        power_law.weight_field,
        power_law.energy_field,
        power_law.norm,
        model,
        shape,
        ranges,
        power_law.pivot,
        power_law.reference_index,
    )


def segment_components(
    power_law: PowerLawComponent, edges: Iterable[float] = SEGMENT_EDGES_GEV
) -> tuple[SegmentComponent, ...]:
    """The astrophysical power law as one :class:`SegmentComponent` per segment between
    ``edges`` (GeV, increasing): ``astrophysical_1``, ... with norms ``astro_norm_1``, ..."""
    edges = check_segment_edges(edges)
    return tuple(
        SegmentComponent(
            f"{power_law.name}_{k}",
            power_law.weight_field,
            f"astro_norm_{k}",
            power_law.energy_field,
            low,
            high,
            power_law.pivot,
            power_law.reference_index,
        )
        for k, (low, high) in enumerate(zip(edges, edges[1:], strict=False), start=1)
    )


def with_astro_model(
    components: Iterable[Any], model: str, segments: Iterable[float] | None = None
) -> tuple[Any, ...]:
    """``components`` with every power law named ``astrophysical`` given the spectrum
    ``model`` (:func:`spectral_component`; ``segmented`` or ``segmented:E1,E2,...``:
    :func:`segment_components` between those edges, or ``segments`` (GeV) if given)."""
    model, edges = split_segmented(model)
    if model == "segmented":
        # split_segmented gives the edges of every "segmented" model
        default = cast("tuple[float, ...]", edges)
        segments = default if segments is None else check_segment_edges(segments)
        out: list[object] = []
        for c in components:
            if isinstance(c, PowerLawComponent) and c.name == "astrophysical":
                out.extend(segment_components(c, segments))
            else:
                out.append(c)
        return tuple(out)
    if model == FLAVOUR:  # the single power law with free flavour fractions
        return tuple(
            FlavourPowerLaw.of(c)
            if isinstance(c, PowerLawComponent) and c.name == "astrophysical"
            else c
            for c in components
        )
    return tuple(
        spectral_component(c, model)
        if isinstance(c, PowerLawComponent) and c.name == "astrophysical"
        else c
        for c in components
    )


# model -> how it contains the single power law: its shape parameters as functions of
# gamma (the free ones keep any value): beta = 0, gamma1 = gamma2 (E_break then arbitrary)
NESTS_SPL = {
    "logparabola": lambda gamma: {"astro_alpha": gamma, "astro_beta": 0.0},
    "broken": lambda gamma: {"astro_gamma1": gamma, "astro_gamma2": gamma},
}


def spl_inside(model: str, spl_values: dict[str, float]) -> dict[str, float]:
    """The parameters of ``model`` (a key of :data:`NESTS_SPL`) that give the same
    expectation as the single power law ``spl_values`` (other shape parameters, e.g.
    ``astro_log10_ebreak``, are left out: any value does)."""
    shape = NESTS_SPL[model](spl_values["astro_gamma"])
    return {**{k: v for k, v in spl_values.items() if k != "astro_gamma"}, **shape}
