"""The sweeps view (issue 11): start a sweep, watch its progress, read its table, chart the
objective (or a metric) against one parameter with a line per value of another, cancel it."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from sandbox_kit.errors import SandboxKitError, ValidationError
from sandbox_kit.humanize import when
from sandbox_kit.records import ModelType, Scenario, SweepInfo, parse_config
from sandbox_kit.widgets.control import source_options
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

DEFAULT_GRID = '{"load_scale": [0.95, 1.0, 1.05], "reserve_fraction": [0.05, 0.1]}'
_METRICS_SHOWN = 4  # metric columns in the table (the chart can pick any)
_SWEEPS_LISTED = 30


class SweepsView(View):
    """Sweeps from every process, newest first, with a form to start one.

    Args:
        sandbox: where the sweeps run.
        period: seconds between refreshes.
        start: start the refresh pump (tests pass False and call :meth:`refresh`).
    """

    def __init__(self, sandbox: Sandbox, *, period: float = 1.0, start: bool = True) -> None:
        self.sandbox = sandbox
        self._drawn: Any = None  # what the chart shows now: redrawn only when it changes
        self._auto_series_for: str | None = None
        self.target = W.Dropdown(
            options=[(f"{t.value} (active model)", t.value) for t in ModelType],
            value="DMO",
            description="Model",
            layout=W.Layout(width="230px"),
        )
        self.grid = W.Textarea(
            value=DEFAULT_GRID,
            description="Grid",
            placeholder='{"load_scale": [0.9, 1.0, 1.1]}',
            rows=2,
            layout=W.Layout(width="auto", flex="1 1 320px"),
        )
        self.base_config = W.Textarea(
            value="{}",
            description="Base",
            placeholder='{"days": 1}',
            rows=2,
            layout=W.Layout(width="200px"),
        )
        self.data_source = W.Dropdown(
            options=[("No data source", "")],
            value="",
            description="Data",
            layout=W.Layout(width="260px"),
        )
        self.use_cache = W.Checkbox(
            value=True,
            description="Reuse cached results",
            indent=False,
            layout=W.Layout(width="170px"),
        )
        self.start_button = W.Button(
            description="Start sweep",
            button_style="primary",
            icon="th",
            layout=W.Layout(width="130px"),
        )
        for widget, css in (
            (self.target, "sk-sweep-type"),
            (self.grid, "sk-sweep-grid"),
            (self.base_config, "sk-sweep-base"),
            (self.data_source, "sk-sweep-source"),
            (self.use_cache, "sk-sweep-cache"),
            (self.start_button, "sk-sweep-start"),
        ):
            widget.add_class(css)
        for widget in (self.target, self.grid, self.base_config, self.data_source):
            widget.style.description_width = "44px"
        self.message = W.HTML()
        self.message.add_class("sk-sweep-message")
        self.picker = W.Dropdown(
            options=[("No sweeps yet", "")],
            value="",
            description="Sweep",
            layout=W.Layout(width="520px"),
        )
        self.picker.style.description_width = "44px"
        self.picker.add_class("sk-sweep-pick")
        self.cancel_button = W.Button(
            description="Cancel sweep", button_style="danger", icon="stop", disabled=True
        )
        self.cancel_button.add_class("sk-sweep-cancel")
        self.progress = W.HTML()
        self.progress.add_class("sk-sweep-progress")
        self.table = W.HTML()
        self.table.add_class("sk-sweep-table-box")
        self.y_axis = W.Dropdown(options=[("objective", "objective")], description="Plot")
        self.x_axis = W.Dropdown(options=[("—", "")], description="against")
        self.series = W.Dropdown(options=[("one line", "")], description="lines by")
        for widget, css in (
            (self.y_axis, "sk-sweep-y"),
            (self.x_axis, "sk-sweep-x"),
            (self.series, "sk-sweep-series"),
        ):
            widget.add_class(css)
            widget.style.description_width = "60px"
            widget.layout.width = "240px"
        self.chart = W.Image(format="png", layout=W.Layout(max_width="720px", display="none"))
        self.chart.add_class("sk-sweep-chart")
        self.empty = W.HTML(
            '<div class="sk-empty">No sweep yet. Give a grid of configs and press Start sweep.'
            "</div>"
        )
        self.start_button.on_click(lambda _: self.start())
        self.cancel_button.on_click(lambda _: self.cancel())
        for control in (self.picker, self.y_axis, self.x_axis, self.series):
            control.observe(lambda _: self.pump.run_once(), names="value")
        form = gapped(
            W.HBox([self.target, self.grid, self.base_config], layout=W.Layout(width="100%"))
        )
        options = gapped(
            W.HBox(
                [self.data_source, self.use_cache, self.start_button],
                layout=W.Layout(align_items="center"),
            )
        )
        chooser = gapped(
            W.HBox([self.picker, self.cancel_button], layout=W.Layout(align_items="center"))
        )
        axes = gapped(W.HBox([self.y_axis, self.x_axis, self.series]))
        body = card(
            "Sweeps",
            form,
            options,
            self.message,
            chooser,
            self.progress,
            self.table,
            axes,
            self.chart,
            self.empty,
            css="sk-sweeps",
        )
        super().__init__([body])
        self.pump = Pump(self.refresh, period, name="sk-sweeps-pump", start=start)
        self.pump.run_once()

    # -- reading ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the sweep list and the selected sweep's rows."""
        keep_value(self.data_source, source_options(self.sandbox.data_sets()))
        sweeps = self.sandbox.sweeps(limit=_SWEEPS_LISTED)
        options = [(_label(info), info.id) for info in sweeps] or [("No sweeps yet", "")]
        keep_value(self.picker, options)
        chosen = next((info for info in sweeps if info.id == self.picker.value), None)
        set_if_changed(self.empty.layout, "display", "none" if chosen else "block")
        if chosen is None:
            set_if_changed(self.cancel_button, "disabled", True)
            for widget in (self.progress, self.table):
                set_if_changed(widget, "value", "")
            set_if_changed(self.chart.layout, "display", "none")
            return
        rows = self.sandbox.sweep_rows(chosen.id)
        set_if_changed(self.cancel_button, "disabled", chosen.finished)
        set_if_changed(self.progress, "value", progress_html(chosen))
        set_if_changed(self.table, "value", table_html(chosen, rows))
        self._draw(chosen, rows)

    def _draw(self, info: SweepInfo, rows: list[Scenario]) -> None:
        from sandbox_kit.charts import sweep_chart

        metrics = list(dict.fromkeys(name for row in rows for name in row.metrics))
        keep_value(
            self.y_axis, [("objective", "objective"), *((m, f"metric:{m}") for m in metrics)]
        )
        keep_value(self.x_axis, [(name, name) for name in info.params] or [("—", "")])
        others = [(name, name) for name in info.params if name != self.x_axis.value]
        keep_value(self.series, [("one line", ""), *others])
        if self._auto_series_for != info.id:
            # Once per sweep: with two parameters, a line per value of the other one.
            self._auto_series_for = info.id
            if len(others) == 1:
                self.series.value = others[0][1]
        x, series = self.x_axis.value, self.series.value or None
        if not x:
            set_if_changed(self.chart.layout, "display", "none")
            return
        metric = self.y_axis.value.removeprefix("metric:")
        y = "objective" if self.y_axis.value == "objective" else metric
        plotted = [
            {
                "x": row.params.get(x),
                "series": row.params.get(series) if series else None,
                "y": row.objective if y == "objective" else row.metrics.get(metric),
            }
            for row in rows
            if row.status.value == "success"
        ]
        key = (info.id, x, y, series, json.dumps(plotted, sort_keys=True, default=str))
        if key != self._drawn:
            title = f"{info.model_type.value} {info.model_name} v{info.model_version}"
            self.chart.value = sweep_chart(
                [
                    {x: p["x"], **({series: p["series"]} if series else {}), y: p["y"]}
                    for p in plotted
                ],
                x=x,
                y=y,
                series=series,
                title=title,
            )
            self._drawn = key
        set_if_changed(self.chart.layout, "display", "block")

    # -- acting -------------------------------------------------------------------------------

    def start(self) -> str | None:
        """Start a sweep from the form (what Start sweep does); returns its id or None."""
        with self.pump.locked():
            try:
                grid = _grid(self.grid.value)
                base = parse_config(self.base_config.value, filename="base config")
                sweep = self.sandbox.sweep(
                    self.target.value,
                    grid,
                    base_config=base,
                    data_source_id=self.data_source.value or None,
                    cache=self.use_cache.value,
                )
            except SandboxKitError as exc:
                self.message.value = message_html("error", str(exc))
                return None
            hits = sum(1 for row in sweep.rows() if row.cached_from)
            self.message.value = message_html(
                "ok", f"Started {sweep.id}: {sweep.info.total} scenarios, {hits} from the cache."
            )
            self.refresh()  # the new sweep is in the list now
            self.picker.value = sweep.id  # shown at once (the observer refreshes)
        return sweep.id

    def cancel(self) -> None:
        """Cancel the selected sweep's unfinished scenarios (what Cancel sweep does)."""
        sweep_id = self.picker.value
        if not sweep_id:
            return
        try:
            count = self.sandbox.cancel_sweep(sweep_id)
        except SandboxKitError as exc:
            self.message.value = message_html("error", str(exc))
            return
        self.message.value = message_html("info", f"Cancelling {count} scenario(s) of {sweep_id}.")
        self.pump.run_once()


