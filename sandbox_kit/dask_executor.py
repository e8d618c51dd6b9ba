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
    """The Dask key of a job's attempt (a released attempt is submitted again under the
    same key: Dask then treats it as the same task)."""
    return f"{job_id}#{attempt}"


def job_of(key: str) -> str:
    """The job id of a task key."""
    return str(key).split("#", 1)[0]


def client(address: str) -> Any:
    """A Dask client for ``address``: the worker's own when called in a task, else one kept
    per process (and replaced when its scheduler went away)."""
    if not address:  # distributed.Client(None) would start a whole cluster in this process
        from sandbox_kit.errors import ClusterError

        raise ClusterError("the dask executor needs SANDBOX_DASK_ADDRESS (tcp://host:8786)")
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_client, get_worker

        get_worker()
        return get_client()
    with _clients_lock:
        found = _clients.get(address)
        if found is not None and found.status == "running":
            return found
        if found is not None:
            with contextlib.suppress(Exception):
                found.close()
        from sandbox_kit.cluster import connect

        _clients[address] = connect(address)
        return _clients[address]


def capacity(address: str) -> tuple[int, int]:
    """The cluster's CPU slots: all its workers' ``slots`` together, and the largest
    worker's (a job must fit on one worker)."""
    from sandbox_kit.cluster import workers

    slots = [w.slots for w in workers(client(address))]
    return sum(slots), max(slots, default=0)


def stage(store_url: str, spec: dict[str, Any], conn: Any) -> dict[str, str | None]:
    """Put what a job needs on a worker into the store when it is not there yet, at submit
    (on the host that has it): the model's bytes and the data source's folder. Returns the
    spec's ``model_key`` and ``data_key``, so any dispatcher (a worker too) can hand the job
    over without this host's files."""
    from sandbox_kit.store import Store, result_key

    store = Store(store_url)
    model = Path(spec["model_path"])
    model_key = f"models/{spec['model_sha256']}{model.suffix or '.py'}"
    if not store.exists(model_key):
        store.put_bytes(model_key, model.read_bytes())
    label, directory = spec.get("data_source"), spec["env"].get("DATA_SOURCE_DIR")
    data_key = None
    if label and directory:
        if label.startswith("job:"):
            source_id = label.removeprefix("job:")
            with conn.read() as st:
                row = st.run("SELECT attempt FROM jobs WHERE id = :id", {"id": source_id}).one()
            data_key = result_key(source_id, int(row[0] or 1) if row else 1)
        else:
            data_key = f"data/{Path(directory).name}"
        if not store.exists(data_key):
            store.put_dir(Path(directory), data_key)
    return {"model_key": model_key, "data_key": data_key}


def start(lifecycle: Lifecycle, job: Claimed, queue: dict[str, Any]) -> None:
    """Hand a claimed job to the cluster (raises when it cannot)."""
    from distributed import fire_and_forget

    spec = job.spec
    model = Path(spec["model_path"])
    # The registry's URL travels only when it holds no password (an SQLite file on a
    # one-host cluster); a worker elsewhere reads its own SANDBOX_DB_URL.
    url = lifecycle.conn.url
    payload = {
        **spec,
        "db_url": url if url.startswith("sqlite") else None,
        "store": queue.get("store"),
        # The model travels with the task from the host that has it; a worker that hands
        # the job over sends its store key only.
        "model_source": model.read_bytes() if model.is_file() else None,
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


def fetch_results(info: Any, store_url: str) -> bool:
    """Bring a finished remote job's result folder from the store into ``info.result_dir``
    (once; a marker file remembers it); returns True when the folder is there."""
    from sandbox_kit.store import Store, result_key

    folder = Path(info.result_dir)
    marker = folder.parent / ".result-fetched"
    if marker.exists():
        return True
    if not Store(store_url).get_dir(result_key(info.id, info.attempt), folder):
        return False
    with contextlib.suppress(OSError):
        marker.touch()
    return True


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


def catch_up(conn: Any, infos: list[Any]) -> None:
    """Bring the local copies of remote jobs' logs up to date, for the jobs in ``infos``
    whose copy is not known complete. Called after ``infos`` was read: a job seen ended then
    has every line of its log here, and its copy is marked complete (never read again)."""
    from sandbox_kit import logship
    from sandbox_kit.dbapi import TransientError

    for info in infos:
        if not info.remote or info.cached_from:
            continue
        done = Path(info.log_path).with_name(f".{Path(info.log_path).name}.complete")
        if done.exists():
            continue
        with contextlib.suppress(TransientError, OSError):
            logship.mirror(conn, info.id, info.log_path)
            if info.status.terminal:
                done.touch()


def cancel_task(address: str, job_id: str, attempt: int) -> None:
    """Dask's own cancel of a job's task, the second path after the registry's flag (a task
    still waiting for a slot then never starts)."""
    from distributed import Future

    with contextlib.suppress(Exception):
        own = client(address)
        own.cancel(Future(task_key(job_id, attempt), client=own), force=True)
