"""Issue 11 in a real browser: add a data set from the upload card, pick it in the control
panel, and run a sweep from the Sweeps tab until its table and chart fill in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from sandbox_kit import Sandbox
from tests.browser.conftest import Server, reload_dashboard
from tests.browser.test_dashboard import choose_file
from tests.conftest import script

pytestmark = pytest.mark.browser


def test_a_data_set_from_the_upload_card_feeds_a_run(
    page: Any, server: Server, tmp_path: Path
) -> None:
    sb = Sandbox(home=server.home)
    sb.upload(script("outcome_writer.py"), "RMO", name="reads_data")
    sb.close()
    reload_dashboard(page)
    page.locator(".sk-upload-kind button", has_text="Data set").click()
    forecast = tmp_path / "week_forecast.csv"
    forecast.write_text("hour,mw\n1,100\n2,120\n")
    choose_file(page, forecast)
    page.locator(".sk-upload-button").click()
    message = page.locator(".sk-upload-message")
    expect(message).to_contain_text("Stored data set week_forecast@1 (1 file(s)")
    source = page.locator(".sk-source-RMO select")
    expect(source.locator("option", has_text="week_forecast v1")).to_have_count(1)
    source.select_option(label="week_forecast v1")
    page.locator(".sk-run-RMO").click()
    expect(page.locator(".sk-status-RMO")).to_contain_text("success", timeout=60_000)
    expect(page.locator(".sk-log-scroll")).to_contain_text("data: ['week_forecast.csv']")


def test_a_sweep_from_the_dashboard_fills_its_table_and_chart(page: Any, server: Server) -> None:
    sb = Sandbox(home=server.home)
    sb.upload(script("outcome_writer.py"), "DMO", name="sweepable")
    sb.close()
    reload_dashboard(page)
    page.get_by_role("tab", name="Sweeps").click()
    page.locator(".sk-sweep-type select").select_option(label="DMO (active model)")
    page.locator(".sk-sweep-grid textarea").fill('{"objective": [1, 2, 3], "scale": [1, 2]}')
    page.locator(".sk-sweep-base textarea").fill('{"sleep": 0.3}')
    page.locator(".sk-sweep-start").click()
    expect(page.locator(".sk-sweep-message")).to_contain_text("6 scenarios, 0 from the cache")
    table = page.locator(".sk-sweep-table")
    expect(table.locator("tbody tr")).to_have_count(6)
    expect(page.locator(".sk-sweep-progress")).to_contain_text("6 of 6 done", timeout=90_000)
    expect(table.locator("tbody tr", has_text="success")).to_have_count(6)
    expect(table).to_contain_text("optimal")
    chart = page.locator(".sk-sweep-chart")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 120
    expect(page.locator(".sk-sweep-series select")).to_have_value("scale")
    expect(page.locator(".sk-sweep-cancel")).to_be_disabled()
    chart.scroll_into_view_if_needed()
