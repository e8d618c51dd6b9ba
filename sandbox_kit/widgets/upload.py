"""The upload card: pick a ``.py`` model file, choose its type, upload it; or, switched to
"Data set", store any file or a zip as the next version of a data set (issue 11)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as W

from sandbox_kit.errors import SandboxKitError, ValidationError
from sandbox_kit.humanize import size
from sandbox_kit.records import DataSet, Model, ModelType
from sandbox_kit.validation import check_size
from sandbox_kit.widgets.style import card, gapped, message_html

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

_Stored = TypeVar("_Stored", Model, DataSet)

TYPE_OPTIONS = [(f"{t.value} — {t.label}", t.value) for t in ModelType]
_MODEL_FILES = ".py,.ipynb"  # scripts and notebook models (issue 14)


class UploadCard(W.VBox):  # type: ignore[misc]
    """Upload a model file into the registry.

    Args:
        sandbox: the sandbox to upload into.
        on_uploaded: called with the stored :class:`~sandbox_kit.Model` after each success.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        on_uploaded: Callable[[Model], None] | None = None,
        on_data_added: Callable[[DataSet], None] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.on_uploaded = on_uploaded
        self.on_data_added = on_data_added
        self.kind = W.ToggleButtons(
            options=[("Model", "model"), ("Data set", "data")],
            value="model",
            style={"button_width": "100px"},
        )
        self.kind.add_class("sk-upload-kind")
        self.chooser = W.FileUpload(
            accept=_MODEL_FILES, multiple=False, description="Choose model file", icon="file-code"
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
        self.kind.observe(lambda _: self._on_kind(), names="value")
        self.button.on_click(lambda _: self.upload())
        body = card(
            "Upload a model",
            self.kind,
            gapped(W.HBox([self.chooser, self.chosen], layout=W.Layout(align_items="center"))),
            self.model_type,
            self.name,
            self.description,
            self.activate,
            W.HBox([self.button]),
            self.message,
            css="sk-upload",
        )
        self.title = body.children[0]
        super().__init__([body])

    def _file(self) -> Any | None:
        files = self.chooser.value
        return files[0] if files else None

    def _on_choose(self, change: dict[str, Any]) -> None:
        chosen = self._file()
        if chosen is None:  # our own reset after an upload fires this too
            return
        data = self.kind.value == "data"
        settings = self.sandbox.settings
        limit = settings.data_max_bytes if data else settings.max_upload_bytes
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

    def _on_kind(self) -> None:
        data = self.kind.value == "data"
        self.chooser.accept = "" if data else _MODEL_FILES
        self.chooser.description = "Choose a file" if data else "Choose model file"
        self.title.value = self.title.value.replace(
            *(
                ("Upload a model", "Add a data set")
                if data
                else ("Add a data set", "Upload a model")
            )
        )
        for widget in (self.model_type, self.activate):
            widget.layout.display = "none" if data else ""
        self.name.placeholder = "default: the file name" + (", e.g. load_forecast" if data else "")
        self.message.value = ""
        if self._file() is not None:
            self._on_choose({})  # the limits differ

    def upload(self) -> Model | DataSet | None:
        """Upload the chosen file (what the Upload button does); returns the model (or, in
        data set mode, the data set) or None."""
        chosen = self._file()
        if chosen is None:
            what = "a file" if self.kind.value == "data" else "a .py file"
            self.message.value = message_html("error", f"Choose {what} first.")
            return None
        if self.kind.value == "data":
            return self._add_data(chosen)

        def store() -> Model:
            return self.sandbox.upload(
                bytes(chosen.content),
                self.model_type.value,
                filename=chosen.name,
                name=self.name.value.strip() or None,
                description=self.description.value,
                activate=self.activate.value,
            )

        def describe(model: Model) -> str:
            state = "active" if model.active else model.status.value
            kind = model.model_type.value
            return f"{kind} model {model.name} v{model.version} (id {model.id}, {state})"

        def known() -> set[int]:
            return {m.id for m in self.sandbox.models(self.model_type.value)}

        model = self._store("Uploading…", store, describe, known)
        if model is not None and self.on_uploaded is not None:
            self.on_uploaded(model)
        return model

    def _add_data(self, chosen: Any) -> DataSet | None:
        name = self.name.value.strip() or data_name(chosen.name)

        def store() -> DataSet:
            return self.sandbox.add_data(
                bytes(chosen.content),
                name=name,
                filename=chosen.name,
                description=self.description.value,
            )

        def describe(data_set: DataSet) -> str:
            files = f"{data_set.files} file(s), {size(data_set.size)}"
            return f"data set {data_set.label} ({files}); run with {data_set.source}"

        def known() -> set[int]:
            return {d.id for d in self.sandbox.data_sets(name)}

        data_set = self._store("Storing…", store, describe, known)
        if data_set is not None and self.on_data_added is not None:
            self.on_data_added(data_set)
        return data_set

    def _store(
        self,
        busy: str,
        store: Callable[[], _Stored],
        describe: Callable[[_Stored], str],
        known: Callable[[], set[int]],
    ) -> _Stored | None:
        """Store the chosen file with a busy button; say what was stored, or that identical
        content was already there (the registry returned the stored version), or the error."""
        self.button.disabled = True
        self.button.description = busy
        self.button.icon = "spinner"
        try:
            before = known()
            stored = store()
        except SandboxKitError as exc:
            self.message.value = message_html("error", str(exc))
            self.button.disabled = False
            return None
        finally:
            self.button.description = "Upload"
            self.button.icon = "upload"
        what = describe(stored)
        already = stored.id in before
        text = f"Already stored: {what}; no new version was made." if already else f"Stored {what}."
        self.message.value = message_html("ok", text)
        self._reset()
        return stored

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


def data_name(filename: str) -> str:
    """A data set name from a file's name: its stem, with characters a name may not hold
    replaced by ``_`` (``Load Forecast (July).csv`` -> ``Load_Forecast__July_``)."""
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("._-")[:100]
    return name or "data"
