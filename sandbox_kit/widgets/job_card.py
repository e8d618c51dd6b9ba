"""A live card for one job: its log tail, a Cancel button, and how it ended.

What a ``%%sandbox`` cell shows under itself (issue 14), usable on its own for any job:
``JobCard(sandbox, job.id)``. Like the log panel it tails the durable log, so it works for a
job started by any process, keeps a bounded tail (the file keeps everything) and is updated by
one pump thread only; the pump stops once the job has ended and its last line is shown.
"""

from __future__ import annotations

import html
from collections import deque
from typing import TYPE_CHECKING

import ipywidgets as W

from sandbox_kit.errors import SandboxKitError
from sandbox_kit.humanize import duration
from sandbox_kit.logs import LogTail
from sandbox_kit.records import JobInfo, JobStatus
from sandbox_kit.widgets.logpanel import Entry, line_html, progress_html, read_tail
from sandbox_kit.widgets.pump import Pump, View
from sandbox_kit.widgets.style import CSS, card, message_html, set_if_changed, status_html

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

_READ_PER_TICK = 256 << 10  # bytes of log per tick: the card shows a tail only
_WAITING = "Waiting for the first line…"


class JobCard(View):
    """One job, live: status, log tail, Cancel, and at the end status, outcome and objective.

    Args:
        sandbox: where the job lives.
        job_id: the job to show.
        title: the card's title (default: ``"<TYPE> job"``).
        note: an extra line under the title (escaped), e.g. where a model was saved.
        max_lines: log lines kept on screen (the file keeps them all).
        period: seconds between refreshes.
        start: start the pump (tests pass False and call :meth:`refresh`).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        job_id: str,
        *,
        title: str | None = None,
        note: str = "",
        max_lines: int = 200,
        period: float = 0.4,
        start: bool = True,
    ) -> None:
        self.sandbox = sandbox
        self.job_id = job_id
        self.info: JobInfo = sandbox.job_info(job_id)
        self.entries: deque[Entry] = deque(maxlen=max_lines)
        self.lines = 0
        #: True once the job has ended and its last line is shown; the pump has stopped.
        self.done = False
        self._tail = LogTail(self.info.log_path)
        self._progress = ""
        self._cancelling = False
        self._dirty = True
        self.status = W.HTML(layout=W.Layout(flex="none"))
        self.status.add_class("sk-card-status")
        self.heading = W.HTML(_heading(self.info), layout=W.Layout(flex="1 1 auto", min_width="0"))
        self.heading.add_class("sk-card-heading")
        self.cancel_button = W.Button(
            description="Cancel",
            icon="stop",
            button_style="danger",
            tooltip="Stop the job and everything it started",
            layout=W.Layout(width="auto", flex="none"),
        )
        self.cancel_button.add_class("sk-card-cancel")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.progress = W.HTML()
        self.view = W.HTML(f'<div class="sk-empty">{_WAITING}</div>')
        self.view.add_class("sk-log-scroll")
        self.view.add_class("sk-log-pinned")
        self.summary = W.HTML()
        self.summary.add_class("sk-card-summary")
        self.message = W.HTML(message_html("info", note) if note else "")
        head = W.HBox(
            [self.status, self.heading, self.cancel_button],
            layout=W.Layout(align_items="center"),
        )
        head.add_class("sk-card-head")
        body = card(
            title or f"{self.info.model_type.value} job",
            head,
            self.message,
            self.progress,
            self.view,
            self.summary,
            css="sk-job-card",
        )
        # The stylesheet travels with the card: a cell output has no dashboard around it.
        super().__init__([W.HTML(CSS), body])
        self.add_class("sk-app")
        self.pump = Pump(self.refresh, period, name="sk-job-card-pump", start=start)
        self.pump.run_once()

    def refresh(self) -> None:
        """Read the job's record and new log lines; render what changed."""
        if self.done:
            return
        try:
            self.info = self.sandbox.job_info(self.job_id)
        except SandboxKitError as exc:  # deleted meanwhile (with its model): nothing to follow
            self.done = True
            set_if_changed(self.message, "value", message_html("error", str(exc)))
            set_if_changed(self.cancel_button.layout, "display", "none")
            self.pump.stop()
            return
        ended = self.info.status.terminal  # read before the file: no line can be missed
        read = read_tail(self._tail, self.job_id, self.info.model_type.value, _READ_PER_TICK)
        self.entries.extend(read.entries)
        self.lines = read.last_seq or self.lines
        if read.progress is not None:
            self._progress = read.progress
        self._dirty = self._dirty or read.moved
        if ended and not read.moved:
            self.done = True
            self._progress = ""
        self._render()
        if self.done:
            self.pump.stop()

    def cancel(self) -> None:
        """Stop the job and its whole process tree (what the Cancel button does)."""
        with self.pump.locked():
            if self.done or self._cancelling:
                return
            try:
                self.sandbox.cancel(self.job_id)
            except SandboxKitError as exc:
                self.message.value = message_html("error", str(exc))
                return
            self._cancelling = True
        self.pump.run_once()

    def _render(self) -> None:
        info = self.info
        set_if_changed(self.status, "value", status_html(info.status.value))
        stopping = self._cancelling and not info.status.terminal
        set_if_changed(self.cancel_button, "disabled", info.status.terminal or self._cancelling)
        set_if_changed(self.cancel_button, "description", "Stopping…" if stopping else "Cancel")
        progress = progress_html(info.model_type.value, self.job_id, self._progress)
        set_if_changed(self.progress, "value", progress if self._progress else "")
        if self._dirty:
            self._dirty = False
            if self.entries:
                lines = "".join(line_html(e) for e in self.entries)
                set_if_changed(self.view, "value", f'<div class="sk-lines">{lines}</div>')
        if self.done:
            set_if_changed(self.cancel_button.layout, "display", "none")  # nothing to stop
            if not self.entries:
                set_if_changed(self.view, "value", '<div class="sk-empty">No output.</div>')
            set_if_changed(self.summary, "value", summary_html(info))


def summary_html(info: JobInfo) -> str:
    """How a job ended: status, outcome, objective (or best found), duration and reason."""
    parts = [f"<span>Job <b>{html.escape(info.status.value)}</b></span>"]
    if info.cached_from:
        parts.append(f'<span class="sk-muted">result of {html.escape(info.cached_from)}</span>')
    if info.outcome:
        parts.append(f"<span>outcome <b>{html.escape(info.outcome)}</b></span>")
    if info.best_found:
        parts.append(f"<span><b>{html.escape(info.best_found)}</b></span>")
    elif info.objective is not None:
        parts.append(f"<span>objective <b>{info.objective:,.2f}</b></span>")
    parts.append(f'<span class="sk-muted">took {duration(info.duration_s)}</span>')
    text = f'<div class="sk-result-head">{"".join(parts)}</div>'
    if info.reason and info.status is not JobStatus.SUCCESS:
        text += message_html("error" if info.status is JobStatus.FAILED else "info", info.reason)
    return text


def _heading(info: JobInfo) -> str:
    model = f"{info.model_name} v{info.model_version}"
    return (
        f'<div class="sk-card-ids"><span class="sk-type">{info.model_type.value}</span>'
        f'<span class="sk-ellipsis" title="{html.escape(model)}">{html.escape(model)}</span>'
        f'<span class="sk-mono sk-ellipsis" title="{html.escape(info.id)}">'
        f"{html.escape(info.id)}</span></div>"
    )
