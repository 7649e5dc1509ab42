"""Sphinx configuration: ``make docs`` builds docs/_build/html with warnings as errors.

MyST Markdown for every page (myst-nb); the tutorial is a text notebook (MyST, jupytext's
``md:myst`` format) executed at every build; the API reference from the docstrings
(autodoc + napoleon, NumPy style); the command line from its own parser (sphinx-argparse).
"""

from __future__ import annotations

import os

import diffuse_fit

project = "diffuse-fit"
author = "the diffuse-fit developers"
release = version = diffuse_fit.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinxarg.ext",
]
source_suffix = {".md": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]

# MyST: $...$ maths, ::: fences, heading anchors for links to sections
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# the tutorial runs at every build (no cache: what it says is what the code does today)
nb_execution_mode = "force"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_merge_streams = True
os.environ.setdefault("MPLBACKEND", "Agg")

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False  # return types as text: "ndarray, shape (n,)" is no cross-reference

html_theme = "furo"
html_title = f"diffuse-fit {release}"
