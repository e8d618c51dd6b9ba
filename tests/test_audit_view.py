"""The audit trail in the dashboard: the Audit view in the Models tab, and who made each model
version and started each job in the tables. Without a browser (see tests/test_widgets.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ipywidgets as W
import pytest

from sandbox_kit import Sandbox, Settings
from sandbox_kit.widgets import JobsView, ModelsView
from sandbox_kit.widgets.app import Dashboard
from sandbox_kit.widgets.audit_view import AuditView

HOSTILE = '<img src=x onerror="alert(1)">'


@pytest.fixture(autouse=True)
def _close_widgets() -> Iterator[None]:
    yield
    W.Widget.close_all()


@pytest.fixture
def carol(home: Path, settings: Settings) -> Iterator[Sandbox]:
    sb = Sandbox(home=home, settings=settings, actor="carol")
    yield sb
    sb.close()


def test_the_view_lists_entries_newest_first_and_filters(carol: Sandbox, home: Path) -> None:
    model = carol.upload(b"print('x')\n", "DMO", name="dmo_a")
    other = Sandbox(home=home, actor=HOSTILE)
    other.archive(model.id)
    other.close()

    view = AuditView(carol, start=False)
    html = view.table.value
    assert html.index("archive") < html.index("upload")  # newest first
    assert "carol" in html and "DMO dmo_a v1" in html
    assert HOSTILE not in html and "&lt;img src=x" in html  # actor names are escaped

    view.actor_filter.value = "carol"  # refreshes at once
    assert "archive" not in view.table.value and "upload" in view.table.value
    view.actor_filter.value = ""
    view.action_filter.value = "archive"
    assert "upload" not in view.table.value and "archive" in view.table.value
    view.action_filter.value = "no_such_action"
    assert "No actions recorded" in view.table.value


def test_tables_say_who(carol: Sandbox) -> None:
    model = carol.upload(b"print('x')\n", "SO", name="so_a")
    job = carol.run(model.id)
    job.wait(timeout=60)

    models = ModelsView(carol, rows=3, start=False)
    assert models.table.header.value.count("By") == 1
    assert "carol" in models.table.rows[0].cells.value
    jobs = JobsView(carol, rows=3, start=False)
    assert "<b>By</b>" in jobs.table.header.value
    assert "carol" in jobs.table.rows[0].cells.value


def test_the_models_tab_holds_the_audit_view(carol: Sandbox) -> None:
    dash = Dashboard(carol, start=False)
    assert dash.tabs.get_title(1) == "Models"
    models_tab = dash.tabs.children[1]
    assert dash.models in models_tab.children and dash.audit in models_tab.children
    carol.upload(b"print('y')\n", "RMO")
    dash.models.pump.run_once()
    dash._changed()  # what an action in any view triggers
    assert "upload" in dash.audit.table.value
    dash.close()
    assert not dash.audit.pump.running
