"""The dashboard inside a real JupyterLab (issue 14): fits output widths of 600 to 1400 px.

A JupyterLab server on a free port (token from ``JUPYTER_TOKEN``, never the command line) opens
a notebook with the dashboard cell and a ``%%sandbox`` cell; Chromium runs both, runs a model
from the control panel and takes screenshots of the control panel, the Jobs view, every other
tab and the ``%%sandbox`` card at three output widths in the light and the dark theme. No
button, status badge or table cell may be cut by its card or a container, and a table cell
whose text does not fit must carry its full text as a tooltip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from sandbox_kit import Sandbox
from tests.browser.conftest import OUTPUT, TOKEN, _free_port, _listening
from tests.conftest import script

pytestmark = [pytest.mark.browser, pytest.mark.slow]

THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
WIDTHS = (600, 900, 1400)
TABS = ("Models", "Results", "Sweeps", "Schedules")
MAGIC_CELL = """\
%%sandbox DMO --config '{"load_scale": 1.1}'
import json, os
print("scale from the sandbox:", json.loads(os.environ["CONFIG"])["load_scale"])
"""


@dataclass
class Lab:
    """A running JupyterLab."""

    base: str
    home: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab serving a folder with ``dashboard.ipynb``, against a temporary SANDBOX_HOME."""
    tmp = tmp_path_factory.mktemp("lab")
    home, root = tmp / "home", tmp / "root"
    home.mkdir()
    root.mkdir()
    sb = Sandbox(home=home)
    sb.upload(script("fast_exit.py"), "DMO")
    sb.close()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from sandbox_kit import dashboard\n\napp = dashboard()"),
        nbformat.v4.new_code_cell("%load_ext sandbox_kit"),
        nbformat.v4.new_code_cell(MAGIC_CELL),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, root / "dashboard.ipynb")
    port = _free_port()
    env = {
        **os.environ,
        "SANDBOX_HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(tmp / "cfg"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "rt"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "JUPYTER_TOKEN": TOKEN,
    }
    env.pop("SANDBOX_DB_URL", None)
    log = (tmp / "lab.log").open("wb")
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True", "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    deadline = time.monotonic() + 120
    while not _listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log.close()
            pytest.fail(f"jupyter lab did not start (exit {proc.returncode}); see {tmp}/lab.log")
        time.sleep(0.3)
    yield Lab(base=f"http://127.0.0.1:{port}", home=home)
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(tmp / "lab.log", OUTPUT / "jupyterlab.log")


