"""The Dask executor, registry side: claimed jobs become tasks on a Dask cluster (issue 12).

The registry stays the single source of truth: :meth:`~sandbox_kit.lifecycle.Lifecycle.claim`
picks the jobs (oldest first, within the CPU slots, per-type caps and licence pools), exactly
as for the local executor; each claimed job then becomes one Dask task holding ``slots`` equal
to its CPU slots, submitted with ``fire_and_forget`` so it outlives whoever submitted it. The
task (:func:`sandbox_kit.dask_worker.run_job`) runs the job's usual supervisor on a worker.

Nothing assumes a shared filesystem: the task carries the model's bytes (checked against the
registry's sha256 on the worker), a data source travels through the store
(:mod:`sandbox_kit.store`), the log comes back through the registry
(:mod:`sandbox_kit.logship`) and the results through the store again
(:func:`fetch_results`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from sandbox_kit.lifecycle import Claimed, Lifecycle

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()
#: A claim older than this whose task the scheduler does not know (it restarted) is queued
#: again (see :func:`release_orphans`).
ORPHAN_AFTER_S = 30.0


def task_key(job_id: str, attempt: int) -> str:
    """The Dask key of a job's attempt (one task per attempt, never reused)."""
    return f"{job_id}#{attempt}"


def job_of(key: str) -> str:
    """The job id of a task key."""
    return str(key).split("#", 1)[0]


def client(address: str) -> Any:
    """A Dask client for ``address``: the worker's own when called in a task, else one kept
    per process (and replaced when its scheduler went away)."""
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_client, get_worker

        get_worker()
        return get_client()
    with _clients_lock:
        found = _clients.get(address)
        if found is not None and found.status == "running":
            return found
        from sandbox_kit.cluster import connect

        _clients[address] = connect(address)
        return _clients[address]


def capacity(address: str) -> int:
    """The CPU slots of the cluster: the ``slots`` of all its workers together."""
    from sandbox_kit.cluster import total_slots

    return int(total_slots(client(address)))


def start(lifecycle: Lifecycle, job: Claimed, queue: dict[str, Any]) -> None:
    """Hand a claimed job to the cluster (raises when it cannot: the caller releases it)."""
    from distributed import fire_and_forget

    spec = job.spec
    payload = {
        **spec,
        "db_url": lifecycle.conn.url,
        "store": queue.get("store"),
        "model_source": Path(spec["model_path"]).read_bytes(),
        "data_key": _data_key(spec, queue.get("store")),
        "queue": queue,
    }
    # Allow-listed secrets are the worker's own (its SANDBOX_ENV_ALLOW); none travel.
    with contextlib.suppress(OSError):
        os.unlink(Path(spec["job_dir"]).parent / f".{job.job_id}.env")
    from sandbox_kit.dask_worker import run_job

    future = client(queue["dask_address"]).submit(
        run_job,
        payload,
        key=task_key(job.job_id, job.attempt),
        resources={"slots": job.threads},
        pure=False,
        retries=0,
    )
    fire_and_forget(future)  # type: ignore[no-untyped-call]


def release_orphans(lifecycle: Lifecycle, address: str, log: logging.Logger) -> list[str]:
    """Queue again the claimed jobs whose task the scheduler no longer knows (a scheduler
    restart loses the tasks that had not reached a worker); returns their ids."""
    waiting = lifecycle.untaken(older_than_s=ORPHAN_AFTER_S)
    if not waiting:
        return []
    try:
        known = set(client(address).run_on_scheduler(_scheduler_keys))
    except Exception as exc:
        log.warning("cannot ask the Dask scheduler about claimed jobs: %s", exc)
        return []
    released = []
    for job_id, attempt in waiting:
        if task_key(job_id, attempt) not in known and lifecycle.release(job_id, attempt=attempt):
            released.append(job_id)
    return released


def _scheduler_keys(dask_scheduler: Any) -> list[str]:
    return [str(key) for key in dask_scheduler.tasks]


def _data_key(spec: dict[str, Any], store_url: str | None) -> str | None:
    """The store key of the job's data source, uploaded now when the store lacks it."""
    label = spec.get("data_source")
    directory = spec["env"].get("DATA_SOURCE_DIR")
    if not label or not directory:
        return None
    if label.startswith("job:"):
        key = f"results/{label.removeprefix('job:')}"
    else:
        key = f"data/{Path(directory).name}"
    store = _store(spec, store_url)
    if not store.exists(key):
        store.put_dir(Path(directory), key)
    return key


def _store(spec: dict[str, Any], store_url: str | None) -> Any:
    from sandbox_kit.store import Store

    return Store(store_url or str(Path(spec["home"]) / "store"))


def fetch_results(info: Any, store_url: str) -> bool:
    """Bring a finished remote job's result folder from the store into ``info.result_dir``
    (once; a marker file remembers it); returns True when the folder is there."""
    from sandbox_kit.store import Store

    folder = Path(info.result_dir)
    marker = folder.parent / ".result-fetched"
    if marker.exists():
        return True
    if not Store(store_url).get_dir(f"results/{info.id}", folder):
        return False
    with contextlib.suppress(OSError):
        marker.touch()
    return True


#: How long after its end a remote job's log is still brought up to date by list reads.
_RECENT_S = 600.0
_checked: set[tuple[str, str]] = set()


def check_cluster(address: str | None, db_url: str) -> None:
    """Refuse what cannot work before a job is queued (once per process): no scheduler
    address, a scheduler out of reach, or an SQLite registry the workers cannot share."""
    from sandbox_kit.errors import ClusterError

    if not address:
        raise ClusterError("the dask executor needs SANDBOX_DASK_ADDRESS (tcp://host:8786)")
    if (address, db_url) in _checked:
        return
    from sandbox_kit.cluster import check_registry

    check_registry(db_url, client(address))
    _checked.add((address, db_url))


def catch_up(conn: Any, infos: list[Any], *, now: Any = None) -> None:
    """Bring the local copies of remote jobs' logs up to date, for the jobs in ``infos``
    that run, ended lately, or have no local copy yet (read after ``infos`` was: a job seen
    ended then has every line of its log here)."""
    from datetime import UTC, datetime

    from sandbox_kit import logship
    from sandbox_kit.dbapi import TransientError

    moment = now or datetime.now(UTC)
    for info in infos:
        if not info.remote or info.cached_from:
            continue
        ended = info.finished_at
        if (
            ended is None
            or (moment - ended).total_seconds() < _RECENT_S
            or not os.path.exists(info.log_path)
        ):
            with contextlib.suppress(TransientError, OSError):
                logship.mirror(conn, info.id, info.log_path)


def cancel_task(address: str, job_id: str, attempt: int) -> None:
    """Dask's own cancel of a job's task, the second path after the registry's flag (a task
    still waiting for a slot then never starts)."""
    from distributed import Future

    with contextlib.suppress(Exception):
        own = client(address)
        own.cancel(Future(task_key(job_id, attempt), client=own), force=True)
