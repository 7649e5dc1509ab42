"""Running many independent tasks on Dask, with a journal and a progress bar.

By default a ``dask.distributed.LocalCluster`` with one single-threaded worker process per
core is started for the job (nothing to set up); ``scheduler="tcp://host:8786"`` uses an
existing cluster instead (``dask scheduler`` / ``dask worker``, or dask-jobqueue on
HTCondor/SLURM: see the README).  The shared :class:`diffuse_fit.jobs.many.FitContext` is sent
to every worker once (``Client.scatter(broadcast=True)``); each result is written to the
:class:`diffuse_fit.io.journal.Journal` as it completes, so a re-run computes only what is missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from diffuse_fit.errors import FitFailed, UsageError
from diffuse_fit.io.atomic import json_text
from diffuse_fit.io.journal import Journal
from diffuse_fit.messages import speaker

SCHEDULER_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")  # Dask's network protocols
CONNECT_TIMEOUT_S = 4  # an unreachable scheduler fails within this (plus < 1 s)
_ADDRESS = re.compile(r"([a-z]+)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::([0-9]{1,5}))?")


def check_scheduler(address: str | None) -> None:
    """Refuse (one-line :class:`UsageError`) a ``--scheduler`` that is not
    ``PROTOCOL://HOST[:PORT]`` with a network protocol of :data:`SCHEDULER_PROTOCOLS`
    (``inproc://`` names a scheduler inside a process, never one to connect to)."""
    if address is None:
        return
    hint = "give the address of a running Dask scheduler, e.g. tcp://host:8786"
    match = _ADDRESS.fullmatch(address)
    if not address.strip():
        raise UsageError(f"--scheduler is empty; {hint} (or leave it out for a local cluster)")
    if match is None:
        raise UsageError(f"--scheduler {address!r} is not PROTOCOL://HOST[:PORT]; {hint}")
    protocol, _, port = match.groups()
    if protocol not in SCHEDULER_PROTOCOLS:
        raise UsageError(
            f"--scheduler {address!r}: protocol {protocol!r} is not one of "
            f"{', '.join(SCHEDULER_PROTOCOLS)}; {hint}"
        )
    if port is not None and not 1 <= int(port) <= 65535:
        raise UsageError(f"--scheduler {address!r}: port {port} is not in 1..65535; {hint}")


@dataclass(frozen=True)
class ClusterOptions:
    """Where the tasks run: ``scheduler`` (address of a running Dask scheduler) or a local
    cluster of ``workers`` processes (default: one per core)."""

    scheduler: str | None = None
    workers: int | None = None

    def n_local_workers(self) -> int:
        return self.workers or len(os.sched_getaffinity(0)) or 1


@contextlib.contextmanager
def dask_client(options: ClusterOptions, say=None):
    """A ``dask.distributed.Client`` for ``options``; a local cluster is shut down after."""
    say = speaker(say)
    from dask.distributed import Client, LocalCluster

    check_scheduler(options.scheduler)
    if options.scheduler is not None:
        try:
            client = Client(options.scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
        except Exception as exc:  # noqa: BLE001 - refused, timed out, not a Dask scheduler
            reason = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise FitFailed(
                f"cannot reach the Dask scheduler {options.scheduler}: "
                f"{type(exc).__name__}: {reason}"
            ) from None
        with client:
            n = len(client.scheduler_info().get("workers", {}))
            say(
                f"dask: scheduler {options.scheduler} with {n} workers; dashboard "
                f"{client.dashboard_link}"
            )
            yield client
        return
    n = options.n_local_workers()
    # workers ignore Ctrl-C (diffuse_fit.jobs.quiet_worker); its HTTP server on a free local port:
    # a fixed one (8787) may be taken by another job
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.CRITICAL,
        preload=["diffuse_fit.jobs.quiet_worker"],
    )
    try:
        with Client(cluster) as client:
            say(
                f"dask: local cluster with {n} worker process{'es' if n > 1 else ''}; "
                f"dashboard {client.dashboard_link}"
            )
            yield client
    finally:
        cluster.close()


def stored_results(journal: Journal, tasks: dict[str, dict], context, check=None) -> dict:
    """The intact stored results among ``tasks`` that pass ``check(context, key, args,
    result)`` (:mod:`diffuse_fit.jobs.entries`); every other stored entry is named in one warning
    line (logger ``diffuse_fit.jobs.distributed``; at most :data:`NAMED_BAD_ENTRIES`, then their
    number) and left to be computed again."""
    from diffuse_fit.jobs.entries import BadEntry

    results, bad = {}, []
    for key, args in tasks.items():
        result, why = journal.load(key)
        if result is not None and check is not None:
            try:
                check(context, key, args, result)
            except BadEntry as exc:
                result, why = None, f"does not fit its task: {exc}"
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                result, why = None, f"does not fit its task ({type(exc).__name__}: {exc})"
        if result is not None:
            results[key] = result
        elif why is not None:
            bad.append((key, why))
    for key, why in bad[:NAMED_BAD_ENTRIES]:
        log.warning("journal entry %s %s; computing it again", journal.path(key), why)
    if len(bad) > NAMED_BAD_ENTRIES:
        log.warning(
            "%d more bad entries in the journal %s; computing them again",
            len(bad) - NAMED_BAD_ENTRIES,
            journal.folder,
        )
    return results


NAMED_BAD_ENTRIES = 10
log = logging.getLogger(__name__)


def run_tasks(
    function: Callable,
    context,
    tasks: dict[str, dict],
    journal: Journal,
    options: ClusterOptions,
    label: str,
    say=None,
    progressbar: bool = True,
    batch: int = 1,
    check: Callable | None = None,
) -> dict[str, dict]:
    """Run ``function(context, key, args)`` for every ``key: args`` of ``tasks`` without an
    intact result in ``journal`` (:func:`stored_results`, with ``check``); store each
    result as it completes; return all results (in the order of ``tasks``).  A task that
    raises stops the job with :class:`FitFailed` (the results stored so far are kept).

    ``batch``: most tasks per Dask task, for tasks of a few tens of milliseconds (a MAP
    pseudo-experiment), whose scheduling would otherwise cost the scheduler and client about
    as much CPU as a worker spends on them: on a 2-core machine that CPU is taken from the
    workers.  Each result is still journaled on its own as its batch completes, and every
    worker gets at least :data:`BATCHES_PER_WORKER` batches, so the load stays balanced."""
    say = speaker(say)
    done = stored_results(journal, tasks, context, check)
    todo = [k for k in tasks if k not in done]
    say(
        f"{label}: {len(tasks)} tasks, {len(done)} already done (journal {journal.folder}), "
        f"{len(todo)} to compute"
    )
    if todo:
        with dask_client(options, say) as client:
            workers = max(1, len(client.scheduler_info().get("workers", {})))
            size = max(1, min(batch, len(todo) // (BATCHES_PER_WORKER * workers)))
            new = _compute(
                client, function, context, tasks, todo, journal, label, progressbar, size
            )
        done.update(new)
    return {k: done[k] for k in tasks}


BATCHES_PER_WORKER = 4


def run_batch(function: Callable, context, items: list[tuple[str, dict]]):
    """``function(context, key, args)`` for each ``(key, args)`` of ``items`` on a worker:
    ``(results, None)``, or the results before a failing task and ``(its key, the error in one
    line)``."""
    results = []
    for key, args in items:
        try:
            results.append(function(context, key, args))
        except Exception as exc:  # noqa: BLE001 - reported by the client, in one line
            return results, (key, f"{type(exc).__name__}: {exc}")
    return results, None


def _compute(client, function, context, tasks, todo, journal, label, progressbar, size) -> dict:
    """Run the ``todo`` tasks in batches of ``size``; store and return their results."""
    from dask.distributed import as_completed
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    shared = client.scatter(context, broadcast=True)
    batches = [todo[i : i + size] for i in range(0, len(todo), size)]
    futures = {
        client.submit(
            run_batch,
            function,
            shared,
            [(key, tasks[key]) for key in keys],
            key=f"{label}-{journal.digest}-{keys[0]}-{len(keys)}",
            pure=False,
            retries=1,
        ): keys
        for keys in batches
    }
    computed = {}
    columns = (
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(
        *columns, disable=not progressbar, transient=False, console=_console()
    ) as progress:
        bar = progress.add_task(label, total=len(todo))
        try:
            for future in as_completed(futures):
                keys = futures[future]
                try:
                    results, failure = future.result()
                except Exception as exc:  # noqa: BLE001 - the worker's loss, in one line
                    raise FitFailed(
                        f"{label}: task {keys[0]} failed: {type(exc).__name__}: "
                        f"{exc} (completed tasks are kept in the journal)"
                    ) from None
                for key, result in zip(keys, results, strict=False):
                    journal.write(key, result)
                    computed[key] = json.loads(json_text(result))  # as a rerun reads it
                progress.advance(bar, len(results))
                if failure is not None:
                    raise FitFailed(
                        f"{label}: task {failure[0]} failed: {failure[1]} "
                        "(completed tasks are kept in the journal)"
                    )
        finally:
            for future in futures:
                future.cancel()
    return computed


def _console():
    from rich.console import Console

    return Console(file=sys.stderr)
