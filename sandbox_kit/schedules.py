"""Schedules in the registry: what runs on which clock, with which policies (issue 10).

A schedule names a target (a model type, whose active version runs at each fire time, or a
pinned model id), a five-field cron expression or a preset (:mod:`sandbox_kit.cron`), an IANA
time zone (default: the machine's), the run's config and data source (``latest:DMO`` chains a
run to the newest successful DMO's results, resolved at each fire time), the missed-run and
overlap policies, a deadline and notification targets. Firing is the scheduler's
(:mod:`sandbox_kit.scheduler`); this module only stores and reads.

Every change is recorded in the audit trail in its own transaction (``schedule_create``,
``schedule_update``, ``schedule_pause``, ``schedule_resume``, ``schedule_delete``), with
notification URLs shown with their secrets hidden.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from sandbox_kit import audit, cron, notify
from sandbox_kit.db import Database, JobRow, ScheduleFireRow, ScheduleRow, utcnow
from sandbox_kit.errors import NotFoundError, ValidationError
from sandbox_kit.records import (
    JobStatus,
    ModelType,
    Schedule,
    ScheduleFire,
    dumps_config,
)
from sandbox_kit.registry import Registry

MISSED_POLICIES = ("skip", "once")
OVERLAP_POLICIES = ("skip", "queue", "cancel")
DEADLINE_ACTIONS = ("notify", "cancel")
_UNSET: Any = object()


class ScheduleStore:
    """Schedules of one registry.

    Args:
        db: the registry's database.
        registry: to check a pinned model exists (and learn its type).
    """

    def __init__(self, db: Database, registry: Registry) -> None:
        self.db = db
        self.registry = registry

    def add(
        self,
        target: int | str | ModelType,
        *,
        cron_expr: str | None = None,
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
        actor: str,
        now: datetime | None = None,
    ) -> Schedule:
        """Validate and store a new schedule (enabled); see :meth:`Sandbox.add_schedule`."""
        moment = now or utcnow()
        if (cron_expr is None) == (preset is None):
            raise ValidationError("give either a cron expression or a preset, not both")
        base = None if preset is None else cron.preset(preset)
        values: dict[str, Any] = {
            **_target(self.registry, target),
            "cron": cron.check_cron(base.cron if base is not None else str(cron_expr)),
            "preset": None if base is None else base.name,
            "timezone": _zone(timezone if timezone is not None else cron.machine_zone()),
            "config": _config(config),
            "data_source": _data_source(data_source),
            "missed": _choice(
                missed or (base.missed if base else "skip"), MISSED_POLICIES, "missed"
            ),
            "overlap": _choice(
                overlap or (base.overlap if base else "skip"), OVERLAP_POLICIES, "overlap"
            ),
            "deadline_min": _deadline(
                deadline if deadline is not None else (base.deadline_min if base else None)
            ),
            "deadline_action": _choice(deadline_action, DEADLINE_ACTIONS, "deadline action"),
            "notify": json.dumps(list(notify_targets(notify))),
            "notify_on": _events(notify_on),
        }
        label = name.strip() if name and name.strip() else None
        values["name"] = label or f"{values['target']} {values['preset'] or values['cron']}"
        _check_name(values["name"])
        with self.db.write() as s:
            row = ScheduleRow(
                **values,
                enabled=True,
                cursor_at=moment,
                created_at=moment,
                updated_at=moment,
                created_by=actor,
            )
            s.add(row)
            s.flush()
            audit.add(
                s,
                actor=actor,
                action="schedule_create",
                object_type="schedule",
                object_id=row.id,
                details=_audit_details(row),
            )
        return self.view(row, now=moment)

    def update(
        self,
        schedule_id: int,
        *,
        actor: str,
        now: datetime | None = None,
        target: int | str | ModelType = _UNSET,
        cron_expr: str | None = _UNSET,
        preset: str | None = _UNSET,
        timezone: str = _UNSET,
        config: dict[str, Any] | None = _UNSET,
        data_source: str | None = _UNSET,
        missed: str = _UNSET,
        overlap: str = _UNSET,
        deadline: float | None = _UNSET,
        deadline_action: str = _UNSET,
        notify: Iterable[str] = _UNSET,
        notify_on: Iterable[str] | None = _UNSET,
        name: str = _UNSET,
    ) -> Schedule:
        """Change some fields of a schedule (those given); see :meth:`Sandbox.update_schedule`.

        A new clock (cron, preset or zone) starts from now: fire times before the change are
        neither run nor counted as missed.
        """
        moment = now or utcnow()
        changes: dict[str, Any] = {}
        if target is not _UNSET:
            changes.update(_target(self.registry, target))
        if preset is not _UNSET and preset is not None:
            base = cron.preset(preset)
            changes.update(cron=base.cron, preset=base.name)
        elif cron_expr is not _UNSET and cron_expr is not None:
            changes.update(cron=cron.check_cron(cron_expr), preset=None)
        if timezone is not _UNSET:
            changes["timezone"] = _zone(timezone)
        if config is not _UNSET:
            changes["config"] = _config(config)
        if data_source is not _UNSET:
            changes["data_source"] = _data_source(data_source)
        if missed is not _UNSET:
            changes["missed"] = _choice(missed, MISSED_POLICIES, "missed")
        if overlap is not _UNSET:
            changes["overlap"] = _choice(overlap, OVERLAP_POLICIES, "overlap")
        if deadline is not _UNSET:
            changes["deadline_min"] = _deadline(deadline)
        if deadline_action is not _UNSET:
            changes["deadline_action"] = _choice(
                deadline_action, DEADLINE_ACTIONS, "deadline action"
            )
        if notify is not _UNSET:
            changes["notify"] = json.dumps(list(notify_targets(notify)))
        if notify_on is not _UNSET:
            changes["notify_on"] = _events(notify_on)
        if name is not _UNSET:
            changes["name"] = _check_name(str(name).strip())
        with self.db.write() as s:
            row = _get(s, schedule_id)
            clock = (row.cron, row.timezone)
            for key, value in changes.items():
                setattr(row, key, value)
            if (row.cron, row.timezone) != clock:
                row.cursor_at = max(row.cursor_at, moment)
            row.updated_at = moment
            audit.add(
                s,
                actor=actor,
                action="schedule_update",
                object_type="schedule",
                object_id=row.id,
                details={"changed": sorted(changes), **_audit_details(row)},
            )
        return self.view(row, now=moment)

    def set_enabled(
        self, schedule_id: int, enabled: bool, *, actor: str, now: datetime | None = None
    ) -> Schedule:
        """Pause or resume. Fire times while paused are neither run nor counted as missed."""
        moment = now or utcnow()
        with self.db.write() as s:
            row = _get(s, schedule_id)
            if row.enabled != enabled:
                row.enabled = enabled
                row.updated_at = moment
                if enabled:
                    row.cursor_at = max(row.cursor_at, moment)
                audit.add(
                    s,
                    actor=actor,
                    action="schedule_resume" if enabled else "schedule_pause",
                    object_type="schedule",
                    object_id=row.id,
                    details={"name": row.name},
                )
        return self.view(row, now=moment)

    def delete(self, schedule_id: int, *, actor: str) -> Schedule:
        """Remove a schedule and its fire-time records; its jobs stay (with its id)."""
        with self.db.write() as s:
            row = _get(s, schedule_id)
            shown = self.view(row, next_fires=0)
            s.delete(row)
            audit.add(
                s,
                actor=actor,
                action="schedule_delete",
                object_type="schedule",
                object_id=schedule_id,
                details=_audit_details(row),
            )
        return shown

    def get(
        self, schedule_id: int, *, next_fires: int = 0, now: datetime | None = None
    ) -> Schedule:
        """One schedule, with its next ``next_fires`` fire times."""
        with self.db.read() as s:
            row = _get(s, schedule_id)
        return self.view(row, next_fires=next_fires, now=now)

    def all(self, *, next_fires: int = 1, now: datetime | None = None) -> list[Schedule]:
        """Every schedule, oldest first, each with its next ``next_fires`` fire times."""
        with self.db.read() as s:
            rows = list(s.scalars(select(ScheduleRow).order_by(ScheduleRow.id)))
        return [self.view(row, next_fires=next_fires, now=now) for row in rows]

    def fires(self, schedule_id: int | None = None, *, limit: int = 20) -> list[ScheduleFire]:
        """The newest fire times of one schedule (or all), newest first, with their run's
        status and deadline state."""
        query = (
            select(ScheduleFireRow, JobRow.status, JobRow.deadline_missed)
            .outerjoin(JobRow, JobRow.id == ScheduleFireRow.job_id)
            .order_by(ScheduleFireRow.fire_at.desc(), ScheduleFireRow.id.desc())
            .limit(limit)
        )
        if schedule_id is not None:
            query = query.where(ScheduleFireRow.schedule_id == schedule_id)
        with self.db.read() as s:
            rows = s.execute(query).all()
        return [
            ScheduleFire(
                schedule_id=fire.schedule_id,
                fire_at=fire.fire_at,
                outcome=fire.outcome,
                job_id=fire.job_id,
                detail=fire.detail,
                created_at=fire.created_at,
                job_status=None if status is None else JobStatus(status),
                deadline_missed=missed,
            )
            for fire, status, missed in rows
        ]

    def targets(self, schedule_id: int) -> tuple[str, ...]:
        """The schedule's notification URLs as given (secrets included: for delivery only)."""
        with self.db.read() as s:
            row = _get(s, schedule_id)
            return tuple(json.loads(row.notify or "[]"))

    def view(
        self, row: ScheduleRow, *, next_fires: int = 0, now: datetime | None = None
    ) -> Schedule:
        """The frozen view of a row, with its next fire times."""
        upcoming: tuple[datetime, ...] = ()
        if next_fires > 0 and row.enabled:
            after = max(now or utcnow(), row.cursor_at)
            upcoming = tuple(cron.next_fire_times(row.cron, row.timezone, after, next_fires))
        notify_on = None if row.notify_on is None else tuple(json.loads(row.notify_on))
        return Schedule(
            id=row.id,
            name=row.name,
            target=row.target,
            model_type=ModelType(row.model_type),
            cron=row.cron,
            preset=row.preset,
            timezone=row.timezone,
            config=json.loads(row.config or "{}"),
            data_source=row.data_source,
            enabled=bool(row.enabled),
            missed=row.missed,
            overlap=row.overlap,
            deadline_min=row.deadline_min,
            deadline_action=row.deadline_action,
            notify=tuple(notify.redact(url) for url in json.loads(row.notify or "[]")),
            notify_on=notify_on,
            created_at=row.created_at,
            updated_at=row.updated_at,
            created_by=row.created_by,
            next_fires=upcoming,
        )


