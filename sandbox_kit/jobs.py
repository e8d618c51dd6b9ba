"""The :class:`Job` handle: status, waiting, cancelling, logs and live events of one job.

A handle holds only an id and the last snapshot it read, so any process can make one for any
job (``Sandbox.job(id)``) and follow it: the database and the log file are the bus.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sandbox_kit.logs import LINE_MAX, LogTail, Progress, raw_bytes, read_lines
from sandbox_kit.records import JobInfo, JobStatus, LogLine
from sandbox_kit.results import read_result
from sandbox_kit.telemetry import MetricPoint, metrics_from_lines

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

_FILE_POLL_S = 0.02
_STATUS_POLL_S = 0.25
_CHUNK = 1 << 20  # bytes of log parsed at a time, so a huge backlog costs bounded memory


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a job, as yielded by :meth:`Job.follow`.

    Attributes:
        kind: ``started``, ``log``, ``progress`` (the current ``\\r`` line changed), or the
            terminal ``completed``, ``failed``, ``cancelled``, ``timeout``, ``lost``; and
            ``resync`` from a :class:`Follower` polled with ``lag_bytes`` that fell behind.
        job: the job's snapshot when the event was made.
        line: the log line, for ``log`` events.
        progress: the current progress line, for ``progress`` events.
        since: for ``resync``: the last line delivered before the skip; the lines after it
            up to the next ``log`` event were skipped (read them with ``since=`` this).
    """

    kind: str
    job: JobInfo
    line: LogLine | None = None
    progress: Progress | None = None
    since: int | None = None


_TERMINAL_EVENT = {
    JobStatus.SUCCESS: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.TIMEOUT: "timeout",
    JobStatus.LOST: "lost",
}


class Job:
    """A handle on one job. Attributes of the last snapshot are on :attr:`info`."""

    def __init__(self, sandbox: Sandbox, info: JobInfo) -> None:
        self._sandbox = sandbox
        self.info = info

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.status.value}>"

    @property
    def id(self) -> str:
        """The job id, ``<TYPE>_<unix ms>_<6 chars>``."""
        return self.info.id

    @property
    def status(self) -> JobStatus:
        """The status in the last snapshot (call :meth:`refresh` for a new one)."""
        return self.info.status

    def refresh(self) -> Job:
        """Read the job's current record; returns self."""
        self.info = self._sandbox.job_info(self.id)
        return self

    def wait(self, timeout: float | None = None, *, poll: float = 0.1) -> JobInfo:
        """Block until the job ends; returns its final record.

        Raises:
            TimeoutError: the job did not end within ``timeout`` seconds (it keeps running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().status.terminal:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {self.status.value} after {timeout} s")
            time.sleep(poll)
        return self.info

    def cancel(self) -> JobInfo:
        """Stop the job (see :meth:`Sandbox.cancel`); returns the refreshed record."""
        self._sandbox.cancel(self.id)
        return self.refresh().info

    def logs(self, since: int = 0) -> list[LogLine]:
        """The structured lines written so far with ``seq > since``, as one list.

        The whole list is held in memory; prefer :meth:`iter_logs` for big logs.
        """
        self._sandbox.sync_remote(self.info)
        return read_lines(self.info.log_path, since)

    def iter_logs(self, since: int = 0) -> Iterator[LogLine]:
        """The structured lines written so far with ``seq > since``, one at a time.

        The log is read in chunks of about a megabyte, so memory stays constant however long
        it is (up to the 1 GiB log cap). Lines written while iterating may or may not be
        included; use :meth:`follow` to wait for the job's end.
        """
        self._sandbox.sync_remote(self.info)
        tail = LogTail(self.info.log_path, since)
        while True:
            before = tail.offset
            for item in tail.read(_CHUNK):
                if isinstance(item, LogLine):
                    yield item
            if tail.offset == before:  # nothing complete left (lines <= since move it too)
                return

    def raw_log(self) -> bytes:
        """Every byte the model wrote to stdout and stderr, in arrival order.

        The whole log is held in memory; :func:`sandbox_kit.logs.iter_raw` streams it.
        """
        self._sandbox.sync_remote(self.info)
        return raw_bytes(self.info.log_path)

    def result(self) -> dict[str, Any] | None:
        """The model's parsed ``result.json``, or None when it wrote none.

        Raises:
            ValidationError: the file is over ``Settings.result_max_bytes`` (it is not read),
                or is not a JSON object.
        """
        self._sandbox.sync_remote(self.info, results=True)
        return read_result(self.info.result_dir, max_bytes=self._sandbox.settings.result_max_bytes)

    def metric_points(self, since: int = 0) -> list[MetricPoint]:
        """The live metrics in the log lines with ``seq > since``: ``::metric`` lines and the
        progress rows of HiGHS's MIP log (see :mod:`sandbox_kit.telemetry`)."""
        return metrics_from_lines(self.iter_logs(since))

    def tables(self) -> dict[str, Path]:
        """The tables the model registered in ``result.json``, name -> file.

        Only existing regular files inside the result folder are returned: an entry that is
        absolute, contains ``..``, names a missing file or leads out of the folder through a
        symlink is left out (a model's result must not point a reader at other files).

        Raises:
            ValidationError: ``result.json`` exists but is not a JSON object.
        """
        result = self.result() or {}
        entries = result.get("tables")
        if not isinstance(entries, dict):
            return {}
        root = Path(self.info.result_dir).resolve()
        found: dict[str, Path] = {}
        for name, value in entries.items():
            path = _inside(root, value)
            if path is not None:
                found[str(name)] = path
        return found

    def files(self, *, limit: int | None = None) -> list[Path]:
        """The regular files in the result folder and its subfolders, sorted.

        Symlinks are neither listed nor followed: they may lead out of the folder.

        Args:
            limit: stop after this many files (the first ones in sorted order), so a model
                that wrote a million files costs a viewer little.
        """
        self._sandbox.sync_remote(self.info, results=True)
        found: list[Path] = []
        # Depth first with each folder's entries sorted gives the order of sorted(paths); an
        # explicit stack, as a model may nest folders deeper than Python's recursion limit.
        root = Path(self.info.result_dir)
        stack = [root]
        while stack and (limit is None or len(found) < limit):
            path = stack.pop()
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue  # removed while we looked
            if stat.S_ISREG(mode) and path != root:
                found.append(path)
            elif stat.S_ISDIR(mode):
                try:
                    names = sorted(os.listdir(path), reverse=True)
                except OSError:
                    continue
                stack.extend(path / name for name in names)
        return found

    def follow(self, since: int = 0, *, stop: Callable[[], bool] | None = None) -> Iterator[Event]:
        """Yield the job's events until it ends (or ``stop()`` returns True).

        Every log line with ``seq > since`` is yielded exactly once, in order, whether the job
        is still running, long finished, or started by another process. A job that never ran
        (cancelled while queued) yields only its terminal event, without ``started``.
        """
        follower = Follower(self.info, since)
        next_status = 0.0
        while stop is None or not stop():
            if time.monotonic() >= next_status:
                self.refresh()
                next_status = time.monotonic() + _STATUS_POLL_S
            yield from follower.poll(self.info)
            if follower.done:
                return
            if not follower.moved:
                time.sleep(_FILE_POLL_S)


