"""Where sandbox_kit keeps things, and the knobs an operator can turn.

A :class:`Settings` is built once per :class:`~sandbox_kit.Sandbox` from keyword arguments or,
failing those, from ``SANDBOX_*`` environment variables (documented in the README), so a
notebook, the dashboard, the CLI and cron all agree without a config file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox_kit.errors import ValidationError

ISOLATION_MODES = ("auto", "required", "off")
EXECUTORS = ("local", "dask")
NETWORK_MODES = ("none", "host")
_URL_START = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")
MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-job resource limits, applied to the model process before it starts.

    ``None`` means "no limit of ours" (the model still inherits whatever limit the sandbox was
    started under; a limit is never raised above that).
    """

    memory_bytes: int | None = 8 * GiB
    cpu_seconds: int | None = 4 * 3600
    file_bytes: int | None = 4 * GiB
    open_files: int | None = 1024


def _default_timeouts() -> dict[str, float | None]:
    # Wall-clock defaults per type: a day-ahead run may take a while, a real-time run must not.
    return {"DMO": 3600.0, "RMO": 900.0, "SO": 1800.0}


@dataclass(frozen=True, slots=True)
class Settings:
    """Operator settings; every field has a sensible default.

    Attributes:
        max_upload_bytes: largest model file accepted.
        max_running: CPU slots the queue fills when ``cpu_slots`` is not set (default: CPU
            count; ``SANDBOX_MAX_RUNNING``, its name from when every job took one slot).
        max_running_per_type: optional extra cap per model type, e.g. ``{"DMO": 1}``, in jobs.
        cpu_slots: CPU slots running jobs share across all processes (``SANDBOX_CPU_SLOTS``;
            None: ``max_running``; with the dask executor, the slots of the cluster's workers).
            A job takes as many as its model's header declares (``# sandbox: threads=4``), at
            least 1 and at most all (issue 15).
        threads: CPU slots per model type, overriding what the models declare
            (``SANDBOX_THREADS_DMO`` ...).
        tokens: licence pools, name -> tokens (``SANDBOX_TOKENS_GUROBI=2``): at most that many
            jobs that declare ``tokens=gurobi`` run at once, whatever their type. A pool that is
            not set does not limit.
        timeouts: default wall-clock timeout in seconds per model type (``None``: none).
        interpreters: python executable per model type (default: the sandbox's own).
        env_allow: names of the caller's environment variables passed on to models.
        limits: resource limits per job.
        log_cap_bytes: durable log size past which output is drained but not kept.
        kill_grace_s: seconds between SIGTERM and SIGKILL when stopping a job.
        heartbeat_s: how often a supervisor proves it is alive (2; ``SANDBOX_HEARTBEAT_S``).
        lost_after_s: heartbeat age after which a job whose supervisor is gone is ``lost``
            (20; ``SANDBOX_LOST_AFTER_S``; a Dask worker's job: whose heartbeat stopped).
        result_max_bytes: largest ``result.json`` read (1 MiB); a larger one is not read and
            the job's outcome is ``error`` (``SANDBOX_RESULT_MAX_MB``).
        max_metrics: metric names a job keeps from its result (200; ``SANDBOX_MAX_METRICS``).
        preview_rows: rows of a table read for its preview in the dashboard (200;
            ``SANDBOX_PREVIEW_ROWS``).
        inline_max_bytes: file bytes one dashboard view embeds as download links, in total
            (20 MiB; ``SANDBOX_INLINE_MAX_MB``); past it the page shows a command instead.
        isolation: ``auto`` (default: the strongest isolation this machine offers), ``required``
            (a job that cannot be isolated fails to start) or ``off`` (trusted code only);
            ``SANDBOX_ISOLATION``.
        network: ``none`` (loopback only, the default) or ``host`` per model type;
            ``SANDBOX_NETWORK`` for all types, ``SANDBOX_NETWORK_DMO`` ... for one.
        job_uid_base: first of the uids jobs run as when the sandbox runs as root, one per
            slot (200000; ``SANDBOX_JOB_UID_BASE``).
        max_processes: processes (and threads) one job may have at once (256;
            ``SANDBOX_MAX_PROCS``); a fork bomb stops there.
        db_retry_s: how long a supervisor keeps retrying to record a job's end while the
            database is unavailable (3600; ``SANDBOX_DB_RETRY_S``); the model's output keeps
            landing in its log meanwhile.
        cache: reuse an earlier identical run's result by default, per model type (off;
            ``SANDBOX_CACHE=1`` for all types, ``SANDBOX_CACHE_DMO=1`` ... for one); a run's
            own ``cache=`` (``--cache``/``--no-cache``) wins.
        data_max_bytes: largest data set accepted, all files together, a zip counted
            extracted (1 GiB; ``SANDBOX_DATA_MAX_MB``).
        sweep_max_scenarios: most scenarios one sweep may have (1000; ``SANDBOX_SWEEP_MAX``).
        cull_after_s: seconds within which a dashboard kernel whose page is gone is shut down
            (``SANDBOX_CULL_AFTER``, set for its kernels by ``sandbox-kit serve --cull-after``,
            600 there); the dashboard's views stop refreshing once the page's heartbeat stops.
            None (elsewhere, e.g. JupyterLab): views always refresh.
        notify: Apprise URLs told about every job end that needs a person, whoever started
            the job (``SANDBOX_NOTIFY``, comma-separated; issue 10). Schedules add their own.
        notify_on: the events they are told about (``SANDBOX_NOTIFY_ON``, comma-separated;
            default ``failed,timeout,lost,deadline,not_started``; add ``success``,
            ``infeasible`` or ``error`` to hear about those too).
        dashboard_url: the dashboard's address, linked from notifications
            (``SANDBOX_DASHBOARD_URL``; ``sandbox-kit serve`` sets it for its scheduler).
        scheduler_lease_s: how long a scheduler leads without renewing its lease; a leader
            that dies is replaced within this (30; ``SANDBOX_SCHEDULER_LEASE_S``).
        scheduler_grace_s: how late a fire time may be started; one older when a scheduler
            first sees it was missed (scheduler down, machine asleep) and follows the
            schedule's missed-run policy (120; ``SANDBOX_SCHEDULER_GRACE_S``).
        executor: where jobs run: ``local`` (a detached supervisor on this host) or ``dask``
            (the same supervisor on a worker of a Dask cluster; ``SANDBOX_EXECUTOR``; issue 12).
        dask_address: the Dask scheduler, e.g. ``tcp://10.0.0.5:8786``
            (``SANDBOX_DASK_ADDRESS``; required with ``executor="dask"``).
        store: where results and data sets travel between hosts: an fsspec URL, a folder by
            default (``$SANDBOX_HOME/store``), ``s3://bucket/prefix`` for object storage
            (``SANDBOX_STORE``).
        retries: how many times a lost job is queued again as a new attempt (0;
            ``SANDBOX_RETRIES`` for all types, ``SANDBOX_RETRIES_DMO`` ... for one).
    """

    max_upload_bytes: int = 10 * MiB
    max_running: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_running_per_type: Mapping[str, int] = field(default_factory=dict)
    cpu_slots: int | None = None
    threads: Mapping[str, int] = field(default_factory=dict)
    tokens: Mapping[str, int] = field(default_factory=dict)
    timeouts: Mapping[str, float | None] = field(default_factory=_default_timeouts)
    interpreters: Mapping[str, str] = field(default_factory=dict)
    env_allow: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    log_cap_bytes: int = GiB
    kill_grace_s: float = 5.0
    heartbeat_s: float = 2.0
    lost_after_s: float = 20.0
    result_max_bytes: int = MiB
    max_metrics: int = 200
    preview_rows: int = 200
    inline_max_bytes: int = 20 * MiB
    db_retry_s: float = 3600.0
    isolation: str = "auto"
    network: Mapping[str, str] = field(default_factory=dict)
    job_uid_base: int = 200_000
    max_processes: int = 256
    cache: Mapping[str, bool] = field(default_factory=dict)
    data_max_bytes: int = GiB
    sweep_max_scenarios: int = 1000
    cull_after_s: int | None = None
    notify: tuple[str, ...] = ()
    notify_on: tuple[str, ...] = ("failed", "timeout", "lost", "deadline", "not_started")
    dashboard_url: str | None = None
    scheduler_lease_s: float = 30.0
    scheduler_grace_s: float = 120.0
    executor: str = "local"
    dask_address: str | None = None
    store: str | None = None
    retries: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValidationError(f"executor must be local or dask, not {self.executor!r}")
        if self.executor == "dask" and not self.dask_address:
            raise ValidationError(
                "the dask executor needs the scheduler's address: set SANDBOX_DASK_ADDRESS "
                "(e.g. tcp://10.0.0.5:8786)"
            )
        for kind, times in self.retries.items():
            if not 0 <= times <= 100:
                raise ValidationError(f"retries for {kind} must be 0 to 100, not {times}")
        if self.isolation not in ISOLATION_MODES:
            modes = ", ".join(ISOLATION_MODES)
            raise ValidationError(f"isolation must be one of {modes}, not {self.isolation!r}")
        for kind, value in self.network.items():
            if value not in NETWORK_MODES:
                raise ValidationError(f"network for {kind} must be none or host, not {value!r}")

    def cache_for(self, model_type: str) -> bool:
        """Whether runs of this type reuse cached results unless told otherwise."""
        return self.cache.get(model_type, self.cache.get("*", False))

    def retries_for(self, model_type: str) -> int:
        """How many times a lost job of this type is queued again."""
        return max(0, self.retries.get(model_type, self.retries.get("*", 0)))

    def network_for(self, model_type: str) -> str:
        """``none`` or ``host``: what a job of this type may reach."""
        return self.network.get(model_type, self.network.get("*", "none"))

    @property
    def slot_capacity(self) -> int:
        """The CPU slots running jobs share: ``cpu_slots``, else ``max_running``."""
        return self.max_running if self.cpu_slots is None else self.cpu_slots

    def threads_for(self, model_type: str, declared: int) -> int:
        """The CPU slots a run of this type asks for: the operator's override, else what the
        model declares."""
        return max(1, self.threads.get(model_type, declared))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``SANDBOX_*`` variables; unset variables keep the defaults."""
        env = os.environ if environ is None else environ
        base = cls()
        per_type = {
            t: int(v) for t in ("DMO", "RMO", "SO") if (v := env.get(f"SANDBOX_MAX_RUNNING_{t}"))
        }
        timeouts = dict(base.timeouts)
        for t in ("DMO", "RMO", "SO"):
            if (v := env.get(f"SANDBOX_TIMEOUT_{t}")) is not None:
                timeouts[t] = _float(v, f"SANDBOX_TIMEOUT_{t}") or None
        interpreters = {t: v for t in ("DMO", "RMO", "SO") if (v := env.get(f"SANDBOX_PYTHON_{t}"))}
        limits = Limits(
            memory_bytes=_mib(env, "SANDBOX_MEMORY_MB", base.limits.memory_bytes),
            cpu_seconds=_int(env, "SANDBOX_CPU_SECONDS", base.limits.cpu_seconds),
            file_bytes=_mib(env, "SANDBOX_FILE_MB", base.limits.file_bytes),
            open_files=_int(env, "SANDBOX_OPEN_FILES", base.limits.open_files),
        )
        return cls(
            max_upload_bytes=_mib(env, "SANDBOX_MAX_UPLOAD_MB", base.max_upload_bytes) or 0,
            max_running=_int(env, "SANDBOX_MAX_RUNNING", base.max_running) or 1,
            max_running_per_type=per_type,
            cpu_slots=_int(env, "SANDBOX_CPU_SLOTS", None),
            threads={
                t: n
                for t in ("DMO", "RMO", "SO")
                if (n := _int(env, f"SANDBOX_THREADS_{t}", None)) is not None
            },
            tokens={
                name.removeprefix("SANDBOX_TOKENS_").lower(): _int(env, name, 0) or 0
                for name in sorted(env)
                if name.startswith("SANDBOX_TOKENS_") and len(name) > len("SANDBOX_TOKENS_")
            },
            timeouts=timeouts,
            interpreters=interpreters,
            env_allow=tuple(n for n in env.get("SANDBOX_ENV_ALLOW", "").split(",") if n),
            limits=limits,
            log_cap_bytes=_mib(env, "SANDBOX_LOG_CAP_MB", base.log_cap_bytes) or GiB,
            kill_grace_s=_float(env.get("SANDBOX_KILL_GRACE_S", "5"), "SANDBOX_KILL_GRACE_S"),
            heartbeat_s=_float(env.get("SANDBOX_HEARTBEAT_S", "2"), "SANDBOX_HEARTBEAT_S"),
            lost_after_s=_float(env.get("SANDBOX_LOST_AFTER_S", "20"), "SANDBOX_LOST_AFTER_S"),
            result_max_bytes=_mib(env, "SANDBOX_RESULT_MAX_MB", base.result_max_bytes) or 0,
            max_metrics=_int(env, "SANDBOX_MAX_METRICS", base.max_metrics) or 0,
            preview_rows=_int(env, "SANDBOX_PREVIEW_ROWS", base.preview_rows) or 0,
            inline_max_bytes=_mib(env, "SANDBOX_INLINE_MAX_MB", base.inline_max_bytes) or 0,
            db_retry_s=_float(env.get("SANDBOX_DB_RETRY_S", "3600"), "SANDBOX_DB_RETRY_S"),
            isolation=env.get("SANDBOX_ISOLATION", "auto").strip().lower() or "auto",
            network={
                kind: value.strip().lower()
                for kind, name in [("*", "SANDBOX_NETWORK")]
                + [(t, f"SANDBOX_NETWORK_{t}") for t in ("DMO", "RMO", "SO")]
                if (value := env.get(name))
            },
            job_uid_base=_int(env, "SANDBOX_JOB_UID_BASE", base.job_uid_base) or base.job_uid_base,
            max_processes=_int(env, "SANDBOX_MAX_PROCS", base.max_processes) or 0,
            cache={
                kind: _flag(value, name)
                for kind, name in [("*", "SANDBOX_CACHE")]
                + [(t, f"SANDBOX_CACHE_{t}") for t in ("DMO", "RMO", "SO")]
                if (value := env.get(name, "").strip())
            },
            data_max_bytes=_mib(env, "SANDBOX_DATA_MAX_MB", base.data_max_bytes) or 0,
            sweep_max_scenarios=_int(env, "SANDBOX_SWEEP_MAX", base.sweep_max_scenarios) or 0,
            cull_after_s=_int(env, "SANDBOX_CULL_AFTER", None),
            notify=split_urls(env.get("SANDBOX_NOTIFY", "")),
            notify_on=_words(env.get("SANDBOX_NOTIFY_ON", "")) or base.notify_on,
            dashboard_url=env.get("SANDBOX_DASHBOARD_URL") or None,
            scheduler_lease_s=_float(
                env.get("SANDBOX_SCHEDULER_LEASE_S", "30"), "SANDBOX_SCHEDULER_LEASE_S"
            ),
            scheduler_grace_s=_float(
                env.get("SANDBOX_SCHEDULER_GRACE_S", "120"), "SANDBOX_SCHEDULER_GRACE_S"
            ),
            executor=env.get("SANDBOX_EXECUTOR", "local").strip().lower() or "local",
            dask_address=env.get("SANDBOX_DASK_ADDRESS") or None,
            store=env.get("SANDBOX_STORE") or None,
            retries={
                kind: n
                for kind, name in [("*", "SANDBOX_RETRIES")]
                + [(t, f"SANDBOX_RETRIES_{t}") for t in ("DMO", "RMO", "SO")]
                if (n := _int(env, name, None)) is not None
            },
        )


@dataclass(frozen=True, slots=True)
class Paths:
    """The folders under ``SANDBOX_HOME``."""

    home: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None) -> Paths:
        """``home``, else ``$SANDBOX_HOME``, else the current directory; folders are created."""
        root = Path(home or os.environ.get("SANDBOX_HOME") or Path.cwd()).expanduser().resolve()
        paths = cls(root)
        # Closed to other users when created here (issue 8): logs are the sandbox's alone;
        # models, jobs and data sets can be passed through (0711) by a job uid that must reach
        # its own files without a filesystem view (the unshare fallback), never listed.
        for folder, mode in (
            (paths.models, 0o711),
            (paths.logs, 0o700),
            (paths.jobs, 0o711),
            (paths.data, 0o711),
        ):
            folder.mkdir(parents=True, exist_ok=True, mode=mode)
        return paths

    @property
    def models(self) -> Path:
        """Uploaded model files, under generated names."""
        return self.home / "models"

    @property
    def logs(self) -> Path:
        """One durable log per job."""
        return self.home / "logs"

    @property
    def jobs(self) -> Path:
        """One private working folder per job, holding its ``result/`` folder."""
        return self.home / "jobs"

    @property
    def data(self) -> Path:
        """Stored data sets, one read-only folder per distinct content (``data/<sha256>/``)."""
        return self.home / "data"

    def secrets(self, job_id: str) -> Path:
        """Where a job's allow-listed environment values wait for its supervisor (0600, outside
        every jail and outside the registry)."""
        return secrets_path(self.jobs, job_id)

    @property
    def store(self) -> Path:
        """The default store (issue 12): results and data sets as they travel between hosts."""
        return self.home / "store"

    @property
    def default_db_url(self) -> str:
        """The embedded SQLite registry."""
        return f"sqlite:///{self.home / 'sandbox.db'}"


def secrets_path(jobs: Path, job_id: str) -> Path:
    """``jobs/.<job id>.env``: see :meth:`Paths.secrets`."""
    return jobs / f".{job_id}.env"


def _int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value) or None
    except ValueError:
        raise ValidationError(f"{name} must be a whole number, not {value!r}") from None


def _mib(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    value = _int(env, name, None)
    return default if value is None and name not in env else (value * MiB if value else None)


def _flag(value: str, name: str) -> bool:
    word = value.lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValidationError(f"{name} must be 1 or 0 (true or false), not {value!r}")


def split_urls(value: str) -> tuple[str, ...]:
    """URLs separated by commas or blanks; a comma inside a URL (``?to=a@x,b@y``) stays, as
    only a separator followed by ``scheme://`` splits."""
    return tuple(url.strip(" ,") for url in _URL_START.split(value.strip()) if url.strip(" ,"))


def _words(value: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(word.strip() for word in value.split(",") if word.strip())


def _float(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValidationError(f"{name} must be a number, not {value!r}") from None
