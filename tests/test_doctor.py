"""``sandbox-kit doctor`` and the isolation level shown per job (issue 8)."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox_kit import Sandbox
from sandbox_kit.jail import probe
from tests.conftest import cli, script


def test_doctor_reports_isolation_database_and_interpreters(home: Path) -> None:
    done = cli("doctor", "--json", home=home)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows["isolation"].startswith(probe().level)
    assert rows["isolation setting"] == "auto"
    assert rows["database"].startswith("sqlite:///") and "(schema " in rows["database"]
    assert {"python DMO", "python RMO", "python SO", "bubblewrap", "network"} <= set(rows)
    text = cli("doctor", home=home, env={"SANDBOX_ISOLATION": "off"}).stdout
    assert "isolation setting  off (jobs run with the sandbox's own rights" in text


def test_doctor_hides_the_database_password(home: Path) -> None:
    url = "postgresql+psycopg://sk:s3cret@127.0.0.1:1/nowhere"
    done = cli("doctor", home=home, env={"SANDBOX_DB_URL": url})
    assert done.returncode == 1 and "s3cret" not in done.stdout + done.stderr


def test_jobs_and_status_show_the_isolation_level(home: Path) -> None:
    sb = Sandbox(home=home)
    job = sb.run(sb.upload(script("fast_exit.py"), "DMO").id)
    info = job.wait(timeout=60)
    sb.close()
    listing = cli("jobs", home=home).stdout
    assert "ISOLATION" in listing.splitlines()[0]
    assert f" {info.isolation} " in listing
    status = json.loads(cli("status", job.id, "--json", home=home).stdout)
    assert status["isolation"] == info.isolation == probe().level
