"""The control panel: one row per model type with its status, active model, config and Run."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as W

from sandbox_kit.errors import SandboxKitError
from sandbox_kit.humanize import duration, when
from sandbox_kit.jobs import Job
from sandbox_kit.records import DataSet, JobInfo, ModelType, parse_config
from sandbox_kit.widgets.pump import Pump, View, keep_value
from sandbox_kit.widgets.style import (
    cached_html,
    card,
    gapped,
    message_html,
    set_if_changed,
    status_html,
)

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox


class TypeRow(W.VBox):  # type: ignore[misc]
    """The controls of one model type."""

    def __init__(self, panel: ControlPanel, model_type: ModelType) -> None:
        self.panel = panel
        self.model_type = model_type
        self.latest: JobInfo | None = None
        self.cancelling: str | None = None  # the job a cancel was sent for
        self.has_model = False
        self.icon = W.HTML(status_html("idle"), layout=W.Layout(width="112px"))
        self.icon.add_class(f"sk-status-{model_type.value}")
        title = W.HTML(
            f'<div class="sk-type-title"><b>{model_type.value}</b>'
            f'<div class="sk-muted">{html.escape(model_type.label)}</div></div>',
            layout=W.Layout(width="150px"),
        )
        self.model = W.HTML(layout=W.Layout(width="120px"))
        self.model.add_class(f"sk-active-{model_type.value}")
        self.last = W.HTML(layout=W.Layout(width="150px"))
        self.config = W.Textarea(
            value="{}",
            placeholder='{"load_scale": 1.1}',
            rows=1,
            layout=W.Layout(width="auto", flex="1 1 150px"),
        )
        self.config.add_class(f"sk-config-{model_type.value}")
        self.run = W.Button(
            description=f"Run {model_type.value}",
            button_style="primary",
            icon="play",
            layout=W.Layout(width="96px", flex="none"),
        )
        self.run.add_class(f"sk-run-{model_type.value}")
        self.cancel = W.Button(
            description="Cancel",
            button_style="danger",
            icon="stop",
            disabled=True,
            layout=W.Layout(width="90px", flex="none"),
        )
        self.cancel.add_class(f"sk-cancel-{model_type.value}")
        self.message = W.HTML()
        # The data source and the result cache (issue 11), on a line of their own under the
        # config box, so the first line keeps its columns.
        self.data_source = W.Dropdown(
            options=[("No data source", "")],
            value="",
            description="Data",
            layout=W.Layout(width="250px"),
        )
        self.data_source.style.description_width = "40px"
        self.data_source.add_class(f"sk-source-{model_type.value}")
        self.use_cache = W.Checkbox(
            value=panel.sandbox.settings.cache_for(model_type.value),
            description="Use cache",
            tooltip="Reuse the result of an identical earlier run",
            indent=False,
            layout=W.Layout(width="110px"),
        )
        self.use_cache.add_class(f"sk-cache-{model_type.value}")
        extra = gapped(
            W.HBox([self.data_source, self.use_cache], layout=W.Layout(align_items="center"))
        )
        extra.add_class("sk-row-extra")
        self.run.on_click(lambda _: panel.run(model_type))
        self.cancel.on_click(lambda _: panel.cancel(model_type))
        # The config box and its buttons wrap as one group, so Run and Cancel never end up
        # on a line of their own, apart from the config they run (issue 14).
        actions = gapped(
            W.HBox([self.config, self.run, self.cancel], layout=W.Layout(align_items="center"))
        )
        actions.add_class("sk-run-group")
        line = gapped(
            W.HBox(
                [title, self.icon, self.model, self.last, actions],
                layout=W.Layout(align_items="center"),
            )
        )
        line.add_class("sk-row-line")  # wraps at narrow widths instead of clipping (issue 14)
        super().__init__([line, extra, self.message])
        self.add_class("sk-row")

    def show(self, active_label: str | None, latest: JobInfo | None) -> None:
        """Update the row from the active model and the type's latest job."""
        self.latest = latest
        self.has_model = active_label is not None
        status = "idle" if latest is None else latest.status.value
        set_if_changed(self.icon, "value", status_html(status))
        label = (
            f"<b>{html.escape(active_label)}</b>"
            if active_label
            else '<span class="sk-muted">No active model</span>'
        )
        set_if_changed(self.model, "value", label)
        if latest is None:
            last = '<span class="sk-muted">Never run</span>'
        else:
            last = (
                f"{when(latest.started_at or latest.created_at)}"
                f'<div class="sk-muted">took {duration(latest.duration_s)}'
                f"{cached_html(latest.cached_from)}</div>"
            )
        set_if_changed(self.last, "value", last)
        live = latest is not None and not latest.status.terminal
        set_if_changed(self.run, "disabled", not self.has_model)
        set_if_changed(self.run, "tooltip", "" if self.has_model else "Upload or activate a model")
        # A cancelled job stays "running" until its supervisor has stopped it: keep the button
        # disabled meanwhile instead of inviting a second click.
        asked = latest is not None and latest.id == self.cancelling
        set_if_changed(self.cancel, "disabled", not live or asked)
        set_if_changed(self.cancel, "description", "Stopping…" if live and asked else "Cancel")


