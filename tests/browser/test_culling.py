"""Kernels that end with their page (issue 13), with the real ``sandbox-kit serve`` and a
Chromium process this test owns, so it can kill it the way a crash does: no unload beacon.

Three pages are opened, one starts a long job, one is reloaded; then the browser is killed.
Within the short ``--cull-after`` the server's kernel count returns to 0, while the job,
which never belonged to a kernel, runs on and succeeds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from sandbox_kit import JobStatus, Sandbox
from tests.browser.conftest import CHROMIUM, OUTPUT, Server, open_dashboard
from tests.conftest import script

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(600)]
CULL_AFTER = 10  # the smallest budget serve accepts
TOKEN = "culling-test-token"


@dataclass
class Served:
    """A ``sandbox-kit serve`` process with culling, and its home."""

    server: Server
    process: subprocess.Popen[bytes]

    def kernels(self) -> list[psutil.Process]:
        """The server's live kernel processes."""
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(
                    child.cmdline()
                ):
                    found.append(child)
        return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _eventually(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@contextlib.contextmanager
def serving(tmp_path: Path, cull_after: int) -> Iterator[Served]:
    """``sandbox-kit serve --cull-after N`` on a free port, a slow DMO model active."""
    home = tmp_path / "home"
    home.mkdir()
    sb = Sandbox(home=home)
    sb.upload(script("slow_lines.py"), "DMO")
    sb.close()
    port = _free_port()
    env = {
        **os.environ,
        "SANDBOX_HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SANDBOX_DB_URL", None)
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox_kit", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--token", TOKEN, "--cull-after", str(cull_after),
         "--no-scheduler"],
        env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "serve did not listen"
            time.sleep(0.3)
        yield Served(Server(url=f"{base}?token={TOKEN}", base=base, home=home, env=env), process)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        OUTPUT.mkdir(exist_ok=True)
        (OUTPUT / f"culling-serve-{cull_after}.log").write_bytes(log_path.read_bytes())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The dashboard with the shortest cull budget."""
    with serving(tmp_path, CULL_AFTER) as running:
        yield running


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A Chromium process of our own (so it can be killed), and its DevTools endpoint."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM} (make test installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    active = profile / "DevToolsActivePort"
    try:
        _eventually(lambda: active.is_file() and active.read_text().strip() != "", "DevTools", 60)
        port = active.read_text().splitlines()[0]
        yield process, f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_kernels_of_a_killed_browser_are_culled_and_its_job_runs_on(
    browser: Any, served: Served, chromium: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, endpoint = chromium
    remote = browser.browser_type.connect_over_cdp(endpoint)
    context = remote.contexts[0]
    pages = []
    for _ in range(3):
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.route("https://**", lambda route: route.abort())
        open_dashboard(page, served.server)
        pages.append(page)
    _eventually(lambda: len(served.kernels()) == 3, "one kernel per page", 60)

    pages[0].locator(".sk-config-DMO textarea").fill('{"lines": 150, "every": 0.5}')
    pages[0].locator(".sk-run-DMO").click()
    sb = Sandbox(home=served.server.home)
    try:
        _eventually(lambda: bool(sb.jobs(status="running")), "the job to run", 60)
        (job,) = sb.jobs()
        # Live pages keep their kernels past the idle timeout: their heartbeat is activity.
        time.sleep(CULL_AFTER + 2)
        assert len(served.kernels()) == 3

        os.killpg(process.pid, signal.SIGKILL)  # no unload, no beacon: a crash
        process.wait()
        _eventually(lambda: served.kernels() == [], "the kernels to be culled", 120)
        culled = datetime.now(UTC)

        info = sb.job(job.id).wait(timeout=240)
        assert info.status is JobStatus.SUCCESS
        assert info.finished_at is not None and info.finished_at > culled  # it ran on
        assert info.started_by  # who pressed Run is on the job
    finally:
        sb.close()
        with contextlib.suppress(Exception):
            remote.close()


def test_a_reload_shuts_down_the_kernel_it_leaves(browser: Any, tmp_path: Path) -> None:
    # No culling here: only the page's unload beacon can end the old kernel. Voilà's page did
    # not set the _xsrf cookie the beacon sends, so it was refused (voila#1458) and every
    # reload leaked a kernel until the server stopped.
    with serving(tmp_path, 0) as running:
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.route("https://**", lambda route: route.abort())
        try:
            open_dashboard(page, running.server)
            first = {k.pid for k in running.kernels()}
            assert len(first) == 1
            for _ in range(2):
                page.reload()  # once the page is interactive: its beacon is armed by then
                page.wait_for_selector(".sk-run-DMO")
            _eventually(lambda: len(running.kernels()) == 1, "one kernel for one page", 60)
            assert {k.pid for k in running.kernels()}.isdisjoint(first)
        finally:
            page.close()
