"""Notebook models (issue 14): upload checks, and runs in the supervised, isolated job."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import nbformat
import pytest

from sandbox_kit import Job, JobStatus, Sandbox, ValidationError
from sandbox_kit.notebook_runner import EXECUTED_NAME, parameters_source
from sandbox_kit.widgets.results import ResultsView, notebook_html
from tests.test_runner import assert_no_process_left, texts, wait_for_line


def _notebook(*sources: str, tagged: int | None = None) -> bytes:
    """A notebook of code cells (a markdown cell first); cell ``tagged`` (0-based) is parameters."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A notebook model")]
    for i, source in enumerate(sources):
        cell = nbformat.v4.new_code_cell(source)
        if i == tagged:
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    return nbformat.writes(nb).encode()


def _rejected(sb: Sandbox, home: Path, data: bytes, name: str = "m.ipynb") -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        sb.upload(data, "DMO", filename=name)
    assert sb.models() == []
    assert not (home / "models").exists() or list((home / "models").iterdir()) == []
    return caught.value


# -- upload checks ---------------------------------------------------------------------------


def test_a_notebook_is_stored_like_a_script(lite: Sandbox, home: Path) -> None:
    data = _notebook("# sandbox: threads=2\nx = 1", "%matplotlib inline\n!ls\nprint(x)")
    model = lite.upload(data, "DMO", filename="my model.ipynb")
    assert (model.name, model.version, model.threads) == ("my model", 1, 2)
    assert model.path.endswith(".ipynb") and Path(model.path).read_bytes() == data
    assert lite.upload(data, "DMO", filename="my model.ipynb").id == model.id  # deduplicated


def test_a_long_notebook_name_keeps_its_extension(lite: Sandbox) -> None:
    model = lite.upload(_notebook("x = 1"), "DMO", filename="n" * 150 + ".ipynb")
    assert model.path.endswith(".ipynb") and len(model.name) == 100 - len(".ipynb")


def test_invalid_json_is_rejected(lite: Sandbox, home: Path) -> None:
    err = _rejected(lite, home, b'{"cells": [')
    assert err.reason.startswith("notebook is not valid JSON")


def test_nbformat_3_is_rejected(lite: Sandbox, home: Path) -> None:
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []}
    err = _rejected(lite, home, json.dumps(v3).encode())
    assert err.reason == "only nbformat 4 notebooks are accepted (this one is nbformat 3)"


def test_a_document_that_breaks_the_schema_is_rejected(lite: Sandbox, home: Path) -> None:
    bad = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "x"}]}
    err = _rejected(lite, home, json.dumps(bad).encode())
    assert err.reason.startswith("not a valid nbformat 4 notebook")


def test_a_10_mb_output_blob_is_over_the_size_limit(lite: Sandbox, home: Path) -> None:
    nb = nbformat.reads(_notebook("print(1)").decode(), as_version=4)
    blob = nbformat.v4.new_output("display_data", data={"text/plain": "x" * (10 * 1024 * 1024)})
    nb.cells[1].outputs = [blob]
    err = _rejected(lite, home, nbformat.writes(nb).encode())
    assert err.reason.startswith("file is 10.0 MB; the limit is 10.0 MB")


def test_a_cell_that_never_compiles_is_rejected_with_its_number(lite: Sandbox, home: Path) -> None:
    err = _rejected(lite, home, _notebook("x = 1", "def broken(:\n    pass"))
    assert err.reason.startswith("cell 3: ") and err.line == 1


def test_deep_nesting_in_a_cell_is_rejected(lite: Sandbox, home: Path) -> None:
    err = _rejected(lite, home, _notebook("x = " + "(" * 5000 + ")" * 5000))
    assert err.reason.startswith("cell 2: ")


def test_non_utf8_is_rejected(lite: Sandbox, home: Path) -> None:
    err = _rejected(lite, home, _notebook("x = 'é'").replace("é".encode(), b"\xe9"))
    assert err.reason.startswith("file is not valid UTF-8")


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"tags": ["injected-parameters"]}, "cell 2: tag 'injected-parameters' is reserved"),
        ({"tags": "parameters"}, "not a valid nbformat 4 notebook"),
        ({"blob": "x" * 70_000}, "cell 2: metadata is over 64 KB"),
    ],
)
def test_hostile_cell_metadata_is_rejected(
    lite: Sandbox, home: Path, metadata: dict[str, object], reason: str
) -> None:
    nb = nbformat.reads(_notebook("x = 1").decode(), as_version=4)
    nb.cells[1].metadata = metadata
    err = _rejected(lite, home, json.dumps(nb).encode())
    assert err.reason.startswith(reason)


def test_bidi_controls_in_a_cell_are_rejected(lite: Sandbox, home: Path) -> None:
    err = _rejected(lite, home, _notebook("x = 1  # \u202e"))
    assert err.reason == "cell 2: bidirectional control character in the source"


