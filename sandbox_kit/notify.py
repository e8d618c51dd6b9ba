"""Notifications of job ends that need a person, through Apprise (issue 10).

Events: ``failed``, ``timeout``, ``lost``, ``deadline`` (missed) and ``not_started`` (a
schedule's fire time that could not start its run) by default; ``success`` and the outcomes
``infeasible`` and ``error`` (of a successful process) on request (``SANDBOX_NOTIFY_ON``, a
schedule's ``notify_on``). ``cancelled`` is never notified: a person asked for it.

Targets are Apprise URLs (``mailto://``, ``json://``, ``slack://``, ...), per schedule and
globally (``SANDBOX_NOTIFY``). Apprise is the ``notify`` extra
(``pip install 'sandbox_kit[notify]'``); without it, adding a target is refused with a
sentence naming the extra, and a delivery is recorded as an error saying the same.

Delivery never delays or changes a job: the scheduler process (the leader, see
:mod:`sandbox_kit.scheduler`) notices job ends from the registry after the fact and hands
each message to a :class:`Notifier`, whose threads deliver it (tried 4 times: the first and
3 retries, with backoff) and record the outcome per job and target in the ``notifications``
table (``notifications`` in ``status --json``). A row is claimed before delivery under a
unique key (subject, event, target), so a message is sent once whatever the number of
schedulers. A row still ``sending`` long after its claim (:data:`RESEND_AFTER`) belongs to a
scheduler that stopped before it recorded the outcome: the leader delivers it again, so a
message is delivered at least once (twice if that scheduler stopped between sending and
recording).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sandbox_kit.dbapi import Connection
from sandbox_kit.errors import ValidationError
from sandbox_kit.humanize import duration
from sandbox_kit.lifecycle import utcnow
from sandbox_kit.logs import LogTail
from sandbox_kit.records import JobInfo, LogLine

#: Every event a target may be told about, the default ones first.
EVENTS = ("failed", "timeout", "lost", "deadline", "not_started", "success", "infeasible", "error")
#: Told unless asked otherwise: the ends that need a person.
DEFAULT_EVENTS = ("failed", "timeout", "lost", "deadline", "not_started")
#: Deliveries tried per message: the first, then 3 retries.
ATTEMPTS = 4
#: A claimed notification still ``sending`` this long after it was claimed was abandoned by a
#: scheduler that stopped (a delivery, all attempts and backoff included, takes minutes at most).
RESEND_AFTER = timedelta(minutes=10)
#: Lines of the job's log a message carries.
LOG_LINES = 20
_TAIL_BYTES = 256 * 1024  # read from the end of a log for its last lines
_EXTRA = "pip install 'sandbox_kit[notify]'"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_SHOWN_QUERY = frozenset({"to", "from", "smtp", "cc", "bcc"})
_FAILURES = frozenset({"failed", "timeout", "lost", "deadline", "not_started", "error"})


def event_of(status: str, outcome: str | None) -> str | None:
    """The event a job end is (None for ``cancelled`` and for unfinished jobs)."""
    if status in ("failed", "timeout", "lost"):
        return status
    if status == "success":
        return outcome if outcome in ("infeasible", "error") else "success"
    return None


def check_events(names: Iterable[str]) -> tuple[str, ...]:
    """Event names, checked.

    Raises:
        ValidationError: an unknown event (the message lists them).
    """
    found = tuple(dict.fromkeys(name.strip().lower() for name in names if name.strip()))
    unknown = [name for name in found if name not in EVENTS]
    if unknown:
        raise ValidationError(
            f"unknown notification event {unknown[0]!r}; expected some of {', '.join(EVENTS)}"
        )
    return found


def apprise_module() -> ModuleType:
    """Apprise, imported on first use (~200 ms).

    Raises:
        ValidationError: it is not installed; the message names the extra that brings it.
    """
    try:
        import apprise
    except ImportError as exc:
        raise ValidationError(
            f"notifications need Apprise, which is not installed ({exc}); install it with: {_EXTRA}"
        ) from None
    return apprise


def check_targets(urls: Iterable[str]) -> tuple[str, ...]:
    """Apprise URLs, each checked by Apprise itself.

    Raises:
        ValidationError: Apprise is missing, or cannot use a URL (unknown scheme, missing
            parts); the message shows the URL with its secrets hidden.
    """
    found = tuple(dict.fromkeys(url.strip() for url in urls if url.strip()))
    if not found:
        return ()
    apprise = apprise_module()
    for url in found:
        if not _SCHEME.match(url) or not apprise.Apprise().add(url):
            raise ValidationError(
                f"notification target {redact(url)} is not a URL Apprise can use "
                "(e.g. mailto://user:password@host?to=ops@example.com, json://host:port/path)"
            )
    return found


def target_kind(url: str) -> str:
    """The URL's scheme: ``mailto``, ``json``, ``slack``, ..."""
    match = _SCHEME.match(url.strip())
    return match.group(1).lower() if match else "unknown"


