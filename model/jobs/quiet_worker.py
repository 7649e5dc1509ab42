"""Dask worker preload (``LocalCluster(preload=[__name__])``): Ctrl-C is not the workers' to handle.

A terminal sends SIGINT to its whole foreground process group, so the worker processes
of a local cluster get Ctrl-C too, and each printed a KeyboardInterrupt traceback of
about 66 lines.  With this preload each worker ignores SIGINT from its start on; the
command itself handles Ctrl-C (:mod:`diffuse_fit.jobs.interrupt`) and closes the cluster,
which stops the workers (SIGTERM from their nanny).
"""

from __future__ import annotations

import signal
import threading


def ignore_sigint() -> bool:
    """SIGINT ignored in this process (from its main thread only); True if it was set."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return True


def dask_setup(worker=None) -> None:
    """Called by Dask in each worker process as it starts."""
    ignore_sigint()


ignore_sigint()  # at import already (Dask imports the preload in the worker's main thread)
