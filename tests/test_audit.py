"""Tests for the audit trail: who did what, append-only, in the same transaction as the change.

Registry and lifecycle tests run on SQLite and on PostgreSQL (``db_url``); the CLI tests run
the real ``sandbox-kit`` command.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from sandbox_kit import ConflictError, Job, Sandbox, Settings, ValidationError
from sandbox_kit.audit import os_user, parse_since, resolve_actor
from tests.conftest import cli, script

SOURCE_A = b'"""Model A."""\nprint("a")\n'
SOURCE_B = b'"""Model B."""\nprint("b")\n'
NO_DB = {"SANDBOX_DB_URL": "", "JUPYTERHUB_USER": ""}


@pytest.fixture
def alice(home: Path, db_url: str, settings: Settings) -> Iterator[Sandbox]:
    """A sandbox whose actions are alice's, on each database."""
    sb = Sandbox(home=home, db_url=db_url, settings=settings, actor="alice")
    yield sb
    for info in sb.jobs(limit=1000):
        if not info.status.terminal:
            sb.cancel(info.id)
            sb.job(info.id).wait(timeout=30)
    sb.close()


def _trail(sb: Sandbox) -> list[tuple[str, str, str, str]]:
    """(actor, action, object type, object id), oldest first."""
    return [(e.actor, e.action, e.object_type, e.object_id) for e in reversed(sb.audit())]


