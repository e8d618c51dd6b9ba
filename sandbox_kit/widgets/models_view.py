"""The models view: every version per type, with activate, archive/restore, delete, source."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as W

from sandbox_kit.errors import SandboxKitError
from sandbox_kit.humanize import size, when
from sandbox_kit.records import Model, ModelType
from sandbox_kit.widgets.pump import Pump, View
from sandbox_kit.widgets.style import card, gapped, message_html, set_if_changed
from sandbox_kit.widgets.table import Table, cells_html

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

_COLUMNS = (
    ("", "24px"),
    ("Type", "50px"),
    ("Name", "150px"),
    ("Ver.", "44px"),
    ("Status", "76px"),
    ("Size", "70px"),
    ("SHA-256", "110px"),
    ("Created", "160px"),
    ("By", "90px"),
    ("Description", "160px"),
)
_ACTIONS_PX = 408  # Activate, Archive, Delete and Source with their margins


class ModelRow(W.HBox):  # type: ignore[misc]
    """One model version; rows are reused across refreshes."""

    def __init__(self, view: ModelsView) -> None:
        self.model: Model | None = None
        self.cells = W.HTML()
        self.cells.add_class("sk-cells-box")
        small = W.Layout(width="98px")
        self.activate = W.Button(description="Activate", icon="star", layout=small)
        self.archive = W.Button(description="Archive", icon="archive", layout=small)
        self.delete = W.Button(description="Delete", icon="trash", layout=small)
        self.source = W.Button(description="Source", icon="code", layout=small)
        for button, name in (
            (self.activate, "activate"),
            (self.archive, "archive"),
            (self.delete, "delete"),
            (self.source, "source"),
        ):
            button.add_class(f"sk-model-{name}")
        self.activate.on_click(lambda _: self.model and view.activate(self.model))
        self.archive.on_click(lambda _: self.model and view.archive_or_restore(self.model))
        self.delete.on_click(lambda _: self.model and view.ask_delete(self.model))
        self.source.on_click(lambda _: self.model and view.show_source(self.model))
        super().__init__([self.cells, self.activate, self.archive, self.delete, self.source])
        self.add_class("sk-row")
        self.add_class("sk-model-row")
        self.layout = W.Layout(display="none", align_items="center")

    def show(self, model: Model | None) -> None:
        """Fill the row with a model version, or hide it."""
        self.model = model
        if model is None:
            set_if_changed(self.layout, "display", "none")
            return
        mark = '<span class="sk-active-mark" title="active">★</span>' if model.active else ""
        values = [
            mark,
            f'<span class="sk-type">{model.model_type.value}</span>',
            html.escape(model.name),
            f"v{model.version}",
            model.status.value,
            size(model.size),
            f'<span class="sk-mono" title="{model.sha256}">{model.sha256[:12]}</span>',
            when(model.created_at),
            f'<span title="{_attr(model.created_by or "")}">'
            f"{html.escape(model.created_by or '')}</span>",
            f'<span title="{_attr(model.description)}">{html.escape(model.description)}</span>',
        ]
        set_if_changed(self.cells, "value", cells_html(values, _COLUMNS))
        archived = model.status.value == "archived"
        set_if_changed(self.activate, "disabled", model.active or archived)
        set_if_changed(self.archive, "description", "Restore" if archived else "Archive")
        set_if_changed(self.archive, "icon", "undo" if archived else "archive")
        set_if_changed(self.layout, "display", "flex")


class ModelsView(View):
    """All model versions, with the actions of the registry.

    Args:
        sandbox: the registry's sandbox.
        on_change: called after any change (so other views refresh at once).
        rows: versions shown at once.
        period: seconds between refreshes (uploads from elsewhere show up within it).
        start: start the refresh pump (tests pass False and call :meth:`refresh`).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        on_change: Callable[[], None] | None = None,
        rows: int = 40,
        period: float = 2.0,
        start: bool = True,
    ) -> None:
        self.sandbox = sandbox
        self.on_change = on_change
        self.pending_delete: Model | None = None
        self.type_filter = W.ToggleButtons(
            options=[("All", "")] + [(t.value, t.value) for t in ModelType], value=""
        )
        self.type_filter.style.button_width = "60px"
        self.type_filter.observe(lambda _: self.pump.run_once(), names="value")
        self.message = W.HTML()
        self.message.add_class("sk-models-message")
        self.confirm = W.Button(description="Delete", button_style="danger", icon="trash")
        self.confirm.add_class("sk-confirm-delete")
        self.keep = W.Button(description="Keep it")
        self.confirm_text = W.HTML()
        self.confirm_bar = W.HBox(
            [self.confirm_text, self.confirm, self.keep],
            layout=W.Layout(display="none", align_items="center"),
        )
        self.confirm_bar.add_class("sk-confirm-bar")
        gapped(self.confirm_bar)
        self.confirm.on_click(lambda _: self.delete_confirmed())
        self.keep.on_click(lambda _: self._hide_confirm())
        self.source_view = W.HTML()
        self.source_view.add_class("sk-source-view")
        self.empty = W.HTML('<div class="sk-empty">No models yet. Upload one to get started.</div>')
        self.table = Table(
            _COLUMNS, lambda: ModelRow(self), rows, name="models", actions_px=_ACTIONS_PX, key=2
        )
        super().__init__(
            [
                card(
                    "Models",
                    self.type_filter,
                    self.message,
                    self.confirm_bar,
                    self.table,
                    self.empty,
                    self.source_view,
                    css="sk-models",
                )
            ]
        )
        self.pump = Pump(self.refresh, period, name="sk-models-pump", start=start)
        self.pump.run_once()

    def refresh(self) -> None:
        """Re-read the model list."""
        models = self.sandbox.models(self.type_filter.value or None)
        self.table.show(models)
        set_if_changed(self.empty.layout, "display", "none" if models else "block")

    def activate(self, model: Model) -> None:
        """Make a version its type's active one."""
        self._act(lambda: self.sandbox.activate(model.id), f"{model.label} is now active.")

    def archive_or_restore(self, model: Model) -> None:
        """Archive an unarchived version; restore an archived one."""
        if model.status.value == "archived":
            self._act(lambda: self.sandbox.restore(model.id), f"{model.label} restored.")
        else:
            self._act(lambda: self.sandbox.archive(model.id), f"{model.label} archived.")

    def ask_delete(self, model: Model) -> None:
        """Ask for confirmation before deleting."""
        jobs = len(self.sandbox.jobs(model=model.id, limit=100_000))
        self.pending_delete = model
        self.confirm_text.value = message_html(
            "error",
            f"Delete {model.model_type.value} {model.label} and its {jobs} job record(s) "
            "with their logs? This cannot be undone.",
        )
        self.confirm_bar.layout.display = "flex"

    def delete_confirmed(self) -> None:
        """Delete the version awaiting confirmation."""
        model = self.pending_delete
        self._hide_confirm()
        if model is not None:
            self._act(lambda: self.sandbox.delete(model.id), f"{model.label} deleted.")

    def show_source(self, model: Model) -> None:
        """Show a version's source, read-only and highlighted."""
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        try:
            source = self.sandbox.source(model.id)
        except (SandboxKitError, OSError) as exc:
            self.message.value = message_html("error", f"Cannot show the source: {exc}")
            return
        body = highlight(source, PythonLexer(), HtmlFormatter(noclasses=True, nobackground=True))
        self.source_view.value = (
            f'<div class="sk-card-title">{html.escape(model.original_filename)} — '
            f"{model.model_type.value} {html.escape(model.label)}</div>"
            f'<div class="sk-source">{body}</div>'
        )

    def _hide_confirm(self) -> None:
        self.pending_delete = None
        self.confirm_bar.layout.display = "none"

    def _act(self, action: Callable[[], object], done: str) -> None:
        try:
            action()
        except SandboxKitError as exc:
            self.message.value = message_html("error", str(exc))
            return
        self.message.value = message_html("ok", done)
        self.pump.run_once()
        if self.on_change is not None:
            self.on_change()


def _attr(text: str) -> str:
    return html.escape(text, quote=True)