def target_key(url: str) -> str:
    """A stable key of the URL (its secrets are in it, so only a hash is stored)."""
    return hashlib.sha256(url.strip().encode()).hexdigest()


def redact(url: str) -> str:
    """The URL with its secrets hidden, as Apprise shows it (its scheme and host else)."""
    text = url.strip()
    try:
        import apprise

        plugin = apprise.Apprise.instantiate(text)
        if plugin:
            shown = urlsplit(str(plugin.url(privacy=True)))  # type: ignore[no-untyped-call]
            # Apprise spells out every default (retry=0&wait=0.5...): keep who and whence.
            kept = [(k, v) for k, v in parse_qsl(shown.query) if k in _SHOWN_QUERY]
            return urlunsplit(shown._replace(query=urlencode(kept, safe="@")))
    except Exception:  # an unusable URL or no Apprise: fall back to scheme and host
        pass
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://(?:[^@/?#]*@)?([^/?#]*)", text)
    if not match:
        return "(not a URL)"
    host = match.group(2) if "." in match.group(2) or ":" in match.group(2) else ""
    return f"{match.group(1)}://{host}/..." if host else f"{match.group(1)}://..."


def log_tail(path: str, lines: int = LOG_LINES) -> list[str]:
    """The last ``lines`` lines of a job's log, reading only its end."""
    tail = LogTail(path)
    found = [item for item in tail.read(_TAIL_BYTES, skip=True) if isinstance(item, LogLine)]
    return [line.text for line in found[-lines:]]


@dataclass(frozen=True, slots=True)
class Message:
    """What a target receives.

    Attributes:
        title: one line naming the job and what happened.
        body: plain text: job, model, status and reason, outcome, duration, the last log
            lines and the dashboard's address.
        failure: shown as a failure by targets that mark one.
    """

    title: str
    body: str
    failure: bool


def compose(
    info: JobInfo,
    event: str,
    log_tail: Sequence[str],
    *,
    dashboard_url: str | None,
    schedule: str | None = None,
) -> Message:
    """The message about ``info``'s ``event``."""
    what = {
        "deadline": "missed its deadline",
        "success": "succeeded",
        "infeasible": "ended infeasible",
        "error": "ended with outcome error",
    }.get(event, info.status.value)
    title = f"[sandbox_kit] {info.model_type.value} job {info.id} {what}"
    lines = [
        f"Job: {info.id}",
        f"Model: {info.model_type.value} {info.model_name} v{info.model_version}",
        f"Status: {info.status.value}" + (f" ({info.reason})" if info.reason else ""),
        f"Outcome: {info.outcome or '-'}",
        f"Duration: {duration(info.duration_s)}",
    ]
    if schedule:
        lines.append(f"Schedule: {schedule}")
    if info.deadline_at is not None:
        missed = " (missed)" if info.deadline_missed else ""
        lines.append(f"Deadline: {info.deadline_at.isoformat(timespec='seconds')}{missed}")
    if dashboard_url:
        lines.append(f"Dashboard: {dashboard_url}")
    tail = list(log_tail)[-LOG_LINES:]
    lines += ["", f"Last {len(tail)} log lines:", *tail] if tail else ["", "(no log output)"]
    return Message(title, "\n".join(lines), event in _FAILURES)


