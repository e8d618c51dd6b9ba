"""The ``%%sandbox`` cell magic (issue 14), in a real IPython shell, with real jobs.

The cell's code runs as a supervised, isolated job, never in the shell: each test checks
that through the job's log and the shell's namespace, and that nothing of a rejected cell
is stored.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from sqlalchemy import func, select

from sandbox_kit import ConflictError, Job, JobStatus, NotFoundError, Sandbox, ValidationError
from sandbox_kit.db import ModelRow
from sandbox_kit.magic import CellJob, SandboxMagics
from sandbox_kit.widgets import ControlPanel, JobsView, ModelsView
from sandbox_kit.widgets.job_card import JobCard
from tests.conftest import cli
from tests.test_runner import assert_no_process_left, texts, wait_for_line


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    """One real IPython shell with the extension loaded (IPython keeps one per process)."""
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "sandbox_kit")
    yield ip
    magics = ip.magics_manager.registry["SandboxMagics"]
    assert isinstance(magics, SandboxMagics)
    magics.close()


def run_cell(shell: InteractiveShell, home: Path, line: str, body: str) -> Any:
    """Run ``%%sandbox <line> --home <home>`` with ``body``; returns ``_`` (or raises)."""
    shell.user_ns.pop("_", None)
    result = shell.run_cell(f"%%sandbox {line} --home '{home}'\n{body}", store_history=True)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    assert result.error_before_exec is None
    return shell.user_ns["_"]


def settle(card: JobCard) -> None:
    """Let the card read the finished job's last lines (each call reads a bounded chunk)."""
    for _ in range(100):
        if card.done:
            return
        card.pump.run_once()
    raise AssertionError("the card never saw the end of the job")


def stored_models(sb: Sandbox) -> int:
    """Every model row, scratch versions included."""
    with sb.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(ModelRow)) or 0)


def test_run_code_stores_one_hidden_scratch_version_per_code(sandbox: Sandbox) -> None:
    first = sandbox.run_code("print('scratch')\n", "SO")
    second = sandbox.run_code("print('scratch')\n", "so")
    assert first.info.model_id == second.info.model_id
    for job in (first, second):
        assert job.wait(timeout=60).status is JobStatus.SUCCESS, job.info.reason
    model = sandbox.model(first.info.model_id or 0)
    assert (model.name, model.scratch, model.active, model.original_filename) == (
        "%%sandbox",
        True,
        False,
        "cell.py",
    )
    assert sandbox.models() == [] and sandbox.models("SO") == []
    assert sandbox.models(status="inactive") == [] and sandbox.active_model("SO") is None
    with pytest.raises(ConflictError, match="cannot be active"):
        sandbox.activate(model.id)
    again, stored = sandbox.audit(action="upload")  # newest first
    assert stored.details["scratch"] is True and again.details["existing"] is True
    assert stored.object_id == again.object_id == str(model.id)


def test_run_code_refuses_bad_code_and_stores_nothing(sandbox: Sandbox) -> None:
    with pytest.raises(ValidationError) as caught:
        sandbox.run_code("def f(:\n    pass\n", "DMO")
    assert (caught.value.filename, caught.value.line) == ("cell.py", 1)
    with pytest.raises(NotFoundError, match="no data set"):
        sandbox.run_code("x = 1\n", "DMO", data_source_id="data:nope")
    with pytest.raises(ValidationError, match="unknown model type"):
        sandbox.run_code("x = 1\n", "XYZ")
    with pytest.raises(ValidationError, match="config must be a JSON object"):
        sandbox.run_code("x = 1\n", "DMO", config=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="timeout must be a positive number"):
        sandbox.run_code("x = 1\n", "DMO", timeout=0)
    assert stored_models(sandbox) == 0 and sandbox.jobs() == [] and sandbox.audit() == []


CELL = """\
import json, os
from sandbox_kit.model_api import outcome
config = json.loads(os.environ["CONFIG"])
print("pid", os.getpid(), "job", os.environ["JOB_ID"], "scale", config["load_scale"])
leaked = 42
outcome("optimal", objective=1234.5)
"""


