"""Running many independent tasks on Dask, with a journal and a progress bar.

By default a ``dask.distributed.LocalCluster`` with one single-threaded worker process per
core is started for the job (nothing to set up); ``scheduler="tcp://host:8786"`` uses an
existing cluster instead (``dask scheduler`` / ``dask worker``, or dask-jobqueue on
HTCondor/SLURM: see the README).  The shared :class:`model.jobs.tasks.FitContext` is sent
to every worker once (``Client.scatter(broadcast=True)``); each result is written to the
:class:`model.io.journal.Journal` as it completes, so a re-run computes only what is missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from model.errors import FitFailed
from model.io.journal import Journal


@dataclass(frozen=True)
class ClusterOptions:
    """Where the tasks run: ``scheduler`` (address of a running Dask scheduler) or a local
    cluster of ``workers`` processes (default: one per core)."""

    scheduler: str | None = None
    workers: int | None = None

    def n_local_workers(self) -> int:
        return self.workers or len(os.sched_getaffinity(0)) or 1


@contextlib.contextmanager
def dask_client(options: ClusterOptions, say=print):
    """A ``dask.distributed.Client`` for ``options``; a local cluster is shut down after."""
    from dask.distributed import Client, LocalCluster

    if options.scheduler:
        try:
            client = Client(options.scheduler, timeout="20s")
        except OSError as exc:
            raise FitFailed(f"cannot reach the Dask scheduler {options.scheduler}: {exc}") from None
        with client:
            n = len(client.scheduler_info().get("workers", {}))
            say(f"dask: scheduler {options.scheduler} with {n} workers")
            yield client
        return
    n = options.n_local_workers()
    # its HTTP server on a free local port: a fixed one (8787) may be taken by another job
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)  # fmt: skip
    try:
        with Client(cluster) as client:
            say(f"dask: local cluster with {n} worker process{'es' if n > 1 else ''}")
            yield client
    finally:
        cluster.close()


def run_tasks(
    function: Callable,
    context,
    tasks: dict[str, dict],
    journal: Journal,
    options: ClusterOptions,
    label: str,
    say=print,
    progressbar: bool = True,
) -> dict[str, dict]:
    """Run ``function(context, key, args)`` for every ``key: args`` of ``tasks`` not yet in
    ``journal``; store each result as it completes; return all results (journal order of
    ``tasks``).  A task that raises stops the job with :class:`FitFailed` (the results
    stored so far are kept)."""
    done = journal.done(tasks)
    todo = [k for k in tasks if k not in done]
    say(f"{label}: {len(tasks)} tasks, {len(done)} already done (journal {journal.folder}), "
        f"{len(todo)} to compute")  # fmt: skip
    if todo:
        with dask_client(options, say) as client:
            _compute(client, function, context, tasks, todo, journal, label, progressbar)
    return {k: journal.read(k) for k in tasks}


def _compute(client, function, context, tasks, todo, journal, label, progressbar) -> None:
    from dask.distributed import as_completed
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    shared = client.scatter(context, broadcast=True)
    futures = {
        client.submit(
            function,
            shared,
            key,
            tasks[key],
            key=f"{label}-{journal.digest}-{key}",
            pure=False,
            retries=1,
        ): key  # fmt: skip
        for key in todo
    }
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, disable=not progressbar, transient=False,
                  console=_console()) as progress:  # fmt: skip
        bar = progress.add_task(label, total=len(todo))
        try:
            for future in as_completed(futures):
                key = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - the worker's error, in one line
                    raise FitFailed(f"{label}: task {key} failed: {type(exc).__name__}: {exc} "
                                    "(completed tasks are kept in the journal)") from None  # fmt: skip
                journal.write(key, result)
                progress.advance(bar)
        finally:
            for future in futures:
                future.cancel()


def _console():
    from rich.console import Console

    return Console(file=sys.stderr)