def compose_not_started(
    schedule: str, fire_at: datetime, reason: str, *, dashboard_url: str | None
) -> Message:
    """The message about a fire time that could not start its run."""
    lines = [
        f"Schedule: {schedule}",
        f"Fire time: {fire_at.isoformat(timespec='seconds')}",
        f"Not started: {reason}",
    ]
    if dashboard_url:
        lines.append(f"Dashboard: {dashboard_url}")
    return Message(f"[sandbox_kit] {schedule}: run not started", "\n".join(lines), True)


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a delivery went: ``delivered``, the attempts made, and the last error."""

    delivered: bool
    attempts: int
    error: str | None


def deliver(
    url: str,
    message: Message,
    *,
    attempts: int = ATTEMPTS,
    backoff_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send ``message`` to one target, retrying with backoff (``backoff_s``, doubling)."""
    try:
        apprise = apprise_module()
    except ValidationError as exc:
        return Delivery(False, 0, str(exc))
    kind = apprise.NotifyType.FAILURE if message.failure else apprise.NotifyType.INFO
    error: str | None = None
    for attempt in range(1, attempts + 1):
        sender = apprise.Apprise()
        if not sender.add(url):
            return Delivery(False, attempt, "Apprise cannot use this URL")
        try:
            result = sender.notify(
                body=message.body,
                title=message.title,
                notify_type=kind,
                body_format=apprise.NotifyFormat.TEXT,
            )
        except Exception as exc:  # a plugin that raises instead of reporting
            result, error = False, f"{type(exc).__name__}: {exc}"
        else:
            error = _reason(result)
        if result:
            return Delivery(True, attempt, None)
        if attempt < attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    return Delivery(False, attempts, error)


def _reason(result: Any) -> str:
    """The last warning or error Apprise recorded for a failed delivery (Apprise 2 keeps them
    on the result, per service and attempt)."""
    found = "the target did not accept it"
    with contextlib.suppress(TypeError, AttributeError):
        for service in result:
            for attempt in service:
                for entry in attempt:
                    if str(getattr(entry, "level", "")).upper() in ("WARNING", "ERROR"):
                        found = str(entry.message).strip() or found
    return found


@dataclass(frozen=True, slots=True)
class Claim:
    """A notification row this process claimed and must deliver."""

    row_id: int
    url: str
    event: str
    subject: str


@dataclass(frozen=True, slots=True)
class Unfinished:
    """A notification row claimed by a scheduler that stopped before recording its outcome."""

    row_id: int
    subject: str
    job_id: str | None
    schedule_id: int | None
    event: str
    target_key: str


