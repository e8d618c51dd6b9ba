"""The upload card: pick or drop a ``.py`` file, choose its type, upload it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from sandbox_kit.errors import SandboxKitError, ValidationError
from sandbox_kit.humanize import size
from sandbox_kit.records import Model, ModelType
from sandbox_kit.validation import check_size
from sandbox_kit.widgets.style import card, gapped, message_html

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

TYPE_OPTIONS = [(f"{t.value} — {t.label}", t.value) for t in ModelType]


class UploadCard(W.VBox):  # type: ignore[misc]
    """Upload a model file into the registry.

    Args:
        sandbox: the sandbox to upload into.
        on_uploaded: called with the stored :class:`~sandbox_kit.Model` after each success.
    """

    def __init__(
        self, sandbox: Sandbox, *, on_uploaded: Callable[[Model], None] | None = None
    ) -> None:
        self.sandbox = sandbox
        self.on_uploaded = on_uploaded
        self.chooser = W.FileUpload(
            accept=".py", multiple=False, description="Choose .py file", icon="file-code"
        )
        self.chooser.add_class("sk-chooser")
        self.chosen = W.HTML('<span class="sk-muted">No file chosen</span>')
        self.model_type = W.Dropdown(options=TYPE_OPTIONS, value="DMO", description="Type")
        self.name = W.Text(placeholder="default: the file name", description="Name")
        self.description = W.Textarea(
            placeholder="What changed in this version? (optional)",
            description="Description",
            rows=2,
        )
        self.activate = W.Checkbox(
            value=True, description="Make it the active version", indent=True
        )
        self.button = W.Button(
            description="Upload", button_style="primary", icon="upload", disabled=True
        )
        self.button.add_class("sk-upload-button")
        self.message = W.HTML()
        self.message.add_class("sk-upload-message")
        for widget in (self.model_type, self.name, self.description):
            widget.style.description_width = "80px"
            widget.layout.width = "100%"
        self.chooser.observe(self._on_choose, names="value")
        self.button.on_click(lambda _: self.upload())
        body = card(
            "Upload a model",
            gapped(W.HBox([self.chooser, self.chosen], layout=W.Layout(align_items="center"))),
            self.model_type,
            self.name,
            self.description,
            self.activate,
            W.HBox([self.button]),
            self.message,
            css="sk-upload",
        )
        super().__init__([body])

    def _file(self) -> Any | None:
        files = self.chooser.value
        return files[0] if files else None

    def _on_choose(self, change: dict[str, Any]) -> None:
        chosen = self._file()
        if chosen is None:  # our own reset after an upload fires this too
            return
        limit = self.sandbox.settings.max_upload_bytes
        self.chosen.value = (
            f"<b>{_escape(chosen.name)}</b> <span class='sk-muted'>({size(chosen.size)})</span>"
        )
        try:
            check_size(chosen.name, chosen.size, limit)  # before the bytes are even read
        except ValidationError as exc:
            self.message.value = message_html("error", str(exc))
            self.button.disabled = True
            return
        self.message.value = ""
        self.button.disabled = False

    def upload(self) -> Model | None:
        """Upload the chosen file (what the Upload button does); returns the model or None."""
        chosen = self._file()
        if chosen is None:
            self.message.value = message_html("error", "Choose a .py file first.")
            return None
        self.button.disabled = True
        self.button.description = "Uploading…"
        self.button.icon = "spinner"
        known = {m.id for m in self.sandbox.models(self.model_type.value)}
        try:
            model = self.sandbox.upload(
                bytes(chosen.content),
                self.model_type.value,
                filename=chosen.name,
                name=self.name.value.strip() or None,
                description=self.description.value,
                activate=self.activate.value,
            )
        except SandboxKitError as exc:
            self.message.value = message_html("error", str(exc))
            self.button.disabled = False
            return None
        finally:
            self.button.description = "Upload"
            self.button.icon = "upload"
        state = "active" if model.active else model.status.value
        what = (
            f"{model.model_type.value} model {model.name} v{model.version} (id {model.id}, {state})"
        )
        if model.id in known:  # identical content: the registry returned the stored version
            text = f"Already stored: {what}; no new version was made."
        else:
            text = f"Stored {what}."
        self.message.value = message_html("ok", text)
        self._reset()
        if self.on_uploaded is not None:
            self.on_uploaded(model)
        return model

    def _reset(self) -> None:
        # Drop the bytes from the kernel and the browser model, and reset the chooser's counter.
        self.chooser.value = ()
        self.chosen.value = '<span class="sk-muted">No file chosen</span>'
        self.name.value = ""
        self.description.value = ""
        self.button.disabled = True


def _escape(text: str) -> str:
    import html

    return html.escape(text)