def _started(job: Job, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while job.refresh().info.started_at is None:
        assert job.status.value in ("queued", "running"), job.info
        assert time.monotonic() < deadline, f"job {job.id} did not start"
        time.sleep(0.05)


# --- what is recorded -----------------------------------------------------------------------


def test_every_action_is_recorded_with_its_actor(alice: Sandbox) -> None:
    a = alice.upload(SOURCE_A, "DMO", name="m")
    b = alice.upload(SOURCE_B, "DMO", name="m", activate=False)
    alice.activate(b.id)
    alice.archive(a.id)
    alice.restore(a.id)
    done = alice.run("DMO").wait(timeout=60)
    hang = alice.upload(script("hang.py").read_bytes(), "RMO", name="hang")
    job = alice.run("RMO")
    _started(job)
    alice.cancel(job.id)
    assert job.wait(timeout=60).status.value == "cancelled"
    alice.delete(a.id)

    assert _trail(alice) == [
        ("alice", "upload", "model", str(a.id)),
        ("alice", "activate", "model", str(a.id)),
        ("alice", "upload", "model", str(b.id)),
        ("alice", "activate", "model", str(b.id)),
        ("alice", "archive", "model", str(a.id)),
        ("alice", "restore", "model", str(a.id)),
        ("alice", "run", "job", done.id),
        ("alice", "upload", "model", str(hang.id)),
        ("alice", "activate", "model", str(hang.id)),
        ("alice", "run", "job", job.id),
        ("alice", "cancel", "job", job.id),
        ("alice", "delete", "model", str(a.id)),
    ]
    assert alice.model(b.id).created_by == "alice"
    assert alice.job_info(done.id).started_by == "alice"
    assert alice.model(b.id).to_dict()["created_by"] == "alice"
    assert alice.job_info(done.id).to_dict()["started_by"] == "alice"


def test_entries_identify_the_version_and_the_run(alice: Sandbox) -> None:
    first = alice.upload(SOURCE_A, "DMO", name="m")
    second = alice.upload(SOURCE_B, "DMO", name="m")
    job = alice.run("DMO", config={"load_scale": 1.1})
    job.wait(timeout=60)

    (run,) = alice.audit(action="run")
    assert run.details == {
        "model_id": second.id,
        "model_type": "DMO",
        "model_name": "m",
        "model_version": 2,
        "model_sha256": second.sha256,
        "config": {"load_scale": 1.1},
    }
    activations = alice.audit(action="activate")
    assert [e.details["previous"] for e in activations] == [first.id, None]
    deleted = alice.delete(first.id)
    (gone,) = alice.audit(action="delete")
    assert gone.details["sha256"] == deleted.sha256
    assert (gone.details["name"], gone.details["version"]) == ("m", 1)


def test_no_change_no_entry(alice: Sandbox) -> None:
    model = alice.upload(SOURCE_A, "SO")
    before = len(alice.audit())
    alice.activate(model.id)  # already active
    alice.restore(model.id)  # not archived
    job = alice.run("SO")
    job.wait(timeout=60)
    alice.cancel(job.id)  # already ended
    after = alice.audit()
    assert [e.action for e in after[: len(after) - before]] == ["run"]


def test_a_refused_action_records_nothing(alice: Sandbox) -> None:
    model = alice.upload(script("hang.py").read_bytes(), "DMO", name="hang")
    job = alice.run("DMO")
    _started(job)
    before = alice.audit()

    with pytest.raises(ConflictError):
        alice.delete(model.id)  # a job is running: refused, rolled back with its entry
    with pytest.raises(ValidationError):
        alice.upload(b"def broken(:\n", "DMO")
    alice.archive(model.id)
    with pytest.raises(ConflictError):
        alice.activate(model.id)  # archived

    assert [e.action for e in alice.audit()] == ["archive"] + [e.action for e in before]


def test_the_trail_is_append_only_in_the_database(alice: Sandbox) -> None:
    alice.upload(SOURCE_A, "DMO")
    for statement in ("UPDATE audit SET actor = 'mallory'", "DELETE FROM audit"):
        with pytest.raises(DBAPIError, match="append-only"), alice.db.engine.begin() as conn:
            conn.execute(text(statement))
    assert {e.actor for e in alice.audit()} == {"alice"}


def test_filters_and_limit(alice: Sandbox, home: Path, db_url: str, settings: Settings) -> None:
    alice.upload(SOURCE_A, "DMO")
    bob = Sandbox(home=home, db_url=db_url, settings=settings, actor="bob")
    model = bob.upload(SOURCE_B, "RMO")
    bob.archive(model.id)
    bob.close()

    assert {e.actor for e in alice.audit(actor="bob")} == {"bob"}
    assert [e.action for e in alice.audit(actor="bob", action="archive")] == ["archive"]
    assert len(alice.audit(object_id=model.id)) == 3
    assert len(alice.audit(limit=2)) == 2
    assert alice.audit(since=datetime.now(UTC) + timedelta(hours=1)) == []
    assert len(alice.audit(since=datetime.now(UTC) - timedelta(hours=1))) == 5
    with pytest.raises(ValidationError):
        alice.audit(limit=0)


def test_other_features_record_through_the_facade(alice: Sandbox) -> None:
    alice.record_action("schedule_update", "schedule", "nightly-dmo", {"cron": "0 2 * * *"})
    (entry,) = alice.audit()
    assert (entry.actor, entry.action, entry.object_type, entry.object_id) == (
        "alice",
        "schedule_update",
        "schedule",
        "nightly-dmo",
    )
    assert entry.details == {"cron": "0 2 * * *"}
    with pytest.raises(ValueError, match="lowercase"):
        alice.record_action("Drop Table", "schedule", "x")


# --- who the actor is -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "env", "server_user", "expected"),
    [
        ("cron-nightly", {"JUPYTERHUB_USER": "carol"}, None, "cron-nightly"),
        (None, {"JUPYTERHUB_USER": "carol"}, "dave", "carol"),
        (None, {}, SimpleNamespace(username="dave", name="Dave D"), "dave"),
        (None, {}, SimpleNamespace(username="f00d", name="Anonymous Io"), os_user()),
        (None, {}, None, os_user()),
        (None, {"JUPYTERHUB_USER": "  "}, None, os_user()),
        (" eve\n\x1b[31m ", {}, None, "eve [31m"),
    ],
)
def test_actor_resolution(
    label: str | None, env: dict[str, str], server_user: object, expected: str
) -> None:
    assert resolve_actor(label, server_user=server_user, environ=env) == expected


def test_a_view_acting_for_a_server_user_records_that_user(alice: Sandbox) -> None:
    # The HTTP API records each request's actions under its Jupyter Server user (issue 16).
    bob = alice.acting_as(server_user=SimpleNamespace(username="bob", name="Bob B"))
    model = bob.upload(SOURCE_A, "DMO", name="m")
    alice.archive(model.id)
    assert (model.created_by, bob.actor, alice.actor) == ("bob", "bob", "alice")
    actions = [(e.actor, e.action) for e in reversed(alice.audit())]
    assert actions == [("bob", "upload"), ("bob", "activate"), ("alice", "archive")]
    assert alice.acting_as("cron").actor == "cron"


