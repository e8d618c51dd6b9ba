"""The registry's database: tables, engine set-up and schema migrations.

SQLite (the default) is opened in WAL mode with a busy timeout, and every write transaction
starts with ``BEGIN IMMEDIATE`` so several processes (Voilà kernels, the CLI, job supervisors)
can write without ``database is locked`` surprises (see the pitfalls reference, §5). On
PostgreSQL, writes take one transaction-scoped advisory lock, which gives the same "one writer
at a time" semantics the queue relies on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from sandbox_kit.dbapi import PG_WRITE_LOCK
from sandbox_kit.errors import DatabaseError, SchemaVersionError

_MIGRATIONS = Path(__file__).with_name("migrations")
_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")


def known_revisions() -> set[str]:
    """The revision ids of the migrations shipped with this code, from their file names."""
    return {p.name.split("_", 1)[0] for p in (_MIGRATIONS / "versions").glob("[0-9]*_*.py")}


#: The newest migration, read from the file names so that adding one cannot leave it behind
#: (a stale value would make every open run Alembic); an older database is upgraded on open.
HEAD_REVISION = max(known_revisions())


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and always read back timezone-aware (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the registry's tables."""


class ModelRow(Base):
    """One uploaded model version."""

    __tablename__ = "models"
    __table_args__ = (
        Index("uq_models_type_name_version", "model_type", "name", "version", unique=True),
        # At most one active version per type is enforced by the database itself, with the
        # partial unique index ``uq_models_one_active`` (``WHERE status = 'active'``) that
        # migration 0001 creates. It is not declared here: its ``postgresql_where`` would make
        # SQLAlchemy import the PostgreSQL dialect when this module loads (~40 ms on every CLI
        # call, issue 9), and this metadata never creates tables (Alembic does). Declaring it
        # without its WHERE clause would describe a different, wrong index.
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_type: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    original_filename: Mapped[str] = mapped_column(String(255))
    stored_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Added by migration 0004 (audit; issue 13).
    created_by: Mapped[str | None] = mapped_column(String(200))
    # Added by migration 0006 (slots; issue 15): the header's ``# sandbox: threads=N,
    # tokens=a+b`` (tokens "+"-joined, "" for none).
    threads: Mapped[int] = mapped_column(Integer, default=1)
    tokens: Mapped[str] = mapped_column(String(200), default="")
    # Added by migration 0009 (issue 14): a throw-away version a ``%%sandbox`` cell runs,
    # left out of the model lists and never active.
    scratch: Mapped[bool] = mapped_column(Boolean, default=False)


class JobRow(Base):
    """One run of a model, from queued to a terminal status."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_model", "model_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    model_type: Mapped[str] = mapped_column(String(8))
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[int] = mapped_column(Integer)
    model_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[str] = mapped_column(Text, default="{}")
    data_source_id: Mapped[str | None] = mapped_column(String(200))
    timeout_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    exit_code: Mapped[int | None] = mapped_column(Integer)
    signal: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    log_path: Mapped[str] = mapped_column(String(500))
    result_dir: Mapped[str] = mapped_column(String(500))
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # Added by migration 0002 (the runner).
    spec: Mapped[str] = mapped_column(Text, default="{}")
    python_version: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    supervisor_pid: Mapped[int | None] = mapped_column(Integer)
    supervisor_started: Mapped[float | None] = mapped_column(Float)
    model_pid: Mapped[int | None] = mapped_column(Integer)
    model_started: Mapped[float | None] = mapped_column(Float)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str | None] = mapped_column(String(32))
    objective: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[str] = mapped_column(Text, default="{}")
    # Added by migration 0003 (isolation).
    isolation: Mapped[str | None] = mapped_column(String(32))
    slot: Mapped[int | None] = mapped_column(Integer)
    # Added by migration 0004 (audit; issue 13).
    started_by: Mapped[str | None] = mapped_column(String(200))
    # Added by migration 0005 (data sets, result cache, sweeps; issue 11).
    data_source: Mapped[str | None] = mapped_column(String(300))
    data_source_sha256: Mapped[str | None] = mapped_column(String(64))
    cache_key: Mapped[str | None] = mapped_column(String(64))
    cache_parts: Mapped[str | None] = mapped_column(Text)
    cached_from: Mapped[str | None] = mapped_column(String(64))
    cache_miss_reason: Mapped[str | None] = mapped_column(Text)
    sweep_id: Mapped[str | None] = mapped_column(String(64))
    sweep_index: Mapped[int | None] = mapped_column(Integer)
    # Added by migration 0006 (slots; issue 15): CPU slots asked for (what the job holds once
    # claimed) and licence tokens ("+"-joined).
    threads: Mapped[int] = mapped_column(Integer, default=1)
    tokens: Mapped[str] = mapped_column(String(200), default="")
    # Added by migration 0007 (schedules; issue 10): the schedule that started the job, and
    # its deadline (``deadline_missed`` is NULL until judged).
    schedule_id: Mapped[int | None] = mapped_column(Integer)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline_missed: Mapped[bool | None] = mapped_column(Boolean)
    # Added by migration 0008 (Dask; issue 12): which executor ran the job, on which worker,
    # and how many lost attempts may be queued again.
    executor: Mapped[str] = mapped_column(String(16), default="local")
    worker: Mapped[str | None] = mapped_column(String(255))
    retries: Mapped[int] = mapped_column(Integer, default=0)


class LogChunkRow(Base):
    """A byte range of a remote job's durable log, shipped as it is written (migration 0008)."""

    __tablename__ = "log_chunks"
    __table_args__ = (
        UniqueConstraint("job_id", "attempt", "offset", name="uq_log_chunks_position"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ScheduleRow(Base):
    """A schedule: a model type (its active version at fire time) or a pinned model, run on
    a cron clock in a time zone (migration 0007; issue 10)."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(64))  # "DMO" or a model id
    model_type: Mapped[str] = mapped_column(String(8))
    cron: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    config: Mapped[str] = mapped_column(Text, default="{}")
    data_source: Mapped[str | None] = mapped_column(String(300))
    enabled: Mapped[bool] = mapped_column(Boolean)
    missed: Mapped[str] = mapped_column(String(8))
    overlap: Mapped[str] = mapped_column(String(8))
    deadline_min: Mapped[float | None] = mapped_column(Float)
    deadline_action: Mapped[str] = mapped_column(String(8))
    notify: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of Apprise URLs
    notify_on: Mapped[str | None] = mapped_column(Text)  # JSON list of events, or NULL
    cursor_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(200))


class ScheduleFireRow(Base):
    """One fire time of a schedule and what came of it (unique per schedule and time)."""

    __tablename__ = "schedule_fires"
    __table_args__ = (
        Index("uq_schedule_fires", "schedule_id", "fire_at", unique=True),
        Index("ix_schedule_fires_outcome", "outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    fire_at: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NotificationRow(Base):
    """One notification of a job end (or of a fire time that started nothing) to one target."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("uq_notifications", "subject", "event", "target_key", unique=True),
        Index("ix_notifications_job", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(120))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    schedule_id: Mapped[int | None] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(16))
    target_key: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(Text)  # the URL with its secrets hidden
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DataSetRow(Base):
    """One stored version of a data set; its files live in ``data/<sha256>/`` (issue 11)."""

    __tablename__ = "datasets"
    __table_args__ = (Index("uq_datasets_name_version", "name", "version", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    original_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    files: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SweepRow(Base):
    """One scenario sweep: a model run once per configuration of a grid (issue 11)."""

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    model_type: Mapped[str] = mapped_column(String(8))
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[int] = mapped_column(Integer)
    params: Mapped[str] = mapped_column(Text)  # JSON list of the names that vary
    base_config: Mapped[str] = mapped_column(Text)
    data_source_id: Mapped[str | None] = mapped_column(String(300))
    cache: Mapped[bool] = mapped_column(Boolean)
    total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EnvironmentRow(Base):
    """A set of installed packages, by fingerprint (part of the result cache's key)."""

    __tablename__ = "environments"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    python_version: Mapped[str] = mapped_column(String(64))
    packages: Mapped[str] = mapped_column(Text)  # JSON object, name -> version


class InterpreterRow(Base):
    """What an interpreter had installed when last looked at, and how to tell it changed."""

    __tablename__ = "interpreters"

    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    stamp: Mapped[str] = mapped_column(Text)
    site_dirs: Mapped[str] = mapped_column(Text)  # JSON list
    fingerprint: Mapped[str] = mapped_column(String(64))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """One entry of the audit trail (migration 0004; issue 13).

    Append-only: triggers in the database refuse ``UPDATE`` and ``DELETE`` on this table, so
    neither this code nor a user with SQL access rewrites history short of dropping them.
    """

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_at", "at"), Index("ix_audit_actor", "actor", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[str] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text, default="{}")


class Database:
    """An engine plus short read and write transactions.

    Use ``with db.read() as s:`` for queries and ``with db.write() as s:`` for anything that
    changes rows; never keep a session across user actions (an open read pins a WAL snapshot).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = _make_engine(url)
        except ImportError as exc:  # a driver not installed: name the extra that brings it
            raise missing_driver(url, exc) from exc
        except ArgumentError as exc:  # a malformed URL
            raise database_error("cannot use the database URL", url, exc) from exc
        self._write_engine = self.engine.execution_options(sandbox_write=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in a short read transaction; objects stay usable after it closes."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction that holds the database's write lock."""
        with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
            if self.engine.dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK})
            yield session

    def revision(self) -> str | None:
        """The schema revision of the database, or None for an empty database.

        Raises:
            DatabaseError: the database cannot be reached.
        """
        try:
            conn = self.engine.connect()
        except DBAPIError as exc:
            raise database_error("cannot reach the database at", self.url, exc) from exc
        with conn:
            try:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except (OperationalError, ProgrammingError):
                return None  # no alembic_version table yet

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision``, holding the write lock so only one process does.

        Raises:
            SchemaVersionError: the database is at a revision this code does not know (a newer
                sandbox_kit migrated it); nothing is changed.
        """
        current = self.revision()
        if current is not None and current not in known_revisions():
            raise SchemaVersionError(url=public_url(self.url), revision=current, head=HEAD_REVISION)
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self._write_engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def ensure_schema(self) -> None:
        """Upgrade the database to :data:`HEAD_REVISION` when it is older (or empty).

        The check is one ``SELECT`` on ``alembic_version``; Alembic itself is imported only when
        an upgrade is due, so opening an up-to-date database stays fast (issue 9).

        Raises:
            DatabaseError: the database cannot be reached.
            SchemaVersionError: the database is newer than this code.
        """
        if self.revision() != HEAD_REVISION:
            self.upgrade()

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def public_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password`` query key) as ``***``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return _PASSWORD_IN_URL.sub(r"\1***@", url)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    # The "***" in the query is percent-encoded when rendered: show it as typed.
    return parsed.render_as_string(hide_password=True).replace("=%2A%2A%2A", "=***")


def missing_driver(url: str, exc: ImportError) -> DatabaseError:
    """The database's driver is not installed: say which extra installs it (issue 13)."""
    shown = public_url(url)
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        return DatabaseError(
            f"{shown} needs the PostgreSQL driver, which is not installed ({reason}); "
            "install it with: pip install 'sandbox_kit[postgres]' (and use a "
            "postgresql+psycopg:// URL)",
            url=shown,
            reason=reason,
        )
    return database_error("cannot use the database URL", url, exc)


def database_error(what: str, url: str, exc: BaseException) -> DatabaseError:
    """``<what> <url>: <reason>`` as a :class:`DatabaseError`, the password hidden in both.

    The reason is the first line of the driver's own message (the rest is hints and
    SQLAlchemy's links), so the CLI prints one line.
    """
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    reason = lines[0] if lines else type(cause).__name__
    try:
        parsed = make_url(url)
        secrets = [parsed.password, parsed.query.get("password")]
    except ArgumentError:
        secrets = []
    for secret in secrets:
        if isinstance(secret, str) and secret:
            reason = reason.replace(secret, "***")
    shown = public_url(url)
    return DatabaseError(f"{what} {shown}: {reason}", url=shown, reason=reason)


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's legacy mode would not), so that the
        # "begin" hook below can make writes BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL may itself wait
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sandbox_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
