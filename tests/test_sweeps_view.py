"""The issue 11 widgets without a browser: the sweeps view, data sets in the upload card, the
data source and cache controls of the control panel, and the "cached" badge."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ipywidgets as W
import pytest

from sandbox_kit import Sandbox
from sandbox_kit.records import ModelType
from sandbox_kit.widgets import ControlPanel, JobsView, SweepsView, UploadCard
from tests.conftest import script
from tests.test_widgets import choose

ARCHIVES = Path(__file__).with_name("archives")


@pytest.fixture(autouse=True)
def _close_widgets() -> Iterator[None]:
    yield
    W.Widget.close_all()


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_sweep_started_from_the_view_fills_its_table_and_chart(lite: Sandbox) -> None:
    lite.upload(script("outcome_writer.py"), "DMO", name="writer")
    view = SweepsView(lite, start=False)
    assert "No sweep yet" in view.empty.value and view.empty.layout.display == "block"
    view.grid.value = '{"objective": [1, 2, 3], "scale": [1, 2]}'
    view.base_config.value = '{"sleep": 0}'
    sweep_id = view.start()
    assert sweep_id is not None and view.picker.value == sweep_id
    assert "Started sweep_" in view.message.value and "6 scenarios, 0 from the cache" in (
        view.message.value
    )
    eventually(lambda: lite.sweep_info(sweep_id).finished, "the sweep to end")
    view.refresh()
    assert "<b>6</b> of 6 done" in view.progress.value
    assert view.table.value.count("<tr>") == 7  # the header and six scenarios
    assert view.table.value.count("✔") >= 6
    assert [o for _, o in view.x_axis.options] == ["objective", "scale"]
    assert view.series.value == "scale"  # two parameters: a line per value of the other
    assert view.chart.layout.display == "block" and view.chart.value[:4] == b"\x89PNG"
    assert view.cancel_button.disabled  # finished
    first = view.chart.value
    view.y_axis.value = "metric:scale"
    view.refresh()
    assert view.chart.value != first
    again = view.start()  # the same grid: every scenario comes from the cache
    assert again is not None and "6 from the cache" in view.message.value
    view.refresh()
    assert view.table.value.count("sk-cached") == 6


def test_a_bad_grid_is_shown_inline_and_starts_nothing(lite: Sandbox) -> None:
    lite.upload(script("outcome_writer.py"), "DMO")
    view = SweepsView(lite, start=False)
    view.grid.value = '{"objective": [1, 2'
    assert view.start() is None
    assert "grid, line 1, column 20: invalid JSON" in view.message.value
    view.grid.value = '{"objective": 1}'
    assert view.start() is None
    assert "grid entry &#x27;objective&#x27; must be a non-empty list" in view.message.value
    assert lite.sweeps() == []


def test_the_view_cancels_a_running_sweep(lite: Sandbox) -> None:
    lite.upload(script("outcome_writer.py"), "DMO")
    view = SweepsView(lite, start=False)
    view.grid.value = '{"sleep": [60, 61]}'
    view.use_cache.value = False
    sweep_id = view.start()
    assert sweep_id is not None and not view.cancel_button.disabled
    view.cancel()
    assert "Cancelling 2 scenario(s)" in view.message.value
    eventually(lambda: lite.sweep_info(sweep_id).finished, "the cancels")
    assert lite.sweep_info(sweep_id).counts == {"cancelled": 2}


def test_the_upload_card_stores_data_sets(lite: Sandbox) -> None:
    card = UploadCard(lite)
    card.kind.value = "data"
    assert card.model_type.layout.display == "none" and card.chooser.accept == ""
    assert "Add a data set" in card.title.value
    choose(card, "Load Forecast.csv", b"hour,mw\n1,100\n")
    stored = card.upload()
    assert stored is not None and stored.source == "data:Load_Forecast@1"
    assert "Stored data set Load_Forecast@1 (1 file(s)" in card.message.value
    choose(card, "Load Forecast.csv", b"hour,mw\n1,100\n")
    card.upload()
    assert "Already stored: data set Load_Forecast@1" in card.message.value
    choose(card, "slip.zip", (ARCHIVES / "zip_slip.zip").read_bytes())
    card.name.value = "evil"
    assert card.upload() is None
    assert "leads out of its folder" in card.message.value
    assert [d.label for d in lite.data_sets()] == ["Load_Forecast@1"]
    card.kind.value = "model"
    assert card.model_type.layout.display == "" and card.chooser.accept == ".py,.ipynb"


def test_the_control_panel_runs_with_a_data_source_and_the_cache(lite: Sandbox) -> None:
    lite.upload(script("outcome_writer.py"), "DMO")
    lite.add_data(b"1\n", name="bids", filename="bids.csv")
    panel = ControlPanel(lite, start=False)
    row = panel.rows[ModelType.DMO]
    values = [value for _, value in row.data_source.options]
    assert values[:4] == ["", "latest:DMO", "latest:RMO", "latest:SO"]
    assert values[4:] == ["data:bids", "data:bids@1"]
    assert not row.use_cache.value  # SANDBOX_CACHE_DMO is off
    row.data_source.value = "data:bids"
    row.use_cache.value = True
    first = panel.run(ModelType.DMO)
    assert first is not None
    info = first.wait(timeout=60)
    assert (info.data_source, info.status.value) == ("data:bids@1", "success")
    second = panel.run(ModelType.DMO)
    assert second is not None and second.info.cached_from == first.id
    panel.refresh()
    assert "sk-cached" in row.last.value
    jobs = JobsView(lite, rows=3, start=False)
    cells = jobs.table.rows[0].cells.value
    assert "sk-cached" in cells and f"cached from {first.id}" in cells
    assert 'title="re-ran: no earlier reusable run' in jobs.table.rows[1].cells.value
