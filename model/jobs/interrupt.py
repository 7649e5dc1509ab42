"""Ctrl-C (SIGINT) during a job: stop promptly, write nothing, keep the earlier results."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

from diffuse_fit.errors import RunInterrupted


@contextlib.contextmanager
def interruptible(out: Path):
    """Turn Ctrl-C (SIGINT) into :class:`RunInterrupted`, also where a sampler swallows the
    KeyboardInterrupt and returns partial draws: yields a list that records each SIGINT.

    The caller's handler is restored on exit, whatever it was.  Where SIGINT is ignored
    (``SIG_IGN``: a job started in the background by a non-interactive shell, or under
    ``nohup``), it stays ignored, as Python itself leaves it at start-up: the job runs to
    its end.  Outside the main thread (where no handler can be set) nothing changes."""
    seen: list[int] = []

    def on_sigint(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    main = main and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    previous = signal.signal(signal.SIGINT, on_sigint) if main else None
    try:
        yield seen
    except KeyboardInterrupt:
        raise RunInterrupted(interrupted_message(out)) from None
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def interrupted_message(out: Path) -> str:
    return f"interrupted: nothing was written, '{out}' keeps what it held before"
