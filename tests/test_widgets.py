"""The widgets without a browser or a kernel: real sandbox, real jobs, simulated clicks.

Every view is built with ``start=False`` so no pump thread runs; tests call ``refresh()`` or
``pump.run_once()`` themselves. ipywidgets 8 with comm>=0.1.3 talks to a DummyComm, so trait
changes and ``button.click()`` behave as in a notebook.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import ipywidgets as W
import pytest

from sandbox_kit import Job, JobStatus, Model, Sandbox, Settings
from sandbox_kit.records import ModelType
from sandbox_kit.widgets import ControlPanel, JobsView, LogPanel, ModelsView, UploadCard
from sandbox_kit.widgets.app import Dashboard
from sandbox_kit.widgets.logpanel import EMPTY
from sandbox_kit.widgets.pump import Pump
from tests.conftest import _stop_all, script

DMO, RMO, SO = ModelType.DMO, ModelType.RMO, ModelType.SO
ROWS = 5  # table rows for JobsView/ModelsView: the defaults (25, 40) take long to build


@pytest.fixture(autouse=True)
def _close_widgets() -> Iterator[None]:
    yield
    W.Widget.close_all()


# -- helpers ---------------------------------------------------------------------------------


def upload(sb: Sandbox, name: str, model_type: str = "DMO") -> Model:
    return sb.upload(script(name), model_type, name=Path(name).stem)


def choose(card: UploadCard, name: str, data: bytes) -> None:
    """What the browser sends when a file is picked (ipywidgets 8 FileUpload wire format)."""
    card.chooser.set_state(
        {
            "value": [
                {
                    "name": name,
                    "type": "text/x-python",
                    "size": len(data),
                    "last_modified": 1578578296434,
                    "content": memoryview(data),
                }
            ]
        }
    )


def eventually(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_for_line(job: Job, text: str) -> None:
    eventually(lambda: any(text in line.text for line in job.logs()), f"{text!r} in {job.id}")


def texts(panel: LogPanel) -> list[str]:
    return [e.text for e in panel.visible() if not e.note]


def log_panel(sb: Sandbox, **kwargs: int) -> LogPanel:
    return LogPanel(sb, start=False, discover_every=0, **kwargs)


# -- upload card -----------------------------------------------------------------------------


def test_upload_is_disabled_until_a_file_is_chosen(lite: Sandbox) -> None:
    card = UploadCard(lite)
    assert card.button.disabled
    assert "No file chosen" in card.chosen.value
    assert card.upload() is None
    assert "Choose a .py file first." in card.message.value
    choose(card, "m.py", b"print('hi')\n")
    assert not card.button.disabled
    assert "<b>m.py</b>" in card.chosen.value and "12 B" in card.chosen.value


def test_valid_upload_stores_the_model_and_resets_the_card(lite: Sandbox) -> None:
    uploaded: list[Model] = []
    card = UploadCard(lite, on_uploaded=uploaded.append)
    choose(card, "m.py", b"print('hi')\n")
    card.name.value = "dispatch"
    card.description.value = "first try"
    card.button._handle_button_msg(None, {"event": "click"}, [])  # the browser's click message

    [model] = lite.models()
    assert (model.model_type, model.name, model.version) == (DMO, "dispatch", 1)
    assert model.active and model.description == "first try"
    assert model.original_filename == "m.py"
    assert "sk-msg-ok" in card.message.value
    assert "dispatch v1" in card.message.value and "DMO" in card.message.value
    assert card.chooser.value == ()
    assert "No file chosen" in card.chosen.value
    assert (card.name.value, card.description.value) == ("", "")
    assert card.button.disabled and card.button.description == "Upload"
    assert uploaded == [model]


def test_syntax_error_is_shown_inline_and_nothing_is_stored(lite: Sandbox) -> None:
    uploaded: list[Model] = []
    card = UploadCard(lite, on_uploaded=uploaded.append)
    choose(card, "broken.py", b"x = 1\ndef f(:\n    pass\n")
    card.button.click()
    assert "sk-msg-error" in card.message.value
    assert "broken.py" in card.message.value and "line 2" in card.message.value
    assert lite.models() == [] and uploaded == []
    assert not card.button.disabled  # the user may fix the type or name and retry
    assert card.chooser.value != ()


def test_a_file_over_the_limit_is_refused_at_once(home: Path, settings: Settings) -> None:
    small = Settings(
        max_upload_bytes=100,
        kill_grace_s=settings.kill_grace_s,
        heartbeat_s=settings.heartbeat_s,
        lost_after_s=settings.lost_after_s,
        max_running=settings.max_running,
    )
    sb = Sandbox(home=home, settings=small)
    try:
        card = UploadCard(sb)
        choose(card, "big.py", b"x = 1\n" * 50)
        assert "sk-msg-error" in card.message.value
        assert "big.py" in card.message.value and "limit" in card.message.value
        assert card.button.disabled
        assert card.upload() is None  # even if forced, the sandbox refuses it
        assert "limit" in card.message.value
        assert sb.models() == []
    finally:
        _stop_all(sb)


def test_wrong_extension_is_rejected(lite: Sandbox) -> None:
    card = UploadCard(lite)
    choose(card, "notes.txt", b"print('hi')\n")
    card.button.click()
    assert "sk-msg-error" in card.message.value
    assert "notes.txt" in card.message.value and "only .py and .ipynb files" in card.message.value
    assert lite.models() == []


def test_type_dropdown_offers_the_three_labelled_types(lite: Sandbox) -> None:
    card = UploadCard(lite)
    assert card.model_type.options == (
        ("DMO — Day-Ahead Market", "DMO"),
        ("RMO — Real-Time Market", "RMO"),
        ("SO — System Optimization", "SO"),
    )
    assert card.model_type.value == "DMO"
    card.model_type.value = "SO"
    choose(card, "so_model.py", b"print('so')\n")
    card.button.click()
    [model] = lite.models()
    assert model.model_type is SO and model.name == "so_model"
    assert lite.active_model("SO") == model and lite.active_model("DMO") is None


def test_unticked_activate_keeps_the_previous_active_version(lite: Sandbox) -> None:
    first = lite.upload(b"print(1)\n", "DMO", name="dmo", filename="dmo.py")
    card = UploadCard(lite)
    card.activate.value = False
    choose(card, "dmo.py", b"print(2)\n")
    card.button.click()
    assert "dmo v2" in card.message.value and "inactive" in card.message.value
    active = lite.active_model("DMO")
    assert active is not None and active.id == first.id
    assert [(m.version, m.status.value) for m in lite.models()] == [(2, "inactive"), (1, "active")]


# -- control panel ---------------------------------------------------------------------------


def test_without_models_every_run_is_disabled(lite: Sandbox) -> None:
    panel = ControlPanel(lite, start=False)
    assert not panel.pump.running
    for row in panel.rows.values():
        assert row.run.disabled and row.cancel.disabled
        assert "No active model" in row.model.value
        assert "sk-st-idle" in row.icon.value
        assert "Never run" in row.last.value


def test_refresh_enables_run_for_the_uploaded_type_only(lite: Sandbox) -> None:
    panel = ControlPanel(lite, start=False)
    upload(lite, "fast_exit.py", "RMO")
    panel.refresh()
    assert not panel.rows[RMO].run.disabled
    assert "fast_exit v1" in panel.rows[RMO].model.value
    assert panel.rows[DMO].run.disabled and panel.rows[SO].run.disabled
    assert "No active model" in panel.rows[DMO].model.value


def test_run_uses_the_rows_config_and_shows_live_then_final_status(lite: Sandbox) -> None:
    upload(lite, "slow_lines.py")
    started: list[Job] = []
    panel = ControlPanel(lite, on_started=started.append, start=False)
    row = panel.rows[DMO]
    row.config.value = '{"lines": 3, "every": 0.1}'
    row.run.click()
    [job] = started
    assert job.info.config == {"lines": 3, "every": 0.1}
    assert [info.id for info in lite.jobs()] == [job.id]
    assert row.message.value == ""
    assert "sk-st-running" in row.icon.value  # refreshed by run() itself
    assert not row.cancel.disabled
    assert job.wait(timeout=30).status is JobStatus.SUCCESS
    panel.refresh()
    assert "sk-st-success" in row.icon.value
    assert "took" in row.last.value
    assert row.cancel.disabled and not row.run.disabled


@pytest.mark.parametrize(
    ("config", "message"),
    [("{oops", "invalid JSON"), ("[1]", "must be a JSON object")],
)
def test_bad_config_is_shown_inline_and_starts_nothing(
    lite: Sandbox, config: str, message: str
) -> None:
    upload(lite, "fast_exit.py")
    started: list[Job] = []
    panel = ControlPanel(lite, on_started=started.append, start=False)
    row = panel.rows[DMO]
    row.config.value = config
    row.run.click()
    assert "sk-msg-error" in row.message.value and message in row.message.value
    assert row.message.value.count("DMO") >= 1
    assert started == [] and lite.jobs() == []
    assert "sk-st-idle" in row.icon.value


def test_cancel_is_enabled_while_running_and_cancels(lite: Sandbox) -> None:
    upload(lite, "hang.py", "SO")
    started: list[Job] = []
    panel = ControlPanel(lite, on_started=started.append, start=False)
    row = panel.rows[SO]
    row.run.click()
    [job] = started
    wait_for_line(job, "hanging")
    panel.refresh()
    assert not row.cancel.disabled
    row.cancel.click()
    info = job.wait(timeout=30)
    assert info.status is JobStatus.CANCELLED
    panel.refresh()
    assert "sk-st-cancelled" in row.icon.value and row.cancel.disabled


def test_a_job_started_elsewhere_appears_on_refresh(lite: Sandbox) -> None:
    upload(lite, "fast_exit.py")
    panel = ControlPanel(lite, start=False)
    job = lite.run("DMO")  # as the CLI would
    panel.pump.run_once()
    row = panel.rows[DMO]
    assert row.latest is not None and row.latest.id == job.id
    assert "sk-st-idle" not in row.icon.value
    job.wait(timeout=30)
    panel.refresh()
    assert "sk-st-success" in row.icon.value
    assert "sk-st-idle" in panel.rows[RMO].icon.value


# -- log panel -------------------------------------------------------------------------------


def test_log_panel_starts_empty(lite: Sandbox) -> None:
    panel = log_panel(lite)
    panel.refresh()
    assert EMPTY == "No logs yet. Run a model to see live logs."
    assert EMPTY in panel.view.value
    assert "0 lines" in panel.counter.value
    assert panel.job.options == (("All jobs", ""),)


def test_a_running_job_started_elsewhere_is_followed(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "hang.py").id)
    wait_for_line(job, "hanging")
    panel = log_panel(lite)  # opened after the job started: backfilled from its first line
    panel.refresh()
    assert job.id in panel.jobs
    assert "hanging" in panel.view.value
    assert "sk-lv-INFO" in panel.view.value
    assert job.id[-6:] in panel.view.value
    assert job.id in [value for _, value in panel.job.options]
    assert ">1 line<" in panel.counter.value
    job.cancel()
    assert job.wait(timeout=30).status is JobStatus.CANCELLED
    panel.refresh()
    panel.refresh()
    [note] = [e for e in panel.entries if e.note]
    assert note.job_id == job.id and note.level == "ERROR"
    assert "cancelled" in note.text
    assert "sk-note" in panel.view.value


def test_model_output_is_escaped(lite: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "xss.py"
    path.write_text('print("<script>alert(1)</script>")\n')
    model = lite.upload(path, "DMO")
    panel = log_panel(lite)
    job = lite.run(model.id)
    job.wait(timeout=30)
    panel.refresh()
    assert texts(panel) == ["<script>alert(1)</script>"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in panel.view.value
    assert "<script>" not in panel.view.value


def test_panel_keeps_a_bounded_tail_and_counts_every_line(lite: Sandbox) -> None:
    panel = log_panel(lite, max_lines=100)
    job = lite.run(upload(lite, "flood.py").id, config={"lines": 5000})
    assert job.wait(timeout=30).status is JobStatus.SUCCESS
    panel.refresh()
    panel.refresh()
    assert len(panel.entries) <= 100
    assert "5,000 lines" in panel.counter.value
    assert "showing" in panel.counter.value
    assert texts(panel)[-1] == "line 4999"
    assert panel.view.value.count('class="sk-line ') <= 100


def test_level_filter(lite: Sandbox) -> None:
    panel = log_panel(lite)
    job = lite.run(upload(lite, "levels.py").id)
    job.wait(timeout=30)
    panel.refresh()
    assert "plain stdout" in texts(panel)
    panel.level.value = "ERROR"
    shown = panel.visible()
    assert shown and {e.level for e in shown} == {"ERROR"}
    assert "plain stderr" in texts(panel) and "plain stdout" not in texts(panel)
    assert "sk-lv-ERROR" in panel.view.value
    assert "sk-lv-INFO" not in panel.view.value and "sk-lv-WARNING" not in panel.view.value
    panel.level.value = "WARNING"
    assert {e.level for e in panel.visible()} == {"WARNING", "ERROR"}
    panel.level.value = ""
    assert "DEBUG:root:debug via logging" in texts(panel)


def test_job_filter_restricts_to_one_job(lite: Sandbox) -> None:
    panel = log_panel(lite)
    first = lite.run(upload(lite, "fast_exit.py").id)
    second = lite.run(upload(lite, "levels.py", "RMO").id)
    first.wait(timeout=30)
    second.wait(timeout=30)
    panel.refresh()
    assert {e.job_id for e in panel.visible()} == {first.id, second.id}
    panel.job.value = first.id
    assert {e.job_id for e in panel.visible()} == {first.id}
    assert texts(panel) == ["bye"]
    assert second.id[-6:] not in panel.view.value


def test_search_is_case_insensitive(lite: Sandbox) -> None:
    panel = log_panel(lite)
    job = lite.run(upload(lite, "levels.py").id)
    job.wait(timeout=30)
    panel.refresh()
    panel.search.value = "DIVISION BY"
    assert texts(panel) == ["ZeroDivisionError: division by zero"]
    panel.search.value = "no such text anywhere"
    assert panel.visible() == []
    assert "No lines match the filters." in panel.view.value


def test_clear_empties_the_panel_and_later_lines_still_show(lite: Sandbox) -> None:
    panel = log_panel(lite)
    first = lite.run(upload(lite, "fast_exit.py").id)
    first.wait(timeout=30)
    panel.refresh()
    assert panel.entries
    panel.clear_button.click()
    assert len(panel.entries) == 0
    assert EMPTY in panel.view.value
    second = lite.run(upload(lite, "levels.py", "RMO").id)
    second.wait(timeout=30)
    panel.refresh()
    assert "plain stdout" in texts(panel)
    assert "bye" not in texts(panel)


def test_carriage_return_progress_collapses(lite: Sandbox) -> None:
    panel = log_panel(lite)
    job = lite.run(upload(lite, "progress.py").id)
    shown: set[str] = set()
    deadline = time.monotonic() + 30
    while not job.refresh().status.terminal:
        assert time.monotonic() < deadline
        panel.refresh()
        if panel.progress.value:
            shown.add(panel.progress.value)
        time.sleep(0.01)
    panel.refresh()
    panel.refresh()
    # Catching a redraw depends on timing, so it is checked only when one was seen.
    assert all("progress" in html and "sk-bar" in html for html in shown)
    assert [t for t in texts(panel) if "progress" in t] == ["progress 100%"]
    assert texts(panel) == ["start", "progress 100%", "done"]
    assert panel.progress.value == ""


def test_show_job_backfills_a_finished_job_and_filters_to_it(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "levels.py").id)
    job.wait(timeout=30)
    other = lite.run(upload(lite, "hang.py", "SO").id)
    panel = log_panel(lite)
    panel.refresh()
    assert job.id not in panel.jobs  # finished before the panel opened: not followed
    panel.show_job(job.id)
    assert panel.job.value == job.id
    assert texts(panel) == [line.text for line in job.logs()]
    panel.refresh()
    [note] = [e for e in panel.visible() if e.note]
    assert note.level == "INFO" and "success" in note.text and job.id in note.text
    other.cancel()
    other.wait(timeout=30)


def test_download_link_holds_the_raw_log(lite: Sandbox) -> None:
    panel = log_panel(lite)
    panel.download_button.click()
    assert "No job selected." in panel.download.value
    job = lite.run(upload(lite, "progress.py").id)
    job.wait(timeout=30)
    panel.show_job(job.id)
    panel.download_button.click()
    match = re.search(
        r'href="data:text/plain;charset=utf-8;base64,([A-Za-z0-9+/=]*)"', panel.download.value
    )
    assert match is not None, panel.download.value
    assert base64.b64decode(match.group(1)) == job.raw_log()
    assert b"\r" in job.raw_log()
    assert f'download="{job.id}.log"' in panel.download.value


def test_job_end_note_says_success(lite: Sandbox) -> None:
    panel = log_panel(lite)
    job = lite.run(upload(lite, "fast_exit.py").id)
    job.wait(timeout=30)
    panel.refresh()
    panel.refresh()
    assert panel.jobs[job.id].done
    notes = [e for e in panel.entries if e.note]
    assert len(notes) == 1 and notes[0].text.startswith(f"DMO job {job.id} success in ")
    assert "sk-note" in panel.view.value and "sk-lv-INFO" in panel.view.value
    panel.refresh()
    assert len([e for e in panel.entries if e.note]) == 1  # said once


# -- jobs view -------------------------------------------------------------------------------


def test_jobs_view_empty_state(lite: Sandbox) -> None:
    view = JobsView(lite, rows=ROWS, start=False)
    assert view.empty.layout.display == "block"
    assert "No jobs yet" in view.empty.value
    assert all(row.layout.display == "none" for row in view.table.rows)


def test_jobs_view_rows_show_the_job(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "fast_exit.py").id)
    job.wait(timeout=30)
    view = JobsView(lite, rows=ROWS, start=False)
    row = view.table.rows[0]
    assert row.layout.display == "flex" and view.empty.layout.display == "none"
    assert job.id in row.cells.value
    assert ">fast_exit v1<" in row.cells.value
    assert "sk-st-success" in row.cells.value
    assert re.search(r">\d+\.\d s<", row.cells.value)
    assert "exit 0" in row.cells.value
    assert row.cancel.disabled and not row.rerun.disabled
    assert all(r.layout.display == "none" for r in view.table.rows[1:])


def test_jobs_view_filters(lite: Sandbox) -> None:
    ok_model = upload(lite, "fast_exit.py")
    ok = lite.run(ok_model.id)
    bad = lite.run(upload(lite, "exit_code.py", "SO").id)
    ok.wait(timeout=30)
    bad.wait(timeout=30)
    view = JobsView(lite, rows=ROWS, start=False)

    def shown() -> set[str]:
        return {row.info.id for row in view.table.rows if row.info is not None}

    assert shown() == {ok.id, bad.id}
    view.type_filter.value = "SO"
    assert shown() == {bad.id}
    view.type_filter.value = ""
    view.status_filter.value = "success"
    assert shown() == {ok.id}
    view.status_filter.value = "failed"
    assert shown() == {bad.id}
    view.status_filter.value = ""
    assert ok_model.id in [value for _, value in view.model_filter.options]
    view.model_filter.value = ok_model.id
    assert shown() == {ok.id}
    view.type_filter.value = "SO"
    assert shown() == set() and view.empty.layout.display == "block"


def test_jobs_view_log_button_opens_the_log(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "fast_exit.py").id)
    job.wait(timeout=30)
    opened: list[str] = []
    view = JobsView(lite, rows=ROWS, on_open_log=opened.append, start=False)
    view.table.rows[0].log_button.click()
    assert opened == [job.id]


def test_jobs_view_cancel(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "hang.py").id)
    wait_for_line(job, "hanging")
    view = JobsView(lite, rows=ROWS, start=False)
    row = view.table.rows[0]
    assert "sk-st-running" in row.cells.value and not row.cancel.disabled
    row.cancel.click()
    assert f"Cancelling {job.id}." in view.message.value
    assert job.wait(timeout=30).status is JobStatus.CANCELLED
    view.refresh()
    assert "sk-st-cancelled" in row.cells.value and row.cancel.disabled


def test_jobs_view_rerun_uses_the_same_config(lite: Sandbox) -> None:
    old = lite.run(upload(lite, "slow_lines.py").id, config={"lines": 2, "every": 0.01})
    old.wait(timeout=30)
    opened: list[str] = []
    view = JobsView(lite, rows=ROWS, on_open_log=opened.append, start=False)
    view.table.rows[0].rerun.click()
    assert "Re-running slow_lines v1." in view.message.value
    [new_id] = opened
    assert new_id != old.id
    new = lite.job(new_id)
    assert new.info.config == old.info.config == {"lines": 2, "every": 0.01}
    assert new.info.model_id == old.info.model_id
    assert view.table.rows[0].info is not None and view.table.rows[0].info.id == new_id
    assert new.wait(timeout=30).status is JobStatus.SUCCESS


def widget_ids(view: JobsView) -> list[int]:
    """Identities of the card's children, the rows and every cell and button in them."""
    return [id(w) for w in view.children[0].children] + [
        id(w) for row in view.table.rows for w in (row, *row.children)
    ]


