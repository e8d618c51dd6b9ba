"""The results view: what a model answered, its charts, its history, and run comparison.

Everything a model wrote is read bounded (issue 9): a table preview reads at most
``Settings.preview_rows`` rows, charts skip tables over :data:`_CHART_MAX_BYTES`, files are
embedded as download links up to ``Settings.inline_max_bytes`` in total (past it the page says
how to fetch them), and a render that fails shows its error once and is retried only when the
job's status or ``result.json`` changes.
"""

from __future__ import annotations

import base64
import difflib
import html
import importlib
import io
import json
import logging
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from sandbox_kit import charts
from sandbox_kit.errors import SandboxKitError
from sandbox_kit.humanize import duration, size, when
from sandbox_kit.jobs import Job
from sandbox_kit.logs import LogTail
from sandbox_kit.notebook_runner import EXECUTED_NAME
from sandbox_kit.records import JobInfo, JobStatus, LogLine
from sandbox_kit.results import RESULT_FILE
from sandbox_kit.telemetry import MetricPoint, metrics_from_lines
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
    import pandas as pd

    from sandbox_kit.sandbox import Sandbox

log = logging.getLogger("sandbox_kit.widgets")

_FILE_INLINE_MAX = 5 << 20  # one file embedded in the page; the total is a setting
_FILES_SHOWN = 100  # files listed; a model may write thousands
_CHART_MAX_BYTES = 16 << 20  # tables charted; a bigger one is previewed, not charted
_PREVIEW_BYTES = 1 << 20  # bytes of a table read for its preview, whatever the row count
_MAX_POINTS = 20_000  # metric points kept for the gap chart; past it, every other is dropped
_MESSAGE_CHARS = 2000  # of the model's result message
_CHUNK, _CHUNKS_PER_TICK = 1 << 20, 16
_PRICE_TABLES = ("prices", "lmp")

_DataKey = tuple[str, JobStatus, tuple[int, int] | None]