def notify_targets(urls: Iterable[str]) -> tuple[str, ...]:
    """Apprise URLs, checked (a string may hold several, comma- or blank-separated)."""
    from sandbox_kit.config import split_urls

    if isinstance(urls, str):
        urls = [urls]
    return notify.check_targets(url for text in urls for url in split_urls(text))


def _get(s: Any, schedule_id: int) -> ScheduleRow:
    row = s.get(ScheduleRow, int(schedule_id))
    if row is None:
        raise NotFoundError("schedule", schedule_id)
    return row  # type: ignore[no-any-return]


def _target(registry: Registry, target: int | str | ModelType) -> dict[str, str]:
    if isinstance(target, int) or (isinstance(target, str) and target.strip().isdigit()):
        model = registry.model(int(target))
        return {"target": str(model.id), "model_type": model.model_type.value}
    try:
        kind = ModelType.parse(target)
    except ValueError as exc:
        raise ValidationError(f"schedule target: {exc} (or a model id)") from None
    return {"target": kind.value, "model_type": kind.value}


def _zone(name: str) -> str:
    cron.zone(name)
    return str(name).strip()


def _config(config: dict[str, Any] | None) -> str:
    if config is None:
        return "{}"
    if not isinstance(config, dict):
        raise ValidationError(f"config must be a JSON object (a dict), not {type(config).__name__}")
    try:
        return dumps_config(config)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"config is not JSON-serialisable: {exc}") from None


