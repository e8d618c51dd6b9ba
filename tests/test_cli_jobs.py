"""The job commands of the CLI, as a script or cron would use them (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import cli, script

STATUS_KEYS = {
    "id",
    "model_id",
    "model_type",
    "status",
    "exit_code",
    "signal",
    "reason",
    "config",
    "created_at",
    "started_at",
    "finished_at",
    "log_path",
    "result_dir",
    "truncated",
}


def upload(home: Path, name: str, model_type: str = "DMO") -> str:
    out = cli("upload", str(script(name)), "--type", model_type, home=home)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()[-1]


def test_original_spec_scenario_three_types_at_once(home: Path) -> None:
    """Upload a DMO, RMO and SO model, run all three at once, follow the logs live, and check
    each status after completion (the original specification's checklist, from the CLI)."""
    for kind in ("DMO", "RMO", "SO"):
        upload(home, "spec_sample.py", kind)
    started = {}
    # Three slots: the default limit is the CPU count, which may be 2 on a small machine.
    slots = {"SANDBOX_MAX_RUNNING": "3"}
    for kind in ("DMO", "RMO", "SO"):
        out = cli("run", kind, "--config", '{"horizon": 24}', home=home, env=slots)
        assert out.returncode == 0, out.stderr
        started[kind] = out.stdout.splitlines()[-1]
    followers = {
        kind: subprocess.Popen(
            [sys.executable, "-m", "sandbox_kit", "--home", str(home), "logs", job, "--follow"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for kind, job in started.items()
    }
    for kind, proc in followers.items():
        output, _ = proc.communicate(timeout=60)
        assert f"Starting {kind} optimization" in output
        assert f"{kind} optimization completed successfully" in output
        assert "Configuration: {'horizon': 24}" in output
    running_at_once = set()
    for kind, job in started.items():
        out = cli("status", job, "--json", home=home)
        data = json.loads(out.stdout)
        assert set(data) >= STATUS_KEYS
        assert (data["status"], data["exit_code"], data["model_type"]) == ("success", 0, kind)
        running_at_once.add(
            data["started_at"]
            < min(
                json.loads(cli("status", j, "--json", home=home).stdout)["finished_at"]
                for j in started.values()
            )
        )
    assert running_at_once == {True}  # all three overlapped: the types run independently


def test_run_wait_exit_codes_follow_the_job(home: Path) -> None:
    upload(home, "fast_exit.py")
    ok = cli("run", "DMO", "--wait", home=home)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1].startswith("DMO_")
    upload(home, "exit_code.py")
    bad = cli("run", "DMO", "--wait", home=home)
    assert bad.returncode == 1
    assert "exit code 3" in bad.stderr


def test_run_follow_streams_lines_and_prints_the_id_last(home: Path) -> None:
    upload(home, "slow_lines.py")
    out = cli("run", "DMO", "--follow", "--config", '{"lines": 5, "every": 0.05}', home=home)
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[:5] == [f"tick {i}" for i in range(5)]
    assert lines[-1].startswith("DMO_")


def test_run_config_from_file_and_bad_config(home: Path, tmp_path: Path) -> None:
    upload(home, "env_dump.py")
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"scale": 2}')
    out = cli("run", "DMO", "--config", f"@{cfg}", "--wait", home=home)
    assert out.returncode == 0, out.stderr
    job = out.stdout.splitlines()[-1]
    dump = json.loads(cli("logs", job, home=home).stdout)
    assert json.loads(dump["env"]["CONFIG"]) == {"scale": 2}
    for bad, message in [
        ("{nope", "invalid JSON"),
        ("[1]", "must be a JSON object"),
        (f"@{tmp_path / 'missing.json'}", "cannot read config file"),
    ]:
        res = cli("run", "DMO", "--config", bad, home=home)
        assert res.returncode == 1 and res.stderr.startswith("Error: ") and message in res.stderr
        assert "Traceback" not in res.stderr


def test_jobs_status_and_logs_json_shapes(home: Path) -> None:
    upload(home, "levels.py")
    job = cli("run", "DMO", "--wait", home=home).stdout.splitlines()[-1]
    listed = json.loads(cli("jobs", "--json", home=home).stdout)
    assert [j["id"] for j in listed] == [job] and set(listed[0]) >= STATUS_KEYS
    assert json.loads(cli("jobs", "--status", "failed", "--json", home=home).stdout) == []
    assert json.loads(cli("jobs", "--type", "SO", "--json", home=home).stdout) == []
    lines = [json.loads(x) for x in cli("logs", job, "--json", home=home).stdout.splitlines()]
    assert [x["seq"] for x in lines] == list(range(1, len(lines) + 1))
    assert set(lines[0]) == {"seq", "ts", "stream", "level", "text"}
    errors = cli("logs", job, "--level", "ERROR", home=home).stdout.splitlines()
    assert "ERROR: explicit error on stdout" in errors and "plain stdout" not in errors
    since = cli("logs", job, "--since", "3", "--json", home=home).stdout.splitlines()
    assert json.loads(since[0])["seq"] == 4
    table = cli("jobs", home=home).stdout
    assert job in table and "success" in table


def test_cancel_from_the_cli(home: Path) -> None:
    upload(home, "hang.py")
    job = cli("run", "DMO", home=home).stdout.splitlines()[-1]
    time.sleep(0.5)
    out = cli("cancel", job, home=home)
    assert out.returncode == 0 and "cancelled" in out.stdout
    status = json.loads(cli("status", job, "--json", home=home).stdout)
    assert (status["status"], status["reason"]) == ("cancelled", "killed by cancel")
    again = cli("cancel", job, home=home)
    assert again.returncode == 0 and "already ended" in again.stdout


def test_unknown_job_is_a_clear_error(home: Path) -> None:
    for args in (["status", "DMO_1_nope"], ["logs", "DMO_1_nope"], ["cancel", "DMO_1_nope"]):
        out = cli(*args, home=home)
        assert out.returncode == 1
        assert out.stderr.strip() == "Error: no job with id DMO_1_nope"


def test_run_without_active_model_is_a_clear_error(home: Path) -> None:
    out = cli("run", "RMO", home=home)
    assert out.returncode == 1
    assert out.stderr.strip() == "Error: no active RMO model; upload one or activate a version"


def test_jobs_limit_must_be_positive(home: Path) -> None:
    out = cli("jobs", "--limit", "0", home=home)
    assert out.returncode == 1 and out.stderr.strip() == "Error: limit must be at least 1, not 0"
