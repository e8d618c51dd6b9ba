"""The runner end to end: real supervisors, real model subprocesses, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from sandbox_kit import Job, JobStatus, Limits, RunError, Sandbox, Settings, ValidationError
from sandbox_kit.db import JobRow
from sandbox_kit.supervisor import THREAD_VARIABLES
from tests.conftest import job_processes, script


def upload(sb: Sandbox, name: str, model_type: str = "DMO") -> int:
    return sb.upload(script(name), model_type, name=Path(name).stem).id


def run(sb: Sandbox, name: str, **kwargs: object) -> Job:
    return sb.run(upload(sb, name), **kwargs)  # type: ignore[arg-type]


def texts(job: Job) -> list[str]:
    return [line.text for line in job.logs()]


def assert_no_process_left(job: Job) -> None:
    deadline = time.monotonic() + 5
    while job_processes(job.id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job_processes(job.id) == []


def wait_for_line(job: Job, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in t for t in texts(job)):
        assert time.monotonic() < deadline, f"no line {text!r} in {texts(job)}"
        time.sleep(0.05)


# -- outcomes --------------------------------------------------------------------------------


def test_fast_exit_succeeds_with_its_lines_and_metadata(sandbox: Sandbox) -> None:
    job = run(sandbox, "fast_exit.py")
    info = job.wait(timeout=30)
    assert info.status is JobStatus.SUCCESS
    assert (info.exit_code, info.signal, info.reason) == (0, None, None)
    assert texts(job) == ["bye"]
    assert info.python_version == ".".join(map(str, sys.version_info[:3]))
    assert info.host and info.started_at and info.finished_at
    assert info.started_at <= info.finished_at
    assert info.model_version == 1 and len(info.model_sha256) == 64
    assert_no_process_left(job)


def test_job_id_has_the_contract_shape(lite: Sandbox) -> None:
    job = run(lite, "fast_exit.py")
    kind, millis, suffix = job.id.split("_")
    assert kind == "DMO" and abs(int(millis) / 1000 - time.time()) < 60
    assert len(suffix) == 6 and suffix.isalnum() and suffix.islower()
    job.wait(timeout=30)


def test_non_zero_exit_fails_with_the_exit_code(lite: Sandbox) -> None:
    job = run(lite, "exit_code.py")
    info = job.wait(timeout=30)
    assert (info.status, info.exit_code, info.reason) == (JobStatus.FAILED, 3, "exit code 3")


def test_traceback_lines_are_errors(lite: Sandbox) -> None:
    job = run(lite, "nonzero_exit.py")
    info = job.wait(timeout=30)
    assert info.status is JobStatus.FAILED and info.reason == "exit code 1"
    lines = job.logs()
    assert lines[0].level == "INFO"
    tb = [line for line in lines if line.stream == "stderr"]
    assert tb[0].text.startswith("Traceback") and tb[-2].text == "ValueError: model blew up"
    assert {line.level for line in tb} == {"ERROR"}
    assert "job failed: exit code 1" in tb[-1].text  # the sandbox's own closing note


def test_levels_follow_the_design_rules(lite: Sandbox) -> None:
    job = run(lite, "levels.py")
    job.wait(timeout=30)
    level = {line.text: line.level for line in job.logs()}
    assert level["plain stdout"] == "INFO"
    assert level["ERROR: explicit error on stdout"] == "ERROR"
    assert level["[WARNING] bracketed warning"] == "WARNING"
    assert level["DEBUG:root:debug via logging"] == "DEBUG"
    assert level["INFO:root:info via logging"] == "INFO"
    assert level["plain stderr"] == "ERROR"
    assert level["Traceback (most recent call last):"] == "ERROR"
    assert level["ZeroDivisionError: division by zero"] == "ERROR"
    assert level["after the traceback"] == "INFO"


# -- what a model sees -----------------------------------------------------------------------


def test_environment_is_exactly_the_contract(home: Path, settings: Settings) -> None:
    os.environ["SANDBOX_TEST_SECRET"] = "hunter2"
    os.environ["SANDBOX_TEST_ALLOWED"] = "yes"
    try:
        allowed = Settings(**{**_fields(settings), "env_allow": ("SANDBOX_TEST_ALLOWED",)})
        sb = Sandbox(home=home, settings=allowed)
        job = sb.run(upload(sb, "env_dump.py"), config={"a": 1}, data_source_id="external-7")
        job.wait(timeout=30)
    finally:
        del os.environ["SANDBOX_TEST_SECRET"], os.environ["SANDBOX_TEST_ALLOWED"]
    seen = json.loads(texts(job)[0])
    env = seen["env"]
    basics = {
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "PYTHONUNBUFFERED",
        "PYTHONIOENCODING",
        "PYTHONDONTWRITEBYTECODE",
        "LC_CTYPE",
        "PWD",  # set by bubblewrap's --chdir: the job folder again
        # The thread caps, set to the CPU slots the job got (issue 15).
        *THREAD_VARIABLES,
    }
    contract = {
        "JOB_ID",
        "MODEL_TYPE",
        "CONFIG",
        "DATA_SOURCE_ID",
        "SANDBOX_JOB_DIR",
        "SANDBOX_RESULT_DIR",
    }
    assert set(env) - basics == contract | {"SANDBOX_TEST_ALLOWED"}
    assert "SANDBOX_TEST_SECRET" not in env and "SANDBOX_DB_URL" not in env
    assert env.get("PWD", env["SANDBOX_JOB_DIR"]) == env["SANDBOX_JOB_DIR"]
    # The allow-listed value reached the model but was never stored in the registry (issue 8).
    assert "yes" not in _row(sb, job.id).spec
    assert not sb.paths.secrets(job.id).exists()
    assert env["JOB_ID"] == job.id and env["MODEL_TYPE"] == "DMO"
    assert json.loads(env["CONFIG"]) == {"a": 1} and env["DATA_SOURCE_ID"] == "external-7"
    assert env["PYTHONUNBUFFERED"] == "1" and env["TZ"] == "UTC"
    assert seen["cwd"] == env["SANDBOX_JOB_DIR"] == str(home / "jobs" / job.id)
    assert env["SANDBOX_RESULT_DIR"] == job.info.result_dir


def test_stdin_is_empty(lite: Sandbox) -> None:
    job = run(lite, "stdin_reader.py")
    assert job.wait(timeout=30).status is JobStatus.SUCCESS
    assert texts(job) == ["stdin gave 0 bytes"]


def test_missing_interpreter_fails_at_once_naming_the_path(home: Path, settings: Settings) -> None:
    odd = Settings(**{**_fields(settings), "interpreters": {"DMO": "/nonexistent/python3"}})
    sb = Sandbox(home=home, settings=odd)
    info = run(sb, "fast_exit.py").wait(timeout=30)
    assert info.status is JobStatus.FAILED
    assert info.reason is not None and "/nonexistent/python3" in info.reason


def test_result_is_recorded_and_feeds_a_later_run(lite: Sandbox) -> None:
    first = run(lite, "result_writer.py")
    first_info = first.wait(timeout=30)
    assert (first_info.outcome, first_info.objective) == ("optimal", 1.5)
    assert first_info.metrics == {"gap": 0.0, "nodes": 3.0}
    assert first.result() == {
        "outcome": "optimal",
        "objective": 1.5,
        "metrics": {"gap": 0.0, "nodes": 3},
        "message": "ok",
    }
    second = lite.run("DMO", config={"objective": 2}, data_source_id=first.id)
    second.wait(timeout=30)
    lines = texts(second)
    assert lines[0] == f"source dir: {first_info.result_dir}"
    assert '"objective": 1.5' in lines[1]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"when": {1, 2}}, "not JSON-serialisable"),
        ({"x": float("nan")}, "not JSON-serialisable"),
    ],
)
def test_bad_config_is_refused_and_nothing_is_queued(
    lite: Sandbox, config: object, message: str
) -> None:
    model_id = upload(lite, "fast_exit.py")
    with pytest.raises(ValidationError, match=message):
        lite.run(model_id, config=config)  # type: ignore[arg-type]
    assert lite.jobs() == []


def test_run_by_type_needs_an_active_model(lite: Sandbox) -> None:
    with pytest.raises(RunError, match="no active SO model"):
        lite.run("SO")


# -- logs ------------------------------------------------------------------------------------


def test_flood_keeps_every_line_in_order(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "flood.py"), config={"lines": 100_000})
    assert job.wait(timeout=120).status is JobStatus.SUCCESS
    lines = job.logs()
    assert len(lines) == 100_000
    assert [line.seq for line in lines] == list(range(1, 100_001))
    assert lines[0].text == "line 0" and lines[-1].text == "line 99999"


def test_final_line_without_newline_is_kept(lite: Sandbox) -> None:
    job = run(lite, "no_newline.py")
    job.wait(timeout=30)
    assert texts(job) == ["first line", "last words without newline"]
    assert job.raw_log() == b"first line\nlast words without newline"


def test_invalid_utf8_is_replaced_in_view_and_kept_in_the_file(lite: Sandbox) -> None:
    job = run(lite, "invalid_utf8.py")
    job.wait(timeout=30)
    assert texts(job) == ["caf\ufffd \ufffd\ufffd ok", "fine é"]
    assert job.raw_log() == b"caf\xe9 \xff\xfe ok\nfine \xc3\xa9\n"


def test_carriage_return_progress_collapses_to_one_line(lite: Sandbox) -> None:
    job = run(lite, "progress.py")
    events = list(job.follow())
    assert texts(job) == ["start", "progress 100%", "done"]
    shown = [e.progress.text for e in events if e.progress is not None]
    assert shown and set(shown) <= {f"progress {p}%" for p in range(0, 101, 20)}
    assert b"\rprogress 20%\rprogress 40%" in job.raw_log()


def test_long_lines_are_split_into_chunks_not_truncated(lite: Sandbox) -> None:
    job = run(lite, "long_line.py")
    job.wait(timeout=30)
    lines = texts(job)
    assert all(len(t.encode()) <= 64 * 1024 for t in lines)
    assert "".join(lines) == "x" * 200_000 + "é" * 40_000
    assert "\ufffd" not in "".join(lines)  # chunks are cut between characters


def test_output_of_native_code_on_the_raw_descriptors_is_kept(lite: Sandbox) -> None:
    job = run(lite, "native_fd.py")
    job.wait(timeout=30)
    by_stream = {line.stream: line.text for line in job.logs()}
    assert by_stream == {"stdout": "native stdout line", "stderr": "native stderr line"}


def test_interleaved_streams_keep_their_order_and_tags(lite: Sandbox) -> None:
    job = run(lite, "interleaved.py")
    job.wait(timeout=30)
    lines = job.logs()
    assert [x.text for x in lines if x.stream == "stdout"] == [f"out {i}" for i in range(50)]
    assert [x.text for x in lines if x.stream == "stderr"] == [f"err {i}" for i in range(50)]


def test_log_cap_drains_output_and_marks_the_job_truncated(home: Path, settings: Settings) -> None:
    capped = Settings(**{**_fields(settings), "log_cap_bytes": 200_000})
    sb = Sandbox(home=home, settings=capped)
    job = sb.run(upload(sb, "flood.py"), config={"lines": 200_000})
    info = job.wait(timeout=120)
    assert info.status is JobStatus.SUCCESS and info.truncated
    assert Path(info.log_path).stat().st_size < 200_000 + 1_000
    assert any("log truncated" in t for t in texts(job))


# -- following -------------------------------------------------------------------------------


def test_follow_yields_started_lines_and_completed_once_in_order(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "slow_lines.py"), config={"lines": 10, "every": 0.05})
    events = list(job.follow())
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "completed"
    assert [e.line.text for e in events if e.line] == [f"tick {i}" for i in range(10)]


def test_follow_since_resumes_without_gap_or_duplicate(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "slow_lines.py"), config={"lines": 30, "every": 0.02})
    wait_for_line(job, "tick 5")
    first = [line.seq for line in job.logs()]
    rest = [e.line.seq for e in job.follow(since=first[-1]) if e.line]
    assert first + rest == list(range(1, 31))


def test_a_follower_in_another_process_sees_every_line(lite: Sandbox, home: Path) -> None:
    from tests.conftest import cli

    job = lite.run(upload(lite, "slow_lines.py"), config={"lines": 20, "every": 0.05})
    out = cli("logs", job.id, "--follow", "--json", home=home)
    assert out.returncode == 0, out.stderr
    seqs = [json.loads(line)["seq"] for line in out.stdout.splitlines()]
    assert seqs == list(range(1, 21))


# -- stopping --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hang.py", "ignore_sigterm.py"])
def test_cancel_kills_the_model(lite: Sandbox, name: str) -> None:
    job = run(lite, name)
    wait_for_line(job, "ing")  # "hanging" / "ignoring SIGTERM"
    info = job.cancel()
    info = job.wait(timeout=30)
    assert (info.status, info.reason) == (JobStatus.CANCELLED, "killed by cancel")
    assert_no_process_left(job)


@pytest.mark.parametrize("model_exits", [False, True])
def test_setsid_grandchild_is_killed_too(lite: Sandbox, model_exits: bool) -> None:
    model_id = upload(lite, "setsid_grandchild.py")
    job = lite.run(model_id, config={"exit": True} if model_exits else {})
    wait_for_line(job, "grandchild")
    grandchild = int(texts(job)[0].split()[1])
    if not model_exits:
        job.cancel()
    info = job.wait(timeout=30)
    assert info.status is (JobStatus.SUCCESS if model_exits else JobStatus.CANCELLED)
    assert_no_process_left(job)  # found by JOB_ID in the environment, jailed or not
    if info.isolation == "none":  # in a pid namespace the printed pid means another process
        assert not psutil.pid_exists(grandchild) or (
            psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
        )


def test_wall_clock_timeout(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "hang.py"), timeout=1)
    info = job.wait(timeout=30)
    assert (info.status, info.reason) == (JobStatus.TIMEOUT, "wall-clock timeout after 1 s")
    assert_no_process_left(job)


def test_cancelling_a_finished_job_changes_nothing(lite: Sandbox) -> None:
    job = run(lite, "fast_exit.py")
    before = job.wait(timeout=30)
    after = job.cancel()
    assert after == before


@pytest.mark.parametrize(
    ("name", "limits", "reason"),
    [
        ("memory_hog.py", Limits(memory_bytes=300 * 1024**2), "memory limit (300 MiB)"),
        ("cpu_burner.py", Limits(cpu_seconds=1), "CPU time limit (1 s)"),
        ("file_hog.py", Limits(file_bytes=5 * 1024**2), "file size limit (5242880 bytes)"),
        ("fd_hog.py", Limits(open_files=64), "open files limit (64)"),
    ],
)
def test_resource_limits_stop_the_job_and_say_which(
    home: Path, settings: Settings, name: str, limits: Limits, reason: str
) -> None:
    sb = Sandbox(home=home, settings=Settings(**{**_fields(settings), "limits": limits}))
    job = run(sb, name)
    info = job.wait(timeout=60)
    assert info.status is JobStatus.FAILED
    assert info.reason == reason
    assert_no_process_left(job)


def test_a_lower_inherited_limit_wins(home: Path) -> None:
    # The sandbox itself runs under `prlimit --nofile=200`; the default (1024) must not raise it.
    model = Sandbox(home=home).upload(script("print_limits.py"), "DMO")
    code = (
        "from sandbox_kit import Sandbox;"
        f"j = Sandbox(home={str(home)!r}).run({model.id}); j.wait(60);"
        "print(j.logs()[0].text)"
    )
    out = subprocess.run(
        ["prlimit", "--nofile=200", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    assert out.stdout.strip() == "nofile 200 200"


# -- outliving the starter, and losing a supervisor ------------------------------------------


def test_job_finishes_after_its_starter_is_killed(lite: Sandbox, home: Path) -> None:
    model_id = upload(lite, "slow_lines.py")
    code = (
        "import sys, time; from sandbox_kit import Sandbox;"
        f"j = Sandbox(home={str(home)!r}).run({model_id}, config={{'lines': 15, 'every': 0.1}});"
        "print(j.id, flush=True); time.sleep(60)"
    )
    starter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    job_id = starter.stdout.readline().strip()
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    starter.stdout.close()
    info = lite.job(job_id).wait(timeout=60)
    assert info.status is JobStatus.SUCCESS
    assert len(lite.job(job_id).logs()) == 15


def test_a_dead_supervisor_makes_the_job_lost(lite: Sandbox) -> None:
    job = run(lite, "hang.py")
    wait_for_line(job, "hanging")
    deadline = time.monotonic() + 10
    while _supervisor_pid(lite, job.id) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    supervisor = psutil.Process(_supervisor_pid(lite, job.id) or 0)
    supervisor.kill()
    supervisor.wait(timeout=10)
    assert lite.reconcile() == []  # heartbeat still fresh: not judged yet
    later = datetime.now(UTC) + timedelta(seconds=lite.settings.lost_after_s + 1)
    assert lite.reconcile(now=later) == [job.id]
    info = job.refresh().info
    assert info.status is JobStatus.LOST
    assert info.reason is not None and info.reason.startswith("supervisor lost")
    assert_no_process_left(job)


def test_a_live_job_is_never_marked_lost(lite: Sandbox) -> None:
    job = lite.run(upload(lite, "slow_lines.py"), config={"lines": 40, "every": 0.1})
    wait_for_line(job, "tick 1")
    much_later = datetime.now(UTC) + timedelta(hours=1)  # every heartbeat looks stale
    assert lite.reconcile(now=much_later) == []
    assert job.wait(timeout=30).status is JobStatus.SUCCESS


# -- queue -----------------------------------------------------------------------------------


def test_queue_holds_the_global_limit_and_starts_fifo(home: Path, settings: Settings) -> None:
    sb = Sandbox(home=home, settings=Settings(**{**_fields(settings), "max_running": 2}))
    model_id = upload(sb, "slow_lines.py")
    jobs = [sb.run(model_id, config={"lines": 3, "every": 0.1}) for _ in range(6)]
    peak = 0
    while not all(j.refresh().status.terminal for j in jobs):
        peak = max(peak, len(sb.jobs(status="running")))
        time.sleep(0.02)
    assert peak == 2
    infos = [j.info for j in jobs]
    assert all(i.status is JobStatus.SUCCESS for i in infos)
    # FIFO: slots are claimed in the order the jobs were queued.
    claims = [_row(sb, i.id).claimed_at for i in infos]
    assert claims == sorted(claims)  # type: ignore[type-var]


def test_a_full_type_does_not_block_other_types(home: Path, settings: Settings) -> None:
    per_type = Settings(**{**_fields(settings), "max_running_per_type": {"DMO": 1}})
    sb = Sandbox(home=home, settings=per_type)
    dmo = upload(sb, "hang.py", "DMO")
    so = upload(sb, "fast_exit.py", "SO")
    first, second = sb.run(dmo), sb.run(dmo)
    other = sb.run(so)
    assert other.wait(timeout=30).status is JobStatus.SUCCESS
    assert second.refresh().status is JobStatus.QUEUED
    second.cancel()
    info = second.wait(timeout=10)
    assert info.status is JobStatus.CANCELLED and info.started_at is None
    first.cancel()
    first.wait(timeout=30)


def _row(sb: Sandbox, job_id: str) -> JobRow:
    with sb.db.read() as s:
        row = s.get(JobRow, job_id)
        assert row is not None
        return row


def _supervisor_pid(sb: Sandbox, job_id: str) -> int | None:
    return _row(sb, job_id).supervisor_pid


def _fields(settings: Settings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}
