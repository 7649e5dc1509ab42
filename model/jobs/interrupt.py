"""Ctrl-C (SIGINT) during a job: stop promptly, write nothing, keep the earlier results."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

from model.errors import RunInterrupted


@contextlib.contextmanager
def interruptible(out: Path):
    """Turn Ctrl-C (SIGINT) into :class:`RunInterrupted`, also where a sampler swallows the
    KeyboardInterrupt and returns partial draws: yields a list that records each SIGINT."""
    seen: list[int] = []

    def on_sigint(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
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
