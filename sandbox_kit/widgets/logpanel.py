"""The live log panel: the bounded, throttled tail of every job's log, from any process.

It tails the durable log files (the bus, design property 2), so jobs started from the CLI,
a notebook or another tab appear here too, and a reloaded page backfills running jobs from
their first line. It keeps at most ``max_lines`` lines and renders at most a few times a
second, however fast models print; the full log stays in the file (Download). Memory stays
bounded on a page left open for weeks: the newest ``max_finished`` finished jobs are kept, and
"Download log" embeds a log only up to ``Settings.inline_max_bytes`` (issue 9).
"""

from __future__ import annotations

import base64
import html
import os
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import ipywidgets as W

from sandbox_kit.errors import SandboxKitError
from sandbox_kit.humanize import duration, size
from sandbox_kit.logs import LogTail, Progress, iter_raw
from sandbox_kit.records import JobInfo, LogLine
from sandbox_kit.widgets.pump import Pump, View, keep_value
from sandbox_kit.widgets.style import card, gapped, message_html, set_if_changed

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

EMPTY = "No logs yet. Run a model to see live logs."
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_RANK = {name: i for i, name in enumerate(LEVELS)}
_SHOWN_CHARS = 2000  # per line on screen; the file keeps the whole line
_READ_PER_TICK = 256 << 10  # bytes per job per tick: the panel only shows a tail anyway
_ENCODE_CHUNK = 1 << 20  # bytes of log read and base64-encoded at a time
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")


@dataclass(slots=True)
class Entry:
    """One line in the panel."""

    job_id: str
    model_type: str
    seq: int
    ts: datetime
    level: str
    text: str
    note: bool = False


@dataclass(slots=True)
class _Attached:
    info: JobInfo
    tail: LogTail
    lines: int = 0
    progress: str = ""
    done: bool = False


