"""``interruptible``: Ctrl-C becomes RunInterrupted, and the caller's SIGINT handler is
restored, whatever it was (issue 19: a pytest started by a background shell inherits SIGINT
ignored; a notebook has a handler of its own)."""

from __future__ import annotations

import signal

import pytest

from diffuse_fit.errors import RunInterrupted
from diffuse_fit.jobs.interrupt import interruptible


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


def _group_alive(pgid: int) -> bool:
    import os

    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_during_toys_is_one_line_and_the_workers_stop_quietly(tmp_path):
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group (command and Dask
    workers).  Exit 130, the one "interrupted" line and nothing else on stderr (each worker
    printed ~66 lines of KeyboardInterrupt traceback), no worker left running."""
    import os
    import subprocess
    import sys
    import time

    from diffuse_fit.io.journal import journal_folder

    out = tmp_path / "toys"
    argv = [
        sys.executable,
        "-m",
        "diffuse_fit.cli",
        "toys",
        "--n",
        "3000",
        "--seed",
        "1",
        "--workers",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    process = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            if len(list(journal_folder(out).glob("*/toy-*.json"))) >= 20:
                break
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _group_alive(process.pid):
            time.sleep(0.2)
        assert not _group_alive(process.pid), "worker processes left running"
    finally:
        if _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert (
        err == f"diffuse-fit: interrupted: nothing was written, '{out}' keeps what it held before\n"
    )
    assert not out.exists()