class ResultsView(View):
    """Per job: outcome, objective, metrics, charts, tables and files; per model: history;
    and a comparison of two runs.

    Args:
        sandbox: where the jobs live.
        period: seconds between refreshes (the gap chart follows a running job live).
        start: start the refresh pump (tests pass False and call :meth:`refresh`).
    """

    def __init__(self, sandbox: Sandbox, *, period: float = 1.0, start: bool = True) -> None:
        self.sandbox = sandbox
        self.shown: str | None = None
        self._points_seen = -1
        self._final = False
        self._tail = LogTail("")
        self._points: list[MetricPoint] = []
        self._failed: _DataKey | None = None  # the data a render failed on: not retried
        self.job = W.Dropdown(
            options=[("No runs yet", "")],
            value="",
            description="Run",
            layout=W.Layout(width="480px"),
        )
        self.other = W.Dropdown(
            options=[("—", "")],
            value="",
            description="Compare with",
            layout=W.Layout(width="480px"),
        )
        for control in (self.job, self.other):
            control.style.description_width = "95px"
        self.summary = W.HTML()
        self.summary.add_class("sk-result-summary")
        self.error = W.HTML()
        self.error.add_class("sk-result-error")
        self.gap = _image("sk-chart-gap")
        self.dispatch = _image("sk-chart-dispatch")
        self.prices = _image("sk-chart-prices")
        self.history = _image("sk-chart-history")
        self.table_choice = W.Dropdown(description="Table", layout=W.Layout(width="260px"))
        self.table_choice.style.description_width = "50px"
        self.table = W.HTML()
        self.table.add_class("sk-table-preview")
        self.files = W.HTML()
        self.comparison = W.HTML()
        self.comparison.add_class("sk-comparison")
        self.compare_prices = _image("sk-chart-compare")
        self.job.observe(lambda _: self.pump.run_once(), names="value")
        self.other.observe(lambda _: self._locked(self._show_comparison), names="value")
        self.table_choice.observe(lambda _: self._locked(self._preview), names="value")
        charts_row = gapped(
            W.HBox([self.gap, self.dispatch, self.prices], layout=W.Layout(flex_flow="row wrap"))
        )
        super().__init__(
            [
                card("Results", self.job, self.summary, self.error, charts_row, css="sk-results"),
                gapped(
                    W.HBox(
                        [
                            card("Tables", self.table_choice, self.table, self.files),
                            card("History of this model", self.history),
                        ],
                        layout=W.Layout(align_items="flex-start"),
                    )
                ),
                card("Compare two runs", self.other, self.comparison, self.compare_prices),
            ]
        )
        self.pump = Pump(self.refresh, period, name="sk-results-pump", start=start)
        if not start:  # live, the first draw happens on the pump, after the page is up
            self.pump.run_once()

    def refresh(self) -> None:
        """Update the run list, and the view when the run changed or is still going."""
        jobs = self.sandbox.jobs(limit=50)
        options = [(_label(j), j.id) for j in jobs] or [("No runs yet", "")]
        keep_value(self.job, options)
        keep_value(self.other, [("—", ""), *options[1:]] if jobs else [("—", "")])
        if not self.job.value and jobs:
            self.job.value = jobs[0].id
            return  # the observer renders
        if not self.job.value:
            set_if_changed(
                self.summary,
                "value",
                '<div class="sk-empty">No runs yet. Run a model to see its results here.</div>',
            )
            return
        job = self.sandbox.job(self.job.value)
        if job.id != self.shown:
            self.shown, self._points_seen, self._final = job.id, -1, False
            self._tail, self._points = LogTail(job.info.log_path), []
        if self._final:  # a run is drawn while it goes, and once more when it has ended
            return
        key = _data_key(job)
        if key == self._failed:
            return  # shown once; a retry waits for new data (issue 9)
        try:
            self._render(job)
        except Exception as exc:  # a bad table or file must not break the page
            log.warning("results of %s could not be shown", job.id, exc_info=True)
            self._failed = key
            self.error.value = message_html("error", f"Could not show this run: {_one_line(exc)}")
            return
        self._failed = None
        set_if_changed(self.error, "value", "")
        self._final = job.status.terminal  # after a render that did not raise

    def select(self, job_id: str) -> None:
        """Show one run (e.g. after it was started from the control panel)."""
        with self.pump.locked():
            self.refresh()
            if any(value == job_id for _, value in self.job.options):
                self.job.value = job_id

    def _locked(self, action: Callable[[], None]) -> None:
        with self.pump.locked():
            action()

    def _render(self, job: Job) -> None:
        info = job.info
        # Incremental and in bounded chunks: a log is read once, whatever its length.
        for _ in range(_CHUNKS_PER_TICK):
            items = self._tail.read(_CHUNK)
            if not items:
                break
            lines = [item for item in items if isinstance(item, LogLine)]
            self._points.extend(metrics_from_lines(lines))
            while len(self._points) > _MAX_POINTS:  # halve the resolution, keep the shape
                self._points = self._points[::2]
        points = self._points
        if len(points) != self._points_seen:
            self._points_seen = len(points)
            self.gap.value = charts.gap_chart(points, title=f"MIP gap · {info.model_type.value}")
        has_gap = any(p.name == "mip_gap" for p in points)
        _show(self.gap, has_gap or not info.status.terminal)  # a finished LP has no gap
        set_if_changed(
            self.summary, "value", _summary_html(info, job, self.sandbox.settings.max_metrics)
        )
        if not info.status.terminal:
            return
        try:
            tables = job.tables()
        except SandboxKitError:  # e.g. result.json over the limit: the summary says so
            tables = {}
        frames = {
            name: frame
            for name in ("dispatch", *_PRICE_TABLES)
            if name in tables and (frame := _chart_csv(tables[name])) is not None
        }
        if "dispatch" in frames:
            self.dispatch.value = charts.dispatch_chart(
                frames["dispatch"], title=f"Dispatch · {info.model_type.value}"
            )
        price = next((n for n in _PRICE_TABLES if n in frames), None)
        if price:
            title = "LMP by bus" if price == "lmp" else f"Prices · {info.model_type.value}"
            self.prices.value = charts.price_chart([(info.id[-6:], frames[price])], title=title)
        for image, present in ((self.dispatch, "dispatch" in frames), (self.prices, bool(price))):
            set_if_changed(image.layout, "display", "block" if present else "none")
        keep_value(self.table_choice, [(name, name) for name in tables])
        self._preview()
        self.files.value = _files_html(job, self.sandbox.settings.inline_max_bytes)
        history = self.sandbox.jobs(model_type=info.model_type, limit=200)
        same = [j for j in history if j.model_name == info.model_name and j.objective is not None]
        if same:
            self.history.value = charts.history_chart(
                same, title=f"{info.model_type.value} {info.model_name}: objective and run time"
            )
        _show(self.history, bool(same))

    def _preview(self) -> None:
        if not self.shown or not self.table_choice.value:
            self.table.value = '<div class="sk-muted">No tables.</div>'
            return
        try:
            path = self.sandbox.job(self.shown).tables().get(self.table_choice.value)
            if path is None:
                return
            rows = self.sandbox.settings.preview_rows
            frame, whole = _head_csv(path, rows)
        except Exception as exc:  # a malformed table is the model's problem, not the page's
            self.table.value = message_html("error", f"Cannot preview this table: {_one_line(exc)}")
            return
        if whole:
            more = f"{len(frame):,} rows"
        else:
            more = f"the first {len(frame):,} rows of {size(path.stat().st_size)}; the file: {path}"
        self.table.value = (
            "<div style='max-height:420px; overflow:auto'>"
            + frame.to_html(
                index=False, border=0, classes="sk-table", float_format="{:,.2f}".format
            )
            + f"</div><div class='sk-muted'>{html.escape(more)}</div>"
        )

    def _show_comparison(self) -> None:
        if not self.shown or not self.other.value:
            self.comparison.value = ""
            self.compare_prices.layout.display = "none"
            return
        try:
            a, b = self.sandbox.job(self.shown), self.sandbox.job(self.other.value)
        except SandboxKitError as exc:
            self.comparison.value = html.escape(str(exc))
            return
        try:
            self.comparison.value = comparison_html(self.sandbox, a.info, b.info)
            curves = []
            for job in (a, b):
                tables = job.tables()
                name = next((n for n in _PRICE_TABLES if n in tables), None)
                frame = _chart_csv(tables[name]) if name else None
                if frame is not None:
                    label = f"{job.info.model_name} v{job.info.model_version} · {job.id[-6:]}"
                    curves.append((label, frame))
        except Exception as exc:  # one line, no traceback (STYLE: errors)
            self.comparison.value = message_html("error", f"Cannot compare: {_one_line(exc)}")
            curves = []
        if curves:
            self.compare_prices.value = charts.price_chart(curves, title="Prices, overlaid")
        self.compare_prices.layout.display = "block" if curves else "none"