class LogPanel(View):
    """Live logs of all jobs, with filters, search, a line counter and a download link.

    Args:
        sandbox: where the jobs live.
        max_lines: lines kept on screen (older ones scroll away; the file keeps them).
        period: seconds between renders (at most a few per second).
        discover_every: seconds between looks for jobs started elsewhere.
        max_finished: finished jobs kept in the job list (the newest; older ones and their
            counts leave it, their lines scroll away as usual).
        start: start the pump (tests pass False and call :meth:`refresh`).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        max_lines: int = 1000,
        period: float = 0.3,
        discover_every: float = 1.0,
        max_finished: int = 50,
        start: bool = True,
    ) -> None:
        self.sandbox = sandbox
        self.max_lines = max_lines
        self.discover_every = discover_every
        self.max_finished = max_finished
        self.entries: deque[Entry] = deque(maxlen=max_lines)
        self.jobs: dict[str, _Attached] = {}
        self.opened_at = datetime.now(UTC)
        self._next_discovery = 0.0
        self._dirty = True
        self._cleared_at = 0
        self._forgotten_lines = 0  # lines of jobs dropped from the list, still counted
        self._forgotten_until: datetime | None = None  # newest creation time dropped
        self.level = W.Dropdown(
            options=[
                ("All levels", ""),
                ("Info and up", "INFO"),
                ("Warnings and up", "WARNING"),
                ("Errors only", "ERROR"),
            ],
            value="",
            layout=W.Layout(width="150px"),
        )
        self.job = W.Dropdown(options=[("All jobs", "")], value="", layout=W.Layout(width="260px"))
        self.search = W.Text(placeholder="Search…", layout=W.Layout(width="200px"))
        self.clear_button = W.Button(description="Clear", icon="eraser")
        self.download_button = W.Button(description="Download log", icon="download")
        self.counter = W.HTML('<span class="sk-muted">0 lines</span>')
        self.counter.add_class("sk-log-counter")
        self.progress = W.HTML()
        self.progress.add_class("sk-log-progress")
        self.view = W.HTML(f'<div class="sk-empty">{EMPTY}</div>')
        self.view.add_class("sk-log-scroll")
        self.download = W.HTML()
        for control in (self.level, self.job, self.search):
            control.observe(self._filters_changed, names="value")
        self.clear_button.on_click(lambda _: self.clear())
        self.download_button.on_click(lambda _: self.prepare_download())
        toolbar = W.HBox(
            [
                self.level,
                self.job,
                self.search,
                self.clear_button,
                self.download_button,
                self.counter,
            ],
            layout=W.Layout(align_items="center", flex_flow="row wrap"),
        )
        gapped(toolbar, "sm")
        super().__init__(
            [card("Live logs", toolbar, self.progress, self.view, self.download, css="sk-logs")]
        )
        self.pump = Pump(self.refresh, period, name="sk-log-pump", start=start)

    # -- what the buttons do --------------------------------------------------------------

    def attach(self, job_id: str) -> None:
        """Follow a job's log from its first line (no-op if already followed)."""
        with self.pump.locked():  # the pump thread iterates self.jobs
            if job_id in self.jobs:
                return
            info = self.sandbox.job_info(job_id)
            self.jobs[job_id] = _Attached(info, LogTail(info.log_path))
            label = (
                f"{info.model_type.value} · {info.model_name} v{info.model_version} · {job_id[-6:]}"
            )
            keep_value(self.job, [*self.job.options, (label, job_id)])
            self._dirty = True

    def show_job(self, job_id: str) -> None:
        """Open one job's log (from the jobs view): follow it and filter the panel to it."""
        with self.pump.locked():
            self.attach(job_id)
            self.job.value = job_id
            self.pump.run_once()

    def clear(self) -> None:
        """Empty the panel; lines that arrive later still show."""
        with self.pump.locked():
            self.entries.clear()
            self._cleared_at = self._total()
            self._dirty = True
            self._render()

    def prepare_download(self) -> None:
        """Offer the full log of the selected (or latest) job as a download link.

        A log over ``Settings.inline_max_bytes`` is not read: the panel shows the command
        that prints it instead. A smaller one is streamed into the link, so the kernel never
        holds more than the link itself.
        """
        job_id = self.job.value or next(reversed(self.jobs), "")
        if not job_id:
            self.download.value = message_html("info", "No job selected.")
            return
        info = self.jobs[job_id].info
        try:
            stored = os.stat(info.log_path).st_size  # records: a little more than the raw bytes
        except FileNotFoundError:
            stored = 0
        if stored > self.sandbox.settings.inline_max_bytes:
            self.download.value = message_html(
                "info",
                f"The log is {size(stored)}, too big for the page; get it with: "
                f"sandbox-kit logs {job_id} > {job_id}.log",
            )
            return
        encoded, length = _base64(iter_raw(info.log_path, _ENCODE_CHUNK))
        href = "data:text/plain;charset=utf-8;base64," + encoded
        self.download.value = (
            f'<a class="sk-download-link" download="{job_id}.log" href="{href}">'
            f"⬇ {job_id}.log ({length:,} bytes)</a>"
        )

    # -- the pump -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up new jobs and lines, then re-render if anything changed."""
        if time.monotonic() >= self._next_discovery:
            self._discover()
            self._next_discovery = time.monotonic() + self.discover_every
        for job_id, attached in self.jobs.items():
            if not attached.done:
                # A job on a Dask worker: its newest lines come through the registry.
                self.sandbox.sync_remote(attached.info)
                self._read(job_id, attached)
        self._render()

    def _discover(self) -> None:
        recent = {i.id: i for i in self.sandbox.jobs(limit=50)}
        for info in recent.values():
            fresh = info.created_at >= self.opened_at
            if self._forgotten_until is not None and info.created_at <= self._forgotten_until:
                fresh = False  # dropped from the list on purpose: do not follow it again
            if info.id not in self.jobs and (not info.status.terminal or fresh):
                self.attach(info.id)
        for job_id, attached in self.jobs.items():
            if job_id in recent:
                attached.info = recent[job_id]
            elif not attached.done:
                try:
                    attached.info = self.sandbox.job_info(job_id)
                except SandboxKitError:  # deleted meanwhile
                    attached.done = True
        self._forget_old()

    def _forget_old(self) -> None:
        """Drop the oldest finished jobs beyond ``max_finished`` (never the selected one)."""
        finished = [
            (a.info.created_at, job_id)
            for job_id, a in self.jobs.items()
            if a.done and job_id != self.job.value
        ]
        if len(finished) <= self.max_finished:
            return
        finished.sort()
        dropped = finished[: len(finished) - self.max_finished]
        for created, job_id in dropped:
            self._forgotten_lines += self.jobs.pop(job_id).lines
            if self._forgotten_until is None or created > self._forgotten_until:
                self._forgotten_until = created
        gone = {job_id for _, job_id in dropped}
        keep_value(self.job, [o for o in self.job.options if o[1] not in gone])

    def _read(self, job_id: str, attached: _Attached) -> None:
        ended = attached.info.status.terminal  # read before the file: no line can be missed
        kind = attached.info.model_type.value
        read = read_tail(attached.tail, job_id, kind, _READ_PER_TICK)
        self.entries.extend(read.entries)
        attached.lines = read.last_seq or attached.lines
        if read.progress is not None:
            attached.progress = read.progress
        items = read.moved
        if items:
            self._dirty = True
        if ended and not items:
            attached.done = True
            attached.progress = ""
            info = attached.info
            summary = f"{kind} job {job_id} {info.status.value}"
            if info.reason:
                summary += f" ({info.reason})"
            summary += f" in {duration(info.duration_s)}"
            level = "INFO" if info.status.value == "success" else "ERROR"
            ts = info.finished_at or datetime.now(UTC)
            self.entries.append(Entry(job_id, kind, 0, ts, level, summary, note=True))
            self._dirty = True

    def _filters_changed(self, _change: object) -> None:
        with self.pump.locked():
            self._dirty = True
            self._render()

    def _render(self) -> None:
        progress = [
            progress_html(a.info.model_type.value, job_id, a.progress)
            for job_id, a in self.jobs.items()
            if a.progress and not a.done
        ]
        set_if_changed(self.progress, "value", "".join(progress))
        if not self._dirty:
            return
        self._dirty = False
        shown = self.visible()
        total = self._total() - self._cleared_at
        counter = f'<span class="sk-muted">{total:,} line{"" if total == 1 else "s"}'
        if total > len(shown):
            counter += f" · showing {len(shown):,}"
        set_if_changed(self.counter, "value", counter + "</span>")
        if not shown:
            empty = EMPTY if not self.entries else "No lines match the filters."
            set_if_changed(self.view, "value", f'<div class="sk-empty">{empty}</div>')
            return
        set_if_changed(self.view, "value", "".join(line_html(e) for e in shown))

    def _total(self) -> int:
        return self._forgotten_lines + sum(a.lines for a in self.jobs.values())

    def visible(self) -> list[Entry]:
        """The lines that pass the level, job and search filters."""
        floor = _RANK.get(self.level.value, 0)
        job = self.job.value
        needle = self.search.value.strip().lower()
        return [
            e
            for e in self.entries
            if _RANK.get(e.level, 1) >= floor
            and (not job or e.job_id == job)
            and (not needle or needle in e.text.lower())
        ]


