"""The market clock: cron expressions in a time zone, DST rules and presets (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox_kit import cron
from sandbox_kit.errors import ValidationError


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("expr", "zone", "after", "until", "expected"),
    [
        # Spring forward in Berlin (2025-03-30, 02:00 -> 03:00 CEST): 02:30 does not exist
        # that day; it runs once, at the next valid instant (03:00 CEST = 01:00 UTC).
        (
            "30 2 * * *",
            "Europe/Berlin",
            utc(2025, 3, 29, 12),
            utc(2025, 3, 31, 12),
            [utc(2025, 3, 30, 1, 0), utc(2025, 3, 31, 0, 30)],
        ),
        # Fall back in Berlin (2025-10-26, 03:00 CEST -> 02:00 CET): 02:30 occurs twice and
        # runs once, at its first occurrence (CEST).
        (
            "30 2 * * *",
            "Europe/Berlin",
            utc(2025, 10, 25, 12),
            utc(2025, 10, 27, 12),
            [utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30)],
        ),
        # Spring forward in New York (2025-03-09, 02:00 EST -> 03:00 EDT).
        (
            "30 2 * * *",
            "America/New_York",
            utc(2025, 3, 8, 12),
            utc(2025, 3, 10, 12),
            [utc(2025, 3, 9, 7, 0), utc(2025, 3, 10, 6, 30)],
        ),
        # Fall back in New York (2025-11-02, 02:00 EDT -> 01:00 EST): 01:30 runs once (EDT).
        (
            "30 1 * * *",
            "America/New_York",
            utc(2025, 11, 1, 12),
            utc(2025, 11, 3, 12),
            [utc(2025, 11, 2, 5, 30), utc(2025, 11, 3, 6, 30)],
        ),
        # An interval keeps real time: the repeated hour's fire times are distinct instants.
        (
            "*/30 * * * *",
            "America/New_York",
            utc(2025, 11, 2, 4, 45),
            utc(2025, 11, 2, 7, 0),
            [
                utc(2025, 11, 2, 5),
                utc(2025, 11, 2, 5, 30),
                utc(2025, 11, 2, 6),
                utc(2025, 11, 2, 6, 30),
                utc(2025, 11, 2, 7),
            ],
        ),
        # ... and on the short day it goes from 01:30 CET straight to 03:00 CEST.
        (
            "*/30 * * * *",
            "Europe/Berlin",
            utc(2025, 3, 30, 0, 15),
            utc(2025, 3, 30, 1, 30),
            [utc(2025, 3, 30, 0, 30), utc(2025, 3, 30, 1), utc(2025, 3, 30, 1, 30)],
        ),
    ],
)
def test_fire_times_across_dst(
    expr: str, zone: str, after: datetime, until: datetime, expected: list[datetime]
) -> None:
    assert cron.fire_times(expr, zone, after, until) == expected


def test_from_inside_the_repeated_hour_the_first_occurrence_is_not_repeated() -> None:
    # 06:00 UTC is 01:00 EST, the second pass through 01:xx: 01:30 EDT (05:30 UTC) is past.
    found = cron.next_fire_times("30 1 * * *", "America/New_York", utc(2025, 11, 2, 6), 2)
    assert found == [utc(2025, 11, 3, 6, 30), utc(2025, 11, 4, 6, 30)]


def test_fire_times_are_strictly_after_and_at_most_until() -> None:
    found = cron.fire_times("0 * * * *", "UTC", utc(2025, 1, 1, 1), utc(2025, 1, 1, 3))
    assert found == [utc(2025, 1, 1, 2), utc(2025, 1, 1, 3)]
    assert cron.fire_times("0 * * * *", "UTC", utc(2025, 1, 1, 1), utc(2025, 1, 1, 1, 59)) == []
    assert len(cron.fire_times("* * * * *", "UTC", utc(2025, 1, 1), utc(2025, 2, 1), limit=7)) == 7


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("* * * *", "must have 5 fields"),
        ("0 9 * * * *", "must have 5 fields"),
        ("61 * * * *", "Bad minute"),
        ("0 9 * * funday", "cron expression"),
    ],
)
def test_bad_cron_expressions_are_refused_with_a_sentence(expr: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        cron.check_cron(expr)


def test_cron_is_normalised() -> None:
    assert cron.check_cron("  0   9 * *  1-5 ") == "0 9 * * 1-5"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        cron.zone(name)


def test_machine_zone_is_a_valid_iana_name() -> None:
    assert cron.zone(cron.machine_zone()) is not None


def test_presets_are_the_market_clocks() -> None:
    day_ahead = cron.preset("day-ahead")
    assert (day_ahead.cron, day_ahead.deadline_min) == ("0 9 * * *", 180.0)
    rt5 = cron.preset("Real-Time-5min")
    assert (rt5.cron, rt5.deadline_min, rt5.overlap) == ("*/5 * * * *", 4.0, "skip")
    assert cron.preset("real-time-15min").cron == "*/15 * * * *"
    assert cron.preset("hourly").cron == "0 * * * *"
    for preset in cron.PRESETS.values():
        assert cron.check_cron(preset.cron) == preset.cron
    with pytest.raises(ValidationError, match="unknown preset 'weekly'; expected one of day-"):
        cron.preset("weekly")
