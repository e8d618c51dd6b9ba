"""The dashboard in a real browser: time to interactive against a bare Voilà notebook with one
button (same server settings, same run), and the kernel's memory after streaming 1 000 000
log lines through the live panel.

Targets (dashboard issue): ratio <= 1.5; memory under 100 MB above idle.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
from playwright.sync_api import sync_playwright

from sandbox_kit import Sandbox
from sandbox_kit.serve import NOTEBOOK, register_examples, voila_command

TOKEN = "bench"
ROUNDS = 3
FLOOD = "import sys\nw = sys.stdout.write\nfor i in range(1_000_000):\n    w(f'line {i}\\n')\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(notebook: Path, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "SANDBOX_HOME": str(home), "JUPYTER_TOKEN": TOKEN}
    log = (home / f"voila-{notebook.stem}.log").open("wb")
    proc = subprocess.Popen(
        voila_command(notebook, host="127.0.0.1", port=port),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert time.monotonic() < deadline and proc.poll() is None, "voila did not start"
        time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}/?token={TOKEN}"


def time_to_interactive(browser: object, url: str, selector: str) -> float:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.route("https://**", lambda route: route.abort())
    t0 = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(selector, timeout=120_000)
    elapsed = time.perf_counter() - t0
    page.close(run_before_unload=True)
    return elapsed


def kernel_of(voila: subprocess.Popen[bytes]) -> psutil.Process:
    kernels = [
        p
        for p in psutil.Process(voila.pid).children(recursive=True)
        if "ipykernel" in " ".join(p.cmdline())
    ]
    return max(kernels, key=lambda p: p.create_time())


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="sandbox-bench-dash-"))
    sb = Sandbox(home=home)
    register_examples(sb)
    bare = home / "bare.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_code_cell(
                    "import ipywidgets as W\n"
                    "b = W.Button(description='Run')\nb.add_class('bare-run')\nb"
                )
            ]
        ),
        bare,
    )
    dash, dash_url = start(NOTEBOOK, home)
    plain, plain_url = start(bare, home)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        time_to_interactive(browser, plain_url, ".bare-run")  # warm both servers once
        time_to_interactive(browser, dash_url, ".sk-run-DMO")
        base = statistics.median(
            time_to_interactive(browser, plain_url, ".bare-run") for _ in range(ROUNDS)
        )
        ours = statistics.median(
            time_to_interactive(browser, dash_url, ".sk-run-DMO") for _ in range(ROUNDS)
        )
        print(
            f"interactive: bare one-button notebook {base:.2f} s, dashboard {ours:.2f} s "
            f"(median of {ROUNDS}); ratio {ours / base:.2f} (target <= 1.5)"
        )

        page = browser.new_page()
        page.route("https://**", lambda route: route.abort())
        page.goto(dash_url, wait_until="domcontentloaded")
        page.wait_for_selector(".sk-run-DMO", timeout=120_000)
        time.sleep(3)
        kernel = kernel_of(dash)
        idle = kernel.memory_info().rss
        flood = home / "flood.py"
        flood.write_text(FLOOD)
        job = sb.run(sb.upload(flood, "SO").id)
        t0 = time.perf_counter()
        page.locator(".sk-log-counter").filter(has_text="1,000,000 lines").wait_for(timeout=300_000)
        seen = time.perf_counter() - t0
        time.sleep(2)
        after = kernel.memory_info().rss
        shown = page.locator(".sk-log-scroll .sk-line").count()
        print(
            f"memory: kernel RSS idle {idle / 2**20:.0f} MB, after streaming 1,000,000 lines "
            f"{after / 2**20:.0f} MB: +{(after - idle) / 2**20:.0f} MB (target < 100 MB); "
            f"job {job.wait().status.value}, panel caught up in {seen:.1f} s, "
            f"{shown} lines on the page"
        )
        page.close(run_before_unload=True)
        browser.close()
    for proc in (dash, plain):
        proc.terminate()
        proc.wait(30)
    sb.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
