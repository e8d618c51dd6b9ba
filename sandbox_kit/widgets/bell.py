"""The notification bell: job ends since the page opened, with an unread count (issue 10).

Every job end counts, whoever started the job (a schedule, the CLI, another page): the bell
reads the registry through the facade, not this kernel's own runs. Failures (``failed``,
``timeout``, ``lost``) and missed deadlines are highlighted, and light the bell red while
unread. Opening the list marks everything in it read; a job whose state changes afterwards
(it missed its deadline, then failed) is unread again.

Delivery of notifications to people (e-mail, chat, webhooks) is the scheduler's
(:mod:`sandbox_kit.notify`); the bell only shows what happened.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import ipywidgets as W

from sandbox_kit.humanize import duration
from sandbox_kit.records import JobInfo, JobStatus
from sandbox_kit.widgets.pump import Pump, View
from sandbox_kit.widgets.style import set_if_changed, status_html

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

_BAD = frozenset({JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.LOST})


def needs_attention(info: JobInfo) -> bool:
    """A failure or a missed deadline: what a person should look at."""
    return info.status in _BAD or bool(info.deadline_missed)


def _signature(info: JobInfo) -> tuple[str, bool]:
    return (info.status.value, bool(info.deadline_missed))


def entries_html(entries: list[JobInfo]) -> str:
    """The job ends, newest first, failures and missed deadlines highlighted."""
    if not entries:
        return '<div class="sk-empty">No job has ended since this page opened.</div>'
    rows = ['<div class="sk-card-title sk-bell-title">Job ends since this page opened</div>']
    for info in entries:
        moment = info.finished_at or info.deadline_at
        when = moment.astimezone(UTC).strftime("%H:%M:%S UTC") if moment else ""
        late = (
            '<span class="sk-deadline-missed" title="deadline missed">deadline missed</span>'
            if info.deadline_missed
            else ""
        )
        why = info.reason or (info.outcome or "")
        who = f"schedule {info.schedule_id}" if info.schedule_id else (info.started_by or "")
        css = "sk-bell-item sk-bell-bad" if needs_attention(info) else "sk-bell-item"
        rows.append(
            f'<div class="{css}" data-job="{html.escape(info.id)}">'
            f'<span class="sk-mono">{when}</span> {status_html(info.status.value)}{late} '
            f'<span class="sk-mono">{html.escape(info.id)}</span> '
            f"{html.escape(info.model_name)} v{info.model_version} · "
            f"{html.escape(duration(info.duration_s))}"
            f'<div class="sk-muted">{html.escape(who)}'
            f"{' · ' + html.escape(why) if why else ''}</div></div>"
        )
    return "".join(rows)


class NotificationBell(View):
    """A bell with the count of unread job ends; a click shows them and marks them read.

    Args:
        sandbox: whose jobs.
        since: the moment the page opened (default: now).
        period: seconds between refreshes.
        start: start the refresh pump (tests pass False and call :meth:`refresh`).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        since: datetime | None = None,
        period: float = 2.0,
        start: bool = True,
    ) -> None:
        self.sandbox = sandbox
        self.since = since or datetime.now(UTC)
        self.entries: list[JobInfo] = []
        self.read: dict[str, tuple[str, bool]] = {}
        self.unread = 0
        self.expanded = False
        self.button = W.Button(
            description="0",
            icon="bell",
            tooltip="Job ends since this page opened",
            layout=W.Layout(width="auto"),
        )
        self.button.add_class("sk-bell")
        self.button.on_click(lambda _: self.toggle())
        self.panel = W.HTML(layout=W.Layout(display="none"))
        self.panel.add_class("sk-bell-panel")
        super().__init__([self.button, self.panel])
        self.add_class("sk-bell-box")
        self.pump = Pump(self.refresh, period, name="sk-bell-pump", start=start)
        self.pump.run_once()

    def refresh(self) -> None:
        """Re-read the job ends and update the count (and the list, when shown)."""
        self.entries = self.sandbox.job_ends(self.since, limit=100)
        if self.expanded:
            self._mark_read()
        unread = [e for e in self.entries if self.read.get(e.id) != _signature(e)]
        self.unread = len(unread)
        alert = any(needs_attention(e) for e in unread)
        set_if_changed(self.button, "description", str(self.unread))
        _set_class(self.button, "sk-bell-unread", self.unread > 0)
        _set_class(self.button, "sk-bell-alert", alert)
        set_if_changed(self.panel, "value", entries_html(self.entries))

    def toggle(self) -> None:
        """Show or hide the list; showing it marks everything in it read."""
        with self.pump.locked():
            self.expanded = not self.expanded
            set_if_changed(self.panel.layout, "display", "block" if self.expanded else "none")
        self.pump.run_once()

    def _mark_read(self) -> None:
        self.read.update({e.id: _signature(e) for e in self.entries})


def _set_class(widget: W.Widget, name: str, on: bool) -> None:
    if on and name not in widget._dom_classes:
        widget.add_class(name)
    elif not on and name in widget._dom_classes:
        widget.remove_class(name)
