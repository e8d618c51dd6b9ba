"""A thin DB-API connection for the job hot path (the supervisor and the lifecycle).

The registry uses SQLAlchemy's ORM, whose import alone costs ~250 ms of CPU. A job supervisor
starts for every job and must record a start and an end within a few milliseconds (issue 9:
"keep the heavy database layer off the supervisor's start and finish path"), so the handful
of statements that change a job's status are plain SQL over the stdlib ``sqlite3`` module or
``psycopg``, opened from the same URL the registry uses. The two layers agree on the stored
formats: SQLite datetimes are naive UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``, as SQLAlchemy
writes them), PostgreSQL's are ``timestamptz``.

Writes hold the same lock as the registry's (``BEGIN IMMEDIATE`` on SQLite, one advisory
transaction lock on PostgreSQL), so a claim never races another claim.

Transient failures (a locked SQLite file, a PostgreSQL connection killed or refused) raise
:class:`TransientError`; :func:`retry` retries a unit of work with backoff.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

PG_WRITE_LOCK = 0x5A4D_0001  # the registry's advisory lock key (db.py uses the same)
_NAMED = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")
T = TypeVar("T")


class TransientError(Exception):
    """The database was briefly unavailable (locked, restarting, unreachable); try again."""


class Statements:
    """Runs SQL written with ``:name`` parameters on either database, inside one transaction."""

    def __init__(self, cursor: Any, dialect: str) -> None:
        self._cursor = cursor
        self.dialect = dialect

    def run(self, sql: str, params: dict[str, Any] | None = None) -> Statements:
        """Execute one statement; returns self so results can be fetched."""
        params = {k: self.value(v) for k, v in (params or {}).items()}
        if self.dialect == "postgresql":
            sql = _NAMED.sub(r"%(\1)s", sql)
        self._cursor.execute(sql, params)
        return self

    def all(self) -> list[tuple[Any, ...]]:
        """Every row of the last statement."""
        return [tuple(row) for row in self._cursor.fetchall()]

    def one(self) -> tuple[Any, ...] | None:
        """The first row of the last statement, or None."""
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement."""
        return int(self._cursor.rowcount)

    def value(self, value: Any) -> Any:
        """A Python value as this database stores it."""
        if isinstance(value, datetime) and self.dialect == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def moment(self, stored: Any) -> datetime | None:
        """A stored datetime, read back timezone-aware UTC."""
        if stored is None:
            return None
        if isinstance(stored, str):
            stored = datetime.fromisoformat(stored)
        assert isinstance(stored, datetime)
        return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)


class Connection:
    """One database connection that reopens itself after a failure.

    Args:
        url: the registry's SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
        opener: where raw connections come from (default: open one from ``url``); the registry
            side passes its engine's pool so a kernel does not open a second connection.
        name: shown as the PostgreSQL ``application_name`` (which job a connection serves).
    """

    def __init__(
        self, url: str, opener: Callable[[], Any] | None = None, *, name: str = "sandbox-kit"
    ) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self._opener = opener or (lambda: _open(url, name))
        self._pooled = opener is not None
        self._raw: Any = None

    @contextlib.contextmanager
    def write(self) -> Iterator[Statements]:
        """A transaction holding the database's write lock."""
        with self._transaction(write=True) as st:
            yield st

    @contextlib.contextmanager
    def read(self) -> Iterator[Statements]:
        """A short read transaction."""
        with self._transaction(write=False) as st:
            yield st

    def close(self) -> None:
        """Close (or give back) the raw connection."""
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Statements]:
        # A pooled connection is checked out per transaction (threads may share this object);
        # an own connection is kept and reopened after a failure.
        raw = None
        try:
            raw = self._opener() if self._pooled else (self._raw or self._opener())
            if not self._pooled:
                self._raw = raw
            cursor = raw.cursor()
            st = Statements(cursor, self.dialect)
            if self.dialect == "sqlite":
                cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            elif write:
                st.run("SELECT pg_advisory_xact_lock(:k)", {"k": PG_WRITE_LOCK})
        except Exception as exc:
            self._broken(exc, raw)
        try:
            yield st
            raw.commit() if self.dialect == "postgresql" else cursor.execute("COMMIT")
        except BaseException as exc:
            # BaseException too: a KeyboardInterrupt must not leave BEGIN IMMEDIATE holding the
            # database's write lock.
            with contextlib.suppress(Exception):
                raw.rollback() if self.dialect == "postgresql" else cursor.execute("ROLLBACK")
            if not isinstance(exc, Exception):
                raise
            self._broken(exc, raw)
        finally:
            if self._pooled:
                with contextlib.suppress(Exception):
                    raw.close()  # back to the pool (a no-op after invalidate)

    def _broken(self, exc: Exception, raw: Any) -> NoReturn:
        if not is_transient(exc):
            raise exc
        if raw is not None:
            with contextlib.suppress(Exception):
                # A connection that failed is not reused (nor given back to a pool).
                raw.invalidate() if self._pooled else raw.close()
        if raw is self._raw:
            self._raw = None
        raise TransientError(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}") from exc


def is_transient(exc: BaseException) -> bool:
    """True for failures that go away by themselves: a lock, a lost or refused connection."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "locked" in text or "busy" in text or "unable to open" in text or "i/o" in text
    kind = type(exc)
    module = kind.__module__ or ""
    if module.startswith("psycopg"):
        return kind.__name__ in {"OperationalError", "InterfaceError", "AdminShutdown"} or any(
            base.__name__ == "OperationalError" for base in kind.__mro__
        )
    return False


def retry(
    work: Callable[[], T],
    *,
    give_up_after_s: float,
    on_error: Callable[[Exception, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``work`` until it succeeds, backing off (0.1 s doubling to 5 s) on transient errors.

    Raises the last :class:`TransientError` once ``give_up_after_s`` have passed; any other
    error at once. ``on_error(exc, delay)`` is told of each failure before the pause.
    """
    give_up = time.monotonic() + give_up_after_s
    delay = 0.1
    while True:
        try:
            return work()
        except TransientError as exc:
            if time.monotonic() + delay > give_up:
                raise
            if on_error is not None:
                on_error(exc, delay)
            sleep(delay)
            delay = min(delay * 2, 5.0)


def _open(url: str, name: str) -> Any:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        # One thread at a time, not always the one that opened it (a log shipper's last
        # flush runs on the supervisor's main thread once the shipping thread has ended).
        conn = sqlite3.connect(
            path or ":memory:", timeout=30, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")  # as the registry's engine: WAL, no fsync
        conn.execute("PRAGMA foreign_keys=ON")
        return conn
    import psycopg

    # libpq takes the same URL without SQLAlchemy's "+driver" part (query options included).
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    dsn = parts._replace(scheme="postgresql" if scheme.startswith("postgres") else scheme)
    return psycopg.connect(dsn.geturl(), connect_timeout=10, application_name=name[:63])
