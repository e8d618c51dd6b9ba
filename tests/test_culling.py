"""Kernels that end with their page, without a browser: the cull budget, the page's heartbeat
and the pumps that fall quiet without it. The browser half is tests/browser/test_culling.py.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ipywidgets as W
import pytest

from sandbox_kit import Sandbox
from sandbox_kit.culling import DEFAULT_CULL_AFTER_S, CullPlan
from sandbox_kit.serve import NOTEBOOK, voila_command
from sandbox_kit.widgets import pump
from sandbox_kit.widgets.app import Dashboard
from sandbox_kit.widgets.presence import Presence
from sandbox_kit.widgets.pump import Pump
from tests.conftest import cli


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    yield
    pump.pause_while_unseen(None)
    W.Widget.close_all()


def eventually(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the budget --------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [10, 11, 25, 60, 120, 599, 600, 601, 3600, 86400])
def test_the_parts_add_up_to_the_budget(after: int) -> None:
    plan = CullPlan(after)
    assert plan.grace_s + plan.idle_timeout_s + plan.interval_s == after
    assert 1 <= plan.heartbeat_s < plan.grace_s < plan.idle_timeout_s
    assert plan.interval_s >= 1


def test_the_default_plan() -> None:
    plan = CullPlan(DEFAULT_CULL_AFTER_S)
    assert (plan.heartbeat_s, plan.grace_s, plan.interval_s, plan.idle_timeout_s) == (
        30,
        90,
        30,
        480,
    )
    assert plan.voila_options() == [
        "--MappingKernelManager.cull_idle_timeout=480",
        "--MappingKernelManager.cull_interval=30",
        "--MappingKernelManager.cull_connected=True",
    ]


@pytest.mark.parametrize("after", [1, 9, -5])
def test_a_budget_too_short_is_refused(after: int) -> None:
    with pytest.raises(ValueError, match="at least 10 seconds"):
        CullPlan(after)


def test_zero_never_culls() -> None:
    assert not CullPlan(0).enabled
    assert CullPlan(0).voila_options() == []
    command = voila_command(NOTEBOOK, host="127.0.0.1", port=1, cull=CullPlan(0))
    assert not any("cull" in part for part in command)


def test_voila_is_told_to_cull() -> None:
    command = voila_command(NOTEBOOK, host="127.0.0.1", port=1, cull=CullPlan(30))
    assert "--MappingKernelManager.cull_idle_timeout=26" in command
    assert "--MappingKernelManager.cull_connected=True" in command


# -- the heartbeat -----------------------------------------------------------------------------


def test_presence_lapses_without_heartbeats_and_comes_back_with_one() -> None:
    clock = Clock()
    presence = Presence(CullPlan(600), clock=clock)
    assert presence.seen()  # the page is loading as the kernel builds it
    clock.now += 89
    assert presence.seen()
    clock.now += 2
    assert not presence.seen()
    presence.button.click()  # what the page's script does
    assert presence.seen()
    assert presence.beats == 1
    assert "sk-heartbeat" in presence.button._dom_classes
    assert presence.button.layout.display == "none"
    assert "30000" in presence.script()


def test_pumps_skip_their_ticks_while_nobody_looks() -> None:
    looking = threading.Event()
    ticks: list[float] = []
    view_pump = Pump(lambda: ticks.append(time.monotonic()), 0.01, name="test-quiet")
    try:
        pump.pause_while_unseen(looking.is_set)
        time.sleep(0.2)  # a tick that had started before the pause may still land
        paused = len(ticks)
        time.sleep(0.3)
        assert len(ticks) == paused  # ~30 periods, not one tick
        view_pump.run_once()  # a click still refreshes at once
        assert len(ticks) == paused + 1
        looking.set()
        eventually(lambda: len(ticks) > paused + 3, "ticks to resume")
        pump.pause_while_unseen(None)
        looking.clear()
        count = len(ticks)
        eventually(lambda: len(ticks) > count + 3, "ticks without a check")
    finally:
        view_pump.stop()


# -- the dashboard wires both --------------------------------------------------------------------


def test_the_served_dashboard_listens_for_its_page(lite: Sandbox) -> None:
    served = Sandbox(home=lite.home, settings=dataclasses.replace(lite.settings, cull_after_s=600))
    try:
        dash = Dashboard(served, start=False)
        assert dash.presence is not None
        assert dash.presence.button in dash.children
        assert pump._seen == dash.presence.seen
        dash.close()
        assert pump._seen is None
    finally:
        served.close()


def test_elsewhere_the_views_always_refresh(lite: Sandbox) -> None:
    assert lite.settings.cull_after_s is None
    dash = Dashboard(lite, start=False)
    assert dash.presence is None
    assert pump._seen is None
    assert not any("sk-heartbeat" in getattr(c, "_dom_classes", ()) for c in dash.children)


def test_serve_refuses_a_budget_too_short(tmp_path: Path) -> None:
    done = cli("serve", "--cull-after", "5", "--port", "1", home=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: --cull-after must be 0 (never) or at least 10 seconds")
    assert not (tmp_path / "sandbox.db").exists()  # refused before anything was set up
