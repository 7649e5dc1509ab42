"""diffuse-fit: a Bayesian binned-likelihood fit of the diffuse astrophysical neutrino flux.

The Python API (:mod:`model.api`) is importable from here; it is loaded on first use, so
``import model`` (and the command line's ``--help``) does not import PyMC.
"""

__version__ = "0.1.0"

_API = (
    "Inputs",
    "BinnedDataset",
    "load_inputs",
    "bin_inputs",
    "build_model",
    "fit_map",
    "sample",
    "summary",
    "run_map",
    "run_sample",
    "run_scan",
    "run_toys",
    "run_sbc",
    "run_compare",
    "write_report",
)

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from model import api

        return getattr(api, name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
