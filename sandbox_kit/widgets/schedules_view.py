"""The Schedules tab: schedules with their next fire time and last runs, and a form to create
or edit one with a preview of its next five fire times (issue 10).

Times are shown in each schedule's zone and in the viewer's: the kernel does not know the
browser's zone, so a ``<span class="sk-localtime" data-utc=...>`` is rewritten in the page by
:data:`LOCALTIME_JS` (shown once by :func:`sandbox_kit.widgets.dashboard`); without the script
it reads in UTC. Firing is the scheduler process's: this view only reads and edits schedules
through the :class:`~sandbox_kit.Sandbox` facade.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import ipywidgets as W

from sandbox_kit.errors import SandboxKitError, ValidationError
from sandbox_kit.records import ModelType, Schedule, ScheduleFire, parse_config
from sandbox_kit.widgets.pump import Pump, View, keep_value
from sandbox_kit.widgets.style import card, gapped, message_html, set_if_changed, status_html

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

_PRESETS = (
    ("Custom cron expression", ""),
    ("day-ahead: 09:00 daily, deadline 180 min", "day-ahead"),
    ("real-time-5min: every 5 min, deadline 4 min", "real-time-5min"),
    ("real-time-15min: every 15 min, deadline 14 min", "real-time-15min"),
    ("hourly: every hour on the hour", "hourly"),
)
_FIRES_SHOWN = 5

#: Rewrites ``.sk-localtime`` spans into the browser's own time zone (widget HTML never runs
#: scripts, so this is shown once as a notebook output).
LOCALTIME_JS = """
<script>
(function () {
  if (window.__skLocalTime) { return; }
  window.__skLocalTime = true;
  const fmt = new Intl.DateTimeFormat(undefined, {weekday: 'short', year: 'numeric',
    month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', timeZoneName: 'short'});
  function local(root) {
    root.querySelectorAll('.sk-localtime[data-utc]').forEach(function (el) {
      const utc = el.getAttribute('data-utc');
      if (el.getAttribute('data-done') === utc) { return; }
      el.setAttribute('data-done', utc);
      el.textContent = fmt.format(new Date(utc));
    });
  }
  new MutationObserver(function () { local(document); })
    .observe(document.body, {childList: true, subtree: true, characterData: true});
  local(document);
})();
</script>
"""


def zoned(moment: datetime, zone: str) -> str:
    """``Mon 2026-12-01 09:00 CET`` in ``zone``."""
    return moment.astimezone(ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M %Z")


def viewer_time(moment: datetime) -> str:
    """A span the page rewrites into the viewer's zone (UTC until it does)."""
    utc = moment.astimezone(UTC)
    return (
        f'<span class="sk-localtime" data-utc="{utc.isoformat()}">'
        f"{utc.strftime('%a %Y-%m-%d %H:%M UTC')}</span>"
    )


def fires_html(fires: Sequence[ScheduleFire]) -> str:
    """The last runs of a schedule as small pills: status, or why nothing ran."""
    if not fires:
        return '<span class="sk-muted">none yet</span>'
    pills = []
    for fire in fires:
        when = fire.fire_at.strftime("%Y-%m-%d %H:%M UTC")
        if fire.job_status is not None:
            label = fire.job_status.value
            pill = status_html(fire.job_status.value, label)
            if fire.deadline_missed:
                pill += '<span class="sk-deadline-missed" title="deadline missed">late</span>'
            title = f"{when} · {fire.job_id}"
        else:
            pill = f'<span class="sk-fire sk-fire-{fire.outcome}">{fire.outcome}</span>'
            title = f"{when} · {fire.detail or fire.outcome}"
        pills.append(f'<span class="sk-fire-item" title="{html.escape(title)}">{pill}</span>')
    return "".join(pills)


def table_html(schedules: Sequence[Schedule], fires: dict[int, list[ScheduleFire]]) -> str:
    """Every schedule as one row of an escaped HTML table."""
    if not schedules:
        return (
            '<div class="sk-empty">No schedules yet. Create one below: a model type on a '
            "cron clock or a market preset.</div>"
        )
    heads = ["ID", "Name", "Target", "Clock", "Next run (its zone)", "Next run (yours)"]
    heads += ["Deadline", "State", "Last runs"]
    head = "".join(f"<th>{h}</th>" for h in heads)
    rows = []
    for s in schedules:
        nxt = s.next_fires[0] if s.next_fires else None
        clock = s.preset or s.cron
        deadline = "—" if s.deadline_min is None else f"{s.deadline_min:g} min"
        if s.deadline_min is not None and s.deadline_action == "cancel":
            deadline += " (cancel)"
        state = "paused" if s.paused else "active"
        pinned = s.target.isdigit()
        target = f"model {s.target} ({s.model_type.value})" if pinned else s.target
        cells = [
            f'<td class="sk-mono">{s.id}</td>',
            f"<td>{html.escape(s.name)}</td>",
            f"<td>{html.escape(target)}</td>",
            f'<td><span class="sk-mono">{html.escape(clock)}</span>'
            f'<div class="sk-muted">{html.escape(s.timezone)}</div></td>',
            f"<td>{'—' if nxt is None else html.escape(zoned(nxt, s.timezone))}</td>",
            f"<td>{'—' if nxt is None else viewer_time(nxt)}</td>",
            f"<td>{html.escape(deadline)}</td>",
            f'<td><span class="sk-sched-{state}">{state}</span></td>',
            f"<td>{fires_html(fires.get(s.id, [])[:_FIRES_SHOWN])}</td>",
        ]
        rows.append(f'<tr class="sk-schedule-row" data-id="{s.id}">{"".join(cells)}</tr>')
    return f'<table class="sk-table sk-schedules-table"><tr>{head}</tr>{"".join(rows)}</table>'


class ScheduleForm(W.VBox):  # type: ignore[misc]
    """Create a schedule, or edit one (:meth:`load`), with a preview of its next fire times."""

    def __init__(self, view: SchedulesView) -> None:
        self.view = view
        self.sandbox = view.sandbox
        self.editing: int | None = None
        wide = W.Layout(width="100%")
        self.target = W.Dropdown(description="Target", layout=wide)
        self.target.add_class("sk-schedule-target")
        self.preset = W.Dropdown(options=_PRESETS, value="", description="Clock", layout=wide)
        self.cron = W.Text(value="0 9 * * *", description="Cron", layout=wide)
        self.tz = W.Text(value=_machine_zone(), description="Time zone", layout=wide)
        self.name = W.Text(placeholder="default: target and clock", description="Name")
        self.name.layout = wide
        self.config = W.Textarea(value="{}", description="Config", rows=2, layout=wide)
        self.data_source = W.Text(
            placeholder="none, or latest:DMO, data:NAME, job:ID",
            description="Data source",
            layout=wide,
        )
        self.missed = W.Dropdown(
            options=[("skip (record them)", "skip"), ("once (one catch-up run)", "once")],
            value="skip",
            description="Missed runs",
            layout=wide,
        )
        self.overlap = W.Dropdown(
            options=[
                ("skip the new run", "skip"),
                ("queue it after", "queue"),
                ("cancel the old run", "cancel"),
            ],
            value="skip",
            description="Overlap",
            layout=wide,
        )
        self.deadline = W.Text(placeholder="minutes after the fire time", description="Deadline")
        self.deadline.layout = wide
        self.deadline_action = W.Dropdown(
            options=[("notify", "notify"), ("notify and cancel", "cancel")],
            value="notify",
            description="When late",
            layout=wide,
        )
        self.notify = W.Textarea(
            placeholder="Apprise URLs, one per line: mailto://..., json://..., slack://...",
            description="Notify",
            rows=2,
            layout=wide,
        )
        controls = (
            self.target,
            self.preset,
            self.cron,
            self.tz,
            self.name,
            self.config,
            self.data_source,
            self.missed,
            self.overlap,
            self.deadline,
            self.deadline_action,
            self.notify,
        )
        for control in controls:
            control.style.description_width = "90px"
        self.preset.add_class("sk-schedule-preset")
        self.cron.add_class("sk-schedule-cron")
        self.tz.add_class("sk-schedule-tz")
        self.name.add_class("sk-schedule-name")
        self.preview = W.HTML()
        self.preview.add_class("sk-schedule-preview")
        self.title = W.HTML()
        self.save = W.Button(description="Create schedule", button_style="primary", icon="clock")
        self.save.add_class("sk-schedule-save")
        self.new = W.Button(description="New", icon="plus", layout=W.Layout(display="none"))
        self.save.on_click(lambda _: self.submit())
        self.new.on_click(lambda _: self.clear())
        for control in (self.cron, self.tz, self.preset):
            control.observe(lambda _: self.update_preview(), names="value")
        self.preset.observe(lambda change: self._preset_chosen(change["new"]), names="value")
        # Two columns side by side from about 640 px, one under the other below (issue 14).
        column = {"flex": "1 1 300px", "min_width": "0"}
        left = W.VBox(list(controls[:6]), layout=W.Layout(**column))
        right = W.VBox(list(controls[6:]), layout=W.Layout(**column))
        fields = gapped(W.HBox([left, right]), "lg")
        buttons = gapped(W.HBox([self.save, self.new]))
        super().__init__([self.title, fields, self.preview, buttons])
        self.set_targets()
        self.clear()

    def set_targets(self) -> None:
        """The choices of target: each type's active version, or a pinned model version."""
        options: list[tuple[str, str]] = [
            (f"{t.value}: its active model", t.value) for t in ModelType
        ]
        options += [
            (f"model {m.id}: {m.model_type.value} {m.name} v{m.version}", str(m.id))
            for m in self.sandbox.models()
            if m.status.value != "archived"
        ]
        keep_value(self.target, options)

    def clear(self) -> None:
        """Back to an empty "new schedule" form."""
        self.editing = None
        self.title.value = '<div class="sk-card-title">New schedule</div>'
        self.save.description = "Create schedule"
        self.new.layout.display = "none"
        self.preset.value = ""
        self.cron.value = "0 9 * * *"
        self.tz.value = _machine_zone()
        for text in (self.name, self.data_source, self.deadline, self.notify):
            text.value = ""
        self.config.value = "{}"
        self.missed.value = self.overlap.value = "skip"
        self.deadline_action.value = "notify"
        self.update_preview()

    def load(self, schedule: Schedule) -> None:
        """Fill the form with a schedule to edit (notification URLs are not shown: their
        secrets stay in the registry; typing new ones replaces them)."""
        self.editing = schedule.id
        self.title.value = (
            f'<div class="sk-card-title">Edit schedule {schedule.id} '
            f"({html.escape(schedule.name)})</div>"
        )
        self.save.description = "Save changes"
        self.new.layout.display = "inline-flex"
        if schedule.target not in [value for _, value in self.target.options]:
            self.set_targets()
        self.target.value = schedule.target
        self.preset.value = schedule.preset or ""
        self.cron.value = schedule.cron
        self.tz.value = schedule.timezone
        self.name.value = schedule.name
        self.config.value = _json(schedule.config)
        self.data_source.value = schedule.data_source or ""
        self.missed.value = schedule.missed
        self.overlap.value = schedule.overlap
        self.deadline.value = "" if schedule.deadline_min is None else f"{schedule.deadline_min:g}"
        self.deadline_action.value = schedule.deadline_action
        self.notify.value = ""
        self.notify.placeholder = (
            f"{len(schedule.notify)} target(s) kept; type URLs to replace them"
            if schedule.notify
            else "Apprise URLs, one per line: mailto://..., json://..., slack://..."
        )
        self.update_preview()

    def update_preview(self) -> None:
        """The next five fire times of what the form says, or why it cannot have any."""
        zone = self.tz.value.strip()
        try:
            times = self.sandbox.preview_schedule(
                cron=None if self.preset.value else self.cron.value,
                preset=self.preset.value or None,
                timezone=zone,
                count=5,
            )
        except ValidationError as exc:
            self.preview.value = message_html("error", str(exc))
            return
        items = "".join(
            f"<li>{html.escape(zoned(t, zone))} · {viewer_time(t)} (yours) · "
            f"{t.strftime('%H:%M UTC')}</li>"
            for t in times
        )
        self.preview.value = (
            f'<div class="sk-muted">Next 5 fire times</div><ol class="sk-preview">{items}</ol>'
        )

    def submit(self) -> None:
        """Create the schedule, or save the changes."""
        try:
            values = self._values()
            if self.editing is None:
                schedule = self.sandbox.add_schedule(**values)
                done = f"Created schedule {schedule.id} ({schedule.name})."
            else:
                if not values["notify"]:
                    values.pop("notify")  # keep the stored targets
                schedule = self.sandbox.update_schedule(self.editing, **values)
                done = f"Saved schedule {schedule.id} ({schedule.name})."
        except SandboxKitError as exc:
            self.view.say("error", str(exc))
            return
        self.view.say("ok", done)
        self.clear()
        self.view.pump.run_once()

    def _values(self) -> dict[str, Any]:
        deadline = self.deadline.value.strip()
        try:
            minutes = float(deadline) if deadline else None
        except ValueError:
            raise ValidationError(
                f"deadline must be a number of minutes, not {deadline!r}"
            ) from None
        preset = self.preset.value or None
        return {
            "target": self.target.value,
            "cron": None if preset else self.cron.value,
            "preset": preset,
            "timezone": self.tz.value.strip(),
            "config": parse_config(self.config.value, filename="config"),
            "data_source": self.data_source.value.strip() or None,
            "missed": self.missed.value,
            "overlap": self.overlap.value,
            "deadline": minutes,
            "deadline_action": self.deadline_action.value,
            "notify": [line for line in self.notify.value.splitlines() if line.strip()],
            "name": self.name.value.strip() or None,
        }

    def _preset_chosen(self, name: str) -> None:
        from sandbox_kit.cron import PRESETS

        self.cron.disabled = bool(name)
        preset = PRESETS.get(name)
        if preset is None:
            return
        self.cron.value = preset.cron
        self.deadline.value = "" if preset.deadline_min is None else f"{preset.deadline_min:g}"
        self.missed.value = preset.missed
        self.overlap.value = preset.overlap


class SchedulesView(View):
    """Schedules with their next fire times and last runs; create, edit, pause, resume, delete.

    Args:
        sandbox: whose schedules.
        period: seconds between refreshes.
        start: start the refresh pump (tests pass False and call :meth:`refresh`).
    """

    def __init__(self, sandbox: Sandbox, *, period: float = 2.0, start: bool = True) -> None:
        self.sandbox = sandbox
        self.schedules: list[Schedule] = []
        self.table = W.HTML()
        self.table.add_class("sk-schedules")
        self.pick = W.Dropdown(
            options=[("No schedule", 0)],
            value=0,
            description="Schedule",
            layout=W.Layout(width="340px"),
        )
        self.pick.style.description_width = "70px"
        self.pick.add_class("sk-schedule-pick")
        self.edit = W.Button(description="Edit", icon="pencil", layout=W.Layout(width="84px"))
        self.toggle = W.Button(description="Pause", icon="pause", layout=W.Layout(width="96px"))
        self.delete = W.Button(
            description="Delete", icon="trash", button_style="danger", layout=W.Layout(width="90px")
        )
        for button, css in ((self.edit, "edit"), (self.toggle, "toggle"), (self.delete, "delete")):
            button.add_class(f"sk-schedule-{css}")
        self.edit.on_click(lambda _: self._edit())
        self.toggle.on_click(lambda _: self._toggle())
        self.delete.on_click(lambda _: self._delete())
        self.pick.observe(lambda _: self._buttons(), names="value")
        self.message = W.HTML()
        self.form = ScheduleForm(self)
        actions = gapped(W.HBox([self.pick, self.edit, self.toggle, self.delete]))
        note = W.HTML(
            '<div class="sk-muted">Schedules fire from the scheduler process '
            "(<code>sandbox-kit serve</code> starts one; or <code>sandbox-kit scheduler</code>)."
            "</div>"
        )
        listing = card(
            "Schedules", note, self.table, actions, self.message, css="sk-schedules-card"
        )
        form = card("", self.form, css="sk-schedule-form")
        super().__init__([listing, form])
        self.add_class("sk-gap-lg")
        self.pump = Pump(self.refresh, period, name="sk-schedules-pump", start=start)
        self.pump.run_once()

    def refresh(self) -> None:
        """Re-read the schedules, their next fire times and their last runs."""
        schedules = self.sandbox.schedules(next_fires=1)
        fires: dict[int, list[ScheduleFire]] = defaultdict(list)
        for fire in self.sandbox.schedule_fires(limit=max(200, 10 * len(schedules))):
            fires[fire.schedule_id].append(fire)
        self.schedules = schedules
        self.form.set_targets()  # models uploaded meanwhile, from any process
        set_if_changed(self.table, "value", table_html(schedules, fires))
        options = [(f"{s.id}: {s.name}", s.id) for s in schedules] or [("No schedule", 0)]
        keep_value(self.pick, options)
        self._buttons()

    def say(self, kind: str, text: str) -> None:
        """Show a one-line message under the list."""
        self.message.value = message_html(kind, text)

    def _chosen(self) -> Schedule | None:
        return next((s for s in self.schedules if s.id == self.pick.value), None)

    def _buttons(self) -> None:
        chosen = self._chosen()
        for button in (self.edit, self.toggle, self.delete):
            set_if_changed(button, "disabled", chosen is None)
        paused = chosen is not None and chosen.paused
        set_if_changed(self.toggle, "description", "Resume" if paused else "Pause")
        set_if_changed(self.toggle, "icon", "play" if paused else "pause")

    def _edit(self) -> None:
        with self.pump.locked():
            chosen = self._chosen()
        if chosen is not None:
            self.form.load(chosen)

    def _toggle(self) -> None:
        with self.pump.locked():
            chosen = self._chosen()
        if chosen is None:
            return
        try:
            if chosen.paused:
                self.sandbox.resume_schedule(chosen.id)
                self.say("ok", f"Resumed schedule {chosen.id} ({chosen.name}).")
            else:
                self.sandbox.pause_schedule(chosen.id)
                self.say("ok", f"Paused schedule {chosen.id} ({chosen.name}).")
        except SandboxKitError as exc:
            self.say("error", str(exc))
        self.pump.run_once()

    def _delete(self) -> None:
        with self.pump.locked():
            chosen = self._chosen()
        if chosen is None:
            return
        try:
            self.sandbox.delete_schedule(chosen.id)
        except SandboxKitError as exc:
            self.say("error", str(exc))
            return
        if self.form.editing == chosen.id:
            self.form.clear()
        self.say("ok", f"Deleted schedule {chosen.id} ({chosen.name}); its runs stay.")
        self.pump.run_once()


def _machine_zone() -> str:
    from sandbox_kit.cron import machine_zone

    return machine_zone()


def _json(config: dict[str, Any]) -> str:
    import json

    return json.dumps(config, sort_keys=True) if config else "{}"
