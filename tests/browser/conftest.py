"""A real Voilà server on a free port and a real (Debian) Chromium driven by Playwright.

Each test gets a fresh page on the dashboard and leaves a screenshot in ``test-output/``; the
kernels its page started are shut down when it ends (a closed headless page does not always
send Voilà's unload beacon, and every live dashboard kernel keeps polling the registry: left
running, they slowed the rest of the suite by a whole core). The servers live for this package
only. Chromium is installed by ``make test``; without it these tests fail under ``CI=true`` and skip
elsewhere, with the reason shown.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from sandbox_kit import Sandbox
from sandbox_kit.serve import NOTEBOOK, voila_command

CHROMIUM = os.environ.get("SANDBOX_TEST_CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
TOKEN = "browser-test-token"

pytestmark = pytest.mark.browser

# A loaded 2-core machine renders slowly: give assertions time (they return as soon as met).
expect.set_options(timeout=30_000)


@dataclass
class Server:
    """A running dashboard."""

    url: str  # with the token
    base: str  # without it
    home: Path
    env: dict[str, str]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Voilà serving notebooks/dashboard.ipynb against a temporary SANDBOX_HOME."""
    tmp = tmp_path_factory.mktemp("voila")
    home = tmp / "home"
    home.mkdir()
    Sandbox(home=home).close()  # migrate before any kernel opens it
    port = _free_port()
    env = {
        **os.environ,
        "SANDBOX_HOME": str(home),
        "SANDBOX_MAX_RUNNING": "4",
        "JUPYTER_CONFIG_DIR": str(tmp / "cfg"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "rt"),
        "PYTHONUNBUFFERED": "1",
        "JUPYTER_TOKEN": TOKEN,
    }
    env.pop("SANDBOX_DB_URL", None)
    log = (tmp / "voila.log").open("wb")
    proc = subprocess.Popen(
        voila_command(NOTEBOOK, host="127.0.0.1", port=port),
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while not _listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log.close()
            pytest.fail(f"voila did not start (exit {proc.returncode}); see {tmp / 'voila.log'}")
        time.sleep(0.3)
    yield Server(url=f"{base}?token={TOKEN}", base=base, home=home, env=env)
    left = _kernels_left(tmp / "voila.log")
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(tmp / "voila.log", OUTPUT / "voila.log")
    # A page's kernel outliving its test keeps polling the registry for the rest of the suite.
    assert not left, f"dashboard kernels left running by the browser tests: {sorted(left)}"


def _kernels_left(log: Path) -> set[str]:
    """Kernels Voilà started and has not shut down yet, by its log (waits up to 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        text = log.read_text(errors="replace")
        started = set(re.findall(r"Kernel started: ([0-9a-f-]{36})", text))
        left = started - set(re.findall(r"Kernel shutdown: ([0-9a-f-]{36})", text))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM} (make test installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, server: Server, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh dashboard page; its screenshot is saved under test-output/ at the end."""
    with dashboard_page(browser, server, request.node.name) as page:
        yield page


@contextlib.contextmanager
def dashboard_page(browser: Any, server: Server, shot: str, **options: Any) -> Iterator[Any]:
    """A dashboard page (``options`` go to ``new_page``); at the end its screenshot is saved as
    ``test-output/SHOT.png``, it is closed, its kernels are shut down and it must have raised
    no JavaScript error."""
    page = browser.new_page(viewport={"width": 1440, "height": 1600}, **options)
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    kernels: set[str] = set()  # every page load starts one; a reload starts another
    page.on("websocket", lambda ws: kernels.update(_KERNEL_SOCKET.findall(ws.url)))
    # Offline machine: the lab template links fonts from a CDN; fail those fast.
    page.route("https://**", lambda route: route.abort())
    try:
        open_dashboard(page, server)
        yield page
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"{shot}.png"))
    finally:
        page.close(run_before_unload=True)  # fires Voilà's kernel shutdown beacon, usually
        for kernel in kernels:
            shut_down_kernel(server, kernel)
    assert errors == [], f"JavaScript errors on the page: {errors}"


_KERNEL_SOCKET = re.compile(r"/api/kernels/([0-9a-f-]{36})/channels")


def shut_down_kernel(server: Server, kernel: str) -> None:
    """Ask Voilà to shut a page's kernel down (as its unload beacon does); gone already is fine."""
    request = urllib.request.Request(
        f"{server.base}voila/api/shutdown/{kernel}",
        method="POST",
        headers={"Authorization": f"token {TOKEN}"},
    )
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except urllib.error.HTTPError as gone:  # an HTTPError holds its socket open until closed
        gone.close()


def reload_dashboard(page: Any) -> None:
    """Reload the page (a new kernel; the old one's beacon shuts it down) until interactive.

    One navigation: a second one before the reloaded page has run its script would leave the
    kernel Voilà started for it running, with no page and no beacon.
    """
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector(".sk-run-DMO")


def open_dashboard(page: object, server: Server) -> None:
    """Load the dashboard and wait until it is interactive."""
    page.goto(server.url, wait_until="domcontentloaded")  # type: ignore[attr-defined]
    page.wait_for_selector(".sk-run-DMO")  # type: ignore[attr-defined]
