"""Tests for the database layer: migrations from old revisions, SQLite set-up, concurrent opens."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, inspect, text

from sandbox_kit import JobStatus, ModelStatus, ModelType, Sandbox
from sandbox_kit.db import HEAD_REVISION, Database, UTCDateTime
from tests.conftest import cli

CREATED = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
FINISHED = datetime(2024, 1, 2, 3, 5, 0, tzinfo=UTC)
JOB_ID = "DMO_1704164645678_abc123"

_MODEL_SQL = text(
    "INSERT INTO models (model_type, name, version, status, sha256, description,"
    " original_filename, stored_name, size, created_at)"
    " VALUES ('DMO', 'legacy', 1, 'active', :sha, 'from 0001', 'legacy.py',"
    " 'dmo-legacy.py', 42, :created)"
).bindparams(bindparam("created", type_=UTCDateTime()))

_JOB_SQL = text(
    "INSERT INTO jobs (id, model_id, model_type, model_name, model_version, model_sha256,"
    " status, config, data_source_id, timeout_s, created_at, started_at, finished_at,"
    " exit_code, signal, reason, log_path, result_dir, truncated, attempt)"
    " VALUES (:id, :model_id, 'DMO', 'legacy', 1, :sha, 'success', '{\"k\": 1}', NULL, 60.0,"
    " :created, :created, :finished, 0, NULL, NULL, '/nowhere/job.log', '/nowhere/result',"
    " :truncated, 1)"
).bindparams(bindparam("created", type_=UTCDateTime()), bindparam("finished", type_=UTCDateTime()))

SHA = "ab" * 32


def _old_database(url: str) -> int:
    """A database at revision 0001 holding one model and one job; returns the model id."""
    db = Database(url)
    try:
        db.upgrade("0001")
        assert db.revision() == "0001"
        job_columns = {c["name"] for c in inspect(db.engine).get_columns("jobs")}
        assert "spec" not in job_columns
        assert "metrics" not in job_columns
        with db.engine.begin() as conn:
            conn.execute(_MODEL_SQL, {"sha": SHA, "created": CREATED})
            model_id = conn.execute(text("SELECT id FROM models")).scalar_one()
            conn.execute(
                _JOB_SQL,
                {
                    "id": JOB_ID,
                    "model_id": model_id,
                    "sha": SHA,
                    "created": CREATED,
                    "finished": FINISHED,
                    "truncated": False,
                },
            )
    finally:
        db.dispose()
    return int(model_id)


def _assert_rows_survived(sb: Sandbox, model_id: int) -> None:
    model = sb.model(model_id)
    assert model.model_type is ModelType.DMO
    assert (model.name, model.version, model.status) == ("legacy", 1, ModelStatus.ACTIVE)
    assert (model.sha256, model.size, model.description) == (SHA, 42, "from 0001")
    assert model.original_filename == "legacy.py"
    assert model.created_at == CREATED
    assert model.created_at.tzinfo is not None
    assert sb.active_model("DMO") == model

    job = sb.job_info(JOB_ID)
    assert job.model_id == model_id
    assert job.status is JobStatus.SUCCESS
    assert job.config == {"k": 1}
    assert job.timeout_s == 60.0
    assert (job.started_at, job.finished_at) == (CREATED, FINISHED)
    assert job.exit_code == 0
    assert job.truncated is False
    # Columns added by 0002 take their defaults.
    assert job.metrics == {}
    assert (job.outcome, job.objective, job.host, job.python_version) == (None, None, None, None)
    assert [j.id for j in sb.jobs(model=model_id)] == [JOB_ID]


def test_fresh_database_is_at_head(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert db.revision() is None
        db.ensure_schema()
        assert db.revision() == HEAD_REVISION
        db.ensure_schema()  # a second time is a no-op
        assert db.revision() == HEAD_REVISION
        tables = set(inspect(db.engine).get_table_names())
        assert {"models", "jobs", "alembic_version"} <= tables
    finally:
        db.dispose()


def test_sandbox_upgrades_an_old_database(db_url: str, home: Path) -> None:
    model_id = _old_database(db_url)

    sb = Sandbox(home=home, db_url=db_url)
    try:
        assert sb.db.revision() == HEAD_REVISION
        _assert_rows_survived(sb, model_id)
        # The upgraded database takes new rows: the next version of the same name is v2.
        new = sb.upload(b"print('v2')\n", "DMO", filename="legacy.py")
        assert new.version == 2
        assert sb.model(model_id).status is ModelStatus.INACTIVE
    finally:
        sb.close()

    db = Database(db_url)
    try:
        assert db.revision() == HEAD_REVISION
        job_columns = {c["name"] for c in inspect(db.engine).get_columns("jobs")}
        assert {"spec", "heartbeat_at", "cancel_requested", "metrics"} <= job_columns
    finally:
        db.dispose()


def test_cli_db_upgrade_upgrades_an_old_database(db_url: str, home: Path) -> None:
    model_id = _old_database(db_url)

    done = cli("db", "upgrade", home=home, env={"SANDBOX_DB_URL": db_url})

    assert done.returncode == 0, done.stderr
    assert f"revision {HEAD_REVISION}" in done.stdout
    assert "Traceback" not in done.stderr
    db = Database(db_url)
    try:
        assert db.revision() == HEAD_REVISION
    finally:
        db.dispose()
    sb = Sandbox(home=home, db_url=db_url)
    try:
        _assert_rows_survived(sb, model_id)
    finally:
        sb.close()


def test_cli_db_upgrade_on_default_sqlite_file(home: Path) -> None:
    url = f"sqlite:///{home / 'sandbox.db'}"
    model_id = _old_database(url)

    done = cli("db", "upgrade", home=home, env={"SANDBOX_DB_URL": ""})

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Database is at revision {HEAD_REVISION}."
    db = Database(url)
    try:
        assert db.revision() == HEAD_REVISION
    finally:
        db.dispose()
    listed = cli("models", "--json", home=home, env={"SANDBOX_DB_URL": ""})
    assert listed.returncode == 0, listed.stderr
    assert '"legacy"' in listed.stdout
    sb = Sandbox(home=home, db_url=url)
    try:
        _assert_rows_survived(sb, model_id)
    finally:
        sb.close()


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [("journal_mode", "wal"), ("busy_timeout", 30000), ("foreign_keys", 1)],
)
def test_sqlite_pragmas(home: Path, pragma: str, expected: str | int) -> None:
    db = Database(f"sqlite:///{home / 'p.db'}")
    try:
        for _ in range(2):  # a pooled connection and a fresh one after dispose
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql(f"PRAGMA {pragma}").scalar() == expected
            db.dispose()
    finally:
        db.dispose()


def test_sqlite_pragmas_hold_on_a_sandbox_connection(lite: Sandbox) -> None:
    with lite.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_two_processes_open_an_empty_database_together(db_url: str, home: Path) -> None:
    env = {**os.environ, "SANDBOX_HOME": str(home), "SANDBOX_DB_URL": db_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sandbox_kit", "models"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]

    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "No models yet" in out
        assert "Traceback" not in err
    db = Database(db_url)
    try:
        assert db.revision() == HEAD_REVISION
    finally:
        db.dispose()


def test_every_migration_goes_down_and_up_again(db_url: str) -> None:
    db = Database(db_url)
    try:
        db.ensure_schema()
        _alembic(db, "downgrade", "base")
        assert db.revision() is None
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.upgrade()
        assert db.revision() == HEAD_REVISION
    finally:
        db.dispose()


def test_the_audit_trail_is_append_only_in_the_database(db_url: str) -> None:
    db = Database(db_url)
    try:
        db.ensure_schema()
        with db.write() as s:
            s.execute(
                text(
                    "INSERT INTO audit (at, actor, action, object_type, object_id, details)"
                    " VALUES (:at, 'alice', 'run', 'job', 'J1', '{}')"
                ).bindparams(bindparam("at", type_=UTCDateTime())),
                {"at": CREATED},
            )
        for statement in ("UPDATE audit SET actor = 'mallory'", "DELETE FROM audit"):
            with pytest.raises(Exception, match="append-only"), db.write() as s:
                s.execute(text(statement))
        with db.read() as s:
            assert s.execute(text("SELECT actor FROM audit")).scalars().all() == ["alice"]
    finally:
        db.dispose()


def _alembic(db: Database, verb: str, revision: str) -> None:
    # Downgrades are for operators rolling back by hand; the code itself only upgrades.
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option(
        "script_location", str(Path(__file__).parents[1] / "sandbox_kit" / "migrations")
    )
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, verb)(cfg, revision)
