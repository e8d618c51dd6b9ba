"""The :class:`Sandbox` facade: the one object notebooks, widgets and the CLI talk to."""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox_kit import audit, dask_executor, datasource, executor, launcher, sweeps
from sandbox_kit import cache as result_cache
from sandbox_kit.config import Paths, Settings
from sandbox_kit.datasets import DataStore
from sandbox_kit.db import Database
from sandbox_kit.dbapi import Connection
from sandbox_kit.errors import RunError, SandboxKitError, ValidationError, reason_of
from sandbox_kit.jobs import Job
from sandbox_kit.jobstore import JobStore
from sandbox_kit.lifecycle import Lifecycle
from sandbox_kit.oplog import logger
from sandbox_kit.records import (
    AuditEntry,
    DataSet,
    JobInfo,
    JobStatus,
    Model,
    ModelStatus,
    ModelType,
    Scenario,
    Schedule,
    ScheduleFire,
    SweepInfo,
)
from sandbox_kit.registry import Registry
from sandbox_kit.store import Store
from sandbox_kit.sweeps import Sweep, SweepStore
from sandbox_kit.validation import check_size, validate_upload

if TYPE_CHECKING:
    from sandbox_kit.schedules import ScheduleStore

_RECONCILE_EVERY_S = 5.0
_CELL_FILENAME = "cell.py"  # what errors about a %%sandbox cell's code call it


