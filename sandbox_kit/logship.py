"""Durable logs of remote jobs: shipped into the registry as written, mirrored where read.

A job run by the Dask executor (issue 12) writes its durable log on a worker that shares no
filesystem with the dashboard. Its supervisor runs a :class:`LogShipper` that copies the log
file's new bytes into ``log_chunks`` (job, attempt, byte offset) every ``period_s``; on the
reading side :func:`mirror` appends the chunks it has not seen yet to the local file
``logs/<job>.log``, so every reader (``Job.follow``, the log panel, ``logs --follow``, the
HTTP API) reads a remote job exactly as a local one, byte for byte.

Mirroring is idempotent: a chunk is written at its own offset and only when the local file
ends exactly there, so several processes mirroring the same job at once write the same bytes
to the same places. The log of a retried job is that of its newest attempt: when the attempt
changes, the mirror starts the file again (the older attempt's chunks stay in the registry).

Like the lifecycle, this module imports no SQLAlchemy (the supervisor uses it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

from sandbox_kit.dbapi import Connection, TransientError

#: Largest chunk written as one row.
CHUNK_BYTES = 256 * 1024
#: How many chunks one mirror call reads (it is called again for the rest).
_BATCH = 64


class LogShipper:
    """Copies a growing log file into ``log_chunks``, from a thread of its own.

    Args:
        conn: a connection to the registry (used only by this thread).
        job_id, attempt: whose log this is.
        path: the log file the supervisor writes.
        period_s: how often new bytes are shipped; followers see a line within about this
            plus their own poll.
    """

    def __init__(
        self, conn: Connection, job_id: str, attempt: int, path: str, *, period_s: float = 0.2
    ) -> None:
        self.conn = conn
        self.job_id = job_id
        self.attempt = attempt
        self.path = path
        self.period_s = period_s
        self.shipped = 0  # bytes of the file already in the registry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Ship in the background until :meth:`close`."""
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self._thread.start()

    def close(self, *, give_up_after_s: float = 3600.0) -> None:
        """Stop the thread and ship whatever is left (retrying through an outage)."""
        from sandbox_kit.dbapi import retry

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        retry(self.ship, give_up_after_s=give_up_after_s)

    def ship(self) -> int:
        """Ship the bytes written since the last call; returns how many."""
        try:
            with open(self.path, "rb") as log:
                log.seek(self.shipped)
                data = log.read()
        except FileNotFoundError:
            return 0
        sent = 0
        while sent < len(data):
            piece = data[sent : sent + CHUNK_BYTES]
            offset = self.shipped
            with self.conn.write() as st:
                # A chunk already there (a retry after a lost commit) is the same bytes.
                st.run(
                    'DELETE FROM log_chunks WHERE job_id = :id AND attempt = :a AND "offset" = :o',
                    {"id": self.job_id, "a": self.attempt, "o": offset},
                )
                st.run(
                    'INSERT INTO log_chunks (job_id, attempt, "offset", data) '
                    "VALUES (:id, :a, :o, :data)",
                    {"id": self.job_id, "a": self.attempt, "o": offset, "data": piece},
                )
            self.shipped += len(piece)
            sent += len(piece)
        return sent

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            with contextlib.suppress(TransientError):
                self.ship()


def mirror(conn: Connection, job_id: str, path: str | os.PathLike[str]) -> int:
    """Bring the local copy of a remote job's log up to date; returns the bytes appended.

    Reads the job's current attempt, then the chunks at or past the local file's end. A
    missing chunk (one still being committed) stops the call there; the next call goes on.
    Processes mirroring the same job take turns (a lock file beside the copy), so a new
    attempt's restart of the file never races another's writes.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(target.with_name(f".{target.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _mirror(conn, job_id, target)
    finally:
        os.close(lock)  # releases the lock


def _mirror(conn: Connection, job_id: str, target: Path) -> int:
    with conn.read() as st:
        row = st.run("SELECT attempt FROM jobs WHERE id = :id", {"id": job_id}).one()
        if row is None:
            return 0
        attempt = int(row[0] or 1)
    marker = target.with_name(f".{target.name}.attempt")
    if _attempt_of(marker) != attempt:
        # A new attempt: its log replaces the older one's.
        with open(target, "wb"):
            pass
        marker.write_text(str(attempt), encoding="ascii")
    appended = 0
    while True:
        size = target.stat().st_size if target.exists() else 0
        with conn.read() as st:
            rows = st.run(
                'SELECT "offset", data FROM log_chunks WHERE job_id = :id AND attempt = :a '
                'AND "offset" + length(data) > :size ORDER BY "offset" LIMIT :n',
                {"id": job_id, "a": attempt, "size": size, "n": _BATCH},
            ).all()
        if not rows:
            return appended
        fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for offset, stored in rows:
                data = bytes(stored)
                if offset > size:
                    return appended  # a gap: that chunk is not committed yet
                os.pwrite(fd, data[size - offset :], size)
                appended += offset + len(data) - size
                size = offset + len(data)
        finally:
            os.close(fd)
        if len(rows) < _BATCH:
            return appended


def _attempt_of(marker: Path) -> int | None:
    try:
        return int(marker.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
