"""Batched Dask tasks (:func:`diffuse_fit.jobs.distributed.run_tasks` with ``batch``): every result
journaled on its own, a failing task named, the results before it kept."""

import pytest

from diffuse_fit.errors import FitFailed
from diffuse_fit.io.journal import Journal
from diffuse_fit.jobs.distributed import ClusterOptions, run_batch, run_tasks

TASKS = {f"t-{i:03d}": {"x": i} for i in range(40)}


def square_or_fail(context, key, args):
    if args["x"] == context["fail_at"]:
        raise ValueError(f"bad x in {key}")
    return {"y": args["x"] ** 2, "key": key}


def test_run_batch_stops_at_the_first_failure():
    items = [(k, TASKS[k]) for k in ("t-001", "t-002", "t-003")]
    assert run_batch(square_or_fail, {"fail_at": -1}, items) == (
        [{"y": 1, "key": "t-001"}, {"y": 4, "key": "t-002"}, {"y": 9, "key": "t-003"}],
        None,
    )
    assert run_batch(square_or_fail, {"fail_at": 2}, items) == (
        [{"y": 1, "key": "t-001"}],
        ("t-002", "ValueError: bad x in t-002"),
    )


def test_batched_tasks_are_journaled_one_by_one_and_a_failure_is_named(tmp_path):
    quiet = {"say": lambda *a, **k: None, "progressbar": False, "batch": 8}
    one_worker = ClusterOptions(workers=1)
    journal = Journal(tmp_path / "ok", {"kind": "test"})
    results = run_tasks(
        square_or_fail, {"fail_at": -1}, TASKS, journal, one_worker, "test", **quiet
    )
    assert results == {k: {"y": a["x"] ** 2, "key": k} for k, a in TASKS.items()}
    assert journal.done(TASKS) == set(TASKS)

    journal = Journal(tmp_path / "failing", {"kind": "test"})
    with pytest.raises(FitFailed, match=r"test: task t-013 failed: ValueError: bad x in t-013"):
        run_tasks(square_or_fail, {"fail_at": 13}, TASKS, journal, one_worker, "test", **quiet)
    stored = journal.done(TASKS)
    assert {f"t-{i:03d}" for i in range(8, 13)} <= stored  # its batch, before it: kept
    assert "t-013" not in stored


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("bogus://x", "protocol 'bogus' is not one of"),
        ("localhost", "is not PROTOCOL://HOST[:PORT]"),
        ("tcp://", "is not PROTOCOL://HOST[:PORT]"),
        ("inproc://x", "protocol 'inproc' is not one of"),
        ("", "--scheduler is empty"),
        ("  ", "--scheduler is empty"),
        ("tcp://host:99999", "port 99999 is not in 1..65535"),
        ("tcp://host:8786/x", "is not PROTOCOL://HOST[:PORT]"),
    ],
)
def test_bad_scheduler_addresses_are_one_line_errors(tmp_path, capsys, address, reason):
    from diffuse_fit.cli import main

    argv = ["toys", "--n", "2", "--seed", "1", "--scheduler", address, "--out", str(tmp_path / "t")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("diffuse-fit: error: --scheduler")
    assert reason in err, err
    assert not (tmp_path / "t").exists()


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, capsys):
    """Nothing listens on port 9 of this machine: one line, exit 2, within the connection
    timeout (CONNECT_TIMEOUT_S, 4 s)."""
    from diffuse_fit.cli import main
    from diffuse_fit.jobs.distributed import CONNECT_TIMEOUT_S

    assert CONNECT_TIMEOUT_S <= 4
    argv = [
        "toys",
        "--n",
        "2",
        "--seed",
        "1",
        "--scheduler",
        "tcp://127.0.0.1:9",
        "--out",
        str(tmp_path / "t"),
        "--quiet",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("diffuse-fit: error: cannot reach the Dask scheduler tcp://127.0.0.1:9")