@pytest.mark.slow
def test_a_cell_runs_in_the_sandbox_and_its_job_lands_in_underscore(
    shell: InteractiveShell, home: Path, lite: Sandbox
) -> None:
    job = run_cell(shell, home, """DMO --config '{"load_scale": 1.1}'""", CELL)
    assert isinstance(job, CellJob) and isinstance(job, Job)
    info = job.wait(timeout=60)
    assert info.status is JobStatus.SUCCESS, (info.reason, texts(job))
    (line,) = texts(job)
    assert line.startswith("pid ") and f"job {job.id} scale 1.1" in line
    assert int(line.split()[1]) != os.getpid()  # another process...
    assert "leaked" not in shell.user_ns  # ...and nothing ran in the shell
    assert (info.outcome, info.objective) == ("optimal", 1234.5)
    assert info.isolation is not None and info.model_name == "%%sandbox"
    # The card shows the log line and, at the end, status, outcome and objective.
    settle(job.card)
    assert html.escape(line) in job.card.view.value
    summary = job.card.summary.value
    assert "success" in summary and "optimal" in summary and "1,234.50" in summary
    assert job.card.cancel_button.layout.display == "none"  # nothing left to cancel
    # A throw-away model: in no list, not active; its job is listed, named %%sandbox.
    assert lite.models() == [] and lite.active_model("DMO") is None
    assert [j.model_name for j in lite.jobs()] == ["%%sandbox"]
    jobs = JobsView(lite, start=False)
    assert "%%sandbox v1" in jobs.table.rows[0].cells.value
    jobs.close()


@pytest.mark.slow
def test_identical_cells_share_one_scratch_version(
    shell: InteractiveShell, home: Path, lite: Sandbox
) -> None:
    first = run_cell(shell, home, "RMO", "print('same')")
    second = run_cell(shell, home, "RMO", "print('same')")
    other = run_cell(shell, home, "RMO", "print('other')")
    for job in (first, second, other):
        assert job.wait(timeout=60).status is JobStatus.SUCCESS
    assert first.info.model_id == second.info.model_id != other.info.model_id
    assert (first.info.model_version, other.info.model_version) == (1, 2)
    assert stored_models(lite) == 2 and lite.models() == []


@pytest.mark.slow
def test_scratch_versions_are_in_no_model_list_and_never_active(
    shell: InteractiveShell, home: Path, lite: Sandbox
) -> None:
    uploaded = lite.upload(b"print('registered')\n", "SO", filename="so.py")
    job = run_cell(shell, home, "SO", "print('scratch')")
    assert job.wait(timeout=60).status is JobStatus.SUCCESS
    scratch = lite.model(job.info.model_id)
    assert scratch.scratch and not scratch.active and scratch.to_dict()["scratch"] is True
    assert [m.id for m in lite.models()] == [uploaded.id]
    with pytest.raises(ConflictError, match="%%sandbox --save NAME"):
        lite.activate(scratch.id)
    assert lite.active_model("SO") == lite.model(uploaded.id)
    listed = cli("models", "--json", home=home, env={"SANDBOX_DB_URL": ""})
    assert listed.returncode == 0 and '"scratch": false' in listed.stdout
    assert "%%sandbox" not in listed.stdout
    models_view = ModelsView(lite, start=False)
    shown = [r.model.id for r in models_view.table.rows if r.model is not None]
    assert shown == [uploaded.id]
    control = ControlPanel(lite, start=False)
    assert "so v1" in control.rows[uploaded.model_type].model.value
    jobs_view = JobsView(lite, start=False)
    assert [label for label, _ in jobs_view.model_filter.options] == ["All models", "SO so v1"]
    for view in (models_view, control, jobs_view):
        view.close()
    # latest:SO takes the registered model's run, never the newer scratch one.
    registered = lite.run(uploaded.id)
    assert registered.wait(timeout=60).status is JobStatus.SUCCESS
    newer = run_cell(shell, home, "SO", "print('scratch again')")
    assert newer.wait(timeout=60).status is JobStatus.SUCCESS
    picked = lite.run(uploaded.id, data_source_id="latest:SO")
    assert picked.info.data_source == f"job:{registered.id}"
    picked.wait(timeout=60)


