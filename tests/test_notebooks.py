"""The dashboard notebook runs headlessly, as Voilà would run it, and shows the app."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sandbox_kit import Sandbox
from tests.conftest import ROOT, script

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.mark.slow
def test_dashboard_notebook_executes_and_displays_the_app(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Sandbox(home=home).upload(script("fast_exit.py"), "DMO")
    monkeypatch.setenv("SANDBOX_HOME", str(home))
    nb = nbformat.read(ROOT / "notebooks" / "dashboard.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(home)}},
        store_widget_state=False,
    ).execute()  # fmt: skip
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type == "display_data"]
    assert any(WIDGET_VIEW in o.data for o in shown)  # the dashboard itself
    assert any("sk-log-scroll" in o.data.get("text/html", "") for o in shown)  # auto-scroll


def test_committed_notebooks_have_no_outputs() -> None:
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name
