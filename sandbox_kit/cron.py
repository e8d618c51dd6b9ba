"""The market clock: cron expressions in an IANA time zone, and the presets of the market day.

A schedule's fire times are computed by cronsim (a maintained parser that follows Debian's
cron, DST quirks included) in the schedule's zone (``zoneinfo``), and handed out as UTC
instants. Around daylight-saving changes (issue 10):

- **Spring forward**: a fixed fire time that does not exist that day (``30 2 * * *`` in
  Europe/Berlin on the last Sunday of March) runs once, at the next valid instant (03:00).
- **Fall back**: a fixed fire time that occurs twice (``30 1 * * *`` in America/New_York on
  the first Sunday of November) runs once, at its first occurrence.
- **Intervals** (a ``*`` or ``*/N`` in the minute or hour field: ``*/5 * * * *``,
  ``0 * * * *``) keep their interval in real time: the short day simply has no 02:xx fire
  times, and the long day's repeated hour has its fire times twice, one per instant (each is
  a market interval of its own in a 25-hour day). This is what cron does.

Presets (:data:`PRESETS`) are the market's usual clocks; every field a preset sets can be
overridden when a schedule is added.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from sandbox_kit.errors import ValidationError

#: How many fire times one look-ahead or catch-up computes at most (a year of 5-minute
#: intervals is ~105,000: a scheduler down that long records one "missed" entry, not all).
MAX_FIRE_TIMES = 10_000


@dataclass(frozen=True, slots=True)
class Preset:
    """A named market clock: when to fire and what is expected of the run.

    Attributes:
        name: what ``--preset`` takes.
        cron: the five-field cron expression, in the schedule's zone.
        deadline_min: minutes after the fire time by which the run must have ended, or None.
        missed: ``skip`` or ``once`` (see :mod:`sandbox_kit.scheduler`).
        overlap: ``skip``, ``queue`` or ``cancel``.
        description: one line for ``schedule add --help`` and the dashboard.
    """

    name: str
    cron: str
    deadline_min: float | None
    missed: str
    overlap: str
    description: str


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "day-ahead",
            "0 9 * * *",
            180.0,
            # A day-ahead run that missed 09:00 is still worth making before gate closure.
            "once",
            "skip",
            "daily at 09:00 local, done within 180 min (before a 12:00 gate closure)",
        ),
        Preset(
            "real-time-5min",
            "*/5 * * * *",
            4.0,
            "skip",
            "skip",
            "every 5 minutes, done within 4 min; a run still going skips the next",
        ),
        Preset(
            "real-time-15min",
            "*/15 * * * *",
            14.0,
            "skip",
            "skip",
            "every 15 minutes, done within 14 min; a run still going skips the next",
        ),
        Preset("hourly", "0 * * * *", None, "skip", "skip", "every hour on the hour"),
    )
}


def preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ValidationError: no such preset (the message lists them).
    """
    try:
        return PRESETS[name.strip().lower()]
    except KeyError:
        names = ", ".join(PRESETS)
        raise ValidationError(f"unknown preset {name!r}; expected one of {names}") from None


def check_cron(expr: str) -> str:
    """A five-field cron expression, normalised to single spaces.

    Raises:
        ValidationError: not five fields, or a field cronsim rejects (with its reason).
    """
    fields = str(expr).split()
    if len(fields) != 5:
        raise ValidationError(
            f"cron expression {expr!r} must have 5 fields (minute hour day month weekday), "
            f"not {len(fields)}"
        )
    text = " ".join(fields)
    try:
        CronSim(text, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValidationError(f"cron expression {text!r}: {exc}") from None
    return text


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``America/New_York``, ``UTC``).

    Raises:
        ValidationError: no such zone.
    """
    text = str(name).strip()
    try:
        if not text or text.startswith(("/", ".")) or ".." in text:
            raise ValueError(text)
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC"
        ) from None


def machine_zone() -> str:
    """The IANA name of this machine's time zone (``TZ``, else ``/etc/localtime``), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.readlink("/etc/localtime")
        candidates.append(target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "")
    except OSError:
        pass
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        if name:
            try:
                zone(name)
            except ValidationError:
                continue
            return name
    return "UTC"


def iter_fire_times(expr: str, tz: str, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after ``after``, as UTC instants, in order (endless)."""
    local = zone(tz)
    start = after.astimezone(UTC)
    times = CronSim(expr, start.astimezone(local))
    last = start
    for moment in times:
        instant = moment.astimezone(UTC)
        # cronsim computes fixed times on the wall clock: from an instant inside a repeated
        # (fall-back) hour it may answer that hour's first occurrence, which is in the past.
        if instant <= last:
            continue
        last = instant
        yield instant


def fire_times(
    expr: str, tz: str, after: datetime, until: datetime, *, limit: int = MAX_FIRE_TIMES
) -> list[datetime]:
    """Fire times in ``(after, until]``, UTC, oldest first, at most ``limit`` (the oldest)."""
    found: list[datetime] = []
    for instant in iter_fire_times(expr, tz, after):
        if instant > until or len(found) >= limit:
            break
        found.append(instant)
    return found


def next_fire_times(expr: str, tz: str, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``after``, UTC."""
    found: list[datetime] = []
    for instant in iter_fire_times(expr, tz, after):
        found.append(instant)
        if len(found) >= count:
            break
    return found


def clock_from_env(environ: dict[str, str] | None = None) -> tuple[Callable[[], datetime], float]:
    """The scheduler's clock: real time, or ``SANDBOX_SCHEDULER_CLOCK=SCALE@ANCHOR`` (tests
    and demonstrations; see :mod:`sandbox_kit.scheduler`) and how fast it runs.

    Raises:
        ValidationError: a malformed value.
    """
    value = (os.environ if environ is None else environ).get("SANDBOX_SCHEDULER_CLOCK", "")
    if not value.strip():
        return _utcnow, 1.0
    try:
        scale_text, _, anchor_text = value.partition("@")
        scale = float(scale_text)
        anchor = float(anchor_text) if anchor_text.strip() else time.time()
        if not scale > 0:
            raise ValueError(scale_text)
    except ValueError:
        raise ValidationError(
            f"SANDBOX_SCHEDULER_CLOCK must be SCALE@ANCHOR (e.g. 10@{int(time.time())}), "
            f"not {value!r}"
        ) from None

    def scaled() -> datetime:
        return datetime.fromtimestamp(anchor + (time.time() - anchor) * scale, UTC)

    return scaled, scale


def _utcnow() -> datetime:
    return datetime.now(UTC)
