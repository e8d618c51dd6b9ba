"""The audit view: who uploaded, activated, archived, restored, deleted, ran and cancelled what.

Shown in the dashboard's Models tab, below the models. One HTML table, re-read every few
seconds, filtered by actor and action; ``sandbox-kit audit`` shows the same entries.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from sandbox_kit.audit import ACTIONS
from sandbox_kit.records import AuditEntry
from sandbox_kit.widgets.pump import Pump, View
from sandbox_kit.widgets.style import card, gapped, set_if_changed

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

_IDENTIFYING = {"model_type", "name", "version", "model_name", "model_version", "model_id"}


class AuditView(View):
    """The newest entries of the audit trail.

    Args:
        sandbox: whose audit trail.
        rows: entries shown at once.
        period: seconds between refreshes.
        start: start the refresh pump (tests pass False and call :meth:`refresh`).
    """

    def __init__(
        self, sandbox: Sandbox, *, rows: int = 50, period: float = 5.0, start: bool = True
    ) -> None:
        self.sandbox = sandbox
        self.rows = rows
        self.actor_filter = W.Text(
            placeholder="any actor",
            description="Actor",
            continuous_update=False,
            layout=W.Layout(width="240px"),
        )
        # Free text with suggestions: other features record actions of their own.
        self.action_filter = W.Combobox(
            options=list(ACTIONS),
            placeholder="any action",
            description="Action",
            continuous_update=False,
            layout=W.Layout(width="220px"),
        )
        for control in (self.actor_filter, self.action_filter):
            control.style.description_width = "50px"
            control.observe(lambda _: self.pump.run_once(), names="value")
        self.table = W.HTML()
        self.table.add_class("sk-audit-table")
        filters = gapped(W.HBox([self.actor_filter, self.action_filter]))
        super().__init__([card("Audit trail", filters, self.table, css="sk-audit")])
        self.pump = Pump(self.refresh, period, name="sk-audit-pump", start=start)
        self.pump.run_once()

    def refresh(self) -> None:
        """Re-read the newest entries with the current filters."""
        entries = self.sandbox.audit(
            actor=self.actor_filter.value.strip() or None,
            action=self.action_filter.value.strip() or None,
            limit=self.rows,
        )
        set_if_changed(self.table, "value", table_html(entries))


def table_html(entries: list[AuditEntry]) -> str:
    """The entries as one escaped HTML table."""
    if not entries:
        return '<div class="sk-empty">No actions recorded yet.</div>'
    head = "".join(f"<th>{t}</th>" for t in ("When (UTC)", "Actor", "Action", "Object", "What"))
    body = "".join(
        "<tr>"
        f'<td class="sk-mono">{e.at.strftime("%Y-%m-%d %H:%M:%S")}</td>'
        f"<td>{html.escape(e.actor)}</td>"
        f"<td>{html.escape(e.action)}</td>"
        f'<td class="sk-mono">{html.escape(e.object_type)} {html.escape(e.object_id)}</td>'
        f"<td>{html.escape(_what(e.details))}</td>"
        "</tr>"
        for e in entries
    )
    return f'<table class="sk-table"><tr>{head}</tr>{body}</table>'


def _what(details: dict[str, Any]) -> str:
    if "name" in details:
        text = f"{details.get('model_type', '')} {details['name']} v{details.get('version', '?')}"
    elif "model_name" in details:
        text = f"{details['model_name']} v{details.get('model_version', '?')}"
    else:
        text = ""
    rest = {k: v for k, v in details.items() if k not in _IDENTIFYING and "sha256" not in k and v}
    if rest:
        text += " " + json.dumps(rest, ensure_ascii=False, sort_keys=True)
    return text.strip()