def _data_source(source: str | None) -> str | None:
    """The data source as given; resolved at each fire time (``data:NAME`` takes the newest
    version then, ``latest:TYPE`` the newest successful job of that type)."""
    if source is None or not str(source).strip():
        return None
    text = str(source).strip()
    kind, colon, rest = text.partition(":")
    if colon and kind == "latest":
        try:
            ModelType.parse(rest.strip())
        except ValueError as exc:
            raise ValidationError(f"data source {text!r}: {exc}") from None
    return text


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    word = str(value).strip().lower()
    if word not in allowed:
        raise ValidationError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return word


def _deadline(minutes: float | None) -> float | None:
    if minutes is None:
        return None
    try:
        value = float(minutes)
    except (TypeError, ValueError):
        raise ValidationError(f"deadline must be a number of minutes, not {minutes!r}") from None
    if not value > 0:
        raise ValidationError(f"deadline must be a positive number of minutes, not {minutes}")
    return value


def _events(names: Iterable[str] | None) -> str | None:
    if names is None:
        return None
    if isinstance(names, str):
        names = names.split(",")
    return json.dumps(list(notify.check_events(names)))


def _check_name(name: str) -> str:
    if not name or len(name) > 200:
        raise ValidationError("a schedule name must have 1 to 200 characters")
    return name


def _audit_details(row: ScheduleRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "target": row.target,
        "cron": row.cron,
        "preset": row.preset,
        "timezone": row.timezone,
        "config": json.loads(row.config or "{}"),
        "data_source": row.data_source,
        "missed": row.missed,
        "overlap": row.overlap,
        "deadline_min": row.deadline_min,
        "deadline_action": row.deadline_action,
        "notify": [notify.redact(url) for url in json.loads(row.notify or "[]")],
    }