def comparison_html(sandbox: Sandbox, a: JobInfo, b: JobInfo) -> str:
    """Config diff, source diff between the two model versions, and metric deltas."""
    config = (
        "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_json(a.config.get(k))}</td>"
            f"<td>{_json(b.config.get(k))}</td></tr>"
            for k in sorted(set(a.config) | set(b.config))
            if a.config.get(k) != b.config.get(k)
        )
        or "<tr><td colspan=3 class='sk-muted'>same config</td></tr>"
    )
    metrics = "".join(
        _delta_row(k, a.metrics.get(k), b.metrics.get(k))
        for k in sorted(set(a.metrics) | set(b.metrics))
    )
    objective = _delta_row("objective", a.objective, b.objective)
    source = _source_diff(sandbox, a, b)
    head = (
        f"<tr><th></th><th>{html.escape(a.id)}</th><th>{html.escape(b.id)}</th>"
        "<th>Δ (second - first)</th></tr>"
    )
    return (
        f"<table class='sk-table'><tr><th>config key</th><th>{html.escape(a.id[-6:])}</th>"
        f"<th>{html.escape(b.id[-6:])}</th></tr>{config}</table><br>"
        f"<table class='sk-table'>{head}{objective}{metrics}</table><br>{source}"
    )


def _delta_row(name: str, a: float | None, b: float | None) -> str:
    return (
        f"<tr><td>{html.escape(name)}</td><td>{_num(a)}</td><td>{_num(b)}</td>"
        f"<td>{_delta(a, b)}</td></tr>"
    )


