"""IEEE floating point in everything this package compiles: draws that do not depend on
what filled the compile cache.

pytensor compiles with numba's ``fastmath`` flags by default (reassociation, contraction
into fused multiply-adds, approximate functions).  With them, the result of a compiled
function depends on how LLVM optimised it, and that depends on what was in pytensor's
on-disk cache when it was compiled: a function whose callee was compiled in the same
process gets the callee inlined and re-optimised with it, one whose callee was loaded from
the cache links the callee's object code as it is.  So nutpie's cfuncs compiled in a process
that found the log-density in the cache (filled by an earlier ``diffuse-fit`` job) and the
same cfuncs compiled where it was compiled afresh differed at 1e-13, and NUTS draws with the
same seed then differ (issue 19: ``make fit`` then ``make test`` on a fresh machine).

Without ``fastmath`` LLVM keeps IEEE semantics: every optimisation, inlined or not, gives
the same bits.  pytensor keys its numba cache by this flag (``..._fastmath0``), so functions
compiled here never meet ones compiled with it.  The cost, measured by ``make bench``: the
log-density's reductions are not vectorised (a few per cent of a ``sample`` job).

:func:`exact_float` sets the flag for the duration of a compilation or a sampler run (nutpie
compiles its cfuncs lazily, on first use) and restores the caller's setting after: a user's
other pytensor models are not affected.
"""

from __future__ import annotations

import contextlib

import pytensor


@contextlib.contextmanager
def exact_float():
    """Compile with ``numba__fastmath=False`` inside the block (see the module docstring)."""
    with pytensor.config.change_flags(numba__fastmath=False):
        yield
