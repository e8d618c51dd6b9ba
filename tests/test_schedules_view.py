"""The Schedules tab and the notification bell without a browser: real sandbox, real jobs,
simulated clicks (issue 10). The browser test is ``tests/browser/test_schedules.py``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import ipywidgets as W
import pytest

from sandbox_kit import JobStatus, Sandbox
from sandbox_kit.widgets.bell import NotificationBell
from sandbox_kit.widgets.schedules_view import SchedulesView
from tests.conftest import script


@pytest.fixture(autouse=True)
def _close_widgets() -> Iterator[None]:
    yield
    W.Widget.close_all()


def test_create_a_schedule_with_a_preview_then_pause_edit_and_delete(lite: Sandbox) -> None:
    lite.upload(script("fast_exit.py"), "RMO")
    view = SchedulesView(lite, start=False)
    form = view.form
    assert "No schedules yet" in view.table.value
    assert [value for _, value in form.target.options][:3] == ["DMO", "RMO", "SO"]
    assert "model 1: RMO fast_exit v1" in [label for label, _ in form.target.options]

    form.cron.value = "*/15 * * *"
    assert "must have 5 fields" in form.preview.value
    form.cron.value = "*/15 * * * *"
    form.tz.value = "America/New_York"
    assert form.preview.value.count("<li>") == 5
    assert re.search(r"<li>\w{3} \d{4}-\d\d-\d\d \d\d:(00|15|30|45) E[SD]T · ", form.preview.value)
    assert 'class="sk-localtime" data-utc="' in form.preview.value  # the viewer's time

    form.preset.value = "real-time-5min"  # fills the clock and the preset's policies
    assert (form.cron.value, form.cron.disabled, form.deadline.value) == ("*/5 * * * *", True, "4")
    form.target.value = "RMO"
    form.name.value = "RT dispatch"
    form.data_source.value = "latest:DMO"
    form.notify.value = "json://localhost:9/hook\n"
    form.save.click()
    assert "Created schedule 1 (RT dispatch)." in view.message.value
    (schedule,) = lite.schedules()
    assert (schedule.preset, schedule.cron, schedule.timezone) == (
        "real-time-5min",
        "*/5 * * * *",
        "America/New_York",
    )
    assert (schedule.deadline_min, schedule.data_source, schedule.notify) == (
        4.0,
        "latest:DMO",
        ("json://localhost:9/hook",),
    )
    assert form.editing is None and form.name.value == ""  # back to a new, empty form
    row = view.table.value
    assert "RT dispatch" in row and "real-time-5min" in row and "active" in row
    assert re.search(r"\d\d:\d[05] E[SD]T</td>", row)  # next run in its zone
    assert "none yet" in row  # no runs

    view.pick.value = 1
    view.toggle.click()
    assert lite.schedule(1).paused and view.toggle.description == "Resume"
    assert "paused" in view.table.value
    view.toggle.click()
    assert not lite.schedule(1).paused

    view.edit.click()
    assert form.editing == 1 and form.save.description == "Save changes"
    assert form.notify.value == "" and "1 target(s) kept" in form.notify.placeholder
    form.preset.value = ""
    form.cron.value = "0 * * * *"
    form.save.click()
    edited = lite.schedule(1)
    assert (edited.cron, edited.preset, edited.notify) == (
        "0 * * * *",
        None,
        ("json://localhost:9/hook",),
    )

    form.deadline.value = "soon"
    form.save.click()
    assert "deadline must be a number of minutes, not &#x27;soon&#x27;" in view.message.value

    view.delete.click()
    assert lite.schedules() == []
    assert "Deleted schedule 1 (RT dispatch); its runs stay." in view.message.value
    assert view.pick.options == (("No schedule", 0),)
    assert view.edit.disabled


def test_the_last_runs_show_status_and_deadline_state(lite: Sandbox) -> None:
    from sandbox_kit.scheduler import Scheduler
    from tests.scheduling import FakeClock, minute_now

    lite.upload(script("hang.py"), "DMO")
    clock = FakeClock(minute_now() + timedelta(seconds=1))
    lite.schedule_store.add(
        "DMO", cron_expr="* * * * *", timezone="UTC", actor="t", now=clock.now, deadline=1
    )
    scheduler = Scheduler(lite, clock=clock)
    try:
        clock.advance(seconds=60)
        (job_id,) = scheduler.tick().submitted
        clock.advance(seconds=61)  # the run goes on past its deadline; the next is skipped
        scheduler.tick()
    finally:
        scheduler.notifier.close()
    lite.cancel(job_id)
    lite.job(job_id).wait(timeout=60)
    view = SchedulesView(lite, start=False)
    row = view.table.value
    assert row.index("sk-fire-skipped") < row.index("sk-st-cancelled")  # newest first
    assert '<span class="sk-deadline-missed" title="deadline missed">late</span>' in row


def test_the_bell_counts_unread_job_ends_and_lights_for_failures(lite: Sandbox) -> None:
    lite.upload(script("fast_exit.py"), "SO")
    lite.upload(script("nonzero_exit.py"), "DMO")
    bell = NotificationBell(lite, since=datetime.now(UTC) - timedelta(seconds=1), start=False)
    assert bell.button.description == "0"
    assert "No job has ended" in bell.panel.value

    lite.run("SO").wait(timeout=60)
    bell.refresh()
    assert bell.button.description == "1"
    assert "sk-bell-unread" in bell.button._dom_classes
    assert "sk-bell-alert" not in bell.button._dom_classes

    failed = lite.run("DMO").wait(timeout=60)
    assert failed.status is JobStatus.FAILED
    bell.refresh()
    assert bell.button.description == "2"
    assert "sk-bell-alert" in bell.button._dom_classes
    assert bell.panel.layout.display == "none"

    bell.button.click()  # open: everything shown is read
    assert bell.panel.layout.display == "block"
    assert bell.button.description == "0"
    assert "sk-bell-alert" not in bell.button._dom_classes
    panel = bell.panel.value
    assert panel.index(failed.id) < panel.index("sk-st-success")  # newest first
    assert f'class="sk-bell-item sk-bell-bad" data-job="{failed.id}"' in panel
    bell.button.click()
    assert bell.panel.layout.display == "none"


def test_the_bell_ignores_what_ended_before_the_page_opened(lite: Sandbox) -> None:
    lite.upload(script("fast_exit.py"), "SO")
    lite.run("SO").wait(timeout=60)
    bell = NotificationBell(lite, start=False)
    assert bell.button.description == "0"