class ControlPanel(View):
    """Run and cancel each type's active model; shows live status from every process.

    Args:
        sandbox: the sandbox to run in.
        on_started: called with each :class:`~sandbox_kit.Job` started from this panel.
        period: seconds between refreshes (jobs started elsewhere show up within it).
        start: start the refresh pump (tests pass False and call :meth:`refresh`).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        on_started: Callable[[Job], None] | None = None,
        period: float = 1.0,
        start: bool = True,
    ) -> None:
        self.sandbox = sandbox
        self.on_started = on_started
        self.rows = {t: TypeRow(self, t) for t in ModelType}
        super().__init__([card("Control panel", *self.rows.values(), css="sk-control")])
        self.pump = Pump(self.refresh, period, name="sk-control-pump", start=start)
        self.pump.run_once()

    def refresh(self) -> None:
        """Read active models and latest jobs and update every row."""
        active = {m.model_type: m.label for m in self.sandbox.models(status="active")}
        sources = source_options(self.sandbox.data_sets())
        for kind, row in self.rows.items():
            keep_value(row.data_source, sources)
            latest = self.sandbox.jobs(model_type=kind, limit=1)
            row.show(active.get(kind), latest[0] if latest else None)

    def run(self, model_type: ModelType) -> Job | None:
        """Run a type's active model with the row's config (what its Run button does)."""
        row = self.rows[model_type]
        try:
            config = parse_config(row.config.value)
            job = self.sandbox.run(
                model_type,
                config=config,
                data_source_id=row.data_source.value or None,
                cache=row.use_cache.value,
            )
        except SandboxKitError as exc:
            row.message.value = message_html("error", f"{model_type.value}: {exc}")
            return None
        row.message.value = ""
        self.pump.run_once()
        if self.on_started is not None:
            self.on_started(job)
        return job

    def cancel(self, model_type: ModelType) -> None:
        """Cancel the type's queued or running job (what its Cancel button does)."""
        row = self.rows[model_type]
        latest = row.latest
        if latest is None or latest.status.terminal:
            return
        try:
            self.sandbox.cancel(latest.id)
        except SandboxKitError as exc:
            row.message.value = message_html("error", str(exc))
            return
        row.cancelling = latest.id
        self.pump.run_once()


_MAX_SOURCES = 60


def source_options(data_sets: list[DataSet]) -> list[tuple[str, str]]:
    """The data sources a run can pick: none, another type's latest result, each data set's
    newest version and its older versions (newest first), at most ``_MAX_SOURCES``."""
    options = [("No data source", "")]
    options += [(f"Latest {t.value} result", f"latest:{t.value}") for t in ModelType]
    named: set[str] = set()
    for data_set in data_sets:  # by name, newest version first
        if data_set.name not in named:
            named.add(data_set.name)
            options.append(
                (f"{data_set.name} (newest, now v{data_set.version})", f"data:{data_set.name}")
            )
        options.append((f"{data_set.name} v{data_set.version}", data_set.source))
    return options[:_MAX_SOURCES]
