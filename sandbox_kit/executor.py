"""The local executor: claims queued jobs and starts one detached supervisor for each.

:func:`dispatch` is called by whichever process may have freed or filled a slot (a ``run()``,
a finishing supervisor, a reconciliation). One failed start does not stop the others: that
job ends ``failed`` with the reason, the failure goes to the operator's log, and the rest of
the claimed batch still starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox_kit.dbapi import TransientError, retry
from sandbox_kit.errors import SandboxKitError
from sandbox_kit.lifecycle import Claimed, Lifecycle

#: What a supervisor process inherits: enough to run Python, none of the caller's secrets
#: (issue 8). Everything else reaches it in the spec, on its stdin.
_SUPERVISOR_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT")
_started: set[int] = set()  # supervisors this process started that have not ended
_started_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Dispatched:
    """What a dispatch did: the jobs it started, and the one it kept for its caller."""

    started: list[str] = field(default_factory=list)
    kept: Claimed | None = None


def dispatch(
    lifecycle: Lifecycle,
    queue: dict[str, Any],
    *,
    log: logging.Logger,
    keep_one: bool = False,
    give_up_after_s: float = 30.0,
) -> Dispatched:
    """Start queued jobs, oldest first, while the running limits allow.

    Args:
        keep_one: do not start the oldest claimed job; hand it back as ``kept`` (a supervisor
            whose job just ended runs it itself, saving a process start).
    """
    if queue.get("executor") == "dask":
        from sandbox_kit import dask_executor

        try:  # the cluster's slots now: all of them, and the largest worker's
            total, widest = dask_executor.capacity(queue["dask_address"])
        except Exception as exc:
            log.warning("dispatch skipped, the Dask cluster is unavailable: %s", exc)
            return Dispatched()
        # SANDBOX_CPU_SLOTS, when set, is the capacity; else the workers' slots.
        queue = {**queue, "cpu_slots": queue.get("cpu_slots") or total, "widest": widest}
    try:
        claimed = retry(
            lambda: lifecycle.claim(
                # "max_running": specs queued before issue 15 named the capacity so.
                int(queue.get("cpu_slots", queue.get("max_running", 1))),
                dict(queue.get("per_type", {})),
                dict(queue.get("tokens", {})),
                executor=queue.get("executor", "local"),
                widest=queue.get("widest"),
            ),
            give_up_after_s=give_up_after_s,
        )
    except TransientError as exc:
        log.warning("dispatch skipped, the database is unavailable: %s", exc)
        return Dispatched()
    if queue.get("executor") == "dask":
        return Dispatched(_to_cluster(lifecycle, claimed, queue, log))
    kept = claimed.pop(0) if keep_one and claimed else None
    started: list[str] = []
    for job in claimed:
        try:
            start_supervisor(lifecycle, job)
        except Exception as exc:  # a start that fails must not strand the rest of the batch
            log.error("cannot start the supervisor of %s: %s", job.job_id, exc)
            with contextlib.suppress(Exception):
                lifecycle.finish(job.job_id, "failed", reason=f"cannot start supervisor: {exc}")
        else:
            started.append(job.job_id)
    return Dispatched(started, kept)


def _to_cluster(
    lifecycle: Lifecycle, claimed: list[Claimed], queue: dict[str, Any], log: logging.Logger
) -> list[str]:
    """Hand claimed jobs to the Dask cluster (issue 12). A job that cannot be handed over
    goes back to the queue (the cluster may be restarting), not to ``failed``."""
    from sandbox_kit import dask_executor

    started: list[str] = []
    for job in claimed:
        try:
            dask_executor.start(lifecycle, job, queue)
        except (OSError, TimeoutError, SandboxKitError) as exc:  # the cluster: try again later
            log.error("cannot hand %s to the Dask cluster: %s", job.job_id, exc)
            with contextlib.suppress(Exception):
                lifecycle.release(job.job_id, attempt=job.attempt)
        except Exception as exc:  # the job itself: it would fail every time
            log.error("cannot hand %s to the Dask cluster: %s", job.job_id, exc)
            with contextlib.suppress(Exception):
                lifecycle.finish(job.job_id, "failed", reason=f"cannot hand over to Dask: {exc}")
        else:
            started.append(job.job_id)
    if queue.get("dask_address"):
        dask_executor.release_orphans(lifecycle, queue["dask_address"], log)
    return started


def start_supervisor(lifecycle: Lifecycle, job: Claimed) -> None:
    """Start the detached supervisor of a claimed job and record its pid."""
    spec = {**job.spec, "db_url": lifecycle.conn.url}
    Path(spec["job_dir"]).mkdir(parents=True, exist_ok=True)
    env = {name: os.environ[name] for name in _SUPERVISOR_ENV if name in os.environ}
    proc = spawn_supervisor(spec, env)
    # Reap it when it ends, so a long-lived kernel does not collect zombies.
    with _started_lock:
        _started.add(proc.pid)
    threading.Thread(target=_reap, args=(proc,), name=f"reap-{job.job_id}", daemon=True).start()
    # From here the supervisor runs the job whatever happens to this record: a failure to
    # write it must not end the job (the supervisor records its own pid when it starts).
    try:
        retry(
            lambda: lifecycle.spawned(job.job_id, pid=proc.pid, pid_started=create_time(proc.pid)),
            give_up_after_s=30.0,
        )
    except TransientError as exc:
        from sandbox_kit.oplog import logger

        logger(spec.get("home")).warning("job %s: supervisor pid not recorded: %s", job.job_id, exc)


def spawn_supervisor(
    spec: dict[str, Any], env: dict[str, str], *, keep_pipe: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``python -m sandbox_kit.supervisor`` for ``spec``, detached (its own session),
    its errors in the job folder's ``supervisor.log``.

    The spec (database URL included) travels as one line on an inherited pipe, never argv or
    environ. With ``keep_pipe`` the pipe stays open: its end tells the supervisor that its
    starter (a Dask worker) died.
    """
    with open(Path(spec["job_dir"]) / "supervisor.log", "ab") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox_kit.supervisor"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            cwd=spec["job_dir"],
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(spec).encode() + b"\n")
    if keep_pipe:
        proc.stdin.flush()
    else:
        proc.stdin.close()
    return proc


def started_supervisors() -> set[int]:
    """The pids of the supervisors this process started that are still running: a
    supervisor that dispatches must not take them for its own job's processes."""
    with _started_lock:
        return set(_started)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    proc.wait()
    with _started_lock:
        _started.discard(proc.pid)


def create_time(pid: int) -> float | None:
    """When a process started (Unix time, as psutil reports it), or None if it is gone."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None
