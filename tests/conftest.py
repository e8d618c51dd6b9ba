"""Shared fixtures: ``tmp_path -> home -> sandbox``, on SQLite and on the PostgreSQL server.

PostgreSQL tests use a fresh schema per test on the server at ``SANDBOX_TEST_PG_URL``
(default: the local server on 127.0.0.1:5432, database ``test``). Under ``CI=true`` they are
required; elsewhere they skip, with the reason shown, when no server answers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

from sandbox_kit import Sandbox, Settings

PG_URL = os.environ.get("SANDBOX_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SCRIPTS = Path(__file__).with_name("scripts")
ROOT = Path(__file__).resolve().parents[1]


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver/connection failure means "not available"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL URL, or a skip (a failure under CI=true) when no server answers."""
    problem = _pg_available()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {problem}")
        pytest.skip(f"no PostgreSQL server at {PG_URL}: {problem}")
    return PG_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    schema = f"sk_{secrets.token_hex(6)}"
    engine = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{pg_server}?options=-csearch_path%3D{schema}"
    with engine.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, home: Path) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{home / 'sandbox.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty SANDBOX_HOME."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def settings() -> Settings:
    """Settings for tests: short grace and heartbeat so stops and losses show quickly."""
    return Settings(kill_grace_s=1.0, heartbeat_s=0.5, lost_after_s=2.0, max_running=4)


@pytest.fixture
def sandbox(home: Path, db_url: str, settings: Settings) -> Iterator[Sandbox]:
    """A sandbox on each database."""
    sb = Sandbox(home=home, db_url=db_url, settings=settings)
    yield sb
    _stop_all(sb)


@pytest.fixture
def lite(home: Path, settings: Settings) -> Iterator[Sandbox]:
    """A sandbox on SQLite only (for runner tests that need not run twice)."""
    sb = Sandbox(home=home, settings=settings)
    yield sb
    _stop_all(sb)


def _stop_all(sb: Sandbox) -> None:
    for info in sb.jobs(status="running") + sb.jobs(status="queued"):
        sb.cancel(info.id)
    for info in sb.jobs(limit=1000):
        if not info.status.terminal:
            with contextlib.suppress(TimeoutError):
                sb.job(info.id).wait(timeout=15)
    sb.close()


def script(name: str) -> Path:
    """A hostile or helpful model script under tests/scripts."""
    return SCRIPTS / name


def cli(
    *args: str,
    home: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sandbox_kit`` as a user would, with SANDBOX_HOME set."""
    full_env = {**os.environ, "SANDBOX_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "sandbox_kit", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=stdin,
        check=False,
    )


def job_processes(job_id: str) -> list[psutil.Process]:
    """Every live process that carries this job's id in its environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("JOB_ID") == job_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found