class Follower:
    """The non-blocking core of :meth:`Job.follow`: one job's events, one poll at a time.

    Each :meth:`poll` reads what is new in the durable log (a bounded chunk) and compares the
    job record it is given; it never sleeps or reads the database, so one thread can serve
    many followers (the HTTP API's event stream does; issue 16). Every line with
    ``seq > since`` is returned exactly once, in order, unless ``lag_bytes`` says otherwise.

    Args:
        info: the job's record (for its log path).
        since: skip lines with ``seq <= since``.
    """

    def __init__(self, info: JobInfo, since: int = 0) -> None:
        self._tail = LogTail(info.log_path, since)
        self._path = info.log_path
        #: The last line returned (``since`` before any).
        self.last_seq = since
        #: True once the terminal event was returned; later polls return nothing.
        self.done = False
        #: True when the last poll consumed log bytes: more may be waiting, poll again soon.
        self.moved = False
        self._announced = False

    @property
    def offset(self) -> int:
        """Bytes of the log consumed so far."""
        return self._tail.offset

    def poll(
        self, info: JobInfo, max_bytes: int = _CHUNK, *, lag_bytes: int | None = None
    ) -> list[Event]:
        """The events since the last poll, given the job's current record.

        Args:
            info: the job's record, read after the previous poll.
            max_bytes: read at most about this much of the log.
            lag_bytes: when more than this is waiting unread, skip to the newest part and
                say so with a ``resync`` event (a live view that cannot keep up); None reads
                everything.
        """
        if self.done:
            return []
        events: list[Event] = []
        ran = info.status is JobStatus.RUNNING or info.started_at is not None
        if not self._announced and ran:
            self._announced = True
            events.append(Event("started", info))
        terminal = info.status.terminal
        before = self._tail.offset
        # LogTail never reads less than two whole records' worth, nor skips within it.
        lag = None if lag_bytes is None else max(lag_bytes, 2 * LINE_MAX)
        if lag is not None and self._waiting() > lag:
            events.append(Event("resync", info, since=self.last_seq))
            items = self._tail.read(lag, skip=True)
        else:
            items = self._tail.read(max_bytes)
        for item in items:
            if isinstance(item, LogLine):
                self.last_seq = item.seq
                events.append(Event("log", info, line=item))
            else:
                events.append(Event("progress", info, progress=item))
        # More may be waiting when the offset moved: a long backlog is read in bounded chunks
        # (a chunk of lines at or below ``since`` yields nothing, yet is no reason to stop).
        self.moved = self._tail.offset != before
        if terminal and not self.moved:
            # The supervisor closes the log before it records the end: all lines are in.
            events.append(Event(_TERMINAL_EVENT[info.status], info))
            self.done = True
        return events

    def _waiting(self) -> int:
        try:
            return os.stat(self._path).st_size - self._tail.offset
        except FileNotFoundError:
            return 0


def _inside(root: Path, value: object) -> Path | None:
    """``root / value`` resolved, when it is an existing regular file under ``root``."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return None
    relative = PurePosixPath(value)
    if relative.is_absolute() or ".." in relative.parts:
        return None
    try:
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path
