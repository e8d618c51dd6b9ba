"""The jobs view: history with filters, and per-job actions (open log, cancel, re-run)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as W

from sandbox_kit.errors import SandboxKitError
from sandbox_kit.humanize import duration, when
from sandbox_kit.records import JobInfo, JobStatus, ModelType
from sandbox_kit.widgets.pump import Pump, View, keep_value
from sandbox_kit.widgets.style import (
    cached_html,
    card,
    gapped,
    message_html,
    set_if_changed,
    status_html,
)
from sandbox_kit.widgets.table import Table, cells_html

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

_COLUMNS = (
    ("Job", "200px"),
    ("Model", "140px"),
    ("Status", "118px"),
    ("Started", "160px"),
    ("Duration", "84px"),
    ("By", "90px"),
    ("Isolation", "100px"),
    ("Exit / reason", "180px"),
)
_ACTIONS_PX = 250  # Log, Cancel and Re-run with their margins


class JobRow(W.HBox):  # type: ignore[misc]
    """One row of the table; rows are reused, so only changed cells are sent to the browser."""

    def __init__(self, view: JobsView) -> None:
        self.view = view
        self.info: JobInfo | None = None
        self.cells = W.HTML()
        self.cells.add_class("sk-cells-box")
        self.log_button = W.Button(
            description="Log", icon="align-left", layout=W.Layout(width="70px")
        )
        self.cancel = W.Button(description="Cancel", icon="stop", layout=W.Layout(width="84px"))
        self.rerun = W.Button(description="Re-run", icon="redo", layout=W.Layout(width="84px"))
        self.log_button.add_class("sk-job-log")
        self.cancel.add_class("sk-job-cancel")
        self.rerun.add_class("sk-job-rerun")
        self.log_button.on_click(lambda _: self.info and view.open_log(self.info.id))
        self.cancel.on_click(lambda _: self.info and view.cancel(self.info.id))
        self.rerun.on_click(lambda _: self.info and view.rerun(self.info))
        super().__init__([self.cells, self.log_button, self.cancel, self.rerun])
        self.add_class("sk-row")
        self.add_class("sk-job-row")
        self.layout = W.Layout(display="none", align_items="center")

    def show(self, info: JobInfo | None) -> None:
        """Fill the row with a job, or hide it."""
        self.info = info
        if info is None:
            set_if_changed(self.layout, "display", "none")
            return
        exit_text = info.reason or ("exit 0" if info.exit_code == 0 else "")
        if info.cached_from:
            exit_text = f"cached from {info.cached_from}"
        if info.outcome:
            exit_text += f" · {info.outcome}"
        # Why a run that asked for the cache ran anyway (issue 11), on hover.
        why = f"re-ran: {info.cache_miss_reason}" if info.cache_miss_reason else exit_text
        values = [
            f'<span class="sk-mono">{html.escape(info.id)}</span>',
            f"{html.escape(info.model_name)} v{info.model_version}",
            status_html(info.status.value) + cached_html(info.cached_from),
            when(info.started_at),
            duration(info.duration_s),
            html.escape(info.started_by or ""),
            _where(info),
            f'<span title="{html.escape(why)}">{html.escape(exit_text)}</span>',
        ]
        set_if_changed(self.cells, "value", cells_html(values, _COLUMNS))
        set_if_changed(self.cancel, "disabled", info.status.terminal)
        set_if_changed(self.rerun, "disabled", info.model_id is None)
        set_if_changed(self.layout, "display", "flex")


class JobsView(View):
    """Job history from every process, newest first.

    Args:
        sandbox: where the jobs live.
        on_open_log: called with a job id when its Log button is pressed.
        rows: jobs shown at once.
        period: seconds between refreshes.
        start: start the refresh pump (tests pass False and call :meth:`refresh`).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        on_open_log: Callable[[str], None] | None = None,
        rows: int = 25,
        period: float = 1.0,
        start: bool = True,
    ) -> None:
        self.sandbox = sandbox
        self.on_open_log = on_open_log
        self.type_filter = W.Dropdown(
            options=[("All types", "")] + [(t.value, t.value) for t in ModelType],
            value="",
            description="Type",
            layout=W.Layout(width="170px"),
        )
        self.status_filter = W.Dropdown(
            options=[("All statuses", "")] + [(s.value, s.value) for s in JobStatus],
            value="",
            description="Status",
            layout=W.Layout(width="190px"),
        )
        self.model_filter = W.Dropdown(
            options=[("All models", 0)],
            value=0,
            description="Model",
            layout=W.Layout(width="260px"),
        )
        for control in (self.type_filter, self.status_filter, self.model_filter):
            control.style.description_width = "50px"
            control.observe(lambda _: self.pump.run_once(), names="value")
        self.message = W.HTML()
        self.empty = W.HTML(
            '<div class="sk-empty">No jobs yet. Run a model from the control panel.</div>'
        )
        self.table = Table(
            _COLUMNS, lambda: JobRow(self), rows, name="jobs", actions_px=_ACTIONS_PX
        )
        filters = gapped(W.HBox([self.type_filter, self.status_filter, self.model_filter]))
        super().__init__(
            [card("Jobs", filters, self.message, self.table, self.empty, css="sk-jobs")]
        )
        self.pump = Pump(self.refresh, period, name="sk-jobs-pump", start=start)
        self.pump.run_once()

    def refresh(self) -> None:
        """Re-read the job list with the current filters."""
        models = self.sandbox.models()
        options = [("All models", 0)] + [
            (f"{m.model_type.value} {m.name} v{m.version}", m.id) for m in models
        ]
        keep_value(self.model_filter, options)
        jobs = self.sandbox.jobs(
            model_type=self.type_filter.value or None,
            status=self.status_filter.value or None,
            model=self.model_filter.value or None,
            limit=self.table.limit,
        )
        self.table.show(jobs)
        set_if_changed(self.empty.layout, "display", "none" if jobs else "block")

    def open_log(self, job_id: str) -> None:
        """Show a job's log in the log panel."""
        if self.on_open_log is not None:
            self.on_open_log(job_id)

    def cancel(self, job_id: str) -> None:
        """Cancel a job."""
        self._act(lambda: self.sandbox.cancel(job_id), f"Cancelling {job_id}.")

    def rerun(self, info: JobInfo) -> None:
        """Run the same model version again with the same config and data source."""
        if info.model_id is None:
            return

        def again() -> None:
            job = self.sandbox.run(
                info.model_id or 0,
                config=info.config,
                data_source_id=info.data_source or info.data_source_id,
            )
            if self.on_open_log is not None:
                self.on_open_log(job.id)

        self._act(again, f"Re-running {info.model_name} v{info.model_version}.")

    def _act(self, action: Callable[[], None], done: str) -> None:
        try:
            action()
        except SandboxKitError as exc:
            self.message.value = message_html("error", str(exc))
            return
        self.message.value = message_html("info", done)
        self.pump.run_once()


def _where(info: JobInfo) -> str:
    """The isolation level, and the Dask worker that ran the job (issue 12)."""
    text = html.escape(info.isolation or "")
    if info.worker:
        worker = html.escape(info.worker)
        text += (
            f' <span class="sk-mono" title="Dask worker {worker}">@{worker.split("://")[-1]}</span>'
        )
    return text
