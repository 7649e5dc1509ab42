"""The astrophysical flux as a function of energy, and the energy range the data constrain
(NumPy only).

The astrophysical components (:class:`diffuse_fit.physics.components.PowerLawComponent`, the single
power law ``spl``, and :class:`diffuse_fit.physics.spectra.SpectralComponent`) reweight each
simulated event from the simulation's reference flux ``phi * 1e-18 * (E / pivot)^-2.5``
GeV^-1 cm^-2 s^-1 sr^-1 (all flavours, nu + nubar; ``phi = astro_norm``, pivot 100 TeV) by
``exp(f(x; shape))``, ``x = ln(E / pivot)``.  The flux at ``E`` is therefore the reference
flux of ``phi = 1`` times the component's own per-event weight of a "simulated event" at
true energy ``E`` with unit nominal weight -- :func:`e2_flux` evaluates it through the
component's ``event_weights``, so the formula is the one the fit uses, written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from diffuse_fit.physics.hese_weights import ASTRO_UNIT


def _draws(params: Mapping[str, Any], names: Sequence[str]) -> dict[str, np.ndarray]:
    """``params[name]`` for ``names`` as float arrays of one common shape (n_draws,)."""
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"no values of {missing} (the component needs {list(names)})")
    arrays = [np.asarray(params[n], dtype=np.float64).reshape(-1) for n in names]
    sizes = {a.size for a in arrays}
    if len(sizes - {1}) > 1:
        raise ValueError(f"parameters have different numbers of draws: {sorted(sizes)}")
    return dict(zip(names, np.broadcast_arrays(*arrays), strict=True))


def astrophysical_components(components: Iterable[Any]) -> list[Any]:
    """The astrophysical components of a component set: the one named ``astrophysical``,
    or the segments ``astrophysical_1``, ... of the segmented spectrum."""
    found = [
        c for c in components if c.name == "astrophysical" or c.name.startswith("astrophysical_")
    ]
    if not found:
        raise ValueError("no astrophysical component")
    return found


def is_segmented(components: Iterable[Any]) -> bool:
    """Whether the astrophysical flux is the segmented spectrum (several segments)."""
    return any(c.name.startswith("astrophysical_") for c in components)


def segment_e2_flux(component: Any, norms: npt.ArrayLike) -> np.ndarray:
    """``E^2 dPhi/dE`` (GeV cm^-2 s^-1 sr^-1, all flavours) in a segment of index 2 at the
    values ``norms`` of its norm: ``norm 1e-18 pivot^2`` (constant in E)."""
    if component.index != 2.0:
        raise ValueError("E^2 dPhi/dE of a segment is constant only for index 2")
    return cast(np.ndarray, np.asarray(norms, dtype=np.float64) * ASTRO_UNIT * component.pivot**2)


def segmented_e2_flux(
    segments: Sequence[Any], params: Mapping[str, Any], energies_gev: npt.ArrayLike
) -> np.ndarray:
    """``E^2 dPhi/dE`` (GeV cm^-2 s^-1 sr^-1, all flavours) of the segmented spectrum at each
    draw and energy: the value of the segment holding the energy (segments ``[low, high)``,
    the last one closed), NaN outside every segment.  ``params``: norm name -> draws (as
    :func:`e2_flux`); returns shape (n_draws, n_energies)."""
    energies = np.asarray(energies_gev, dtype=np.float64).reshape(-1)
    draws = _draws(params, [c.norm for c in segments])
    n = next(iter(draws.values())).size
    out = np.full((n, energies.size), np.nan)
    for k, c in enumerate(segments):
        last = k == len(segments) - 1
        inside = (energies >= c.low) & ((energies <= c.high) if last else (energies < c.high))
        out[:, inside] = segment_e2_flux(c, draws[c.norm])[:, None]
    return out


def astrophysical_component(components: Iterable[Any]) -> Any:
    """The component named ``astrophysical`` of a component set (e.g.
    :func:`diffuse_fit.physics.spectra.with_astro_model`)."""
    found = [c for c in components if c.name == "astrophysical"]
    if len(found) != 1:
        raise ValueError(f"expected one astrophysical component, found {len(found)}")
    return found[0]


def e2_flux(component: Any, params: dict[str, np.ndarray], energies_gev: np.ndarray) -> np.ndarray:
    """``E^2 dN/dE`` of the astrophysical ``component`` at each draw and energy.

    Parameters
    ----------
    component : PowerLawComponent or SpectralComponent
        The astrophysical component of the fit (``spl``: the power law; other models: the
        component of :func:`diffuse_fit.physics.spectra.with_astro_model`).
    params : dict
        Parameter name -> values, one per draw (any shape: ravelled, so ``(chain, draw)``
        posterior arrays give ``chain * draw`` draws in C order; scalars broadcast).  Needs
        ``component.parameters``: ``astro_norm`` (``phi``, the all-flavour flux at 100 TeV in
        1e-18 GeV^-1 cm^-2 s^-1 sr^-1) and the shape parameters (``astro_gamma``;
        ``astro_alpha, astro_beta``; ``astro_gamma1, astro_gamma2, astro_log10_ebreak``;
        ``astro_gamma, astro_log10_ecut``; log10 energies in GeV).
    energies_gev : array
        Neutrino energies ``E`` in GeV (positive), shape (n_energies,).

    Returns
    -------
    ndarray, shape (n_draws, n_energies)
        ``E^2 dN/dE`` in GeV cm^-2 s^-1 sr^-1 (all flavours, nu + nubar):
        ``E^2 phi 1e-18 (E / pivot)^-2.5 exp(f(ln(E / pivot); shape))``.

    Examples
    --------
    >>> from diffuse_fit.physics.components import WORKSHOP_COMPONENTS
    >>> astro = WORKSHOP_COMPONENTS[1]  # the workshop's astrophysical power law
    >>> e2_flux(astro, {"astro_norm": 6.0, "astro_gamma": 2.0}, [1e5, 1e6])  # E^-2: flat
    array([[6.e-08, 6.e-08]])
    >>> e2_flux(astro, {"astro_norm": 6.0, "astro_gamma": 3.0}, [1e5, 1e6])  # 10x per decade
    array([[6.e-08, 6.e-09]])
    """
    if not hasattr(component, "energy_field"):
        raise TypeError(f"{component.name!r} has no energy dependence (not astrophysical)")
    # with flavour fractions (diffuse_fit.physics.flavour): their sum, the single power law
    component = getattr(component, "all_flavours", component)
    energies = np.asarray(energies_gev, dtype=np.float64).reshape(-1)
    if not np.all(energies > 0) or not np.all(np.isfinite(energies)):
        raise ValueError("energies must be positive and finite (GeV)")
    draws = {name: v[:, None] for name, v in _draws(params, component.parameters).items()}
    # a "simulated event" of unit nominal weight at each energy: its weight at the draws is
    # phi * exp(f), the flux over the reference flux of phi = 1
    unit_events = {component.energy_field: energies[None, :], component.weight_field: 1.0}
    ratio = component.event_weights(unit_events, draws)
    reference = ASTRO_UNIT * (energies / component.pivot) ** -component.reference_index
    return cast(np.ndarray, ratio * (energies**2 * reference)[None, :])


def sensitive_energy_range(
    astro_weights: np.ndarray,
    true_energies: np.ndarray,
    in_bins_mask: np.ndarray,
    fraction: float = 0.9,
) -> tuple[float, float]:
    """The energy range the data constrain: the central ``fraction`` interval of the true
    neutrino energy of the simulated events inside the analysis bins, each weighted by its
    expected astrophysical events at the fitted parameters (IceCube's usual definition;
    ``fraction = 0.9`` gives the weighted 5% and 95% quantiles).

    Parameters
    ----------
    astro_weights : array, shape (n_events,)
        Expected astrophysical events of each simulated event at the fitted parameters
        (``component.event_weights(simulation, best_fit)``), non-negative.
    true_energies : array, shape (n_events,)
        True neutrino energy of each simulated event, GeV.
    in_bins_mask : bool array, shape (n_events,)
        Whether the event falls in an analysis bin (e.g. ``sim_bin_index >= 0``).
    fraction : float
        Probability content of the central interval, in (0, 1).

    Returns
    -------
    (lo, hi) : tuple of float, GeV
        The weighted quantiles ``q = (1 - fraction) / 2`` and ``(1 + fraction) / 2``, each
        the smallest energy ``E_i`` whose cumulative weight (events sorted by energy) is at
        least ``q`` times the total (inverted CDF; no interpolation).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), not {fraction}")
    weights = np.asarray(astro_weights, dtype=np.float64).reshape(-1)
    energies = np.asarray(true_energies, dtype=np.float64).reshape(-1)
    mask = np.asarray(in_bins_mask, dtype=bool).reshape(-1)
    if not weights.size == energies.size == mask.size:
        raise ValueError(
            f"lengths differ: {weights.size} weights, {energies.size} energies, {mask.size} mask"
        )
    weights, energies = weights[mask], energies[mask]
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("astrophysical weights must be finite and non-negative")
    if not weights.sum() > 0:
        raise ValueError("no astrophysical weight in the analysis bins")
    order = np.argsort(energies, kind="stable")
    cdf = np.cumsum(weights[order])
    q = np.array([(1.0 - fraction) / 2.0, (1.0 + fraction) / 2.0])
    index = np.minimum(np.searchsorted(cdf, q * cdf[-1], side="left"), cdf.size - 1)
    lo, hi = energies[order][index]
    return float(lo), float(hi)
