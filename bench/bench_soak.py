"""Soak: a dashboard that runs for months must not pile up kernels or memory (issue 13).

``sandbox-kit serve`` with a short ``--cull-after``; one warm-up page opened and closed gives
the baseline (kernel count and the server's RSS), then ``--pages`` (default 50) pages are
opened until interactive and closed as a browser does (unload beacon); the same figures after
them, and the ratio. Last, a few pages in a browser that is then killed (no beacon: a crash):
how long until culling brings the kernel count back to 0, against the budget.

Targets (issue 13): kernels back to their baseline (0); the server's RSS flat over the second
half of the pages (it first rises while several kernels' connections are alive at once, then
stays: growth per page over the second half near 0, not the first half's).

Headless Chromium driven by Playwright does not deliver the unload beacon of a closed page, so
every kernel here ends by culling: the worst case for the kernel count.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from playwright.sync_api import Browser, sync_playwright

from sandbox_kit import Sandbox

TOKEN = "bench"
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(home: Path, cull_after: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "SANDBOX_HOME": str(home)}
    env.pop("SANDBOX_DB_URL", None)
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox_kit", "serve", "--port", str(port), "--token", TOKEN,
         "--cull-after", str(cull_after)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
        time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}/?token={TOKEN}"


def kernels(server: subprocess.Popen[bytes]) -> int:
    count = 0
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(child.cmdline()):
                count += 1
        except psutil.Error:
            continue
    return count


def rss_mb(server: subprocess.Popen[bytes]) -> float:
    return psutil.Process(server.pid).memory_info().rss / 2**20


def settle(server: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until the server has no kernel left (or ``timeout``)."""
    t0 = time.monotonic()
    while kernels(server) and time.monotonic() - t0 < timeout:
        time.sleep(0.25)
    return time.monotonic() - t0


def open_close(browser: Browser, url: str, server: subprocess.Popen[bytes]) -> int:
    page = browser.new_page()
    page.route("https://**", lambda route: route.abort())
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(".sk-run-DMO", timeout=180_000)
    alive = kernels(server)
    page.close(run_before_unload=True)
    return alive


def crash(url: str, pages: int, home: Path) -> None:
    """Open ``pages`` pages in a Chromium of our own, then kill it (no unload beacon)."""
    profile = home / "crash-profile"
    chrome = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "--no-first-run", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    active = profile / "DevToolsActivePort"
    while not (active.is_file() and active.read_text().strip()):
        time.sleep(0.1)
    port = active.read_text().splitlines()[0]
    with sync_playwright() as p:
        remote = p.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
        for _ in range(pages):
            page = remote.contexts[0].new_page()
            page.route("https://**", lambda route: route.abort())
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector(".sk-run-DMO", timeout=180_000)
        os.killpg(chrome.pid, signal.SIGKILL)
        chrome.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--cull-after", type=int, default=30)
    parser.add_argument("--crash-pages", type=int, default=3)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sandbox-bench-soak-"))
    Sandbox(home=home).close()
    server, url = serve(home, args.cull_after)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-background-networking"],
            )
            open_close(browser, url, server)  # warm-up: imports, templates, caches
            settle(server, args.cull_after + 30)
            kernels_before, rss_before = kernels(server), rss_mb(server)
            t0 = time.perf_counter()
            peak, trend, half = 0, [], rss_before
            for i in range(1, args.pages + 1):
                peak = max(peak, open_close(browser, url, server))
                if i % 10 == 0:
                    trend.append(f"{rss_mb(server):.0f}")
                if i == args.pages // 2:
                    half = rss_mb(server)
            soak_s = time.perf_counter() - t0
            waited = settle(server, args.cull_after + 30)
            kernels_after, rss_after = kernels(server), rss_mb(server)
            browser.close()
        print(
            f"soak: {args.pages} page opens/closes in {soak_s:.0f} s (peak {peak} kernels); "
            f"kernels {kernels_before} -> {kernels_after} ({waited:.1f} s to settle); "
            f"server RSS {rss_before:.0f} MB -> {rss_after:.0f} MB: ratio "
            f"{rss_after / rss_before:.2f}; every 10 pages: {' '.join(trend)} MB; per page, "
            f"first half {(half - rss_before) * 1024 / (args.pages // 2):+.0f} KB, second half "
            f"{(rss_after - half) * 1024 / (args.pages - args.pages // 2):+.0f} KB "
            f"(target: kernels back to {kernels_before}, second half ~0)"
        )
        crash(url, args.crash_pages, home)
        killed_with = kernels(server)
        gone = settle(server, 3 * args.cull_after)
        print(
            f"crash: browser killed with {killed_with} dashboard kernels; "
            f"{kernels(server)} left after {gone:.1f} s "
            f"(--cull-after {args.cull_after}: ratio {gone / args.cull_after:.2f}, target <= 1)"
        )
    finally:
        server.terminate()
        server.wait(60)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