def test_parameters_source_spells_json_values_as_python() -> None:
    config = {"load_scale": 1.1, "on": True, "none": None, "names": ["a"], "bad-key": 1}
    assert parameters_source(config).splitlines()[1:] == [
        "load_scale = 1.1",
        "on = True",
        "none = None",
        "names = ['a']",
        "# skipped 'bad-key': not a Python name",
    ]


# -- runs ------------------------------------------------------------------------------------


def _run(sb: Sandbox, data: bytes, **kwargs: object) -> Job:
    model = sb.upload(data, "DMO", filename="nb.ipynb")
    return sb.run(model.id, **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("tagged", [True, False])
def test_config_is_injected_after_the_parameters_cell(lite: Sandbox, tagged: bool) -> None:
    cells = ("scale = 1.0\nmode = 'a'", "print('scale', scale, 'mode', mode)")
    job = _run(lite, _notebook(*cells, tagged=0 if tagged else None), config={"scale": 2.5})
    info = job.wait(timeout=120)
    assert info.status is JobStatus.SUCCESS, (info.reason, texts(job))
    # Tagged: the injected cell follows the defaults. Untagged: it comes first, so the
    # notebook's own assignment wins, as with papermill.
    assert ("scale 2.5 mode a" if tagged else "scale 1.0 mode a") in texts(job)
    executed = nbformat.read(Path(info.result_dir) / EXECUTED_NAME, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "scale = 2.5" in injected[0].source
    assert executed.cells.index(injected[0]) == (2 if tagged else 0)


@pytest.mark.slow
def test_outputs_stream_in_order_between_cell_markers(lite: Sandbox) -> None:
    job = _run(
        lite,
        _notebook(
            "import sys\nprint('one')\nprint('warn', file=sys.stderr)",
            "print('::metric gap=0.5')\n40 + 2",
        ),
    )
    info = job.wait(timeout=120)
    assert info.status is JobStatus.SUCCESS, (info.reason, texts(job))
    # Two pipes: the order holds within each stream, as for scripts.
    lines = [line.text for line in job.logs() if line.stream == "stdout"]
    start2 = lines.index("[cell 2] start")
    assert lines[start2 + 1] == "one" and lines[start2 + 2].startswith("[cell 2] done in ")
    assert lines[-4:-1] == ["[cell 3] start", "::metric gap=0.5", "42"]
    assert lines[-1].startswith("[cell 3] done in ")
    assert [(x.stream, x.level) for x in job.logs() if x.text == "warn"] == [("stderr", "ERROR")]
    assert [(p.name, p.value) for p in job.metric_points()] == [("gap", 0.5)]
    # Results offers the executed notebook and its HTML rendering as downloads.
    files = ResultsView(lite, start=False).files.value
    embedded = dict(re.findall(r"download='([^']+)' href='data:[^']*base64,([^']*)'", files))
    executed = nbformat.reads(base64.b64decode(embedded[EXECUTED_NAME]).decode(), as_version=4)
    assert executed.cells[-1].outputs[-1].data["text/plain"] == "42"
    page = base64.b64decode(embedded["executed.html"]).decode()
    assert page.lstrip().lower().startswith("<!doctype html") and "::metric gap=0.5" in page


def test_a_broken_executed_notebook_is_offered_without_a_rendering() -> None:
    assert notebook_html(b"{not json") is None


@pytest.mark.slow
def test_a_failing_cell_fails_the_job_naming_the_cell(lite: Sandbox) -> None:
    job = _run(lite, _notebook("x = 1", "raise ValueError('bad load')", "print('never')"))
    info = job.wait(timeout=120)
    assert (info.status, info.reason) == (JobStatus.FAILED, "cell 3 failed: ValueError: bad load")
    assert "never" not in texts(job)
    executed = nbformat.read(Path(info.result_dir) / EXECUTED_NAME, as_version=4)
    assert executed.cells[2].outputs[-1].output_type == "error"


@pytest.mark.slow
def test_a_hanging_notebook_times_out_and_leaves_no_process(lite: Sandbox) -> None:
    job = _run(lite, _notebook("import time\ntime.sleep(600)"), timeout=15)
    info = job.wait(timeout=60)
    assert info.status is JobStatus.TIMEOUT
    assert_no_process_left(job)


@pytest.mark.slow
def test_cancel_stops_the_kernel_and_a_setsid_grandchild(lite: Sandbox) -> None:
    source = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
        " start_new_session=True)\n"
        "print('grandchild', child.pid, flush=True)\n"
        "import time\ntime.sleep(600)"
    )
    job = _run(lite, _notebook(source))
    wait_for_line(job, "grandchild", timeout=60)
    job.cancel()
    info = job.wait(timeout=60)
    assert info.status is JobStatus.CANCELLED
    assert_no_process_left(job)