def test_jobs_view_reuses_its_row_widgets(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "fast_exit.py").id)
    job.wait(timeout=30)
    view = JobsView(lite, rows=ROWS, start=False)
    before = widget_ids(view)
    view.refresh()
    view.refresh()
    assert widget_ids(view) == before
    assert job.id in view.table.rows[0].cells.value


# -- models view -----------------------------------------------------------------------------


def two_versions(sb: Sandbox) -> tuple[Model, Model]:
    first = sb.upload(b"print(1)\n", "DMO", name="dmo", filename="dmo.py")
    second = sb.upload(b"print(2)\n", "DMO", name="dmo", filename="dmo.py")
    return first, second


def test_models_view_lists_versions_with_the_active_mark(lite: Sandbox) -> None:
    view = ModelsView(lite, rows=ROWS, start=False)
    assert view.empty.layout.display == "block"
    first, second = two_versions(lite)
    view.refresh()
    assert view.empty.layout.display == "none"
    new, old = view.table.rows[0], view.table.rows[1]
    assert new.model is not None and new.model.id == second.id
    assert old.model is not None and old.model.id == first.id
    assert "★" in new.cells.value and "★" not in old.cells.value
    assert ">v2<" in new.cells.value and ">v1<" in old.cells.value
    assert ">active<" in new.cells.value and ">inactive<" in old.cells.value
    assert new.activate.disabled and not old.activate.disabled
    assert len(view.table.rows) == 2  # rows are made only when needed


