"""diffuse-fit: a Bayesian binned-likelihood fit of the diffuse astrophysical neutrino flux.

The Python API (:mod:`diffuse_fit.api`) is importable from here; it is loaded on first use, so
``import diffuse_fit`` (and the command line's ``--help``) does not import PyMC.

The package's folder is ``model/`` (the project's layout); it installs under the import name
``diffuse_fit`` (``pyproject.toml``: ``package-dir``), which no user's ``model.py`` and no
``with pm.Model() as model:`` shadows.
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
    "write_spec",
    "register_spectrum",
)

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from diffuse_fit import api

        return getattr(api, name)
    raise AttributeError(f"module 'diffuse_fit' has no attribute {name!r}")
