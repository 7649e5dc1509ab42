"""NUTS settings and a run's convergence requirements (no PyMC import: the CLI reads them)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

# Convergence requirements of a run (0 divergences, R-hat <= 1.01, bulk ESS >= 400)
MAX_RHAT = 1.01
MIN_ESS_BULK = 400
MAX_DIVERGENCES = 0


def nutpie_available() -> bool:
    return importlib.util.find_spec("nutpie") is not None


@dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings: ``sampler`` "auto" takes nutpie when installed, else PyMC's NUTS.

    Samplers: "nutpie" (nutpie's NUTS, its numba functions loaded from pytensor's disk
    cache), "nutpie-numba" (the same NUTS and draws, compiled afresh by
    ``nutpie.compile_pymc_model``: ~10 s more), "pymc" (PyMC's NUTS)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = 1
    target_accept: float = 0.95
    sampler: str = "auto"

    def resolved_sampler(self) -> str:
        if self.sampler == "auto":
            return "nutpie" if nutpie_available() else "pymc"
        return self.sampler

    def to_dict(self) -> dict:
        return {
            "draws": self.draws,
            "tune": self.tune,
            "chains": self.chains,
            "seed": self.seed,
            "target_accept": self.target_accept,
            "sampler": self.resolved_sampler(),
        }