def test_activate_an_old_version(lite: Sandbox) -> None:
    first, _ = two_versions(lite)
    changed: list[None] = []
    view = ModelsView(lite, rows=ROWS, on_change=lambda: changed.append(None), start=False)
    view.table.rows[1].activate.click()
    active = lite.active_model("DMO")
    assert active is not None and active.id == first.id
    assert "dmo v1 is now active." in view.message.value
    assert "★" in view.table.rows[1].cells.value and "★" not in view.table.rows[0].cells.value
    assert changed == [None]


def test_archive_then_restore(lite: Sandbox) -> None:
    model = upload(lite, "fast_exit.py")
    view = ModelsView(lite, rows=ROWS, start=False)
    row = view.table.rows[0]
    assert row.archive.description == "Archive"
    row.archive.click()
    assert lite.model(model.id).status.value == "archived"
    assert lite.active_model("DMO") is None
    assert row.archive.description == "Restore" and row.archive.icon == "undo"
    assert row.activate.disabled
    assert ">archived<" in row.cells.value
    row.archive.click()
    assert lite.model(model.id).status.value == "inactive"
    assert row.archive.description == "Archive" and row.archive.icon == "archive"
    assert not row.activate.disabled
    assert "restored" in view.message.value


def test_delete_asks_first(lite: Sandbox) -> None:
    model = upload(lite, "fast_exit.py")
    view = ModelsView(lite, rows=ROWS, start=False)
    view.table.rows[0].delete.click()
    assert view.confirm_bar.layout.display == "flex"
    assert "cannot be undone" in view.confirm_text.value
    assert [m.id for m in lite.models()] == [model.id]  # nothing deleted yet
    view.keep.click()
    assert view.confirm_bar.layout.display == "none" and view.pending_delete is None
    assert [m.id for m in lite.models()] == [model.id]
    view.table.rows[0].delete.click()
    view.confirm.click()
    assert lite.models() == []
    assert "fast_exit v1 deleted." in view.message.value
    assert view.confirm_bar.layout.display == "none"
    assert view.table.rows[0].layout.display == "none" and view.empty.layout.display == "block"


