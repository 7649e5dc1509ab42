"""Progress and messages: the ``diffuse_fit`` logger.

Every job says what it does (inputs read, tables built, the MAP, where files went) through
:func:`speaker`: a ``say`` callable given by the caller (one ``str`` argument), or by default
``logging.getLogger("diffuse_fit").info``.  The command line shows INFO lines on stdout as they
are (``--quiet``: warnings and errors only; ``--verbose``: also DEBUG lines, PyMC's too);
a notebook or script shows them once it configures logging, e.g.
``logging.basicConfig(level=logging.INFO, format="%(message)s")``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

LOGGER = "diffuse_fit"


def speaker(say: Callable[[str], object] | None = None) -> Callable[[str], object]:
    """``say`` if given, else the ``diffuse_fit`` logger's ``info``."""
    return say if say is not None else logging.getLogger(LOGGER).info
