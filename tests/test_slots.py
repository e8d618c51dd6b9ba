"""Thread- and licence-aware slots, through the sandbox (issue 15): the header a model declares,
the CPU slots and licence tokens its jobs hold, and the thread count its environment carries.

The jobs are real processes; a job waits on a gate file the test creates, so "B waits while A
runs" is checked without any timing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox_kit import Job, JobStatus, Sandbox, Settings
from sandbox_kit.errors import ValidationError
from sandbox_kit.supervisor import THREAD_VARIABLES
from tests.conftest import _stop_all, script

WAIT_S = 60


def model(folder: Path, header: str, name: str = "gated.py") -> Path:
    """The gated test model with ``header`` as its first line."""
    path = folder / name
    path.write_text(f"{header}\n" + script("gated_model.py").read_text(), encoding="utf-8")
    return path


def running(job: Job) -> None:
    """Wait until the job's model has printed its first line (it holds its slots then)."""
    deadline = time.monotonic() + WAIT_S
    while not any(line.text.startswith("started") for line in job.logs()):
        assert time.monotonic() < deadline, (job.status, [line.text for line in job.logs()])
        assert not job.refresh().status.terminal, job.info.reason
        time.sleep(0.05)


@pytest.fixture
def make(home: Path, settings: Settings) -> Iterator[list[Sandbox]]:
    """Sandboxes on one SQLite home, stopped at the end."""
    made: list[Sandbox] = []
    yield made
    for sb in made:
        _stop_all(sb)


def sandbox_with(made: list[Sandbox], home: Path, settings: Settings) -> Sandbox:
    sb = Sandbox(home=home, settings=settings)
    made.append(sb)
    return sb


def test_the_header_is_read_at_upload_and_kept_on_the_version(
    lite: Sandbox, tmp_path: Path
) -> None:
    m = lite.upload(model(tmp_path, "# sandbox: threads=4, tokens=gurobi"), "DMO")
    assert (m.threads, m.tokens) == (4, ("gurobi",))
    assert lite.model(m.id).to_dict()["threads"] == 4
    plain = lite.upload(script("env_dump.py"), "SO")
    assert (plain.threads, plain.tokens) == (1, ())


def test_a_bad_header_is_refused_with_its_line_and_column(lite: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("#!/usr/bin/env python\n# sandbox: threads=four\nprint(1)\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"bad.py, line 2, column 12: sandbox header"):
        lite.upload(path, "DMO")
    assert lite.models() == []  # nothing stored


def test_two_2_thread_jobs_on_2_slots_run_one_after_the_other(
    make: list[Sandbox], home: Path, settings: Settings, tmp_path: Path
) -> None:
    sb = sandbox_with(make, home, replace(settings, cpu_slots=2, isolation="off"))
    m = sb.upload(model(tmp_path, "# sandbox: threads=2"), "DMO")
    gate = tmp_path / "gate"
    first = sb.run(m.id, config={"gate": str(gate)})
    second = sb.run(m.id, config={"gate": str(gate)})
    running(first)
    assert second.refresh().status is JobStatus.QUEUED  # 2 of 2 CPU slots are taken
    gate.touch()
    a, b = first.wait(timeout=WAIT_S), second.wait(timeout=WAIT_S)
    assert a.status is b.status is JobStatus.SUCCESS, (a.reason, b.reason)
    assert b.started_at is not None and a.finished_at is not None
    assert b.started_at >= a.finished_at
    assert a.threads == b.threads == 2
    assert a.metrics["SANDBOX_THREADS"] == a.metrics["OMP_NUM_THREADS"] == 2


def test_one_licence_token_serialises_two_jobs_of_different_types(
    make: list[Sandbox], home: Path, settings: Settings, tmp_path: Path
) -> None:
    sb = sandbox_with(make, home, replace(settings, tokens={"gurobi": 1}, isolation="off"))
    header = "# sandbox: tokens=gurobi"
    day = sb.upload(model(tmp_path, header, "day.py"), "DMO")
    real = sb.upload(model(tmp_path, header, "real.py"), "RMO")
    other = sb.upload(model(tmp_path, "# sandbox: threads=1", "other.py"), "SO")
    gate = tmp_path / "gate"
    first = sb.run(day.id, config={"gate": str(gate)})
    second = sb.run(real.id, config={"gate": str(gate)})
    free = sb.run(other.id, config={"gate": str(gate)})
    running(first)
    running(free)  # no token needed: it is not held back by the job waiting for one
    assert second.refresh().status is JobStatus.QUEUED  # 4 CPU slots, but one gurobi token
    gate.touch()
    infos = [job.wait(timeout=WAIT_S) for job in (first, second, free)]
    assert all(i.status is JobStatus.SUCCESS for i in infos), [i.reason for i in infos]
    assert infos[1].started_at is not None and infos[0].finished_at is not None
    assert infos[1].started_at >= infos[0].finished_at
    assert infos[0].tokens == infos[1].tokens == ("gurobi",)


def test_the_environment_carries_the_threads_the_job_got(
    make: list[Sandbox], home: Path, settings: Settings, tmp_path: Path
) -> None:
    # Jailed (the default isolation): the variables reach the model inside the jail too.
    sb = sandbox_with(make, home, replace(settings, cpu_slots=3))
    wide = sb.upload(model(tmp_path, "# sandbox: threads=8"), "SO")
    info = sb.run(wide.id).wait(timeout=WAIT_S)  # no gate
    assert info.status is JobStatus.SUCCESS, info.reason
    assert info.threads == 3  # asked for 8, there are 3 slots: it got all 3
    assert info.metrics == {"OMP_NUM_THREADS": 3, "SANDBOX_THREADS": 3}

    env_job = sb.run(sb.upload(script("env_dump.py"), "DMO").id)
    assert env_job.wait(timeout=WAIT_S).status is JobStatus.SUCCESS
    text = "".join(line.text for line in env_job.logs())
    for name in THREAD_VARIABLES:
        assert f'"{name}": "1"' in text  # no header: one thread, and every library is told


def test_the_operator_overrides_the_threads_per_type(
    make: list[Sandbox], home: Path, settings: Settings, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    sb = sandbox_with(make, home, replace(settings, threads={"DMO": 1}, isolation="off"))
    m = sb.upload(model(tmp_path, "# sandbox: threads=2"), "DMO")
    info = sb.run(m.id, config={"gate": str(gate)}).wait(timeout=WAIT_S)
    assert info.status is JobStatus.SUCCESS, info.reason
    assert (info.threads, info.metrics["SANDBOX_THREADS"]) == (1, 1)


@pytest.mark.parametrize(
    ("env", "capacity", "pools", "threads"),
    [
        ({}, None, {}, {}),
        ({"SANDBOX_CPU_SLOTS": "6"}, 6, {}, {}),
        ({"SANDBOX_MAX_RUNNING": "5"}, 5, {}, {}),
        (
            {"SANDBOX_TOKENS_GUROBI": "2", "SANDBOX_THREADS_DMO": "4"},
            None,
            {"gurobi": 2},
            {"DMO": 4},
        ),
    ],
)
def test_slot_settings_from_the_environment(
    env: dict[str, str], capacity: int | None, pools: dict[str, int], threads: dict[str, int]
) -> None:
    got = Settings.from_env(env)
    assert got.slot_capacity == (capacity if capacity is not None else Settings().max_running)
    assert dict(got.tokens) == pools
    assert dict(got.threads) == threads
