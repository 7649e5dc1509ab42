"""NUTS compiled once for a model, then run for every new set of observed counts.

:class:`NutsFitter` does what ``pm.sample(nuts_sampler="nutpie")`` does -- the same
compiled nutpie model, the same per-chain seed derivation, the same DataTree -- but
compiles in ``__init__`` only: after :func:`diffuse_fit.inference.pymc_model.set_counts` a
pseudo-experiment or another dataset with the same binning and simulation is sampled
without recompiling (``compiled.with_data``).  With the same seed and counts its posterior
is bit-identical to :func:`diffuse_fit.inference.sampling.sample` with nutpie (tested).

Two ways to compile (``sampler``): ``"nutpie-numba"`` is ``nutpie.compile_pymc_model``
(numba compiles its two cfuncs afresh in every process, ~10 s); ``"nutpie"`` is
:func:`diffuse_fit.inference.nutpie_cached.compile_cached`, the same compiled model with the
cfuncs loaded from pytensor's on-disk numba cache (~1 s once the cache is warm).  The
draws are bit-identical (tested).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pymc as pm
from pymc.backends.arviz import patch_nutpie_idata
from pymc.util import get_random_generator

from diffuse_fit.inference import nutpie_cached
from diffuse_fit.inference.exact_float import exact_float
from diffuse_fit.inference.notices import ignore_object_mode_notice
from diffuse_fit.inference.settings import SamplerSettings

NUTPIE_SAMPLERS = ("nutpie", "nutpie-numba")


def nutpie_seed(seed: int, chains: int) -> int:
    """The seed ``pm.sample(random_seed=seed, chains=chains)`` hands to nutpie."""
    return int(get_random_generator(seed).spawn(chains)[0].integers(2**30))


class NutsFitter:
    """nutpie's NUTS for ``model``, compiled once (``n_compilations`` counts it) by
    ``sampler``: "nutpie-numba" (``nutpie.compile_pymc_model``) or "nutpie" (cached cfuncs,
    :mod:`diffuse_fit.inference.nutpie_cached`)."""

    def __init__(self, model: pm.Model, sampler: str = "nutpie-numba"):
        import nutpie

        if sampler not in NUTPIE_SAMPLERS:
            raise ValueError(f"sampler must be one of {NUTPIE_SAMPLERS}, not {sampler!r}")
        self.model = model
        self.sampler = sampler
        self.n_compilations = 0
        with warnings.catch_warnings(), exact_float():
            ignore_object_mode_notice()
            if sampler == "nutpie":
                self._compiled = nutpie_cached.compile_cached(model)
            else:
                self._compiled = nutpie.compile_pymc_model(model, backend="numba")
        self.n_compilations += 1

    def sample(self, settings: SamplerSettings, progressbar: bool = False):
        """NUTS posterior (ArviZ DataTree) for the model's current counts; ``progressbar``:
        PyMC's progress bar, as ``pm.sample`` shows it."""
        import nutpie
        from pymc.progress_bar import NutpieProgressBarManager

        counts = np.asarray(self.model["counts"].get_value())
        compiled = self._compiled.with_data(counts=counts)
        progress = NutpieProgressBarManager(
            chains=settings.chains, draws=settings.draws, progressbar=progressbar
        )
        t0 = time.time()
        with warnings.catch_warnings(), progress, exact_float():  # nutpie compiles lazily
            ignore_object_mode_notice()
            # Ctrl-C in the first draws: nutpie hands ArviZ the partial draws (fewer than the
            # chains), which the interrupted run discards; ArviZ's guess about the dims is moot
            warnings.filterwarnings(
                "ignore",
                message="Found chain dimension to be longer than draw dimension",
                category=UserWarning,
            )
            idata = nutpie.sample(
                compiled,
                draws=settings.draws,
                tune=max(settings.tune, 1),
                chains=settings.chains,
                seed=nutpie_seed(settings.seed, settings.chains),
                save_warmup=False,
                progress_bar=False,
                progress_callback=progress.update,
                target_accept=settings.target_accept,
            )
        patch_nutpie_idata(idata, self.model, sampling_time=time.time() - t0)
        return idata