class Sandbox:
    """A model registry and job runner rooted at a home folder.

    Args:
        home: folder holding ``models/``, ``logs/``, ``jobs/``, ``data/`` and the SQLite database
            (default: ``$SANDBOX_HOME``, else the current directory).
        db_url: any SQLAlchemy URL (default: ``$SANDBOX_DB_URL``, else SQLite in ``home``).
        settings: operator settings (default: from ``SANDBOX_*`` environment variables).
        actor: the name its actions are recorded under in the audit trail (default: the
            JupyterHub user, else the OS user; see :mod:`sandbox_kit.audit`).

    Opening a sandbox upgrades an older database schema and reconciles jobs whose supervisor
    has died.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        db_url: str | None = None,
        *,
        settings: Settings | None = None,
        actor: str | None = None,
    ) -> None:
        #: Who this sandbox's uploads, runs and other actions are recorded as (issue 13).
        self.actor = audit.resolve_actor(actor)
        self.paths = Paths.resolve(home)
        self.settings = settings if settings is not None else Settings.from_env()
        url = db_url or os.environ.get("SANDBOX_DB_URL") or self.paths.default_db_url
        if url == self.paths.default_db_url:
            # The embedded registry is the sandbox's alone (issue 8): created 0600, and SQLite
            # gives its -wal and -shm files the same mode.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.paths.home / "sandbox.db", os.O_CREAT | os.O_EXCL, 0o600))
        self.db = Database(url)
        try:
            self.db.ensure_schema()
        except BaseException:
            self.db.dispose()  # a refused open keeps no pooled connection behind
            raise
        self.registry = Registry(
            self.db, self.paths, store=lambda: Store.from_settings(self.settings, self.paths)
        )
        self.jobstore = JobStore(self.db)
        self.datastore = DataStore(self.db, self.paths, max_bytes=self.settings.data_max_bytes)
        self.sweepstore = SweepStore(self.db)
        #: Every job status change goes through this (see :mod:`sandbox_kit.lifecycle`).
        self.lifecycle = Lifecycle(Connection(self.db.url, opener=self.db.engine.raw_connection))
        self._last_reconcile = 0.0
        self.reconcile()

    def __repr__(self) -> str:
        return f"<Sandbox home={str(self.paths.home)!r}>"

    @property
    def home(self) -> Path:
        """The sandbox's home folder."""
        return self.paths.home

    def acting_as(self, actor: str | None = None, *, server_user: object | None = None) -> Sandbox:
        """This sandbox with its actions recorded under another actor, e.g. the user of one
        Jupyter Server request (the HTTP API, issue 16; see :func:`audit.resolve_actor`).

        The view shares this sandbox's database connections: close only the original.

        Args:
            actor: an explicit label (wins).
            server_user: a Jupyter Server ``User`` (``handler.current_user``).
        """
        view = copy.copy(self)
        view.actor = audit.resolve_actor(actor, server_user=server_user)
        return view

    # -- models ---------------------------------------------------------------------------

    def upload(
        self,
        path_or_bytes: str | os.PathLike[str] | bytes,
        model_type: str | ModelType,
        *,
        name: str | None = None,
        description: str = "",
        activate: bool = True,
        filename: str | None = None,
    ) -> Model:
        """Validate a model file and store it as the next version of its name and type.

        A header line ``# sandbox: threads=4, tokens=gurobi`` is read and kept on the version
        (``Model.threads``, ``Model.tokens``): the CPU slots and licence tokens its runs take.

        Args:
            path_or_bytes: a path to a ``.py`` file, or its content as bytes.
            model_type: ``"DMO"``, ``"RMO"`` or ``"SO"``.
            name: model name (default: the file's stem).
            description: free text shown in the models view.
            activate: make this version the one its type runs.
            filename: the file's name when ``path_or_bytes`` is bytes (default ``model.py``).

        Raises:
            ValidationError: the file was rejected; nothing was written.
        """
        kind = _model_type(model_type)
        if isinstance(path_or_bytes, bytes | bytearray):
            data, shown = bytes(path_or_bytes), filename or "model.py"
        else:
            path = Path(path_or_bytes)
            shown = filename or path.name
            data = _read_upload(path, self.settings.max_upload_bytes)
        source = validate_upload(shown, data, max_bytes=self.settings.max_upload_bytes)
        return self.registry.upload(
            source, kind, name=name, description=description, activate=activate, actor=self.actor
        )

    def models(
        self, model_type: str | ModelType | None = None, status: str | ModelStatus | None = None
    ) -> list[Model]:
        """Model versions, grouped by type and name, newest version first."""
        kind = None if model_type is None else _model_type(model_type)
        state = None if status is None else _enum(ModelStatus, status, "model status")
        return self.registry.models(kind, state)

    def model(self, model_id: int) -> Model:
        """The model version with this id."""
        return self.registry.model(model_id)

    def active_model(self, model_type: str | ModelType) -> Model | None:
        """The version a type runs, or None."""
        return self.registry.active(_model_type(model_type))

    def source(self, model_id: int) -> str:
        """The source code of a model version."""
        return Path(self.model(model_id).path).read_text(encoding="utf-8-sig")

    def activate(self, model_id: int) -> Model:
        """Make this version the one its type runs (rollback included)."""
        return self.registry.activate(model_id, actor=self.actor)

    def archive(self, model_id: int) -> Model:
        """Hide this version from runs until it is restored."""
        return self.registry.archive(model_id, actor=self.actor)

    def restore(self, model_id: int) -> Model:
        """Bring an archived version back, as inactive."""
        return self.registry.restore(model_id, actor=self.actor)

    def delete(self, model_id: int) -> Model:
        """Remove a version with its file and its jobs' records and logs."""
        return self.registry.delete(model_id, actor=self.actor)

    # -- data sets (issue 11) --------------------------------------------------------------

    def add_data(
        self,
        path_or_bytes: str | os.PathLike[str] | bytes,
        *,
        name: str,
        description: str = "",
        filename: str | None = None,
    ) -> DataSet:
        """Store a file, a folder or a zip (extracted) as the next version of a data set.

        Identical content already stored under ``name`` is returned instead of a new version
        (compare ``created_at``, or use :meth:`data_sets`). Stored files are read-only.

        Args:
            path_or_bytes: a path, or a file's content as bytes (``filename`` names it; a
                ``.zip`` is extracted).
            name: the data set's name (letters, digits, ``_``, ``-``, ``.``).
            description: free text.

        Raises:
            ValidationError: a hostile name or path (absolute, ``..``, a symbolic link), an
                unreadable zip, or more than ``Settings.data_max_bytes``; nothing was stored.
        """
        data_set, _ = self.datastore.add(
            path_or_bytes,
            name=name,
            description=description,
            filename=filename,
            actor=self.actor,
        )
        return data_set

    def data_sets(self, name: str | None = None) -> list[DataSet]:
        """Data set versions, by name, newest version first."""
        return self.datastore.versions(name)

    def data_set(self, ref: str) -> DataSet:
        """The data set version ``NAME@VERSION`` (or ``data:NAME@VERSION``), or the newest
        version of ``NAME``."""
        return self.datastore.get(ref)

    def delete_data(self, ref: str) -> list[DataSet]:
        """Delete one version (``NAME@VERSION``) or every version of ``NAME``.

        Raises:
            ConflictError: a queued or running job uses it; nothing was deleted.
        """
        return self.datastore.delete(ref, actor=self.actor)

    # -- jobs -----------------------------------------------------------------------------

    def run(
        self,
        model: int | str | ModelType,
        *,
        config: dict[str, Any] | None = None,
        data_source_id: str | None = None,
        timeout: float | None = None,
        cache: bool | None = None,
        retries: int | None = None,
    ) -> Job:
        """Start (or queue) a run of a model and return its handle at once.

        Args:
            model: a model id, or a type (``"DMO"`` runs that type's active version).
            config: JSON-serialisable dict the model reads from ``$CONFIG``.
            data_source_id: the data source: ``data:NAME[@VERSION]`` (a stored data set),
                ``job:JOB_ID`` or a bare job id (an earlier successful job's results) or
                ``latest:TYPE``; pinned now and mounted read-only as ``$DATA_SOURCE_DIR``. Any
                other name is passed on as ``$DATA_SOURCE_ID`` only.
            timeout: wall-clock limit in seconds (default: the type's default).
            cache: reuse the result of an identical earlier run, if there is one (the job is
                then ``success`` at once, with ``cached_from`` set); False always runs; None
                follows ``SANDBOX_CACHE_<TYPE>`` (off by default).
            retries: how many times the job is queued again as a new attempt when it is
                lost (its Dask worker died; default ``SANDBOX_RETRIES[_<TYPE>]``, 0).

        Raises:
            RunError: no active model for the type, or the model is archived.
            ValidationError: the config is not a JSON-serialisable dict, or the data source
                is malformed or names a job that did not succeed.
            NotFoundError: the data source names no data set, version or job.
        """
        target = self._runnable(model)
        source = self.resolve_source(data_source_id)
        return self._start(
            target, config=config, source=source, timeout=timeout, cache=cache, retries=retries
        )

    def run_code(
        self,
        code: str,
        model_type: str | ModelType,
        *,
        config: dict[str, Any] | None = None,
        data_source_id: str | None = None,
        timeout: float | None = None,
        cache: bool | None = None,
        save_as: str | None = None,
        description: str = "",
    ) -> Job:
        """Run Python source as a throw-away model of a type (what a ``%%sandbox`` cell does).

        The code is checked exactly like an uploaded ``.py`` file named ``cell.py`` and stored
        as a scratch version (:attr:`Model.scratch`): identical code shares one version, no
        model list shows it and it never becomes its type's active model. It then runs like
        any model: supervised, isolated and limited, listed with the other jobs under the
        model name ``%%sandbox``.

        Args:
            code: the model's source.
            model_type: ``"DMO"``, ``"RMO"`` or ``"SO"`` (what ``$MODEL_TYPE`` says, and
                which type's limits apply).
            config, data_source_id, timeout, cache: as for :meth:`run`.
            save_as: store the code as the next version of the model of this name instead,
                an ordinary version, inactive until activated (``%%sandbox --save NAME``).
            description: the saved version's description.

        Raises:
            ValidationError: the code was rejected (the message names line and column), or
                the type, data source, config or timeout is refused: nothing was stored.
            NotFoundError: the data source names no data set, version or job.
            RunError: the code is that of an archived version.
        """
        kind = _model_type(model_type)
        shown = _CELL_FILENAME if save_as is None else f"{save_as}.py"
        checked = validate_upload(
            shown, code.encode("utf-8"), max_bytes=self.settings.max_upload_bytes
        )
        # Everything a run could refuse is refused before the code is stored.
        launcher.check_run_options({} if config is None else config, timeout=timeout, retries=None)
        self._check_executor()
        source = self.resolve_source(data_source_id)
        target = self.registry.upload(
            checked,
            kind,
            name=save_as,
            description=description,
            activate=False,
            actor=self.actor,
            scratch=save_as is None,
        )
        launcher.ensure_model_runnable(target)
        return self._start(target, config=config, source=source, timeout=timeout, cache=cache)

    def _start(
        self,
        target: Model,
        *,
        config: dict[str, Any] | None,
        source: datasource.Source | None,
        timeout: float | None,
        cache: bool | None,
        retries: int | None = None,
    ) -> Job:
        self._check_executor()
        job_id = launcher.submit(
            self.db,
            self.lifecycle,
            self.paths,
            self.settings,
            target,
            config=config,
            source=source,
            timeout=timeout,
            cache=cache,
            started_by=self.actor,
            retries=retries,
        )
        self._dispatch()
        return self.job(job_id)

    def job(self, job_id: str) -> Job:
        """A handle on any job, started by any process."""
        return Job(self, self.job_info(job_id))

    def job_info(self, job_id: str) -> JobInfo:
        """The current record of a job (a remote job's log brought up to date with it)."""
        self._maybe_reconcile()
        info = self.jobstore.get(job_id)
        self.sync_remote(info)
        return info

    def resolve_source(self, asked: str | None) -> datasource.Source | None:
        """Pin a data source (:func:`sandbox_kit.datasource.resolve`); a job that ran on a
        Dask worker has its results fetched from the store first, so they can be pinned."""
        source = datasource.resolve(self.datastore, asked)
        if source is not None and source.label.startswith("job:"):
            info = self.jobstore.get(source.label.removeprefix("job:"))
            if info.remote:
                self.sync_remote(info, results=True)
                source = datasource.resolve(self.datastore, asked)
        return source

    def sync_remote(self, info: JobInfo, *, results: bool = False) -> None:
        """For a job run on a Dask worker (issue 12): bring its log and, with ``results``,
        its result folder once it ended, to this host. Nothing for a local job."""
        if not info.remote:
            return
        dask_executor.catch_up(self.lifecycle.conn, [info])
        if results and info.status.terminal and info.cached_from is None:
            store = self.settings.store or str(self.paths.store)
            try:
                dask_executor.fetch_results(info, store)
            except SandboxKitError as exc:
                logger(self.paths.home).warning("results of %s not fetched: %s", info.id, exc)

    def jobs(
        self,
        model_type: str | ModelType | None = None,
        status: str | JobStatus | None = None,
        model: int | None = None,
        limit: int = 100,
        *,
        schedule: int | None = None,
    ) -> list[JobInfo]:
        """Job records, newest first (``schedule``: only the runs of that schedule)."""
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, not {limit}")
        self._maybe_reconcile()
        found = self.jobstore.list(
            model_type=None if model_type is None else _model_type(model_type),
            status=None if status is None else _enum(JobStatus, status, "job status"),
            model_id=model,
            schedule_id=schedule,
            limit=limit,
        )
        dask_executor.catch_up(self.lifecycle.conn, found)
        return found

    def job_ends(self, since: datetime, *, limit: int = 100) -> list[JobInfo]:
        """Jobs that ended, or missed their deadline, from ``since`` on, whoever started
        them; newest first (the dashboard's notification bell)."""
        self._maybe_reconcile()
        return self.jobstore.ended_since(since, limit=limit)

    def cancel(self, job_id: str) -> None:
        """Stop a job and its whole process tree; a queued job never starts; a finished job
        is left as it is."""
        # No dispatch here: a queued job held no slot, and a running one's supervisor starts
        # the next queued jobs once the tree is really gone.
        ticket = launcher.cancel(self.lifecycle, job_id, actor=self.actor)
        if ticket.ended:
            self.paths.secrets(job_id).unlink(missing_ok=True)  # its supervisor never will
        if ticket.task is not None and self.settings.dask_address:
            dask_executor.cancel_task(self.settings.dask_address, *ticket.task)

    def audit(
        self,
        *,
        since: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        object_id: str | int | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """The audit trail, newest first: who uploaded, activated, archived, restored, deleted,
        ran and cancelled what, and when.

        Args:
            since: only entries from this moment on.
            actor: only this actor's entries.
            action: only this action (``upload``, ``run``, ...).
            object_id: only entries about this model id or job id.
            limit: at most this many entries.
        """
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, not {limit}")
        return audit.entries(
            self.lifecycle.conn,
            since=since,
            actor=actor,
            action=action,
            object_id=object_id,
            limit=limit,
        )

    def record_action(
        self,
        action: str,
        object_type: str,
        object_id: str | int,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record an action of this sandbox's actor in the audit trail, in a transaction of its
        own (for features whose change happens elsewhere, e.g. schedules:
        ``record_action("schedule_update", "schedule", name, {...})``)."""
        audit.record(
            self.lifecycle.conn,
            actor=self.actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details,
        )

    def reconcile(self, *, now: datetime | None = None) -> list[str]:
        """Mark ``lost`` the jobs whose supervisor died, start queued jobs; returns lost ids.

        Args:
            now: judge heartbeat ages as of this moment (tests use it instead of waiting).
        """
        self._last_reconcile = time.monotonic()
        lost = launcher.reconcile(
            self.lifecycle,
            lost_after_s=self.settings.lost_after_s,
            now=self.lifecycle.now if now is None else (lambda: now),
        )
        for job_id in lost:  # a supervisor that died before starting its model left them
            self.paths.secrets(job_id).unlink(missing_ok=True)
        # Also starts queued jobs left behind by a process that exited before a slot freed.
        self._dispatch()
        return lost

    # -- schedules (issue 10) ---------------------------------------------------------------

    @cached_property
    def schedule_store(self) -> ScheduleStore:
        """Where schedules are stored (opened on first use: the CLI's other commands skip
        the cron library)."""
        from sandbox_kit.schedules import ScheduleStore

        return ScheduleStore(self.db, self.registry)

    def add_schedule(
        self,
        target: int | str | ModelType,
        *,
        cron: str | None = None,
        preset: str | None = None,
        timezone: str | None = None,
        config: dict[str, Any] | None = None,
        data_source: str | None = None,
        missed: str | None = None,
        overlap: str | None = None,
        deadline: float | None = None,
        deadline_action: str = "notify",
        notify: Iterable[str] = (),
        notify_on: Iterable[str] | None = None,
        name: str | None = None,
    ) -> Schedule:
        """Run a model on a clock; the scheduler process (``sandbox-kit scheduler``, or the
        one ``sandbox-kit serve`` starts) fires it.

        Args:
            target: a model type (its active version at each fire time) or a model id.
            cron: a five-field cron expression in ``timezone``; or ``preset``:
                ``day-ahead``, ``real-time-5min``, ``real-time-15min``, ``hourly`` (see
                :data:`sandbox_kit.cron.PRESETS`; the arguments below override it).
            timezone: an IANA zone (default: the machine's).
            config: the run's config.
            data_source: as for :meth:`run`, resolved at each fire time: ``latest:DMO``
                chains to the newest successful DMO's results.
            missed: fire times missed while no scheduler ran: ``skip`` (default; recorded)
                or ``once`` (one catch-up run).
            overlap: the previous run still queued or running: ``skip`` (default),
                ``queue`` or ``cancel``.
            deadline: minutes after a fire time by which its run must have ended.
            deadline_action: ``notify`` (default) or ``cancel`` (notify and cancel).
            notify: Apprise URLs told about this schedule's runs (besides
                ``SANDBOX_NOTIFY``).
            notify_on: the events they hear about (default ``SANDBOX_NOTIFY_ON``'s).
            name: a label (default: target and clock).

        Raises:
            ValidationError: a bad expression, zone, policy, deadline or target URL
                (nothing stored).
            NotFoundError: no model with that id.
        """
        return self.schedule_store.add(
            target,
            cron_expr=cron,
            preset=preset,
            timezone=timezone,
            config=config,
            data_source=data_source,
            missed=missed,
            overlap=overlap,
            deadline=deadline,
            deadline_action=deadline_action,
            notify=notify,
            notify_on=notify_on,
            name=name,
            actor=self.actor,
        )

    def update_schedule(self, schedule_id: int, **changes: Any) -> Schedule:
        """Change a schedule: any argument of :meth:`add_schedule` (``cron`` included). A
        new clock starts from now (past fire times are neither run nor counted missed)."""
        if "cron" in changes:
            changes["cron_expr"] = changes.pop("cron")
        return self.schedule_store.update(schedule_id, actor=self.actor, **changes)

    def schedules(self, *, next_fires: int = 1) -> list[Schedule]:
        """Every schedule, with its next fire time(s)."""
        return self.schedule_store.all(next_fires=next_fires)

    def schedule(self, schedule_id: int, *, next_fires: int = 5) -> Schedule:
        """One schedule, with its next ``next_fires`` fire times (UTC)."""
        return self.schedule_store.get(schedule_id, next_fires=next_fires)

    def pause_schedule(self, schedule_id: int) -> Schedule:
        """Stop firing a schedule (fire times while paused are not run, nor missed)."""
        return self.schedule_store.set_enabled(schedule_id, False, actor=self.actor)

    def resume_schedule(self, schedule_id: int) -> Schedule:
        """Fire a paused schedule again, from its next fire time on."""
        return self.schedule_store.set_enabled(schedule_id, True, actor=self.actor)

    def delete_schedule(self, schedule_id: int) -> Schedule:
        """Remove a schedule (its runs stay, with their ``schedule_id``)."""
        return self.schedule_store.delete(schedule_id, actor=self.actor)

    def schedule_fires(
        self, schedule_id: int | None = None, *, limit: int = 20
    ) -> list[ScheduleFire]:
        """What came of a schedule's (or every schedule's) newest fire times: run, missed,
        skipped, waiting or not started, with the run's status and deadline state."""
        return self.schedule_store.fires(schedule_id, limit=limit)

    @staticmethod
    def preview_schedule(
        *,
        cron: str | None = None,
        preset: str | None = None,
        timezone: str | None = None,
        count: int = 5,
        after: datetime | None = None,
    ) -> list[datetime]:
        """The next ``count`` fire times (UTC) of a clock, before storing it (the dashboard's
        preview). Raises ValidationError for a bad expression, preset or zone."""
        from sandbox_kit import cron as clock

        expr = clock.preset(preset).cron if preset else clock.check_cron(str(cron or ""))
        zone = timezone or clock.machine_zone()
        clock.zone(zone)
        start = after or datetime.now(UTC)
        return clock.next_fire_times(expr, zone, start, count)

    # -- result cache and sweeps (issue 11) ------------------------------------------------

    def clear_cache(
        self, *, model_type: str | ModelType | None = None, older_than_days: float | None = None
    ) -> int:
        """Stop reusing finished runs' results (their records stay); returns how many.

        Args:
            model_type: only runs of this type.
            older_than_days: only runs that finished more than this many days ago.
        """
        if older_than_days is not None and older_than_days < 0:
            raise ValidationError(f"older_than_days must not be negative, not {older_than_days}")
        kind = None if model_type is None else _model_type(model_type).value
        return result_cache.clear(
            self.db, model_type=kind, older_than_days=older_than_days, actor=self.actor
        )

    def sweep(
        self,
        target: int | str | ModelType,
        grid: dict[str, list[Any]] | None = None,
        *,
        cases: list[dict[str, Any]] | None = None,
        base_config: dict[str, Any] | None = None,
        data_source_id: str | None = None,
        cache: bool | None = None,
        timeout: float | None = None,
    ) -> Sweep:
        """Run a model once per scenario: the cartesian product of ``grid`` (or ``cases``).

        Each scenario's config is ``base_config`` with the scenario's values laid over it; each
        is an ordinary job (queue limits, cancel, logs, cache) carrying the sweep's id.

        Args:
            target: a model id, or a type (its active version).
            grid: parameter -> list of values, e.g. ``{"load_scale": [0.9, 1.0, 1.1]}``.
            cases: instead of a grid, one config per scenario.
            base_config: what every scenario starts from.
            data_source_id: as for :meth:`run`; pinned once for the whole sweep.
            cache: as for :meth:`run`.
            timeout: per job, as for :meth:`run`.

        Raises:
            ValidationError: a malformed grid or case, or more than
                ``Settings.sweep_max_scenarios`` scenarios; nothing was started.
            RunError: a scenario could not be queued (the database refused it); the sweep
                then holds the scenarios queued before it, which run.
        """
        model = self._runnable(target)
        found = sweeps.plan(
            grid=grid,
            cases=cases,
            base_config=base_config,
            max_scenarios=self.settings.sweep_max_scenarios,
        )
        if timeout is not None and not timeout > 0:
            raise ValidationError(f"timeout must be a positive number of seconds, not {timeout}")
        source = self.resolve_source(data_source_id)
        use_cache = self.settings.cache_for(model.model_type.value) if cache is None else cache
        sweep_id = sweeps.new_sweep_id()
        self.sweepstore.create(
            sweep_id,
            target=str(target.value if isinstance(target, ModelType) else target),
            model=model,
            params=found.params,
            base_config=base_config or {},
            data_source_id=data_source_id,
            cache=use_cache,
            total=len(found.configs),
            actor=self.actor,
        )
        queued = 0
        try:
            for index, config in enumerate(found.configs):
                launcher.submit(
                    self.db,
                    self.lifecycle,
                    self.paths,
                    self.settings,
                    model,
                    config=config,
                    source=source,
                    timeout=timeout,
                    cache=use_cache,
                    sweep=(sweep_id, index),
                    started_by=self.actor,
                )
                queued += 1
        except Exception as exc:
            # The sweep must not wait for scenarios that were never queued: it keeps those
            # that were (they run; cancel_sweep stops them).
            self.sweepstore.shorten(sweep_id, queued)
            raise RunError(
                f"sweep {sweep_id}: {queued} of {len(found.configs)} scenarios were queued, "
                f"then scenario {queued + 1} failed: {reason_of(exc)}; the sweep holds the "
                f"{queued} queued ones"
            ) from exc
        finally:
            self._dispatch()
        return self.get_sweep(sweep_id)

    def get_sweep(self, sweep_id: str) -> Sweep:
        """A handle on a sweep, started by any process."""
        return Sweep(self, self.sweep_info(sweep_id))

    def sweep_info(self, sweep_id: str) -> SweepInfo:
        """A sweep's record and progress."""
        self._maybe_reconcile()
        return self.sweepstore.get(sweep_id)

    def sweep_rows(self, sweep_id: str) -> list[Scenario]:
        """A sweep's scenarios: parameters, job, status, outcome, objective, metrics."""
        return self.sweepstore.scenarios(self.sweepstore.get(sweep_id))

    def sweeps(self, limit: int = 50) -> list[SweepInfo]:
        """Sweeps, newest first, with their progress."""
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, not {limit}")
        self._maybe_reconcile()
        return self.sweepstore.recent(limit)

    def cancel_sweep(self, sweep_id: str) -> int:
        """Cancel a sweep's scenarios that have not finished; returns how many."""
        rows = self.sweep_rows(sweep_id)
        # Queued ones first: a running job that ends would otherwise start the next of them.
        pending = [r for r in rows if r.status is JobStatus.QUEUED]
        pending += [r for r in rows if r.status is JobStatus.RUNNING]
        for row in pending:
            self.cancel(row.job_id)
        return len(pending)

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()

    def _check_executor(self) -> None:
        """With the dask executor: refuse a run the cluster cannot take, before it is queued."""
        if self.settings.executor == "dask":
            dask_executor.check_cluster(self.settings.dask_address, self.db.url)

    def _maybe_reconcile(self) -> None:
        if time.monotonic() - self._last_reconcile >= _RECONCILE_EVERY_S:
            self.reconcile()

    def _dispatch(self) -> list[str]:
        queue = launcher.queue_spec(self.settings)
        return executor.dispatch(self.lifecycle, queue, log=logger(self.paths.home)).started

    def _runnable(self, model: int | str | ModelType) -> Model:
        if isinstance(model, int) or (isinstance(model, str) and model.isdigit()):
            target = self.model(int(model))
        else:
            kind = _model_type(model)
            active = self.registry.active(kind)
            if active is None:
                raise RunError(
                    f"no active {kind.value} model; upload one or activate a version",
                    model_type=kind.value,
                )
            target = active
        launcher.ensure_model_runnable(target)
        return target


def _model_type(value: str | ModelType) -> ModelType:
    try:
        return ModelType.parse(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _enum(cls: Any, value: Any, what: str) -> Any:
    try:
        return cls(value.value if hasattr(value, "value") else str(value).lower())
    except ValueError:
        names = ", ".join(m.value for m in cls)
        raise ValidationError(f"unknown {what} {value!r}; expected one of {names}") from None


def _read_upload(path: Path, max_bytes: int) -> bytes:
    try:
        # A huge file is refused by its size, without reading it into memory.
        check_size(path.name, path.stat().st_size, max_bytes)
        return path.read_bytes()
    except IsADirectoryError:
        raise ValidationError("is a directory, not a .py file", filename=path.name) from None
    except FileNotFoundError:
        raise ValidationError("no such file", filename=str(path)) from None
    except OSError as exc:
        raise ValidationError(f"cannot read file: {exc.strerror}", filename=str(path)) from None