def _source_diff(sandbox: Sandbox, a: JobInfo, b: JobInfo) -> str:
    if a.model_sha256 == b.model_sha256:
        return "<div class='sk-muted'>Same model source.</div>"
    try:
        left = sandbox.source(a.model_id or 0).splitlines()
        right = sandbox.source(b.model_id or 0).splitlines()
    except (SandboxKitError, OSError):
        return "<div class='sk-muted'>A model version was deleted; no source diff.</div>"
    diff = difflib.unified_diff(
        left,
        right,
        f"{a.model_name} v{a.model_version}",
        f"{b.model_name} v{b.model_version}",
        lineterm="",
        n=2,
    )
    lines = []
    for line in diff:
        colour = (
            "#17692f" if line.startswith("+") else "#a61b0f" if line.startswith("-") else "#52606d"
        )
        lines.append(f"<span style='color:{colour}'>{html.escape(line)}</span>")
    return "<pre class='sk-source sk-diff'>" + "\n".join(lines) + "</pre>"


def _summary_html(info: JobInfo, job: Job, max_metrics: int) -> str:
    outcome = info.outcome or ("running" if not info.status.terminal else "no result")
    badge = status_html(_OUTCOME_STYLE.get(outcome, "idle"), outcome)
    try:
        result = job.result() if info.status.terminal else None
        said = str((result or {}).get("message") or info.reason or "")
    except SandboxKitError as exc:  # over the size limit, or not JSON: say why
        said = f"{info.reason}; {exc}" if info.reason else str(exc)
    message = html.escape(said[:_MESSAGE_CHARS])
    # Jobs recorded before the metric cap (issue 9) may carry any number: show a bounded few.
    shown = list(info.metrics.items())[:max_metrics]
    metrics = "".join(
        f"<div><span class='sk-muted'>{html.escape(k[:200])}</span> <b>{_num(v)}</b></div>"
        for k, v in shown
    )
    if len(info.metrics) > len(shown):
        metrics += f"<div class='sk-muted'>and {len(info.metrics) - len(shown):,} more</div>"
    # A stopped job's best solution so far (issue 15): "best found $X, gap Y %".
    objective = (
        f"<span class='sk-objective sk-best-found'><b>{html.escape(info.best_found)}</b></span> "
        if info.best_found
        else f"<span class='sk-objective'>objective <b>{_num(info.objective)}</b></span> "
    )
    return (
        f"<div class='sk-result-head'>{status_html(info.status.value)}"
        f"{cached_html(info.cached_from)} {badge} "
        + objective
        + f"<span class='sk-muted'>{when(info.started_at)} · {duration(info.duration_s)}</span>"
        f"</div><div class='sk-muted'>{message}</div>"
        + (f"<div class='sk-metrics'>{metrics}</div>" if metrics else "")
    )


_DIFF_COLOURS = {"+": "#17692f", "-": "#a61b0f", "@": "#1559b4"}
_OUTCOME_STYLE = {
    "optimal": "success",
    "feasible": "queued",
    "infeasible": "failed",
    "unbounded": "failed",
    "time_limit": "timeout",
    "interrupted": "cancelled",
    "error": "failed",
    "running": "running",
}


def _files_html(job: Job, budget: int) -> str:
    """The result files as download links, embedding at most ``budget`` bytes in total."""
    total = budget
    links = []
    left_out = 0
    files = job.files(limit=_FILES_SHOWN + 1)
    for path in files[:_FILES_SHOWN]:
        name = html.escape(path.name)
        data = _read_up_to(path, min(budget, _FILE_INLINE_MAX))
        if data is None:
            left_out += 1
            try:
                where = f"{size(path.stat().st_size)}, not embedded; "
            except OSError:
                where = ""
            command = html.escape(f"cp {shlex.quote(str(path))} .")
            links.append(f"<li>{name} ({where}on the server: <code>{command}</code>)</li>")
            continue
        budget -= len(data)
        href = "data:application/octet-stream;base64," + base64.b64encode(data).decode()
        links.append(f"<li><a download='{name}' href='{href}'>{name}</a> ({size(len(data))})</li>")
        if path.name == EXECUTED_NAME:  # a notebook model's executed notebook (issue 14)
            rendered = notebook_html(data)
            if rendered is not None and len(rendered) <= min(budget, _FILE_INLINE_MAX):
                budget -= len(rendered)
                href = "data:text/html;base64," + base64.b64encode(rendered).decode()
                links.append(
                    f"<li><a download='executed.html' href='{href}'>executed.html</a> "
                    f"(the notebook rendered, {size(len(rendered))})</li>"
                )
    if len(files) > _FILES_SHOWN:
        links.append(
            f"<li class='sk-muted'>more files: only the first {_FILES_SHOWN} are listed</li>"
        )
    note = ""
    if left_out or len(files) > _FILES_SHOWN:
        note = (
            "<div class='sk-muted'>The page embeds files up to "
            f"{size(_FILE_INLINE_MAX)} each and {size(total)} in total. "
            f"<code>sandbox-kit status {html.escape(job.id)}</code> prints the result folder "
            "that holds every file.</div>"
        )
    return (
        "<div class='sk-card-title'>Files</div><ul class='sk-files'>"
        + "".join(links)
        + "</ul>"
        + note
    )


