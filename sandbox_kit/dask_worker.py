"""The Dask executor, worker side: the task that runs one job's attempt (issue 12).

:func:`run_job` runs in a worker thread. It takes the attempt in the registry (a task Dask
delivers twice, or one for an attempt that is over, runs nothing), lays the job out in the
worker's scratch folder (the model's bytes, its data source from the store, the worker's own
limits, isolation and allow-listed secrets), then starts the same supervisor the local
executor starts and waits for it. The supervisor ships the log into the registry as it is
written, uploads the results to the store and records the end, fenced by the attempt.

The supervisor is tied to the worker process by a pipe: if the worker dies (SIGKILL, its host
gone), the pipe closes, and the supervisor stops the model and records the attempt lost
(queued again when retries are left). A worker that closes in an orderly way (its scheduler
restarted, an operator stopped it) first says ``detach``: its jobs run on and record their end.
Then the task starts the next queued jobs through the worker's own client.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandbox_kit.config import Paths, Settings
from sandbox_kit.dbapi import Connection, retry
from sandbox_kit.lifecycle import Lifecycle

_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
#: What the supervisor needs of the worker's environment to reach the store (its model never
#: sees any of it): object-store credentials and settings, fsspec's own configuration.
_STORE_ENV_PREFIXES = ("AWS_", "FSSPEC_", "GOOGLE_", "AZURE_")
#: This worker's supervisors, by pid, with the event that says the worker let them go.
_running: dict[int, tuple[subprocess.Popen[bytes], threading.Event]] = {}
_running_lock = threading.Lock()
PLUGIN_NAME = "sandbox-kit"


def run_job(payload: dict[str, Any]) -> str:
    """Run one attempt of a job on this worker; returns what became of it (for Dask's
    record only: the registry holds the job's status)."""
    from distributed import get_worker

    worker = get_worker()
    settings = Settings.from_env()
    # Beside the worker's own folder, not in it: a nanny removes that one when its worker
    # dies, and a job's folder must outlive the worker that started it.
    home = Paths.resolve(
        os.environ.get("SANDBOX_WORKER_DIR") or Path(worker.local_directory).parent / "sandbox-kit"
    )
    db_url = os.environ.get("SANDBOX_DB_URL") or payload.get("db_url")
    if not db_url:
        raise RuntimeError(
            f"worker {worker.address} has no SANDBOX_DB_URL: it cannot reach the registry"
        )
    lifecycle = Lifecycle(Connection(db_url, name=f"sandbox-kit worker {payload['job_id']}"))
    job_id, attempt = payload["job_id"], int(payload["attempt"])
    try:
        taken = retry(
            lambda: lifecycle.take(job_id, attempt=attempt, worker=worker.address),
            give_up_after_s=60.0,
        )
        if not taken:
            return "skipped"  # delivered twice, or the attempt is over
        try:
            # Fetching a big data set may outlast the heartbeat window: beat meanwhile.
            with _beating(db_url, job_id, attempt, settings.heartbeat_s):
                spec = local_spec(payload, home, settings, worker.address, db_url)
        except Exception as exc:
            lifecycle.finish(
                job_id,
                "failed",
                attempt=attempt,
                reason=f"cannot prepare the job on worker {worker.address}: {exc}",
            )
            return "failed"
        _install_plugin(worker)
        lifecycle.conn.close()  # not held for the whole run (it reopens for the dispatch)
        outcome = _supervise(spec)
        _dispatch_next(lifecycle, payload["queue"], home)
        return outcome
    finally:
        lifecycle.conn.close()


@contextlib.contextmanager
def _beating(db_url: str, job_id: str, attempt: int, period: float) -> Iterator[None]:
    """Heartbeats for a taken attempt until its supervisor starts its own."""
    stop = threading.Event()
    conn = Connection(db_url, name=f"sandbox-kit worker {job_id}")

    def beat() -> None:
        beating = Lifecycle(conn)
        while not stop.wait(period):
            with contextlib.suppress(Exception):
                beating.heartbeat(job_id, attempt=attempt)

    thread = threading.Thread(target=beat, name=f"beat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        conn.close()


def local_spec(
    payload: dict[str, Any], home: Paths, settings: Settings, worker: str, db_url: str
) -> dict[str, Any]:
    """The supervisor's spec on this worker: the registry's, with this worker's folders,
    interpreter, limits and isolation."""
    from sandbox_kit import launcher

    job_id, kind, attempt = payload["job_id"], payload["model_type"], int(payload["attempt"])
    # One folder and one log per attempt: an earlier attempt's may still be going away.
    name = job_id if attempt == 1 else f"{job_id}.{attempt}"
    job_dir = home.jobs / name
    result_dir = job_dir / "result"
    result_dir.mkdir(parents=True)
    interpreter = os.path.abspath(settings.interpreters.get(kind) or sys.executable)
    env = launcher.model_env(
        job_id=job_id,
        kind=kind,
        config_json=payload["env"]["CONFIG"],
        job_dir=job_dir,
        result_dir=result_dir,
        interpreter=interpreter,
        settings=settings,
    )
    if "DATA_SOURCE_ID" in payload["env"]:
        env["DATA_SOURCE_ID"] = payload["env"]["DATA_SOURCE_ID"]
    if payload.get("data_key"):
        env["DATA_SOURCE_DIR"] = str(_fetch_data(payload, home, settings))
    launcher.keep_secrets(home, job_id, settings.env_allow)
    limits = settings.limits
    log_path = home.logs / f"{name}.log"
    log_path.unlink(missing_ok=True)
    return {
        **{k: v for k, v in payload.items() if k not in ("model_source", "data_key", "store")},
        "model_path": str(_write_model(payload, home, settings)),
        "interpreter": interpreter,
        "env": env,
        "job_dir": str(job_dir),
        "result_dir": str(result_dir),
        "log_path": str(log_path),
        "limits": [limits.memory_bytes, limits.cpu_seconds, limits.file_bytes, limits.open_files],
        "log_cap": settings.log_cap_bytes,
        "kill_grace_s": settings.kill_grace_s,
        "heartbeat_s": settings.heartbeat_s,
        "home": str(home.home),
        "queue": {},  # the task starts the next jobs, not the supervisor
        "result_max_bytes": settings.result_max_bytes,
        "max_metrics": settings.max_metrics,
        "db_retry_s": settings.db_retry_s,
        "isolation": settings.isolation,
        "jail_tool": None if settings.isolation == "off" else launcher.jail_tool(),
        "network": settings.network_for(kind),
        "job_uid_base": settings.job_uid_base,
        "max_processes": settings.max_processes,
        "db_url": db_url,
        "remote": {
            "attempt": int(payload["attempt"]),
            "worker": worker,
            "store": _store_url(payload, settings, home),
        },
    }


def _store_url(payload: dict[str, Any], settings: Settings, home: Paths) -> str:
    # The worker's own setting first; else the registry's (a folder both hosts see, or the
    # default folder on a one-host cluster).
    return settings.store or payload.get("store") or str(Path(payload["home"]) / "store")


def _write_model(payload: dict[str, Any], home: Paths, settings: Settings) -> Path:
    """The model's bytes (from the task, else from the store) as a read-only file named by
    its sha256 (the supervisor checks the hash before it runs it)."""
    suffix = Path(payload["model_path"]).suffix or ".py"
    path = home.models / f"{payload['model_sha256']}{suffix}"
    if not path.exists():
        source = payload.get("model_source")
        if source is None:
            from sandbox_kit.store import Store

            source = Store(_store_url(payload, settings, home)).get_bytes(payload["model_key"])
            if source is None:
                raise FileNotFoundError(f"model {payload['model_key']} is not in the store")
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_bytes(source)
        partial.chmod(0o444)
        os.replace(partial, path)
    return path


def _fetch_data(payload: dict[str, Any], home: Paths, settings: Settings) -> Path:
    """The data source's folder on this worker, fetched from the store once per content."""
    from sandbox_kit.store import Store

    key = str(payload["data_key"])
    folder: Path = home.data / key.replace("/", "-")
    if folder.is_dir():
        return folder
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.{threading.get_ident()}")
    shutil.rmtree(partial, ignore_errors=True)
    if not Store(_store_url(payload, settings, home)).get_dir(key, partial):
        raise FileNotFoundError(f"data source {payload.get('data_source')} is not in the store")
    try:
        os.rename(partial, folder)
    except OSError:  # another task fetched it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _supervise(spec: dict[str, Any]) -> str:
    """Start the supervisor and wait for it (or for this worker's orderly close)."""
    from sandbox_kit.executor import spawn_supervisor

    env = {
        name: value
        for name, value in os.environ.items()
        if name in _ENV or name.startswith(_STORE_ENV_PREFIXES)
    }
    proc = spawn_supervisor(spec, env, keep_pipe=True)
    detached = threading.Event()
    with _running_lock:
        _running[proc.pid] = (proc, detached)
    try:
        while not detached.is_set():
            try:
                proc.wait(timeout=0.25)  # returns as soon as the supervisor ends
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        with _running_lock:
            _running.pop(proc.pid, None)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
    return "detached" if proc.returncode is None else "done"


def detach_all() -> None:
    """This worker is closing in an orderly way: its jobs run on without it."""
    with _running_lock:
        running = list(_running.values())
    for proc, detached in running:
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            proc.stdin.write(b"detach\n")
            proc.stdin.flush()
        detached.set()


def _install_plugin(worker: Any) -> None:
    if PLUGIN_NAME in worker.plugins:
        return
    from distributed import WorkerPlugin

    class _Detach(WorkerPlugin):
        def teardown(self, worker: Any) -> None:
            detach_all()

    worker.plugins[PLUGIN_NAME] = _Detach()


def _dispatch_next(lifecycle: Lifecycle, queue: dict[str, Any], home: Paths) -> None:
    from sandbox_kit.executor import dispatch
    from sandbox_kit.oplog import logger

    with contextlib.suppress(Exception):  # the registry side dispatches again anyway
        dispatch(lifecycle, queue, log=logger(home.home))