@pytest.mark.slow
def test_a_failing_cell_fails_its_job_with_the_reason(
    shell: InteractiveShell, home: Path, lite: Sandbox
) -> None:
    job = run_cell(shell, home, "DMO", "print('before')\nraise ValueError('bad load')\n")
    info = job.wait(timeout=60)
    assert info.status is JobStatus.FAILED and info.reason
    assert "ValueError: bad load" in texts(job)
    settle(job.card)
    assert "failed" in job.card.summary.value
    assert html.escape(info.reason) in job.card.summary.value
    assert "ValueError: bad load" in job.card.view.value


@pytest.mark.slow
def test_cancel_from_the_card_stops_the_job_and_its_tree(
    shell: InteractiveShell, home: Path, lite: Sandbox
) -> None:
    body = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
        " start_new_session=True)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    job = run_cell(shell, home, "DMO --timeout 300", body)
    wait_for_line(job, "ready", timeout=60)
    job.card.cancel_button.click()
    assert job.card.cancel_button.disabled  # no second cancel while it stops
    info = job.wait(timeout=60)
    assert info.status is JobStatus.CANCELLED
    assert_no_process_left(job)
    settle(job.card)
    assert "cancelled" in job.card.summary.value
    assert job.card.cancel_button.layout.display == "none"


@pytest.mark.slow
def test_save_stores_an_inactive_version_and_runs_it(
    shell: InteractiveShell, home: Path, lite: Sandbox
) -> None:
    active = lite.upload(b"print('baseline')\n", "DMO", filename="dmo.py")
    job = run_cell(shell, home, "DMO --save 'my model'", "print('saved and run')\n")
    assert job.wait(timeout=60).status is JobStatus.SUCCESS
    assert texts(job) == ["saved and run"]
    saved = lite.model(job.info.model_id)
    assert (saved.name, saved.version, saved.active, saved.scratch) == ("my model", 1, False, False)
    assert saved.description == "saved from a %%sandbox cell"
    assert [m.id for m in lite.models()] == [active.id, saved.id]
    assert lite.active_model("DMO") == lite.model(active.id)  # still the baseline
    note = job.card.message.value
    assert "Saved as my model v1" in note and f"sandbox-kit activate {saved.id}" in note
    assert "inactive" in note


@pytest.mark.parametrize(
    ("line", "body", "message"),
    [
        ("XYZ", "print(1)", "%%sandbox: unknown model type 'XYZ'; expected one of DMO, RMO, SO"),
        (
            "DMO --config '{bad'",
            "print(1)",
            "%%sandbox: --config, line 1, column 2: invalid JSON: Expecting property name "
            "enclosed in double quotes",
        ),
        ("DMO --config '[1]'", "print(1)", '--config: config must be a JSON object, like {"'),
        ("DMO", "\n   \n", "%%sandbox: the cell is empty; write the model's code under it"),
        (
            "DMO",
            "x = 1\ny = (1,\n",
            "%%sandbox: nothing was run: cell line 3, column 5: '(' was never closed",
        ),
        ("DMO", "# sandbox: threads=0\nx = 1\n", "cell line 2, column 12: sandbox header: threads"),
        ("DMO --timeout -1", "x = 1", "--timeout must be a positive number of seconds, not -1"),
        ("DMO --timeout soon", "x = 1", "argument --timeout: invalid float value: 'soon'"),
        ("DMO --fast", "x = 1", "%%sandbox: unrecognized arguments: --fast; usage: %%sandbox"),
        ("DMO --config '{", "x = 1", "%%sandbox: No closing quotation"),
        ("DMO --data-source data:nope", "x = 1", "%%sandbox: no data set with id nope"),
        ("DMO --save keep --data-source data:nope", "x = 1", "no data set with id nope"),
        ("DMO --save keep", "x = (", "%%sandbox: nothing was run: cell line 2, column 5: '('"),
    ],
)
def test_bad_input_is_a_usage_error_and_stores_nothing(
    shell: InteractiveShell, home: Path, lite: Sandbox, line: str, body: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        run_cell(shell, home, line, body)
    assert message in str(caught.value)
    assert stored_models(lite) == 0 and lite.jobs() == []


def test_a_missing_type_and_a_missing_home_are_usage_errors(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    result = shell.run_cell("%%sandbox\nx = 1\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert "required: TYPE" in str(result.error_in_exec)
    with pytest.raises(UsageError, match="no such folder"):
        run_cell(shell, tmp_path / "nowhere", "DMO", "x = 1")
    assert not (tmp_path / "nowhere").exists()
