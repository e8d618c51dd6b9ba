"""The dashboard: the upload card, control panel, live logs, jobs and models in one app.

Served by ``sandbox-kit serve`` (which sets ``SANDBOX_CULL_AFTER``), it also listens for its
page's heartbeat and stops refreshing once the page is gone, so the kernel can be culled
(:mod:`sandbox_kit.widgets.presence`, issue 13).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import ipywidgets as W

from sandbox_kit.culling import MIN_CULL_AFTER_S, CullPlan
from sandbox_kit.widgets import pump
from sandbox_kit.widgets.audit_view import AuditView
from sandbox_kit.widgets.bell import NotificationBell
from sandbox_kit.widgets.control import ControlPanel
from sandbox_kit.widgets.jobs_view import JobsView
from sandbox_kit.widgets.logpanel import LogPanel
from sandbox_kit.widgets.models_view import ModelsView
from sandbox_kit.widgets.presence import Presence
from sandbox_kit.widgets.pump import View, close_tree
from sandbox_kit.widgets.results import ResultsView
from sandbox_kit.widgets.schedules_view import LOCALTIME_JS, SchedulesView
from sandbox_kit.widgets.style import AUTOSCROLL_JS, CSS, gapped
from sandbox_kit.widgets.sweeps_view import SweepsView
from sandbox_kit.widgets.upload import UploadCard

if TYPE_CHECKING:
    from sandbox_kit.jobs import Job
    from sandbox_kit.sandbox import Sandbox


class Dashboard(View):
    """Every view, wired together: a run or an upload anywhere refreshes the others.

    With ``sandbox.settings.cull_after_s`` set (``sandbox-kit serve`` sets it), the views
    refresh only while the page sends its heartbeat (:attr:`presence`).
    """

    def __init__(self, sandbox: Sandbox, *, start: bool = True) -> None:
        self.sandbox = sandbox
        after = sandbox.settings.cull_after_s
        #: The page's heartbeat, when served with culling; else None (views always refresh).
        self.presence = (
            Presence(CullPlan(max(after, MIN_CULL_AFTER_S))) if after is not None else None
        )
        if self.presence is not None:
            pump.pause_while_unseen(self.presence.seen)
        self.logs = LogPanel(sandbox, start=start)
        self.control = ControlPanel(sandbox, on_started=self._started, start=start)
        self.jobs = JobsView(sandbox, on_open_log=self.logs.show_job, start=start)
        self.models = ModelsView(sandbox, on_change=self._changed, start=start)
        self.audit = AuditView(sandbox, start=start)
        self.results = ResultsView(sandbox, start=start)
        self.sweeps = SweepsView(sandbox, start=start)
        self.schedules = SchedulesView(sandbox, start=start)  # issue 10
        self.bell = NotificationBell(sandbox, start=start)
        self.upload = UploadCard(
            sandbox,
            on_uploaded=lambda _: self._changed(),
            on_data_added=lambda _: self._changed(),
        )
        models_tab = W.VBox([self.models, self.audit])
        models_tab.add_class("sk-gap-lg")
        self.tabs = W.Tab(
            children=[self.jobs, models_tab, self.results, self.sweeps, self.schedules]
        )
        for i, title in enumerate(("Jobs", "Models", "Results", "Sweeps", "Schedules")):
            self.tabs.set_title(i, title)
        self.tabs.add_class("sk-tabs")
        header = W.HTML(
            '<div class="sk-header"><h1>sandbox_kit</h1><span class="sk-sub">Run DMO, RMO and '
            "SO optimization models · home "
            f"<code>{html.escape(str(sandbox.home))}</code></span></div>"
        )
        header.add_class("sk-header-title")
        header = W.HBox([header, self.bell])
        header.add_class("sk-header-row")
        left = W.VBox([self.upload], layout=W.Layout(width="360px", flex="none"))
        # Narrower than upload card + control panel (JupyterLab with its side panel open), the
        # control panel wraps under the upload card instead of being squeezed (issue 14).
        right = W.VBox(
            [self.control, self.logs],
            layout=W.Layout(flex="1 1 560px", min_width="min(100%, 560px)"),
        )
        top = gapped(W.HBox([left, right], layout=W.Layout(align_items="flex-start")), "lg")
        top.add_class("sk-top")
        hidden = [] if self.presence is None else [self.presence.button]
        super().__init__(
            [W.HTML(CSS), header, top, self.tabs, *hidden], layout=W.Layout(padding="8px")
        )
        self.add_class("sk-app")
        self.add_class("sk-gap-lg")

    def _started(self, job: Job) -> None:
        self.logs.show_job(job.id)
        self.results.select(job.id)

    def _changed(self) -> None:
        self.models.pump.run_once()
        self.control.pump.run_once()
        self.jobs.pump.run_once()
        self.audit.pump.run_once()
        self.sweeps.pump.run_once()  # its data source list
        self.schedules.form.set_targets()

    def close(self) -> None:
        """Stop every pump and close the widgets."""
        views = (self.logs, self.control, self.jobs, self.models, self.audit, self.results)
        for view in (*views, self.sweeps, self.schedules, self.bell):
            view.close()
        if self.presence is not None:
            pump.pause_while_unseen(None)
        close_tree(self)


def dashboard(sandbox: Sandbox | None = None, *, display: bool = True) -> Dashboard:
    """Build the dashboard (and display it, with the log auto-scroll helper, in a notebook).

    Args:
        sandbox: the sandbox to show (default: one opened from ``SANDBOX_HOME``).
        display: display it now (set False to embed it in your own layout; under
            ``sandbox-kit serve`` also display ``HTML(app.presence.script())``, or the views
            stop refreshing once the grace period passes without a heartbeat).
    """
    if sandbox is None:
        from sandbox_kit.sandbox import Sandbox

        sandbox = Sandbox()
    app = Dashboard(sandbox)
    if display:
        from IPython.display import HTML
        from IPython.display import display as show

        scripts = AUTOSCROLL_JS + LOCALTIME_JS + (app.presence.script() if app.presence else "")
        show(HTML(scripts))  # type: ignore[no-untyped-call]
        show(app)  # type: ignore[no-untyped-call]
    return app
