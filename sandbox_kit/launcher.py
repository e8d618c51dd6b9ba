"""Starting, queueing, cancelling and reconciling jobs, from any process.

There is no daemon. ``submit`` writes a ``queued`` row and dispatches: the executor claims free
slots under the database's write lock (so the limits hold across every kernel, CLI call and
supervisor) and starts one detached supervisor per claimed job. A finishing supervisor and a
reconciliation dispatch too, so queued jobs start in FIFO order as slots free even after the
process that queued them has exited. Every status change goes through
:mod:`sandbox_kit.lifecycle`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox_kit import cache as result_cache
from sandbox_kit import fingerprint
from sandbox_kit.config import Paths, Settings
from sandbox_kit.datasource import Source
from sandbox_kit.db import Database
from sandbox_kit.errors import RunError, ValidationError
from sandbox_kit.lifecycle import CancelTicket, Guard, Lifecycle, utcnow
from sandbox_kit.records import Model, dumps_config

_ID_ALPHABET = string.ascii_lowercase + string.digits
_BASIC_PATH = "/usr/local/bin:/usr/bin:/bin"


def new_job_id(model_type: str) -> str:
    """``<TYPE>_<unix ms>_<6 random chars>``, e.g. ``DMO_1764331200000_k3f9qa``."""
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
    return f"{model_type}_{int(time.time() * 1000)}_{suffix}"


def submit(
    db: Database,
    lifecycle: Lifecycle,
    paths: Paths,
    settings: Settings,
    model: Model,
    *,
    config: dict[str, Any] | None,
    source: Source | None,
    timeout: float | None,
    cache: bool | None = None,
    sweep: tuple[str, int] | None = None,
    started_by: str | None = None,
    schedule_id: int | None = None,
    deadline_at: datetime | None = None,
    guard: Guard | None = None,
    retries: int | None = None,
) -> str:
    """Queue a run of ``model`` (the caller dispatches); returns the job id.

    ``started_by`` is who asked (recorded on the job and in the audit trail, issue 13).
    ``schedule_id`` and ``deadline_at`` mark a scheduled run; ``guard`` runs inside the
    job's insert transaction and may refuse it (:meth:`Lifecycle.create`, issue 10), in which
    case nothing of the job is left behind.

    ``source`` is the data source, already pinned (:func:`sandbox_kit.datasource.resolve`).
    With ``cache`` (default: the type's setting) an identical earlier run's result is reused:
    the job is created ``success`` at once and nothing is queued (issue 11). ``sweep`` is the
    sweep id and scenario index the job belongs to. ``retries`` (default: the type's
    setting) is how many times a lost attempt is queued again (issue 12).
    """
    config = {} if config is None else config
    config_json = check_run_options(config, timeout=timeout, retries=retries)
    kind = model.model_type.value
    # abspath, not realpath: a venv's python is a symlink that must stay one (pyvenv.cfg).
    interpreter = os.path.abspath(settings.interpreters.get(kind) or sys.executable)
    effective_timeout = timeout if timeout is not None else settings.timeouts.get(kind)
    environment = fingerprint.environment(db, interpreter)
    key = result_cache.make_key(model, json.loads(config_json), source, environment)
    extra: dict[str, Any] = {
        "data_source": None if source is None else source.label,
        "data_source_sha256": None if source is None else source.sha256,
        "cache_key": key.digest,
        "cache_parts": json.dumps(key.parts, sort_keys=True),
        "sweep_id": None if sweep is None else sweep[0],
        "sweep_index": None if sweep is None else sweep[1],
        "started_by": started_by,
        "executor": settings.executor,
        "retries": settings.retries_for(kind) if retries is None else retries,
    }
    if schedule_id is not None:
        extra["schedule_id"] = schedule_id
    if deadline_at is not None:
        extra["deadline_at"] = deadline_at
    job_id = new_job_id(kind)
    own = dict(
        id=job_id,
        model_id=model.id,
        model_type=kind,
        model_name=model.name,
        model_version=model.version,
        model_sha256=model.sha256,
        config=config_json,
        data_source_id=None if source is None else source.asked,
        timeout_s=effective_timeout,
    )
    if settings.cache_for(kind) if cache is None else cache:
        hit = result_cache.lookup(db, key)
        if hit is not None and lifecycle.create_cached(
            cached_from=hit.job_id, guard=guard, **own, **extra
        ):
            return job_id
        extra["cache_miss_reason"] = result_cache.miss_reason(db, key)
    job_dir = paths.jobs / job_id
    result_dir = job_dir / "result"
    threads = settings.threads_for(kind, model.threads)
    env = model_env(
        job_id=job_id,
        kind=kind,
        config_json=config_json,
        job_dir=job_dir,
        result_dir=result_dir,
        interpreter=interpreter,
        settings=settings,
    )
    if source is not None:
        env["DATA_SOURCE_ID"] = source.env_id
        if source.directory is not None:
            # Bound read-only in the jail (jail.wrap's data_dir).
            env["DATA_SOURCE_DIR"] = source.directory
    limits = settings.limits
    spec = {
        "job_id": job_id,
        "model_type": kind,
        "model_path": model.path,
        "interpreter": interpreter,
        "python_version": (
            environment.python_version if environment else python_version(interpreter)
        ),
        "env": env,
        "job_dir": str(job_dir),
        "result_dir": str(result_dir),
        "log_path": str(paths.logs / f"{job_id}.log"),
        "timeout_s": effective_timeout,
        "limits": [limits.memory_bytes, limits.cpu_seconds, limits.file_bytes, limits.open_files],
        "log_cap": settings.log_cap_bytes,
        "kill_grace_s": settings.kill_grace_s,
        "heartbeat_s": settings.heartbeat_s,
        "home": str(paths.home),
        "queue": queue_spec(settings),
        "result_max_bytes": settings.result_max_bytes,
        "max_metrics": settings.max_metrics,
        "db_retry_s": settings.db_retry_s,
        "model_sha256": model.sha256,
        "isolation": settings.isolation,
        # Probed once per process here, so each supervisor need not pay a trial run.
        "jail_tool": None if settings.isolation == "off" else jail_tool(),
        "network": settings.network_for(kind),
        "job_uid_base": settings.job_uid_base,
        "max_processes": settings.max_processes,
        # CPU slots asked for; the claim records what the job got (issue 15).
        "threads": threads,
        # What the data source is, so a Dask worker can fetch it from the store (issue 12).
        "data_source": None if source is None else source.label,
    }
    if settings.executor == "dask":  # issue 12: the model and data source into the store
        from sandbox_kit import dask_executor

        spec.update(dask_executor.stage(settings.store or str(paths.store), spec, lifecycle.conn))
    result_dir.mkdir(parents=True)
    try:
        keep_secrets(paths, job_id, settings.env_allow)
        lifecycle.create(
            **own,
            guard=guard,
            log_path=spec["log_path"],
            result_dir=str(result_dir),
            spec=json.dumps(spec),
            threads=threads,
            tokens="+".join(model.tokens),
            **extra,
        )
    except BaseException:
        # A refused insert (a guard, a database error) leaves no folder and no secrets file.
        shutil.rmtree(job_dir, ignore_errors=True)
        paths.secrets(job_id).unlink(missing_ok=True)
        raise
    return job_id


def check_run_options(config: object, *, timeout: float | None, retries: int | None) -> str:
    """Refuse what a run cannot take; returns the config as the JSON the job keeps.

    Raises:
        ValidationError: the config is not a JSON-serialisable dict, the timeout is not a
            positive number of seconds or the retries are not 0-100.
    """
    if not isinstance(config, dict):
        raise ValidationError(f"config must be a JSON object (a dict), not {type(config).__name__}")
    try:
        config_json = dumps_config(config)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"config is not JSON-serialisable: {exc}") from None
    if retries is not None and not (isinstance(retries, int) and 0 <= retries <= 100):
        raise ValidationError(f"retries must be a whole number from 0 to 100, not {retries!r}")
    if timeout is not None and not timeout > 0:
        raise ValidationError(f"timeout must be a positive number of seconds, not {timeout}")
    return config_json


def cancel(lifecycle: Lifecycle, job_id: str, *, actor: str | None = None) -> CancelTicket:
    """Stop a job: a queued one never starts, a running one's tree is killed, a finished one
    is left alone. ``actor`` is recorded in the audit trail. Returns what the lifecycle did."""
    ticket = lifecycle.cancel(job_id, actor=actor)
    # The supervisor reads the flag at its next heartbeat; once it has beaten, its signal
    # handlers are installed and SIGUSR1 ("cancel requested") makes the cancel immediate.
    # (Signalled earlier, a supervisor still starting up would die without recording anything.)
    pid = ticket.supervisor_pid
    if ticket.supervisor_ready and pid and _same_process(pid, ticket.supervisor_started):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGUSR1)
    return ticket


def reconcile(
    lifecycle: Lifecycle, *, lost_after_s: float, now: Callable[[], datetime] = utcnow
) -> list[str]:
    """Mark ``lost`` the running jobs whose supervisor is gone; returns their ids.

    A job is lost when its heartbeat is older than ``lost_after_s`` and its supervisor's pid is
    gone or now belongs to another process (start times differ). A live one is left alone.
    """
    host = platform.node()
    lost: list[str] = []
    for job in lifecycle.running():
        age = float("inf") if job.last_sign is None else (now() - job.last_sign).total_seconds()
        pid = job.supervisor_pid
        if age < lost_after_s:
            continue
        if job.host in (None, host) and pid and _same_process(pid, job.supervisor_started):
            continue
        if job.remote and job.worker is None:
            continue  # still waiting for a Dask worker (see dask_executor.release_orphans)
        if job.worker is not None:  # a Dask worker's job: its heartbeat is the only sign
            reason = f"worker {job.worker} stopped answering (last heartbeat {age:.0f} s ago)"
        elif job.host not in (None, host) and age < 10 * lost_after_s:
            continue  # another host's supervisor: only its heartbeat can speak for it
        else:
            reason = f"supervisor lost (pid {pid} gone; last heartbeat {age:.0f} s ago)"
        if lifecycle.mark_lost(job.job_id, reason, attempt=job.attempt):
            lost.append(job.job_id)
            if job.host in (None, host):
                _kill_orphans(job.job_id)
    return lost  # the caller dispatches: freed slots and orphaned queued jobs alike


def _kill_orphans(job_id: str) -> None:
    """Kill what is left of a lost job's process tree: nobody records its output any more.

    The processes are found by the ``JOB_ID`` in their environment, which every process of the
    model inherits (the supervisor may have died before it recorded the model's pid).
    """
    import psutil

    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("JOB_ID") == job_id:
                proc.kill()


def model_env(
    *,
    job_id: str,
    kind: str,
    config_json: str,
    job_dir: Path,
    result_dir: Path,
    interpreter: str,
    settings: Settings,
) -> dict[str, str]:
    """The environment a model gets (DESIGN.md's contract; a data source is added apart)."""
    # Exactly the design's contract: nothing else of the caller's environment (its secrets
    # included) reaches a model, except names the operator allow-listed (those travel apart,
    # see keep_secrets, so the job row never holds their values).
    return dict(
        JOB_ID=job_id,
        MODEL_TYPE=kind,
        CONFIG=config_json,
        SANDBOX_JOB_DIR=str(job_dir),
        SANDBOX_RESULT_DIR=str(result_dir),
        PATH=f"{Path(interpreter).parent}:{_BASIC_PATH}",
        HOME=str(job_dir),
        LANG="C.UTF-8",
        TZ="UTC",
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
        PYTHONDONTWRITEBYTECODE="1",
    )


def keep_secrets(paths: Paths, job_id: str, names: tuple[str, ...]) -> None:
    """Leave the allow-listed environment values for a job's supervisor (0600 file)."""
    # SANDBOX_ENV_ALLOW values (API keys, ...) are written to a 0600 file outside every jail
    # and outside the registry (issue 8); the supervisor reads and deletes it at start.
    values = {name: os.environ[name] for name in names if name in os.environ}
    if not values:
        return
    path = paths.secrets(job_id)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(values, out)


def jail_tool() -> str | None:
    """The jail tool this machine offers (probed once per process), or None."""
    from sandbox_kit import jail

    return jail.probe().tool


def queue_spec(settings: Settings) -> dict[str, Any]:
    """The queue limits a dispatcher needs, as plain data (they travel in the run spec)."""
    queue: dict[str, Any] = {
        "cpu_slots": settings.slot_capacity,
        "per_type": dict(settings.max_running_per_type),
        "tokens": dict(settings.tokens),
    }
    if settings.executor == "dask":  # issue 12: where claimed jobs go, and their results
        queue.update(executor="dask", dask_address=settings.dask_address, store=settings.store)
        if settings.cpu_slots is None:  # the cluster's slots, asked at each dispatch
            queue["cpu_slots"] = None
    return queue


def python_version(interpreter: str) -> str:
    """The version of the Python at ``interpreter`` (``unknown`` when it cannot tell)."""
    if interpreter == sys.executable:
        return platform.python_version()
    try:
        out = subprocess.run(
            [interpreter, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            timeout=10,
            check=True,
            env={"PATH": _BASIC_PATH},
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.decode(errors="replace").strip() or "unknown"


def _same_process(pid: int, started: float | None) -> bool:
    """True when ``pid`` is alive and is the process that started at ``started``."""
    import psutil  # not at the top: the CLI's read commands import this module (issue 9)

    try:
        proc = psutil.Process(pid)
        created, zombie = proc.create_time(), proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
    return not zombie and (started is None or abs(created - started) < 0.5)


def ensure_model_runnable(model: Model) -> None:
    """Refuse to run an archived model (it is hidden from runs until restored)."""
    if model.status.value == "archived":
        raise RunError(
            f"model {model.id} ({model.label}) is archived; restore it before running it",
            model_type=model.model_type.value,
        )