def _base64(chunks: Iterator[bytes]) -> tuple[str, int]:
    """``chunks`` joined and base64-encoded, piece by piece; returns (text, raw length)."""
    parts: list[str] = []
    length = 0
    carry = b""
    for chunk in chunks:
        length += len(chunk)
        data = carry + chunk
        whole = len(data) - len(data) % 3
        parts.append(base64.b64encode(data[:whole]).decode("ascii"))
        carry = data[whole:]
    parts.append(base64.b64encode(carry).decode("ascii"))
    return "".join(parts), length


@dataclass(frozen=True, slots=True)
class TailRead:
    """What one bounded read of a job's log gave a view."""

    entries: list[Entry]
    last_seq: int | None  # the last line's seq (None: no line)
    progress: str | None  # the progress line now ("" once a line followed it; None: as before)
    moved: bool  # anything was read


def read_tail(tail: LogTail, job_id: str, kind: str, max_bytes: int) -> TailRead:
    """Read what is new in a job's log, at most about ``max_bytes`` (skipping ahead when far
    behind), as entries for a view; a ``\r`` progress update is kept apart."""
    items = tail.read(max_bytes=max_bytes, skip=True)
    entries: list[Entry] = []
    last_seq: int | None = None
    progress: str | None = None
    for item in items:
        if isinstance(item, Progress):
            progress = item.text
            continue
        progress = ""
        last_seq = item.seq
        entries.append(line_entry(job_id, kind, item))
    return TailRead(entries, last_seq, progress, bool(items))


def line_entry(job_id: str, kind: str, line: LogLine) -> Entry:
    """A log line as the panel keeps it (its text cut for the screen)."""
    text = line.text if len(line.text) <= _SHOWN_CHARS else line.text[:_SHOWN_CHARS] + " …"
    return Entry(job_id, kind, line.seq, line.ts, line.level, text)


def line_html(e: Entry) -> str:
    """One line of a log view: time, level badge, type, job and escaped text."""
    note = " sk-note" if e.note else ""
    return (
        f'<div class="sk-line sk-l-{e.level}{note}">'
        f'<span class="sk-ts">{e.ts.astimezone().strftime("%H:%M:%S")}</span>'
        f'<span class="sk-badge sk-lv-{e.level}">{e.level}</span>'
        f'<span class="sk-lt">{e.model_type}</span>'
        f'<span class="sk-lj" title="{e.job_id}">{e.job_id[-6:]}</span>'
        f'<span class="sk-tx">{html.escape(e.text)}</span></div>'
    )


def progress_html(kind: str, job_id: str, text: str) -> str:
    """A job's current ``\\r`` progress line, with a bar when it shows a percentage."""
    match = _PERCENT.search(text)
    bar = ""
    if match:
        pct = max(0.0, min(100.0, float(match.group(1))))
        bar = f'<span class="sk-bar"><div style="width:{pct:.0f}%"></div></span>'
    return (
        f'<div class="sk-progress"><span class="sk-type">{kind}</span>'
        f'<span class="sk-muted">{job_id[-6:]}</span>{bar}'
        f"<span>{html.escape(text[:300])}</span></div>"
    )