def _put_settings(lab: Lab, plugin: str, settings: dict[str, Any]) -> None:
    body = json.dumps({"raw": json.dumps(settings)}).encode()
    request = urllib.request.Request(
        f"{lab.base}/lab/api/settings/{plugin}",
        data=body,
        method="PUT",
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204


def _set_theme(lab: Lab, theme: str) -> None:
    _put_settings(lab, "@jupyterlab/apputils-extension:themes", {"theme": theme})
    # No "get notified about Jupyter news?" toast over the screenshots (an offline machine).
    _put_settings(
        lab,
        "@jupyterlab/apputils-extension:notification",
        {"fetchNews": "false", "checkForUpdates": False},
    )


def _clipped(page: Any) -> list[str]:
    """Buttons and status badges of the control panel that do not fit their boxes."""
    return list(
        page.evaluate(
            """() => {
        const bad = [];
        document.querySelectorAll('.sk-row-line').forEach(line => {
          const row = line.closest('.sk-row');
          const box = row.getBoundingClientRect();
          row.querySelectorAll('button, .sk-status').forEach(el => {
            const r = el.getBoundingClientRect();
            if (r.width === 0) { return; }
            const name = (el.textContent || el.className).trim();
            if (r.left < box.left - 1 || r.right > box.right + 1) {
              bad.push(name + ': outside its row');
            }
            if (el.scrollWidth > el.clientWidth + 1) { bad.push(name + ': text cut'); }
            const parent = el.parentElement.getBoundingClientRect();
            if (r.right > parent.right + 1 && getComputedStyle(el.parentElement).overflow
                !== 'visible') { bad.push(name + ': cut by its container'); }
          });
        });
        return bad;
      }"""
        )
    )


# Every visible button, status badge and table cell under ``root`` must lie inside its card
# and inside every ancestor that clips (overflow other than visible); a button's or badge's
# text must fit it; a table cell may ellipsise its text only when its title holds all of it.
_CUT_JS = """(root) => {
  const bad = [];
  document.querySelectorAll(root).forEach(top => {
    top.querySelectorAll('button, .sk-status, .sk-cell').forEach(el => {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) { return; }
      const name = ((el.textContent || '').trim() || el.className).slice(0, 40);
      const card = el.closest('.sk-card') || top;
      const box = card.getBoundingClientRect();
      if (r.left < box.left - 1 || r.right > box.right + 1) {
        bad.push(name + ': outside its card');
      }
      for (let up = el.parentElement; up && up !== card; up = up.parentElement) {
        const style = getComputedStyle(up);
        if (style.overflowX === 'visible' || style.display === 'contents') { continue; }
        const b = up.getBoundingClientRect();
        if (r.left < b.left - 1 || r.right > b.right + 1) {
          bad.push(name + ': cut by ' + (up.className || up.tagName));
          break;
        }
      }
      if (el.scrollWidth > el.clientWidth + 1) {
        if (!el.classList.contains('sk-cell')) {
          bad.push(name + ': text cut');
        } else if (!el.title || !el.title.includes(el.textContent.trim().slice(0, 20))) {
          bad.push(name + ': ellipsised without a tooltip');
        }
      }
    });
  });
  return bad;
}"""


def _cut(page: Any, root: str) -> list[str]:
    """What :data:`_CUT_JS` finds under the elements matching ``root``."""
    return list(page.evaluate(_CUT_JS, root))


def _run_cell(page: Any, index: int) -> None:
    """Run the notebook's cell ``index`` (0-based)."""
    page.locator(".jp-Cell").nth(index).locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")


def _fit_output(page: Any, width: int) -> None:
    """Resize the window so the cell's output area is ``width`` px wide."""
    for _ in range(3):
        now = page.evaluate(
            "() => document.querySelector('.jp-OutputArea-output').getBoundingClientRect().width"
        )
        viewport = page.viewport_size
        if abs(now - width) < 2:
            return
        page.set_viewport_size({"width": int(viewport["width"] + width - now), "height": 1400})
        page.wait_for_timeout(500)


def _run_first_cell(page: Any) -> None:
    """Run the dashboard cell once its kernel is ready (a keypress before that is lost)."""
    for _ in range(6):
        expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible()
        page.locator(".jp-Cell").first.click()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+Enter")
        try:
            page.wait_for_selector(".sk-run-DMO", timeout=20_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError("the dashboard cell did not render")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_dashboard_fits_jupyterlab_from_600_to_1400_px(
    browser: Any, lab: Lab, theme: str
) -> None:
    _set_theme(lab, THEMES[theme])
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.set_default_timeout(int(os.environ.get("SK_LAB_TIMEOUT_MS", "120000")))
    page.route("https://**", lambda route: route.abort())
    try:
        page.goto(f"{lab.base}/lab/tree/dashboard.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        expect(page.locator("body")).to_have_attribute(
            "data-jp-theme-light", "true" if theme == "light" else "false"
        )
        _run_first_cell(page)
        _run_cell(page, 1)
        _run_cell(page, 2)  # %%sandbox: runs in the sandbox, its card streams under the cell
        summary = page.locator(".sk-card-summary")
        expect(summary).to_contain_text("success")
        expect(page.locator(".sk-job-card .sk-log-scroll")).to_contain_text(
            "scale from the sandbox: 1.1"
        )
        if theme == "light":
            page.locator(".sk-run-DMO").click()
            expect(page.locator(".sk-status-DMO")).to_contain_text("success")
        expect(page.locator(".sk-job-row", has_text="%%sandbox v1").first).to_be_visible()
        OUTPUT.mkdir(exist_ok=True)
        for width in WIDTHS:
            _fit_output(page, width)
            page.locator(".sk-run-DMO").scroll_into_view_if_needed()
            page.screenshot(path=str(OUTPUT / f"jupyterlab-{theme}-{width}.png"))
            clipped = _clipped(page) + _cut(page, ".sk-control")
            assert clipped == [], f"clipped at {width} px ({theme}): {clipped}"
            page.get_by_role("tab", name="Jobs").click()
            page.locator(".sk-jobs").scroll_into_view_if_needed()
            page.screenshot(path=str(OUTPUT / f"jupyterlab-{theme}-{width}-jobs.png"))
            clipped = _cut(page, ".sk-jobs")
            assert clipped == [], f"Jobs view clipped at {width} px ({theme}): {clipped}"
            for tab in TABS:
                page.get_by_role("tab", name=tab).click()
                page.locator(".sk-tabs").scroll_into_view_if_needed()
                page.screenshot(path=str(OUTPUT / f"jupyterlab-{theme}-{width}-{tab.lower()}.png"))
                clipped = _cut(page, ".sk-tabs")
                assert clipped == [], f"{tab} clipped at {width} px ({theme}): {clipped}"
            page.get_by_role("tab", name="Jobs").click()
            summary.scroll_into_view_if_needed()
            page.screenshot(path=str(OUTPUT / f"jupyterlab-{theme}-{width}-sandbox-cell.png"))
            clipped = _cut(page, ".sk-job-card")
            assert clipped == [], f"%%sandbox card clipped at {width} px ({theme}): {clipped}"
    finally:
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"jupyterlab-{theme}-last.png"))
        page.close()