def test_an_empty_label_is_refused(home: Path) -> None:
    with pytest.raises(ValidationError, match="empty"):
        resolve_actor(" \n ")
    done = cli("--as", "", "models", home=home, env=NO_DB)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: actor name")


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("90m", datetime(2025, 6, 30, 10, 30, tzinfo=UTC)),
        ("12h", datetime(2025, 6, 30, 0, 0, tzinfo=UTC)),
        ("2d", datetime(2025, 6, 28, 12, 0, tzinfo=UTC)),
        ("1w", datetime(2025, 6, 23, 12, 0, tzinfo=UTC)),
        ("2025-06-01", datetime(2025, 6, 1, tzinfo=UTC)),
        ("2025-06-01T08:15", datetime(2025, 6, 1, 8, 15, tzinfo=UTC)),
        ("2025-06-01T10:15+02:00", datetime(2025, 6, 1, 8, 15, tzinfo=UTC)),
    ],
)
def test_parse_since(typed: str, expected: datetime) -> None:
    now = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
    assert parse_since(typed, now=now) == expected


@pytest.mark.parametrize("typed", ["yesterday", "-1d", "5y", ""])
def test_parse_since_refuses_what_it_cannot_read(typed: str) -> None:
    with pytest.raises(ValidationError, match="--since"):
        parse_since(typed)


# --- the CLI --------------------------------------------------------------------------------


def _json(*args: str, home: Path, env: dict[str, str] | None = None) -> object:
    done = cli(*args, "--json", home=home, env={**NO_DB, **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[0])  # `run` prints the job id after it


def test_cli_records_the_label_the_hub_user_or_the_os_user(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "dmo.py"
    path.write_bytes(SOURCE_A)
    first = _json("--as", "nightly", "upload", str(path), "--type", "DMO", home=home)
    path.write_bytes(SOURCE_B)
    second = _json("upload", str(path), "--type", "DMO", home=home, env={"JUPYTERHUB_USER": "hub"})
    job = _json("run", "DMO", "--wait", home=home)

    assert isinstance(first, dict) and isinstance(second, dict) and isinstance(job, dict)
    assert (first["created_by"], second["created_by"]) == ("nightly", "hub")
    assert job["started_by"] == os_user()
    listed = _json("models", home=home)
    assert isinstance(listed, list)
    assert {m["created_by"] for m in listed} == {"nightly", "hub"}
    jobs = _json("jobs", home=home)
    assert isinstance(jobs, list) and jobs[0]["started_by"] == os_user()

    table = cli("models", home=home, env=NO_DB).stdout.splitlines()
    assert table[0].split()[-1] == "BY"
    assert any(line.split()[-1] == "nightly" for line in table[1:])
    assert " BY " in cli("jobs", home=home, env=NO_DB).stdout.splitlines()[0]


def test_cli_audit_filters_json_and_table(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "so.py"
    path.write_bytes(SOURCE_A)
    _json("--as", "ann", "upload", str(path), "--type", "SO", home=home)
    ben = _json("--as", "ben", "upload", str(path), "--type", "SO", "--name", "b", home=home)
    assert isinstance(ben, dict)
    model_id = str(ben["id"])

    every = _json("audit", home=home)
    assert isinstance(every, list)
    assert [(e["actor"], e["action"]) for e in every] == [
        ("ben", "activate"),
        ("ben", "upload"),
        ("ann", "activate"),
        ("ann", "upload"),
    ]
    assert set(every[0]) == {"id", "at", "actor", "action", "object_type", "object_id", "details"}
    assert _json("audit", "--actor", "ann", "--action", "upload", home=home) == [every[3]]
    assert _json("audit", "--object", model_id, "--limit", "1", home=home) == [every[0]]
    assert _json("audit", "--since", "1h", home=home) == every
    assert _json("audit", "--since", "2999-01-01", home=home) == []

    table = cli("audit", home=home, env=NO_DB).stdout.splitlines()
    assert table[0].split() == ["AT", "(UTC)", "ACTOR", "ACTION", "OBJECT", "DETAILS"]
    assert "ben" in table[1] and "SO b v1" in table[1]
    bad = cli("audit", "--since", "last week", home=home, env=NO_DB)
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: --since 'last week'")