def progress_html(info: SweepInfo) -> str:
    """A progress bar with the counts per status."""
    share = 100 * info.done / info.total if info.total else 100
    counts = " · ".join(f"{n} {html.escape(status)}" for status, n in sorted(info.counts.items()))
    return (
        f'<div class="sk-progress"><div class="sk-bar"><div style="width:{share:.0f}%"></div></div>'
        f"<span><b>{info.done}</b> of {info.total} done</span>"
        f'<span class="sk-muted">{counts}</span></div>'
    )


def table_html(info: SweepInfo, rows: list[Scenario]) -> str:
    """The scenarios as an HTML table: parameters, status, outcome, objective, a few metrics."""
    metrics = list(dict.fromkeys(name for row in rows for name in row.metrics))[:_METRICS_SHOWN]
    head = ["#", *info.params, "Status", "Outcome", "Objective", *metrics, "Job"]
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = []
    for row in rows:
        cells = [
            str(row.index),
            *(html.escape(_value(row.params.get(p))) for p in info.params),
            status_html(row.status.value) + cached_html(row.cached_from),
            html.escape(row.outcome or ""),
            _number(row.objective),
            *(_number(row.metrics.get(m)) for m in metrics),
            f'<span class="sk-mono sk-muted">{html.escape(row.job_id)}</span>',
        ]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        '<div class="sk-sweep-table"><table class="sk-table">'
        f"<thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _label(info: SweepInfo) -> str:
    return (
        f"{info.id} · {info.model_type.value} {info.model_name} v{info.model_version} · "
        f"{info.done}/{info.total} · {when(info.created_at)}"
    )


def _grid(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"invalid JSON: {exc.msg}", filename="grid", line=exc.lineno, column=exc.colno
        ) from None
    if not isinstance(value, dict):
        raise ValidationError('the grid must be a JSON object, like {"load_scale": [1, 1.1]}')
    return value


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:,.6g}"
