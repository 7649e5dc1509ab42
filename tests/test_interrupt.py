"""``interruptible``: Ctrl-C becomes RunInterrupted, and the caller's SIGINT handler is
restored, whatever it was (issue 19: a pytest started by a background shell inherits SIGINT
ignored; a notebook has a handler of its own)."""

from __future__ import annotations

import signal

import pytest

from model.errors import RunInterrupted
from model.jobs.interrupt import interruptible


@pytest.fixture
def restore_sigint():
    inherited = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, inherited)


def test_sigint_becomes_run_interrupted_and_the_callers_handler_comes_back(
    tmp_path, restore_sigint
):
    def own_handler(signum, frame):  # a notebook's, say
        raise AssertionError("the run's handler should have been called")

    signal.signal(signal.SIGINT, own_handler)
    with pytest.raises(RunInterrupted, match="nothing was written"):
        with interruptible(tmp_path / "out") as seen:
            signal.raise_signal(signal.SIGINT)
    assert seen == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is own_handler


def test_ignored_sigint_stays_ignored(tmp_path, restore_sigint):
    """``nohup`` or a background job: SIGINT was ignored before the run and is during and
    after it (the run goes on)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interruptible(tmp_path / "out") as seen:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.raise_signal(signal.SIGINT)  # ignored: no exception
    assert seen == []
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
