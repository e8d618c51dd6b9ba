"""The dashboard in a real browser: the eight flows of the dashboard issue."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from playwright.sync_api import expect

from sandbox_kit import ModelType, Sandbox
from tests.browser.conftest import TOKEN, Server, reload_dashboard, shut_down_kernel
from tests.conftest import ROOT, job_processes, script

pytestmark = pytest.mark.browser


def sandbox(server: Server) -> Sandbox:
    """The same registry the dashboard's kernels use, opened from the test process."""
    return Sandbox(home=server.home)


def choose_file(page: Any, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator(".sk-chooser").click()
    chooser.value.set_files(str(path))


def upload_through_page(page: Any, path: Path, model_type: str) -> None:
    choose_file(page, path)
    label = f"{model_type} — {ModelType(model_type).label}"
    page.locator(".sk-upload select").first.select_option(label=label)
    page.locator(".sk-upload-button").click()


def test_1_upload_appears_in_models_view_and_control_panel(page: Any, server: Server) -> None:
    upload_through_page(page, script("fast_exit.py"), "RMO")
    expect(page.locator(".sk-upload-message")).to_contain_text("Stored RMO model fast_exit v1")
    expect(page.locator(".sk-active-RMO")).to_contain_text("fast_exit v1")
    page.get_by_role("tab", name="Models").click()
    row = page.locator(".sk-model-row", has_text="fast_exit")
    expect(row).to_be_visible()
    expect(row).to_contain_text("★")


def test_2_run_streams_logs_before_the_end_and_records_the_job(page: Any, server: Server) -> None:
    sb = sandbox(server)
    sb.upload(script("slow_lines.py"), "DMO")
    reload_dashboard(page)
    page.locator(".sk-config-DMO textarea").fill('{"lines": 40, "every": 0.1}')
    page.locator(".sk-run-DMO").click()
    status = page.locator(".sk-status-DMO")
    expect(status).to_contain_text("running")
    expect(page.locator(".sk-log-scroll")).to_contain_text("tick 3")
    expect(status).to_contain_text("running")  # lines arrived while the job still ran
    expect(status).to_contain_text("success", timeout=60_000)
    page.get_by_role("tab", name="Jobs").click()
    row = page.locator(".sk-job-row", has_text="slow_lines v1").first
    expect(row).to_contain_text("success")
    expect(row).to_contain_text(re.compile(r"\d+\.\d s"))


def test_3_cancel_from_the_control_panel_leaves_no_process(page: Any, server: Server) -> None:
    sb = sandbox(server)
    sb.upload(script("hang.py"), "SO")
    reload_dashboard(page)
    page.locator(".sk-run-SO").click()
    expect(page.locator(".sk-log-scroll")).to_contain_text("hanging")
    job_id = sb.jobs(model_type="SO", limit=1)[0].id
    page.locator(".sk-cancel-SO").click()
    expect(page.locator(".sk-status-SO")).to_contain_text("cancelled", timeout=30_000)
    assert sb.job_info(job_id).reason == "killed by cancel"
    deadline = time.monotonic() + 10
    while job_processes(job_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job_processes(job_id) == []


def test_4_syntax_error_is_shown_with_its_line_and_nothing_is_registered(
    page: Any, server: Server, tmp_path: Path
) -> None:
    broken = tmp_path / "broken_model.py"
    broken.write_text("x = 1\ndef f(:\n    pass\n")
    before = len(sandbox(server).models())
    files_before = sorted((server.home / "models").iterdir())
    upload_through_page(page, broken, "DMO")
    message = page.locator(".sk-upload-message")
    expect(message).to_contain_text("broken_model.py, line 2")
    assert len(sandbox(server).models()) == before
    assert sorted((server.home / "models").iterdir()) == files_before


def test_5_a_job_started_from_the_cli_appears_live(page: Any, server: Server) -> None:
    sb = sandbox(server)
    model = sb.upload(script("slow_lines.py"), "RMO", name="cli_started")
    out = subprocess.run(
        [sys.executable, "-m", "sandbox_kit", "run", str(model.id), "--config",
         '{"lines": 30, "every": 0.1}'],
        env=server.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    job_id = out.stdout.splitlines()[-1]
    expect(page.locator(".sk-log-scroll")).to_contain_text(job_id[-6:], timeout=10_000)
    expect(page.locator(".sk-log-scroll")).to_contain_text("tick 5")
    expect(page.locator(".sk-status-RMO")).to_contain_text("success", timeout=60_000)


def test_6_reload_reattaches_without_gap_or_duplicate(page: Any, server: Server) -> None:
    sb = sandbox(server)
    model = sb.upload(script("slow_lines.py"), "DMO", name="reload_me")
    job = sb.run(model.id, config={"lines": 300, "every": 0.05})
    expect(page.locator(".sk-log-scroll")).to_contain_text("tick 20")
    reload_dashboard(page)
    expect(page.locator(".sk-log-scroll")).to_contain_text("tick 30")
    job.wait(timeout=60)
    log = page.locator(".sk-log-scroll")
    expect(log).to_contain_text(f"{job.id} success", timeout=10_000)
    texts = log.locator(".sk-line", has_text=job.id[-6:]).locator(".sk-tx").all_inner_texts()
    ticks = [t for t in texts if t.startswith("tick ")]
    assert ticks == [f"tick {i}" for i in range(300)]


def test_7_a_request_without_the_token_is_refused(server: Server) -> None:
    opener = urllib.request.build_opener(_NoRedirect())
    for path in ("", "api/kernels", "api/sessions", "voila/render/dashboard.ipynb", "?token=bad"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(server.base + path, timeout=10)
        refused.value.close()  # an HTTPError holds its socket open until closed
        assert refused.value.code in (302, 403), path
        if refused.value.code == 302:
            assert "/login" in refused.value.headers["Location"], path
    with opener.open(f"{server.base}?token={TOKEN}", timeout=60) as allowed:
        assert allowed.status == 200  # the same page with the token is served
        body = allowed.read().decode()
    assert "application/vnd.jupyter.widget-view+json" in body
    # Rendering the page started its kernel; no browser will ever say goodbye for it.
    kernel = re.search(r'"kernelId": "([0-9a-f-]{36})"', body)
    assert kernel is not None
    shut_down_kernel(server, kernel.group(1))
    # ... and the token is on no process's command line (issue 8: `ps` shows them to all).
    command_lines = []
    for proc in psutil.process_iter(["cmdline"]):
        command_lines.append(" ".join(proc.info["cmdline"] or []))
    assert any("voila" in line for line in command_lines)
    assert not [line for line in command_lines if TOKEN in line]


def test_8_a_flood_keeps_the_page_responsive_and_the_panel_bounded(
    page: Any, server: Server
) -> None:
    sb = sandbox(server)
    model = sb.upload(script("flood.py"), "SO", name="flood")
    reload_dashboard(page)
    page.locator(".sk-config-SO textarea").fill('{"lines": 200000}')
    page.locator(".sk-run-SO").click()
    expect(page.locator(".sk-log-scroll")).to_contain_text("line ", timeout=30_000)
    page.get_by_role("tab", name="Models").click()
    expect(page.locator(".sk-model-row", has_text="flood").first).to_be_visible(timeout=1_000)
    expect(page.locator(".sk-status-SO")).to_contain_text("success", timeout=120_000)
    expect(page.locator(".sk-log-counter")).to_contain_text("200,000 lines", timeout=20_000)
    assert page.locator(".sk-log-scroll .sk-line").count() <= 1_000 + 10
    job = sb.jobs(model=model.id, limit=1)[0]
    assert len(sb.job(job.id).logs()) == 200_000


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_9_results_gap_chart_moves_while_the_dmo_runs_then_charts_appear(
    page: Any, server: Server
) -> None:
    sb = sandbox(server)
    sb.upload(ROOT / "models" / "examples" / "dmo.py", "DMO", name="dmo_results")
    reload_dashboard(page)
    page.locator(".sk-config-DMO textarea").fill('{"days": 7}')  # a solve of a few seconds
    page.get_by_role("tab", name="Results").click()
    page.locator(".sk-run-DMO").click()
    status = page.locator(".sk-status-DMO")
    expect(status).to_contain_text("running")
    gap = page.locator("img.sk-chart-gap")
    seen: set[str] = set()
    while "running" in status.inner_text():
        if gap.count() and gap.is_visible():
            seen.add(gap.get_attribute("src") or "")
        time.sleep(0.1)
    assert len(seen - {""}) >= 2, "the gap chart did not change while the job ran"
    expect(status).to_contain_text("success")
    expect(page.locator(".sk-result-summary")).to_contain_text("optimal")
    expect(page.locator("img.sk-chart-dispatch")).to_be_visible()
    expect(page.locator("img.sk-chart-prices")).to_be_visible()
    expect(page.locator(".sk-table-preview")).to_contain_text("coal1")
    page.locator(".sk-result-summary").scroll_into_view_if_needed()


def test_10_a_file_over_the_limit_gets_a_message_not_a_dead_socket(
    page: Any, server: Server, tmp_path: Path
) -> None:
    big = tmp_path / "huge_model.py"
    big.write_bytes(b"x = 1\n" * (11 * 1024 * 1024 // 6 + 1))  # just over 11 MB
    choose_file(page, big)
    message = page.locator(".sk-upload-message")
    expect(message).to_contain_text("huge_model.py: file is 11.0 MB; the limit is 10.0 MB")
    expect(page.locator(".sk-upload-button")).to_be_disabled()
    # The kernel connection survived: the page still answers.
    page.get_by_role("tab", name="Models").click()
    expect(page.locator(".sk-models")).to_be_visible()
    assert not list((server.home / "models").glob("*huge*"))


def test_11_rmo_and_so_run_from_the_dashboard_to_optimal(page: Any, server: Server) -> None:
    sb = sandbox(server)
    for name, kind in (("rmo.py", "RMO"), ("so.py", "SO")):
        sb.upload(ROOT / "models" / "examples" / name, kind)
    reload_dashboard(page)
    page.get_by_role("tab", name="Results").click()
    for kind in ("RMO", "SO"):
        before = {j.id for j in sb.jobs(model_type=kind)}
        page.locator(f".sk-config-{kind} textarea").fill("{}")
        page.locator(f".sk-run-{kind}").click()
        deadline = time.monotonic() + 30
        while not (started := [j for j in sb.jobs(model_type=kind) if j.id not in before]):
            assert time.monotonic() < deadline, f"Run {kind} started no job"
            time.sleep(0.1)
        info = sb.job(started[0].id).wait(timeout=60)
        assert (info.status.value, info.outcome) == ("success", "optimal")
        # The results tab follows the run started from the control panel.
        expect(page.locator(".sk-results select").first).to_have_value(re.compile(info.id[-6:]))
        expect(page.locator(".sk-result-summary")).to_contain_text("optimal")
        expect(page.locator("img.sk-chart-prices")).to_be_visible()
