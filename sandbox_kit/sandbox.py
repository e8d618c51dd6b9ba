"""The :class:`Sandbox` facade: the one object notebooks, widgets and the CLI talk to."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox_kit import executor, launcher
from sandbox_kit.config import Paths, Settings
from sandbox_kit.db import Database
from sandbox_kit.dbapi import Connection
from sandbox_kit.errors import RunError, ValidationError
from sandbox_kit.jobs import Job
from sandbox_kit.jobstore import JobStore
from sandbox_kit.lifecycle import Lifecycle
from sandbox_kit.oplog import logger
from sandbox_kit.records import JobInfo, JobStatus, Model, ModelStatus, ModelType
from sandbox_kit.registry import Registry
from sandbox_kit.validation import check_size, validate_upload

_RECONCILE_EVERY_S = 5.0


class Sandbox:
    """A model registry and job runner rooted at a home folder.

    Args:
        home: folder holding ``models/``, ``logs/``, ``jobs/`` and the SQLite database
            (default: ``$SANDBOX_HOME``, else the current directory).
        db_url: any SQLAlchemy URL (default: ``$SANDBOX_DB_URL``, else SQLite in ``home``).
        settings: operator settings (default: from ``SANDBOX_*`` environment variables).

    Opening a sandbox upgrades an older database schema and reconciles jobs whose supervisor
    has died.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        db_url: str | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        self.paths = Paths.resolve(home)
        self.settings = settings if settings is not None else Settings.from_env()
        self.db = Database(db_url or os.environ.get("SANDBOX_DB_URL") or self.paths.default_db_url)
        try:
            self.db.ensure_schema()
        except BaseException:
            self.db.dispose()  # a refused open keeps no pooled connection behind
            raise
        self.registry = Registry(self.db, self.paths)
        self.jobstore = JobStore(self.db)
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
            source, kind, name=name, description=description, activate=activate
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
        return self.registry.activate(model_id)

    def archive(self, model_id: int) -> Model:
        """Hide this version from runs until it is restored."""
        return self.registry.archive(model_id)

    def restore(self, model_id: int) -> Model:
        """Bring an archived version back, as inactive."""
        return self.registry.restore(model_id)

    def delete(self, model_id: int) -> Model:
        """Remove a version with its file and its jobs' records and logs."""
        return self.registry.delete(model_id)

    # -- jobs -----------------------------------------------------------------------------

    def run(
        self,
        model: int | str | ModelType,
        *,
        config: dict[str, Any] | None = None,
        data_source_id: str | None = None,
        timeout: float | None = None,
    ) -> Job:
        """Start (or queue) a run of a model and return its handle at once.

        Args:
            model: a model id, or a type (``"DMO"`` runs that type's active version).
            config: JSON-serialisable dict the model reads from ``$CONFIG``.
            data_source_id: passed as ``$DATA_SOURCE_ID``; when it names a finished job, that
                job's result folder is given as ``$DATA_SOURCE_DIR``.
            timeout: wall-clock limit in seconds (default: the type's default).

        Raises:
            RunError: no active model for the type, or the model is archived.
            ValidationError: the config is not a JSON-serialisable dict.
        """
        target = self._runnable(model)
        job_id = launcher.submit(
            self.db,
            self.lifecycle,
            self.paths,
            self.settings,
            target,
            config=config,
            data_source_id=data_source_id,
            timeout=timeout,
        )
        self._dispatch()
        return self.job(job_id)

    def job(self, job_id: str) -> Job:
        """A handle on any job, started by any process."""
        return Job(self, self.job_info(job_id))

    def job_info(self, job_id: str) -> JobInfo:
        """The current record of a job."""
        self._maybe_reconcile()
        return self.jobstore.get(job_id)

    def jobs(
        self,
        model_type: str | ModelType | None = None,
        status: str | JobStatus | None = None,
        model: int | None = None,
        limit: int = 100,
    ) -> list[JobInfo]:
        """Job records, newest first."""
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, not {limit}")
        self._maybe_reconcile()
        return self.jobstore.list(
            model_type=None if model_type is None else _model_type(model_type),
            status=None if status is None else _enum(JobStatus, status, "job status"),
            model_id=model,
            limit=limit,
        )

    def cancel(self, job_id: str) -> None:
        """Stop a job and its whole process tree; a queued job never starts; a finished job
        is left as it is."""
        # No dispatch here: a queued job held no slot, and a running one's supervisor starts
        # the next queued jobs once the tree is really gone.
        launcher.cancel(self.lifecycle, job_id)

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
        # Also starts queued jobs left behind by a process that exited before a slot freed.
        self._dispatch()
        return lost

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()

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
