"""The scheduler: a process of its own that fires schedules, watches deadlines and notifies.

``sandbox-kit scheduler`` runs it in the foreground (logs to stderr and
``$SANDBOX_HOME/logs/scheduler.log``; SIGTERM or Ctrl-C stop it cleanly: the current pass
ends, deliveries in flight get a few seconds, the lease is released). ``sandbox-kit serve``
starts one beside Voilà; it never runs inside a notebook kernel.

**Exactly once.** Any number of schedulers may run against one database: a lease
(:mod:`sandbox_kit.lease`) elects one leader, and only the leader acts, each write fenced by
its lease token. Each (schedule, fire time) is a unique row of ``schedule_fires``: the leader
claims it (outcome ``due``), then submits its job in a transaction that also turns the row
``submitted`` (the job insert and the row change commit together, or neither does). A
leader that dies between the two leaves a ``due`` row that its successor submits: no fire
time is lost or doubled.

**A pass** (every second or so):

1. *Claim due fire times* after each enabled schedule's cursor. A fire time at most
   ``SANDBOX_SCHEDULER_GRACE_S`` (120 s) old is on time. Older ones were missed (no scheduler
   ran, the machine slept): with ``--missed skip`` one ``missed`` row records them; with
   ``once`` a single catch-up run is made for all of them, unless an on-time fire time of the
   same pass already covers them.
2. *Start claimed runs*, applying the overlap policy when the schedule's previous run is still
   queued or running: ``skip`` (the fire time is recorded ``skipped``), ``queue`` (it waits,
   ``waiting``, and starts when the previous run ends) or ``cancel`` (the previous run is
   cancelled, then the new one starts). A run that cannot start (no active model, no
   successful job for ``latest:DMO`` yet) is recorded ``error`` and notified (``not_started``).
3. *Watch deadlines*: a run not ended by ``deadline_at`` is marked ``deadline_missed`` and
   notified; with ``--deadline-action cancel`` it is also cancelled.
4. *Notify job ends* (every job's, scheduled or not) to ``SANDBOX_NOTIFY`` and to the
   schedule's own targets (:mod:`sandbox_kit.notify`), from background threads.

**Clock.** The scheduler's clock can be injected (``Scheduler(clock=...)``) and, for tests
and demonstrations, sped up (:func:`sandbox_kit.cron.clock_from_env`):
``SANDBOX_SCHEDULER_CLOCK=SCALE@ANCHOR`` makes the clock run ``SCALE`` times faster than real
time from the Unix time ``ANCHOR`` on (schedulers sharing a database must be given the same
value). Three minutes of an every-minute schedule then take
18 s at ``10@<now>``; the lease and grace periods are on that clock too. Job end times stay
real, so deadlines judged on a sped-up clock are meaningful only while the run is going.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox_kit import cron, executor, launcher, notify
from sandbox_kit.dbapi import Statements, TransientError
from sandbox_kit.errors import RunError, SandboxKitError, ValidationError
from sandbox_kit.lease import Lease, LeaseLost
from sandbox_kit.lifecycle import TERMINAL, utcnow
from sandbox_kit.records import Model

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

#: Job ends looked at again after this much (real) time, in case a slow commit landed late.
_NOTIFY_MARGIN = timedelta(seconds=60)
#: Job ends older than this are never notified (a scheduler that was down for a week).
_NOTIFY_LOOKBACK = timedelta(days=1)
# How often the leader looks for notifications a stopped scheduler left unfinished.
_RESUME_EVERY_S = 60.0


class _AlreadyFired(Exception):
    """The fire time was started (or settled) by another pass or scheduler meanwhile."""


@dataclass(frozen=True, slots=True)
class _Schedule:
    """What a pass needs of a schedule row."""

    id: int
    name: str
    target: str
    model_type: str
    cron: str
    timezone: str
    config: dict[str, Any]
    data_source: str | None
    missed: str
    overlap: str
    deadline_min: float | None
    deadline_action: str
    notify: tuple[str, ...]
    notify_on: tuple[str, ...] | None
    cursor_at: datetime
    enabled: bool

    @property
    def label(self) -> str:
        return f"schedule {self.id} ({self.name})"


@dataclass(slots=True)
class Tick:
    """What one pass did (for ``--once``, the log and tests).

    Attributes:
        leading: this scheduler held the lease during the pass.
        claimed: fire times claimed, as ``(schedule id, fire time, outcome)``.
        submitted: job ids started.
        notified: notifications handed to the notifier.
        resent: unfinished notifications of a stopped scheduler handed to it again.
    """

    leading: bool = False
    claimed: list[tuple[int, datetime, str]] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    notified: int = 0
    resent: int = 0


class Scheduler:
    """Fires the schedules of one sandbox while it leads.

    Args:
        sandbox: the sandbox whose registry holds the schedules.
        clock: the scheduler's clock, UTC (tests inject one).
        scale: how much faster than real time ``clock`` runs (sets the polling period).
        log: where it reports (default: the ``sandbox_kit.scheduler`` logger).
        notifier: delivers notifications (default: one on the sandbox's database).
        holder: its name in the lease table (default: host, pid and a random part).
        backoff_s: the first pause between notification attempts.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        clock: Callable[[], datetime] = utcnow,
        scale: float = 1.0,
        log: logging.Logger | None = None,
        notifier: notify.Notifier | None = None,
        holder: str | None = None,
        backoff_s: float = 2.0,
    ) -> None:
        self.sandbox = sandbox
        self.clock = clock
        self.log = log or logging.getLogger("sandbox_kit.scheduler")
        settings = sandbox.settings
        self.lease = Lease(
            sandbox.lifecycle.conn, ttl_s=settings.scheduler_lease_s, clock=clock, holder=holder
        )
        self.grace = timedelta(seconds=settings.scheduler_grace_s)
        #: Real seconds between passes: a few per lease renewal.
        self.poll_s = max(0.05, min(1.0, settings.scheduler_lease_s / max(scale, 1e-9) / 6))
        self.notifier = notifier or notify.Notifier(
            sandbox.lifecycle.conn, log=self.log, backoff_s=backoff_s
        )
        self._renewed: datetime | None = None
        self._was_leading = False
        self._schedules: dict[int, _Schedule] = {}
        self._handled: dict[str, datetime] = {}  # job ids looked at for notifications
        self._notify_since: datetime | None = None
        self._watermark_saved = 0.0
        self._last_reconcile = 0.0
        self._last_resume: float | None = None

    # -- the pass -----------------------------------------------------------------------

    def tick(self) -> Tick:
        """One pass: lead (or not), claim, start, watch deadlines, notify."""
        result = Tick()
        if not self._lead():
            return result
        result.leading = True
        try:
            self._schedules = {s.id: s for s in self._read_schedules()}
            self._claim_due(result)
            self._start_claimed(result)
            self._watch_deadlines(result)
            self._notify_ends(result)
            self._resume_deliveries(result)
        except LeaseLost as exc:
            self.log.warning("stopped leading mid-pass: %s", exc)
            result.leading = False
            self._was_leading = False
        if time.monotonic() - self._last_reconcile > self.sandbox.settings.lost_after_s:
            # Jobs whose supervisor died become `lost` (and are notified as such).
            self._last_reconcile = time.monotonic()
            self.sandbox.reconcile()
        return result

    def run(
        self,
        stop: threading.Event,
        *,
        once: bool = False,
        parent_pid: int | None = None,
    ) -> Tick:
        """Pass after pass until ``stop`` is set (or once), then release the lease.

        Args:
            once: one pass, wait for its notifications, and return.
            parent_pid: stop when this process is no longer our parent (``serve`` starts the
                scheduler beside Voilà and must not leave it behind).
        """
        last = Tick()
        try:
            while True:
                try:
                    last = self.tick()
                except (TransientError, SandboxKitError) as exc:
                    self.log.warning("pass failed, trying again: %s", exc)
                except Exception as exc:  # a database outage the drivers report their way
                    self.log.error("pass failed: %s: %s", type(exc).__name__, exc)
                if once or stop.is_set():
                    break
                if parent_pid is not None and os.getppid() != parent_pid:
                    self.log.info("the process that started the scheduler is gone; stopping")
                    break
                stop.wait(self.poll_s)
        finally:
            if not self.notifier.drain(60.0 if once else 10.0):
                self.log.warning("stopping with notifications still being delivered")
            self.notifier.close(timeout=0)
            with contextlib.suppress(Exception):
                self.lease.release()
        return last

    # -- leadership -----------------------------------------------------------------------

    def _lead(self) -> bool:
        now = self.clock()
        renew_every = self.lease.ttl / 3
        if self.lease.leading and self._renewed is not None and now - self._renewed < renew_every:
            return True
        try:
            leading = self.lease.acquire()
        except TransientError as exc:
            self.log.warning("cannot reach the database to renew the lease: %s", exc)
            return False
        self._renewed = now if leading else None
        if leading != self._was_leading:
            if leading:
                self.log.info(
                    "leading (lease token %s, holder %s)", self.lease.token, self.lease.holder
                )
                self._notify_since = self.lease.notify_since()
            else:
                self.log.info("following: another scheduler holds the lease")
            self._was_leading = leading
        return leading

    # -- 1. claim due fire times ------------------------------------------------------------

    def _read_schedules(self) -> list[_Schedule]:
        with self.sandbox.lifecycle.conn.read() as st:
            rows = st.run(
                "SELECT id, name, target, model_type, cron, timezone, config, data_source, "
                "missed, overlap, deadline_min, deadline_action, notify, notify_on, cursor_at, "
                "enabled FROM schedules ORDER BY id"
            ).all()
            return [
                _Schedule(
                    id=int(r[0]),
                    name=str(r[1]),
                    target=str(r[2]),
                    model_type=str(r[3]),
                    cron=str(r[4]),
                    timezone=str(r[5]),
                    config=json.loads(r[6] or "{}"),
                    data_source=r[7],
                    missed=str(r[8]),
                    overlap=str(r[9]),
                    deadline_min=r[10],
                    deadline_action=str(r[11]),
                    notify=tuple(json.loads(r[12] or "[]")),
                    notify_on=None if r[13] is None else tuple(json.loads(r[13])),
                    cursor_at=st.moment(r[14]) or utcnow(),
                    enabled=bool(r[15]),
                )
                for r in rows
            ]

    def _claim_due(self, result: Tick) -> None:
        now = self.clock()
        for schedule in self._schedules.values():
            if not schedule.enabled:
                continue
            try:
                entries, cursor = self._due(schedule, now)
            except ValidationError as exc:  # a zone removed from the system's tz database
                self.log.error("%s cannot be computed: %s", schedule.label, exc)
                continue
            if not entries:
                continue
            with self.sandbox.lifecycle.conn.write() as st:
                self.lease.check(st)
                moved = st.run(
                    "UPDATE schedules SET cursor_at = :new WHERE id = :id AND cursor_at = :old "
                    "AND enabled = :t",
                    {"new": cursor, "id": schedule.id, "old": schedule.cursor_at, "t": True},
                ).rowcount
                if moved != 1:
                    continue  # paused, edited or deleted meanwhile: next pass sees it anew
                for fire_at, outcome, detail in entries:
                    if _insert_fire(
                        st,
                        schedule_id=schedule.id,
                        fire_at=fire_at,
                        outcome=outcome,
                        detail=detail,
                        now=now,
                    ):
                        result.claimed.append((schedule.id, fire_at, outcome))
            for fire_at, outcome, detail in entries:
                if outcome == "missed":
                    self.log.warning("%s: %s", schedule.label, detail)
                elif detail:
                    self.log.info("%s: %s", schedule.label, detail)
                else:
                    self.log.info("%s: fire time %s due", schedule.label, _iso(fire_at))

    def _due(
        self, schedule: _Schedule, now: datetime
    ) -> tuple[list[tuple[datetime, str, str | None]], datetime]:
        """The fire rows to claim for ``schedule`` and its new cursor."""
        late_until = now - self.grace
        late = cron.fire_times(schedule.cron, schedule.timezone, schedule.cursor_at, late_until)
        count = str(len(late))
        if len(late) >= cron.MAX_FIRE_TIMES:  # down for very long: find the newest directly
            count = f"more than {cron.MAX_FIRE_TIMES}"
            start = max(schedule.cursor_at, late_until - timedelta(days=2))
            late = [late[0], *cron.fire_times(schedule.cron, schedule.timezone, start, late_until)]
        on_time = cron.fire_times(
            schedule.cron, schedule.timezone, max(schedule.cursor_at, late_until), now
        )
        entries: list[tuple[datetime, str, str | None]] = []
        if late:
            span = f"{_iso(late[0])}" + (f" to {_iso(late[-1])}" if len(late) > 1 else "")
            if schedule.missed == "once" and not on_time:
                entries.append(
                    (late[-1], "due", f"catch-up run for {count} missed fire time(s): {span}")
                )
            else:
                covered = (
                    f"; the run at {_iso(on_time[0])} covers them"
                    if schedule.missed == "once"
                    else ""
                )
                entries.append(
                    (late[-1], "missed", f"{count} fire time(s) missed: {span}{covered}")
                )
        entries += [(t, "due", None) for t in on_time]
        cursor = max(t for t, _, _ in entries) if entries else schedule.cursor_at
        return entries, cursor

    # -- 2. start claimed runs -------------------------------------------------------------

    def _start_claimed(self, result: Tick) -> None:
        with self.sandbox.lifecycle.conn.read() as st:
            rows = st.run(
                "SELECT id, schedule_id, fire_at, outcome FROM schedule_fires "
                "WHERE outcome IN ('due', 'waiting') ORDER BY fire_at, id"
            ).all()
            pending = [(int(r[0]), int(r[1]), st.moment(r[2]), str(r[3])) for r in rows]
        started = False
        for fire_id, schedule_id, fire_at, outcome in pending:
            schedule = self._schedules.get(schedule_id)
            if schedule is None or fire_at is None:
                continue  # deleted meanwhile (its rows go with it)
            if not schedule.enabled:
                self._settle(fire_id, "skipped", "the schedule was paused")
                continue
            job_id = self._start(schedule, fire_id, fire_at, outcome)
            if job_id is not None:
                result.submitted.append(job_id)
                started = True
        if started:
            queue = launcher.queue_spec(self.sandbox.settings)
            executor.dispatch(self.sandbox.lifecycle, queue, log=self.log)

    def _start(
        self, schedule: _Schedule, fire_id: int, fire_at: datetime, outcome: str
    ) -> str | None:
        active = self._active_runs(schedule.id)
        if active:
            previous = ", ".join(f"{job} ({status})" for job, status in active)
            if schedule.overlap == "skip":
                self._settle(fire_id, "skipped", f"previous run still going: {previous}")
                self.log.info("%s: skipped %s, %s", schedule.label, _iso(fire_at), previous)
                return None
            if schedule.overlap == "queue":
                if outcome == "due":
                    self._settle(fire_id, "waiting", f"waiting for the previous run {previous}")
                return None
            for job_id, _ in active:  # cancel: the previous run makes way
                launcher.cancel(self.sandbox.lifecycle, job_id, actor=f"schedule:{schedule.id}")
                self.log.info("%s: cancelled the previous run %s", schedule.label, job_id)
        try:
            job_id = self._submit(schedule, fire_id, fire_at)
        except _AlreadyFired:
            return None
        except SandboxKitError as exc:
            reason = str(exc)
            if self._settle(fire_id, "error", reason):
                self.log.error(
                    "%s: run for %s not started: %s", schedule.label, _iso(fire_at), reason
                )
                self._notify_not_started(schedule, fire_at, reason)
            return None
        self.log.info("%s: started job %s for %s", schedule.label, job_id, _iso(fire_at))
        return job_id

    def _submit(self, schedule: _Schedule, fire_id: int, fire_at: datetime) -> str:
        sb = self.sandbox
        model = self._model(schedule)
        source = sb.resolve_source(schedule.data_source)
        deadline_at = (
            None
            if schedule.deadline_min is None
            else fire_at + timedelta(minutes=schedule.deadline_min)
        )

        def claim(st: Statements, values: Any) -> None:
            # In the job's insert transaction: still the leader, and the fire time still
            # unstarted; otherwise the job is not created.
            self.lease.check(st)
            changed = st.run(
                "UPDATE schedule_fires SET outcome = 'submitted', job_id = :job, "
                "updated_at = :now WHERE id = :id AND outcome IN ('due', 'waiting')",
                {"job": values["id"], "now": self.clock(), "id": fire_id},
            ).rowcount
            if changed != 1:
                raise _AlreadyFired(fire_id)

        return launcher.submit(
            sb.db,
            sb.lifecycle,
            sb.paths,
            sb.settings,
            model,
            config=schedule.config,
            source=source,
            timeout=None,
            started_by=f"schedule:{schedule.id}",
            schedule_id=schedule.id,
            deadline_at=deadline_at,
            guard=claim,
        )

    def _model(self, schedule: _Schedule) -> Model:
        if schedule.target.isdigit():
            model = self.sandbox.model(int(schedule.target))
        else:
            found = self.sandbox.active_model(schedule.model_type)
            if found is None:
                raise RunError(
                    f"no active {schedule.model_type} model; upload one or activate a version",
                    model_type=schedule.model_type,
                )
            model = found
        launcher.ensure_model_runnable(model)
        return model

    def _active_runs(self, schedule_id: int) -> list[tuple[str, str]]:
        with self.sandbox.lifecycle.conn.read() as st:
            rows = st.run(
                "SELECT id, status FROM jobs WHERE schedule_id = :s AND status IN (:q, :r) "
                "ORDER BY created_at",
                {"s": schedule_id, "q": "queued", "r": "running"},
            ).all()
            return [(str(job), str(status)) for job, status in rows]

    def _settle(self, fire_id: int, outcome: str, detail: str) -> bool:
        """Record what came of a claimed fire time (fenced); False if it was settled already."""
        with self.sandbox.lifecycle.conn.write() as st:
            self.lease.check(st)
            return bool(
                st.run(
                    "UPDATE schedule_fires SET outcome = :o, detail = :d, updated_at = :now "
                    "WHERE id = :id AND outcome IN ('due', 'waiting')",
                    {"o": outcome, "d": detail, "now": self.clock(), "id": fire_id},
                ).rowcount
                == 1
            )

    # -- 3. deadlines ------------------------------------------------------------------

    def _watch_deadlines(self, result: Tick) -> None:
        now = self.clock()
        with self.sandbox.lifecycle.conn.read() as st:
            rows = st.run(
                "SELECT id, status, finished_at, deadline_at, schedule_id FROM jobs "
                "WHERE deadline_missed IS NULL AND deadline_at IS NOT NULL"
            ).all()
            jobs = [(str(r[0]), str(r[1]), st.moment(r[2]), st.moment(r[3]), r[4]) for r in rows]
        lifecycle = self.sandbox.lifecycle
        for job_id, status, finished, deadline, schedule_id in jobs:
            assert deadline is not None
            if status in TERMINAL:
                missed = finished is not None and finished > deadline
            elif now >= deadline:
                missed = True
            else:
                continue
            if not lifecycle.judge_deadline(job_id, missed=missed) or not missed:
                continue
            schedule = self._schedules.get(int(schedule_id)) if schedule_id is not None else None
            self.log.warning("job %s missed its deadline %s", job_id, _iso(deadline))
            cancel = schedule is not None and schedule.deadline_action == "cancel"
            if status not in TERMINAL and schedule is not None and cancel:
                launcher.cancel(lifecycle, job_id, actor=f"schedule:{schedule.id}")
                self.log.warning("job %s cancelled: its deadline passed", job_id)
            result.notified += self._notify_job(job_id, "deadline", schedule)

    # -- 4. notifications -------------------------------------------------------------------

    def _notify_ends(self, result: Tick) -> None:
        real_now = utcnow()
        if not self.sandbox.settings.notify and not any(s.notify for s in self._schedules.values()):
            # Nobody to tell: keep the watermark moving, so targets added later are not told
            # about ends from before they were.
            self._notify_since = real_now - _NOTIFY_MARGIN
            if time.monotonic() - self._watermark_saved > _NOTIFY_MARGIN.total_seconds():
                self._watermark_saved = time.monotonic()
                self.lease.advance_notify_since(self._notify_since)
            return
        since = max(self._notify_since or real_now, real_now - _NOTIFY_LOOKBACK)
        with self.sandbox.lifecycle.conn.read() as st:
            rows = st.run(
                "SELECT id, status, outcome, schedule_id, finished_at FROM jobs "
                "WHERE finished_at >= :since ORDER BY finished_at",
                {"since": since - _NOTIFY_MARGIN},
            ).all()
            ends = [(str(r[0]), str(r[1]), r[2], r[3], st.moment(r[4])) for r in rows]
        newest = since
        for job_id, status, outcome, schedule_id, finished in ends:
            if finished is not None:
                newest = max(newest, finished)
            if job_id in self._handled:
                continue
            event = notify.event_of(status, outcome)
            if event is not None:
                schedule = (
                    self._schedules.get(int(schedule_id)) if schedule_id is not None else None
                )
                result.notified += self._notify_job(job_id, event, schedule)
            self._handled[job_id] = finished or real_now
        if newest > since:
            self.lease.advance_notify_since(newest)
            self._notify_since = newest
        horizon = since - 2 * _NOTIFY_MARGIN
        self._handled = {k: v for k, v in self._handled.items() if v >= horizon}

    def _targets(self, event: str, schedule: _Schedule | None) -> list[str]:
        settings = self.sandbox.settings
        urls = list(settings.notify) if event in settings.notify_on else []
        if schedule is not None:
            wanted = schedule.notify_on if schedule.notify_on is not None else settings.notify_on
            urls += [url for url in schedule.notify if event in wanted]
        return list(dict.fromkeys(urls))

    def _notify_job(self, job_id: str, event: str, schedule: _Schedule | None) -> int:
        sent = 0
        for url in self._targets(event, schedule):
            claim = self.notifier.claim(
                subject=job_id,
                event=event,
                url=url,
                job_id=job_id,
                schedule_id=None if schedule is None else schedule.id,
                guard=self.lease.check,
            )
            if claim is None:
                continue
            label = None if schedule is None else schedule.label
            self.notifier.send(claim, functools.partial(self._job_message, job_id, event, label))
            sent += 1
        return sent

    def _notify_not_started(self, schedule: _Schedule, fire_at: datetime, reason: str) -> None:
        subject = _fire_subject(schedule.id, fire_at)
        message = notify.compose_not_started(
            schedule.label, fire_at, reason, dashboard_url=self.sandbox.settings.dashboard_url
        )
        for url in self._targets("not_started", schedule):
            claim = self.notifier.claim(
                subject=subject,
                event="not_started",
                url=url,
                schedule_id=schedule.id,
                guard=self.lease.check,
            )
            if claim is not None:
                self.notifier.send(claim, message)

    def _resume_deliveries(self, result: Tick) -> None:
        """Deliver again what a scheduler that stopped had claimed but not recorded (once a
        minute: such rows are at least :data:`notify.RESEND_AFTER` old)."""
        last = self._last_resume
        if last is not None and time.monotonic() - last < _RESUME_EVERY_S:
            return
        self._last_resume = time.monotonic()
        for row in self.notifier.unfinished():
            schedule = None if row.schedule_id is None else self._schedules.get(row.schedule_id)
            urls = self._targets(row.event, schedule)
            url = next((u for u in urls if notify.target_key(u) == row.target_key), None)
            if url is None:
                self.notifier.abandon(
                    row,
                    "not delivered: the scheduler that claimed it stopped, and the target is "
                    "no longer configured",
                    guard=self.lease.check,
                )
                continue
            claim = self.notifier.reclaim(row, url, guard=self.lease.check)
            if claim is None:
                continue
            self.log.warning(
                "notifying %s of %s %s again: the scheduler that claimed it stopped",
                notify.redact(url),
                row.subject,
                row.event,
            )
            label = None if schedule is None else schedule.label
            message: Callable[[], notify.Message]
            if row.job_id is not None:
                message = functools.partial(self._job_message, row.job_id, row.event, label)
            else:
                message = functools.partial(self._fire_message, row.subject, label)
            self.notifier.send(claim, message)
            result.resent += 1

    def _fire_message(self, subject: str, label: str | None) -> notify.Message:
        """The message of a fire time that started no run (``schedule:ID@TIME``), again."""
        schedule_id, fire_at = _parse_fire_subject(subject)
        with self.sandbox.lifecycle.conn.read() as st:
            found = st.run(
                "SELECT detail FROM schedule_fires WHERE schedule_id = :s AND fire_at = :f",
                {"s": schedule_id, "f": fire_at},
            ).one()
        reason = str(found[0]) if found and found[0] else "see the schedule's fire times"
        return notify.compose_not_started(
            label or f"schedule {schedule_id}",
            fire_at,
            reason,
            dashboard_url=self.sandbox.settings.dashboard_url,
        )

    def _job_message(self, job_id: str, event: str, schedule: str | None) -> notify.Message:
        info = self.sandbox.jobstore.get(job_id)
        return notify.compose(
            info,
            event,
            notify.log_tail(info.log_path),
            dashboard_url=self.sandbox.settings.dashboard_url,
            schedule=schedule,
        )


def _insert_fire(
    st: Statements,
    *,
    schedule_id: int,
    fire_at: datetime,
    outcome: str,
    detail: str | None,
    now: datetime,
) -> bool:
    """Claim a fire time (the unique key); False when it was claimed already."""
    if st.run(
        "SELECT 1 FROM schedule_fires WHERE schedule_id = :s AND fire_at = :f",
        {"s": schedule_id, "f": fire_at},
    ).one():
        return False
    st.run(
        "INSERT INTO schedule_fires (schedule_id, fire_at, outcome, detail, created_at, "
        "updated_at) VALUES (:s, :f, :o, :d, :now, :now)",
        {"s": schedule_id, "f": fire_at, "o": outcome, "d": detail, "now": now},
    )
    return True


def _fire_subject(schedule_id: int, fire_at: datetime) -> str:
    """The subject of a fire time's notifications: ``schedule:ID@TIME``."""
    return f"schedule:{schedule_id}@{_iso(fire_at)}"


def _parse_fire_subject(subject: str) -> tuple[int, datetime]:
    """The schedule id and fire time of a :func:`_fire_subject`."""
    schedule_id, at = subject.removeprefix("schedule:").split("@", 1)
    return int(schedule_id), datetime.fromisoformat(at)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
