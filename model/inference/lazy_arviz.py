"""``import arviz`` without its plotting half until a plotting name is used.

ArviZ 1's ``arviz`` package is a namespace: ``from arviz_base import *``, ``from arviz_stats
import *``, ``from arviz_plots import *``.  The last one imports matplotlib, and nutpie imports
``arviz`` whole although it calls only ``arviz.from_dict`` and ``arviz.dict_to_dataset``
(arviz_base).  In a ``diffuse-fit sample`` job that costs 0.5-0.9 s and 29 MB of peak memory on
a 2-core machine, for figures the job never draws (``--report`` draws them with arviz_plots).

:func:`install` puts the real ``arviz`` module object in ``sys.modules``, empty but for a module
``__getattr__``: the first attribute asked for fills it with the names of arviz_base and
arviz_stats (the same objects ``arviz`` exposes), and the first name it then does not hold (a
plot, ``__version__``, ...) executes the real ``arviz/__init__`` into that same module, which
from then on is plain ``arviz``.  Only the ``diffuse-fit``
executable installs it (:func:`diffuse_fit.cli.console_main`), never the Python API, so no user
code shares the process.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

EAGER = ("arviz_base", "arviz_stats")  # imported first, in arviz's own order


def public_names(module) -> list[str]:
    """What ``from module import *`` binds, without dunder names such as ``__version__``
    (``arviz`` sets its own: asking for it completes the module)."""
    names = getattr(module, "__all__", None)
    names = list(names) if names is not None else list(vars(module))
    return [n for n in names if not n.startswith("_")]


def install() -> bool:
    """Install the lazily completed ``arviz`` (see the module docstring); ``False`` if
    ``arviz`` is already imported or cannot be found.  Imports nothing itself: the first
    attribute asked for imports arviz_base and arviz_stats, and completes the module unless
    the name is one of theirs."""
    if "arviz" in sys.modules:
        return False
    spec = importlib.util.find_spec("arviz")
    if spec is None or spec.loader is None:
        return False
    module = importlib.util.module_from_spec(spec)
    filled = False

    def lookup(name: str):
        nonlocal filled
        if not filled:  # first use: the names of arviz_base and arviz_stats
            for source_name in EAGER:
                source = importlib.import_module(source_name)
                module.__dict__.update({n: getattr(source, n) for n in public_names(source)})
            filled = True
            if name in module.__dict__:
                return module.__dict__[name]
        # a name of neither: run the real arviz/__init__ into this module, look it up there
        del module.__dict__["__getattr__"]
        spec.loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = lookup
    sys.modules["arviz"] = module
    return True
