"""What the segmented spectrum's figure shows beside its posterior: each segment's
profile-likelihood interval, and the single power law fitted to the same data.

* :func:`segment_profiles`: per segment the MAP and the 68.27% profile-likelihood interval
  of its norm (every other parameter profiled; Wilks, ``-2 Delta ln p = 1``), as
  ``E^2 dPhi/dE`` in GeV cm^-2 s^-1 sr^-1 (all flavours, nu + nubar).  A segment whose
  interval reaches the norm's lower bound 0 has ``profile_68[0] == 0``.
* :func:`power_law_band`: the single power law (``spl``) fitted by the NumPy MAP to the same
  inputs, binning, components, likelihood and priors, and its ``E^2 dPhi/dE`` band from the
  Laplace approximation at that MAP (a normal with the inverse Hessian as covariance,
  ``n_draws`` draws with ``seed``) -- a comparison band, not a second posterior.
"""

from __future__ import annotations

import numpy as np

from diffuse_fit.fitting.profile import covariance_from_hessian
from diffuse_fit.physics.flux import segment_e2_flux


def segment_profiles(job, segments) -> dict[str, dict]:
    """Norm name -> ``{"map": flux, "profile_68": [low, high]}`` (GeV cm^-2 s^-1 sr^-1) for
    each segment of ``segments`` that is fitted (not held fixed) in ``job`` (a
    :class:`diffuse_fit.jobs.prepared.PreparedFit`)."""
    best = job.best
    out = {}
    for c in segments:
        if c.norm not in job.profile.names:
            continue
        low, high = job.profile.interval(job.binned.counts, best, c.norm)
        flux = segment_e2_flux(c, [best.values[c.norm], low, high])
        out[c.norm] = {"map": float(flux[0]), "profile_68": [float(flux[1]), float(flux[2])]}
    return out


def power_law_band(job, energies, seed: int, n_draws: int = 4000) -> dict | None:
    """The single power law's ``E^2 dPhi/dE`` band (quantiles 0.025, 0.16, 0.5, 0.84, 0.975
    at ``energies`` GeV; :func:`diffuse_fit.report.spectrum.flux_band`'s form, as lists)
    from the Laplace approximation at its MAP on ``job``'s inputs; with ``map`` (its
    parameters) and ``method``.  None when that fit fails or its Hessian is not invertible
    (the figure then has no band)."""
    from diffuse_fit.io.analysis import from_dict, with_sample
    from diffuse_fit.jobs.prepared import PreparedFit
    from diffuse_fit.physics.flux import astrophysical_component
    from diffuse_fit.report.spectrum import flux_band

    spec = None
    if job.analysis is not None:
        spec = from_dict(job.analysis, "<run>")
        keep = {k: v for k, v in spec.fix.items() if not k.startswith("astro_norm_")}
        spec = with_sample(
            spec.model_copy(update={"fix": keep}), astro_model="spl", segments_GeV=None
        )
    spl = PreparedFit.prepare(
        job.inputs,
        job.prior_spec,
        job.components,
        lambda *a, **k: None,
        job.likelihood,
        "spl",
        build=False,
        analysis=spec,
    )
    best = spl.profile.fit(spl.binned.counts)
    covariance, problems, _ = covariance_from_hessian(spl.profile.names, best.hessian)
    if not best.converged or problems:
        return None
    mean = np.array([best.values[n] for n in spl.profile.names])
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal(mean, covariance, size=n_draws, method="cholesky")
    draws = {n: x[:, i] for i, n in enumerate(spl.profile.names)}
    component = astrophysical_component(spl.binned.components)
    fixed = spl.binned.templates.fixed
    draws |= {n: np.full(n_draws, float(fixed[n])) for n in component.parameters if n in fixed}
    band = flux_band(component, draws, energies)
    return {
        "energies": band["energies"].tolist(),
        "quantiles": band["quantiles"].tolist(),
        "e2_flux": band["e2_flux"].tolist(),
        "n_draws": n_draws,
        "seed": seed,
        "map": {n: float(v) for n, v in best.values.items()},
        "method": "Laplace approximation at the single power law's MAP (same data, "
        "binning, priors)",
    }