class Notifier:
    """Claims notification rows and delivers them from a few background threads.

    Args:
        conn: the registry (the ``notifications`` table).
        log: where deliveries and failures are logged.
        backoff_s: the first pause between attempts (doubling).
        workers: deliveries at once (a slow target does not hold up the others).
    """

    def __init__(
        self,
        conn: Connection,
        *,
        log: logging.Logger,
        backoff_s: float = 2.0,
        workers: int = 4,
    ) -> None:
        self.conn = conn
        self.log = log
        self.backoff_s = backoff_s
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="sk-notify")
        self._pending: set[Future[None]] = set()
        self._rows: set[int] = set()  # rows this notifier is delivering (queued or sending)
        self._lock = threading.Lock()

    def claim(
        self,
        *,
        subject: str,
        event: str,
        url: str,
        job_id: str | None = None,
        schedule_id: int | None = None,
        guard: Callable[[Any], None] | None = None,
    ) -> Claim | None:
        """Record that ``url`` is to be told ``event`` about ``subject`` (a job id, or
        ``schedule:ID@TIME``); None when it was already (by this or another scheduler).

        ``guard(st)`` runs first in the same transaction (the leader's lease check).
        """
        now = utcnow()
        key = target_key(url)
        with self.conn.write() as st:
            if guard is not None:
                guard(st)
            if st.run(
                "SELECT 1 FROM notifications WHERE subject = :s AND event = :e AND target_key = :k",
                {"s": subject, "e": event, "k": key},
            ).one():
                return None
            st.run(
                "INSERT INTO notifications (subject, job_id, schedule_id, event, target_key, "
                "target_kind, target, status, attempts, created_at, updated_at) VALUES "
                "(:s, :job, :sched, :e, :k, :kind, :target, 'sending', 0, :now, :now)",
                {
                    "s": subject,
                    "job": job_id,
                    "sched": schedule_id,
                    "e": event,
                    "k": key,
                    "kind": target_kind(url),
                    "target": redact(url),
                    "now": now,
                },
            )
            row = st.run(
                "SELECT id FROM notifications WHERE subject = :s AND event = :e "
                "AND target_key = :k",
                {"s": subject, "e": event, "k": key},
            ).one()
        assert row is not None
        return Claim(int(row[0]), url, event, subject)

    def unfinished(self) -> list[Unfinished]:
        """Rows still ``sending`` :data:`RESEND_AFTER` after their claim, that this notifier
        is not delivering: their scheduler stopped before it recorded the outcome."""
        with self.conn.read() as st:
            rows = st.run(
                "SELECT id, subject, job_id, schedule_id, event, target_key FROM notifications "
                "WHERE status = 'sending' AND updated_at < :cutoff ORDER BY id",
                {"cutoff": utcnow() - RESEND_AFTER},
            ).all()
        with self._lock:
            mine = set(self._rows)
        return [
            Unfinished(int(r[0]), str(r[1]), r[2], None if r[3] is None else int(r[3]), *r[4:6])
            for r in rows
            if int(r[0]) not in mine
        ]

    def reclaim(
        self, row: Unfinished, url: str, *, guard: Callable[[Any], None] | None = None
    ) -> Claim | None:
        """Take over an unfinished row to deliver it to ``url`` (the configured target whose
        key it has); None when another scheduler took it over first."""
        now = utcnow()
        with self.conn.write() as st:
            if guard is not None:
                guard(st)
            taken = st.run(
                "UPDATE notifications SET updated_at = :now WHERE id = :id "
                "AND status = 'sending' AND updated_at < :cutoff",
                {"now": now, "id": row.row_id, "cutoff": now - RESEND_AFTER},
            ).rowcount
        return Claim(row.row_id, url, row.event, row.subject) if taken == 1 else None

    def abandon(
        self, row: Unfinished, reason: str, *, guard: Callable[[Any], None] | None = None
    ) -> None:
        """Record an unfinished row that cannot be delivered again as an error."""
        with self.conn.write() as st:
            if guard is not None:
                guard(st)
            st.run(
                "UPDATE notifications SET status = 'error', error = :error, updated_at = :now "
                "WHERE id = :id AND status = 'sending'",
                {"error": reason, "now": utcnow(), "id": row.row_id},
            )

    def send(self, claim: Claim, message: Message | Callable[[], Message]) -> None:
        """Deliver in the background and record the outcome; returns at once.

        ``message`` may be a function, called in the background (reading a log tail there).
        """
        with self._lock:
            self._rows.add(claim.row_id)
        future = self._pool.submit(self._deliver, claim, message)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def drain(self, timeout: float) -> bool:
        """Wait until every delivery handed over so far is done; False on timeout."""
        with self._lock:
            pending = list(self._pending)
        _, not_done = wait(pending, timeout=timeout)
        return not not_done

    def close(self, timeout: float = 10.0) -> None:
        """Let running deliveries finish (up to ``timeout``), then stop the threads."""
        self.drain(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _deliver(self, claim: Claim, message: Message | Callable[[], Message]) -> None:
        try:
            text = message() if callable(message) else message
            result = deliver(claim.url, text, backoff_s=self.backoff_s)
        except Exception as exc:  # composing failed (an unreadable log): still record it
            result = Delivery(False, 0, f"{type(exc).__name__}: {exc}")
        status = "delivered" if result.delivered else "error"
        shown = redact(claim.url)
        if result.delivered:
            self.log.info("notified %s of %s %s", shown, claim.subject, claim.event)
        else:
            self.log.warning(
                "could not notify %s of %s %s after %d attempt(s): %s",
                shown,
                claim.subject,
                claim.event,
                result.attempts,
                result.error,
            )
        try:
            with self.conn.write() as st:
                st.run(
                    "UPDATE notifications SET status = :status, attempts = :n, error = :error, "
                    "updated_at = :now WHERE id = :id",
                    {
                        "status": status,
                        "n": result.attempts,
                        "error": result.error,
                        "now": utcnow(),
                        "id": claim.row_id,
                    },
                )
        except Exception as exc:  # the database is down: the log above still tells
            # Still ours: not delivered again by this process, which did deliver it.
            self.log.error("could not record notification %d: %s", claim.row_id, exc)
            return
        with self._lock:
            self._rows.discard(claim.row_id)