def notebook_html(data: bytes) -> bytes | None:
    """An executed notebook rendered as a standalone HTML page (``None`` if it cannot be).

    The notebook's outputs are the model's: nbconvert sanitises their HTML, and the page is
    offered as a download, never shown inside the dashboard.
    """
    try:
        nbformat: Any = importlib.import_module("nbformat")  # both untyped
        nbconvert: Any = importlib.import_module("nbconvert")
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        body, _ = nbconvert.HTMLExporter(sanitize_html=True).from_notebook_node(nb)
    except Exception:  # a model's broken notebook must not break the view
        return None
    return str(body).encode("utf-8")


def _label(info: JobInfo) -> str:
    outcome = f" · {info.outcome}" if info.outcome else ""
    if info.best_found:
        outcome += f" · {info.best_found}"
    return (
        f"{info.model_type.value} · {info.model_name} v{info.model_version} · "
        f"{when(info.created_at)} · {info.status.value}{outcome} · {info.id[-6:]}"
    )


def _data_key(job: Job) -> _DataKey:
    """What a failed render depends on: the job, its status and its ``result.json``."""
    try:
        st = os.stat(Path(job.info.result_dir) / RESULT_FILE)
        result = (st.st_mtime_ns, st.st_size)
    except OSError:
        result = None
    return job.id, job.status, result


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def _read_up_to(path: Path, limit: int) -> bytes | None:
    """The file's bytes when it holds at most ``limit`` of them, else None (not read)."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > limit:
                return None
            data = fh.read(limit + 1)  # it may have grown since
    except OSError:
        return None
    return data if len(data) <= limit else None


def _head_csv(path: Path, rows: int) -> tuple[pd.DataFrame, bool]:
    """At most ``rows`` rows (and :data:`_PREVIEW_BYTES`) of a CSV; True if that is surely
    all of it (a frame of exactly ``rows`` rows may have more behind it)."""
    import pandas as pd

    with open(path, "rb") as fh:
        data = fh.read(_PREVIEW_BYTES + 1)
    whole = len(data) <= _PREVIEW_BYTES
    if not whole:
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            raise ValueError(f"its first line is over {size(_PREVIEW_BYTES)}")
        data = data[:cut]
    frame = pd.read_csv(io.BytesIO(data), nrows=rows)
    return frame, whole and len(frame) < rows


def _chart_csv(path: Path) -> pd.DataFrame | None:
    """A whole table for a chart, or None when it is over :data:`_CHART_MAX_BYTES`."""
    import pandas as pd

    try:
        if path.stat().st_size > _CHART_MAX_BYTES:
            return None
    except OSError:
        return None
    return pd.read_csv(path)


def _image(css: str) -> W.Image:
    image = W.Image(format="png", layout=W.Layout(width="420px", display="none"))
    image.add_class(css)
    image.observe(lambda change: _show(image, bool(change["new"])), names="value")
    return image


def _show(widget: W.Widget, visible: bool) -> None:
    set_if_changed(widget.layout, "display", "block" if visible else "none")


def _json(value: Any) -> str:
    return html.escape(json.dumps(value)) if value is not None else "—"


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.6g}" if abs(value) < 1e4 else f"{value:,.2f}"


def _delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "—"
    change = b - a
    pct = f" ({100 * change / a:+.2f}%)" if a else ""
    return f"{change:+,.6g}{pct}"
