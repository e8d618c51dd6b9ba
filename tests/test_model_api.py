"""``model_api.on_stop``: a model saves what it has when the sandbox stops it (issue 15).

Real processes and real signals: a script registers callbacks and is sent SIGTERM, with and
without the supervisor's note of why; then the same through the sandbox (timeout and cancel,
in the jail by default), where the job keeps its status and the result the callback wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox_kit import Job, JobStatus, Sandbox
from sandbox_kit.model_api import STOP_EXIT_STATUS, STOP_FILE
from tests.conftest import ROOT, cli, script

PROGRAM = """
import sys, threading, time
from sandbox_kit.model_api import on_stop, outcome

def first(reason):
    outcome("time_limit" if reason == "timeout" else "interrupted", objective=7.0,
            message=reason + " on " + threading.current_thread().name)

def broken(reason):
    raise RuntimeError("this callback fails")

def last(reason):
    print("last callback ran", flush=True)

on_stop(first)
if "broken" in sys.argv:
    on_stop(broken)
on_stop(last)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    (folder / "result").mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "SANDBOX_JOB_DIR": str(folder),
        "SANDBOX_RESULT_DIR": str(folder / "result"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def result(folder: Path) -> dict[str, object]:
    data = json.loads((folder / "result" / "result.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(("note", "reason", "kind"), [
    ("timeout\n", "timeout", "time_limit"),
    ("cancel\n", "cancel", "interrupted"),
    (None, "signal", "interrupted"),  # a SIGTERM the sandbox did not send
])  # fmt: skip
def test_sigterm_runs_the_callbacks_with_the_reason(
    tmp_path: Path, note: str | None, reason: str, kind: str
) -> None:
    proc = start(tmp_path)
    if note is not None:
        (tmp_path / STOP_FILE).write_text(note, encoding="utf-8")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == STOP_EXIT_STATUS == 143, err
    saved = result(tmp_path)
    assert saved["outcome"] == kind
    assert saved["objective"] == 7.0
    # The watcher thread ran it (woken through the signal wakeup fd), not the main thread.
    assert saved["message"] == f"{reason} on sandbox-on-stop"
    assert "last callback ran" in out


def test_a_failing_callback_is_reported_and_the_next_still_runs(tmp_path: Path) -> None:
    proc = start(tmp_path, "broken")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert "RuntimeError: this callback fails" in err
    assert "last callback ran" in out
    assert result(tmp_path)["outcome"] == "interrupted"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("on_stop(42)", "TypeError: on_stop() needs a callable, not int"),
        (
            "import threading\n"
            "t = threading.Thread(target=lambda: on_stop(print)); t.start(); t.join()",
            "ValueError: signal only works in main thread",
        ),
    ],
)
def test_on_stop_refuses_what_it_cannot_do(code: str, error: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"from sandbox_kit.model_api import on_stop\n{code}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert error in done.stderr


def started(job: Job) -> None:
    deadline = time.monotonic() + 60
    while not any(line.text == "ready" for line in job.logs()):
        assert time.monotonic() < deadline, [line.text for line in job.logs()]
        assert not job.refresh().status.terminal, job.info.reason
        time.sleep(0.05)


def test_a_timeout_keeps_its_status_and_the_best_result(lite: Sandbox, home: Path) -> None:
    job = lite.run(lite.upload(script("saves_on_stop.py"), "DMO").id, timeout=2)
    info = job.wait(timeout=60)
    assert info.status is JobStatus.TIMEOUT
    assert (info.outcome, info.objective, info.metrics) == (
        "time_limit",
        1234.5,
        {"mip_gap": 0.125},
    )
    assert info.best_found == "best found $1,234.50, gap 12.50 %"
    assert info.to_dict()["best_found"] == info.best_found
    saved = job.result()
    assert saved is not None and saved["message"] == "timeout on sandbox-on-stop"
    # The CLI says it too: in the job list and in its status.
    listed = cli("jobs", home=home)
    assert listed.returncode == 0, listed.stderr
    assert "best found $1,234.50, gap 12.50 %" in listed.stdout
    status = cli("status", job.id, "--json", home=home)
    assert json.loads(status.stdout)["best_found"] == info.best_found
    # And the Results tab, in its summary and in the run list.
    from sandbox_kit.widgets.results import ResultsView

    view = ResultsView(lite, start=False)
    assert view.job.value == job.id
    assert "best found $1,234.50, gap 12.50 %" in view.summary.value
    assert "time_limit" in view.summary.value
    assert any("best found $1,234.50" in label for label, _ in view.job.options)
    view.close()


def test_a_cancel_keeps_its_status_and_the_best_result(lite: Sandbox) -> None:
    job = lite.run(lite.upload(script("saves_on_stop.py"), "SO").id)
    started(job)
    lite.cancel(job.id)
    info = job.wait(timeout=60)
    assert info.status is JobStatus.CANCELLED
    assert (info.outcome, info.objective) == ("interrupted", 1234.5)
    assert info.best_found == "best found $1,234.50, gap 12.50 %"
    saved = job.result()
    assert saved is not None and saved["message"] == "cancel on sandbox-on-stop"
