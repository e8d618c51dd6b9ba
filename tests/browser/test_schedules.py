"""The Schedules tab and the notification bell in a real browser (issue 10): create a schedule,
see its next fire times, see its first run appear, and a failed run light the bell."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from sandbox_kit import Sandbox
from tests.browser.conftest import OUTPUT, Server, dashboard_page
from tests.conftest import script

pytestmark = pytest.mark.browser


@pytest.fixture
def new_york_page(browser: Any, server: Server) -> Iterator[Any]:
    """A dashboard page in a browser whose time zone is America/New_York (the machine's is
    UTC): the viewer's times must differ from the server's."""
    with dashboard_page(browser, server, "test_12_end", timezone_id="America/New_York") as page:
        yield page


def test_12_a_schedule_made_in_the_page_fires_and_a_failure_lights_the_bell(
    new_york_page: Any, server: Server
) -> None:
    page = new_york_page
    sb = Sandbox(home=server.home)
    scheduler = None
    try:
        # Pinned models of their own, so the other tests' active models do not matter.
        model = sb.upload(script("fast_exit.py"), "SO", name="scheduled", activate=False)
        failing = sb.upload(script("nonzero_exit.py"), "SO", name="failing", activate=False)
        page.get_by_role("tab", name="Schedules").click()
        target = page.locator(".sk-schedule-target select")
        label = f"model {model.id}: SO scheduled v1"
        expect(target).to_contain_text(label)  # the form learnt of it from the registry
        target.select_option(label=label)
        page.locator(".sk-schedule-cron input").fill("*/30 * * * *")
        page.locator(".sk-schedule-tz input").fill("Europe/Berlin")
        page.locator(".sk-schedule-tz input").press("Enter")
        preview = page.locator(".sk-schedule-preview li")
        expect(preview).to_have_count(5)
        expect(preview.first).to_contain_text(re.compile(r":[03]0 CES?T · "))  # its zone
        expect(preview.first.locator(".sk-localtime")).to_contain_text(re.compile("E[SD]T"))
        page.locator(".sk-schedule-cron input").fill("* * * * *")
        page.locator(".sk-schedule-cron input").press("Enter")
        page.locator(".sk-schedule-name input").fill("browser schedule")
        page.locator(".sk-schedule-save").click()
        expect(page.locator(".sk-schedules-card")).to_contain_text("Created schedule")
        row = page.locator(".sk-schedule-row", has_text="browser schedule")
        expect(row).to_contain_text("Europe/Berlin")
        expect(row).to_contain_text("none yet")
        page.screenshot(path=str(_shot("test_12_schedule_created")))

        # A scheduler on a clock 10 times faster: the first fire time comes within 6 s.
        env = {
            **server.env,
            "SANDBOX_SCHEDULER_CLOCK": f"10@{time.time()}",
            "SANDBOX_SCHEDULER_LEASE_S": "300",
        }
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "sandbox_kit", "scheduler"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        expect(row.locator(".sk-st-success").first).to_be_visible(timeout=90_000)

        bell = page.locator(".sk-bell")
        failed = sb.run(failing.id).wait(timeout=60)  # from outside the page, like the CLI
        assert failed.status.value == "failed", failed.reason
        job_id = failed.id
        expect(bell).to_have_class(_has("sk-bell-alert"), timeout=60_000)
        bell.click()
        item = page.locator(f".sk-bell-item[data-job='{job_id}']")
        expect(item).to_have_class(_has("sk-bell-bad"))
        expect(item).to_contain_text("failed")
        expect(bell).not_to_have_class(_has("sk-bell-alert"))  # read
        page.screenshot(path=str(_shot("test_12_bell_open")))
    finally:
        if scheduler is not None:
            scheduler.send_signal(signal.SIGTERM)
            scheduler.wait(timeout=60)
        for schedule in sb.schedules():
            sb.delete_schedule(schedule.id)
        sb.close()


def _has(name: str) -> Any:
    return re.compile(rf"(^|\s){name}(\s|$)")


def _shot(name: str) -> Any:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT / f"{name}.png"