def test_delete_is_refused_while_a_job_runs(lite: Sandbox) -> None:
    model = upload(lite, "hang.py")
    job = lite.run(model.id)
    wait_for_line(job, "hanging")
    view = ModelsView(lite, rows=ROWS, start=False)
    view.table.rows[0].delete.click()
    assert "1 job record(s)" in view.confirm_text.value
    view.confirm.click()
    assert "sk-msg-error" in view.message.value
    assert job.id in view.message.value and "queued or running" in view.message.value
    assert [m.id for m in lite.models()] == [model.id]
    job.cancel()
    assert job.wait(timeout=30).status is JobStatus.CANCELLED


def test_source_is_highlighted_and_escaped(lite: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "shown.py"
    path.write_text('# <b>not bold</b>\nprint("hello & bye")\n')
    lite.upload(path, "RMO")
    view = ModelsView(lite, rows=ROWS, start=False)
    view.table.rows[0].source.click()
    shown = view.source_view.value
    assert "shown.py" in shown and "RMO shown v1" in shown
    assert "&lt;b&gt;not bold&lt;/b&gt;" in shown and "<b>not bold" not in shown
    assert "hello &amp; bye" in shown
    assert "<span style=" in shown  # highlighted


# -- dashboard -------------------------------------------------------------------------------


def test_dashboard_upload_then_run_updates_every_view(lite: Sandbox) -> None:
    dash = Dashboard(lite, start=False)
    assert dash.control.rows[DMO].run.disabled
    assert not any(view.pump.running for view in (dash.logs, dash.control, dash.jobs, dash.models))
    choose(dash.upload, "levels.py", script("levels.py").read_bytes())
    dash.upload.button.click()
    # Shown at once, without waiting for a pump.
    row = dash.models.table.rows[0]
    assert row.model is not None and row.model.name == "levels"
    assert "★" in row.cells.value
    assert not dash.control.rows[DMO].run.disabled
    assert "levels v1" in dash.control.rows[DMO].model.value
    assert dash.jobs.model_filter.options[-1][1] == row.model.id

    dash.control.rows[DMO].run.click()
    [info] = lite.jobs()
    assert info.id in dash.logs.jobs
    assert dash.logs.job.value == info.id  # the log panel follows the new job
    job = lite.job(info.id)
    job.wait(timeout=30)
    dash.logs.refresh()
    assert "plain stdout" in texts(dash.logs)
    assert {e.job_id for e in dash.logs.visible()} == {info.id}
    dash.jobs.refresh()
    assert dash.jobs.table.rows[0].info is not None and dash.jobs.table.rows[0].info.id == info.id


def test_dashboard_close_stops_every_pump(lite: Sandbox) -> None:
    dash = Dashboard(lite, start=True)
    views = (dash.logs, dash.control, dash.jobs, dash.models)
    assert all(view.pump.running for view in views)
    dash.close()
    eventually(lambda: not any(view.pump.running for view in views), "pumps to stop")
    assert dash.comm is None
    assert all(view.comm is None for view in views)


# -- pump ------------------------------------------------------------------------------------


def test_run_once_calls_tick() -> None:
    ticks: list[None] = []
    pump = Pump(lambda: ticks.append(None), 60, name="test-pump", start=False)
    assert not pump.running
    pump.run_once()
    pump.run_once()
    assert len(ticks) == 2


def test_a_failing_tick_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def tick() -> None:
        raise RuntimeError("boom")

    pump = Pump(tick, 60, name="test-pump", start=False)
    with caplog.at_level(logging.ERROR, logger="sandbox_kit.widgets"):
        pump.run_once()
    [record] = caplog.records
    assert record.name == "sandbox_kit.widgets" and record.getMessage() == "refresh failed"
    assert record.exc_info is not None and str(record.exc_info[1]) == "boom"


def test_stop_ends_the_thread() -> None:
    ticks: list[None] = []
    pump = Pump(lambda: ticks.append(None), 0.01, name="test-pump")
    eventually(lambda: len(ticks) >= 2, "two ticks")
    assert pump.running
    pump.stop()
    eventually(lambda: not pump.running, "the pump thread to end", timeout=5)
    count = len(ticks)
    time.sleep(0.05)
    assert len(ticks) == count


# -- regressions -------------------------------------------------------------------------------


def test_views_build_without_warnings(lite: Sandbox) -> None:
    # Recorded, not raised: a view half-built by an exception fails again in Widget.__del__.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        UploadCard(lite)
        LogPanel(lite, start=False)
        ControlPanel(lite, start=False)
    assert [str(w.message) for w in caught] == []


def test_size_message_names_meaningful_sizes(home: Path) -> None:
    sb = Sandbox(home=home, settings=Settings(max_upload_bytes=100))
    try:
        card = UploadCard(sb)
        choose(card, "big.py", b"x = 1\n" * 50)
        assert "0.0 MB" not in card.message.value
        assert "file is 300 bytes; the limit is 100 bytes" in card.message.value
    finally:
        _stop_all(sb)


def test_close_closes_the_children(lite: Sandbox) -> None:
    panel = ControlPanel(lite, start=False)
    panel.close()
    assert panel.comm is None
    assert panel.rows[DMO].run.comm is None


def test_log_job_filter_survives_a_new_job(lite: Sandbox) -> None:
    model = upload(lite, "fast_exit.py")
    first = lite.run(model.id)
    first.wait(timeout=30)
    panel = log_panel(lite)
    panel.show_job(first.id)
    second = lite.run(model.id)
    panel.refresh()
    assert second.id in panel.jobs
    assert panel.job.value == first.id


def test_jobs_model_filter_survives_a_new_model(lite: Sandbox) -> None:
    model = upload(lite, "fast_exit.py")
    view = JobsView(lite, rows=ROWS, start=False)
    view.model_filter.value = model.id
    upload(lite, "hang.py", "SO")  # e.g. from the upload card: Dashboard._changed runs this
    tick = threading.Thread(target=view.pump.run_once, daemon=True)
    tick.start()
    tick.join(timeout=3)
    assert not tick.is_alive(), "pump.run_once hung (the thread stays blocked)"
    assert view.model_filter.value == model.id


def test_uploading_identical_content_says_it_is_already_stored(lite: Sandbox) -> None:
    card = UploadCard(lite)
    choose(card, "same.py", b"print('same')\n")
    card.button.click()
    assert "Stored DMO model same v1" in card.message.value
    choose(card, "same.py", b"print('same')\n")
    card.button.click()
    assert "Already stored: DMO model same v1" in card.message.value
    assert len(lite.models()) == 1


def test_results_view_shows_outcome_charts_tables_and_a_comparison(lite: Sandbox) -> None:
    from sandbox_kit.widgets.results import ResultsView
    from tests.conftest import ROOT

    lite.upload(ROOT / "models" / "examples" / "so.py", "SO")
    first = lite.run("SO")
    first.wait(timeout=60)
    second = lite.run("SO", config={"line_limit_scale": 10})
    second.wait(timeout=60)
    view = ResultsView(lite, start=False)
    assert view.job.value == second.id  # the newest run is shown
    assert "optimal" in view.summary.value and "objective" in view.summary.value
    assert bytes(view.prices.value).startswith(b"\x89PNG") and view.prices.layout.display == "block"
    assert bytes(view.dispatch.value).startswith(b"\x89PNG")
    assert view.gap.layout.display == "none"  # an LP reports no MIP gap
    assert {"lmp", "flows", "dispatch"} <= {value for _, value in view.table_choice.options}
    assert "<table" in view.table.value and "data:application/octet-stream" in view.files.value
    view.other.value = first.id
    assert "line_limit_scale" in view.comparison.value  # config diff
    assert "objective" in view.comparison.value and "Same model source" in view.comparison.value
    assert bytes(view.compare_prices.value).startswith(b"\x89PNG")


# -- bounded reads (issue 9) -----------------------------------------------------------------

TABLES_MODEL = """\
import json, os
out = os.environ["SANDBOX_RESULT_DIR"]
with open(os.path.join(out, "flows.csv"), "w") as fh:
    fh.write("line,flow\\n")
    for i in range(60_000):  # ~1 MB: more rows than a preview reads, and more bytes
        fh.write(f"L{i},{i * 0.5}\\n")
for name in ("a.bin", "b.bin", "c.bin"):
    with open(os.path.join(out, name), "wb") as fh:
        fh.write(os.urandom(400_000))
with open(os.path.join(out, "dispatch.csv"), "w") as fh:
    fh.write(json.loads(os.environ["CONFIG"])["dispatch"])
json.dump(
    {"outcome": "optimal", "objective": 1.0,
     "tables": {"flows": "flows.csv", "dispatch": "dispatch.csv"}},
    open(os.path.join(out, "result.json"), "w"),
)
"""


def tuned_run(sb: Sandbox, tmp_path: Path, dispatch: str = "hour,g1,g2\n0,5,3\n1,6,2\n") -> Job:
    path = tmp_path / "tables.py"
    path.write_text(TABLES_MODEL)
    job = sb.run(sb.upload(path, "DMO").id, config={"dispatch": dispatch})
    assert job.wait(timeout=60).status is JobStatus.SUCCESS, [x.text for x in job.logs()]
    return job


def small_pages(settings: Settings, **changes: int) -> Settings:
    return dataclasses.replace(settings, **changes)


def test_table_preview_reads_at_most_preview_rows(
    home: Path, settings: Settings, tmp_path: Path
) -> None:
    from sandbox_kit.widgets.results import ResultsView

    sb = Sandbox(home=home, settings=small_pages(settings, preview_rows=25))
    try:
        job = tuned_run(sb, tmp_path)
        view = ResultsView(sb, start=False)
        view.table_choice.value = "flows"
        assert view.table.value.count("<tr") == 26  # the header and 25 rows
        assert "L24" in view.table.value and "L25" not in view.table.value
        assert "the first 25 rows of" in view.table.value
        view.table_choice.value = "dispatch"
        assert "2 rows" in view.table.value and "first" not in view.table.value
        assert job.id == view.shown
    finally:
        _stop_all(sb)


def test_files_are_embedded_up_to_a_total_then_the_page_says_how_to_fetch_them(
    home: Path, settings: Settings, tmp_path: Path
) -> None:
    from sandbox_kit.widgets.results import ResultsView

    sb = Sandbox(home=home, settings=small_pages(settings, inline_max_bytes=1 << 20))
    try:
        job = tuned_run(sb, tmp_path)
        files = ResultsView(sb, start=False).files.value
        embedded = re.findall(r"download='([^']+)' href='data:[^']*base64,([^']*)'", files)
        names = [name for name, _ in embedded]
        assert names == ["a.bin", "b.bin", "dispatch.csv", "result.json"]  # c.bin: over 1 MB
        assert sum(len(base64.b64decode(data)) for _, data in embedded) <= 1 << 20
        result_dir = Path(job.info.result_dir)
        assert base64.b64decode(embedded[0][1]) == (result_dir / "a.bin").read_bytes()
        assert "c.bin (390.6 KB, not embedded" in files
        assert f"cp {result_dir / 'c.bin'} ." in files and "flows.csv" in files
        assert f"sandbox-kit status {job.id}</code> prints the result folder" in files
    finally:
        _stop_all(sb)


def test_a_failing_render_is_shown_once_and_retried_when_the_result_changes(
    lite: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sandbox_kit.widgets.results import ResultsView

    job = tuned_run(lite, tmp_path, dispatch="hour,mw\n0,1\n1,2,3,4\n")  # a malformed CSV
    with caplog.at_level(logging.WARNING, logger="sandbox_kit.widgets"):
        view = ResultsView(lite, start=False)
        assert "Could not show this run: Error tokenizing data" in view.error.value
        assert "Traceback" not in view.error.value and "\n" not in view.error.value
        for _ in range(3):
            view.refresh()
        assert len(caplog.records) == 1  # not retried: same job, status and result.json
        result_dir = Path(job.info.result_dir)
        for path in (result_dir, result_dir / "dispatch.csv", result_dir / "result.json"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # the finished job's folder is frozen
        (result_dir / "dispatch.csv").write_text("hour,g1,g2\n0,5,3\n1,6,2\n")
        view.refresh()
        assert "Could not show this run" in view.error.value  # still the same data key
        result = json.loads((result_dir / "result.json").read_text())
        (result_dir / "result.json").write_text(json.dumps({**result, "message": "fixed"}))
        view.refresh()
        assert len(caplog.records) == 1
    assert view.error.value == ""
    assert bytes(view.dispatch.value).startswith(b"\x89PNG") and "fixed" in view.summary.value


def test_an_oversized_result_is_explained_in_the_summary(
    home: Path, settings: Settings, tmp_path: Path
) -> None:
    from sandbox_kit.widgets.results import ResultsView

    sb = Sandbox(home=home, settings=small_pages(settings, result_max_bytes=100))
    try:
        tuned_run(sb, tmp_path)
        view = ResultsView(sb, start=False)
        assert "over the 100 B limit; it was not read" in view.summary.value
        assert view.error.value == "" and view.table_choice.options == ()
    finally:
        _stop_all(sb)


def test_download_of_a_log_over_the_page_cap_shows_the_command(
    home: Path, settings: Settings
) -> None:
    sb = Sandbox(home=home, settings=small_pages(settings, inline_max_bytes=10_000))
    try:
        job = sb.run(upload(sb, "flood.py").id, config={"lines": 2000})
        job.wait(timeout=30)
        panel = log_panel(sb)
        panel.show_job(job.id)
        panel.download_button.click()
        assert "data:" not in panel.download.value
        assert f"sandbox-kit logs {job.id} &gt; {job.id}.log" in panel.download.value
        assert "too big for the page" in panel.download.value
    finally:
        _stop_all(sb)


def test_download_link_of_a_multi_chunk_log_holds_every_byte(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "flood.py").id, config={"lines": 300_000})
    job.wait(timeout=60)
    panel = log_panel(lite)
    panel.show_job(job.id)
    panel.download_button.click()
    match = re.search(r'base64,([A-Za-z0-9+/=]*)"', panel.download.value)
    assert match is not None
    assert base64.b64decode(match.group(1)) == job.raw_log()  # several MB, encoded in pieces


def test_log_panel_keeps_a_bounded_number_of_finished_jobs(lite: Sandbox) -> None:
    panel = LogPanel(lite, start=False, discover_every=0, max_finished=2)
    model = upload(lite, "fast_exit.py")
    jobs = [lite.run(model.id) for _ in range(4)]
    for job in jobs:
        job.wait(timeout=30)
    for _ in range(3):
        panel.refresh()
    kept = {job.id for job in jobs[2:]}
    assert set(panel.jobs) == kept  # the newest two
    assert {value for _, value in panel.job.options} == {"", *kept}
    assert "4 lines" in panel.counter.value  # dropped jobs' lines still counted
    notes = [e for e in panel.entries if e.note]
    panel.refresh()
    assert set(panel.jobs) == kept and [e for e in panel.entries if e.note] == notes  # not re-read
