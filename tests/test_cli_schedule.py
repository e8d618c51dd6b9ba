"""The ``schedule`` and ``scheduler`` commands (issue 10): the surface of the issue, ids
printed last, ``Error: <sentence>`` and exit 1 for a refused request."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sandbox_kit import Sandbox
from tests.conftest import cli, script

pytestmark = pytest.mark.slow  # a dozen CLI processes each


def test_add_list_show_pause_resume_delete(home: Path) -> None:
    assert cli("upload", str(script("fast_exit.py")), "--type", "DMO", home=home).returncode == 0
    added = cli(
        "schedule", "add", "DMO", "--preset", "day-ahead", "--tz", "Europe/Berlin",
        "--config", '{"load_scale": 1.1}', "--deadline", "150", "--notify",
        "mailto://user:hunter2@mail.example.com?to=ops@example.com", "--name", "DA morning",
        home=home,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    schedule_id = added.stdout.strip().splitlines()[-1]  # the id, last
    assert schedule_id == "1"
    assert "Added schedule 1 (DA morning); next run" in added.stderr

    listed = cli("schedule", "list", home=home)
    assert listed.returncode == 0
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "TARGET", "CLOCK"]
    assert "DA morning" in row and "day-ahead" in row and "Europe/Berlin" in row
    assert "09:00 CE" in row and "150 min" in row  # next run in its zone (CET or CEST)

    shown = json.loads(cli("schedule", "show", "1", "--next", "3", "--json", home=home).stdout)
    assert shown["preset"] == "day-ahead" and shown["cron"] == "0 9 * * *"
    assert (shown["deadline_min"], shown["missed"], shown["overlap"]) == (150.0, "once", "skip")
    assert shown["config"] == {"load_scale": 1.1}
    assert len(shown["next_fires"]) == 3 and shown["fires"] == []
    assert "hunter2" not in json.dumps(shown)  # the target's secret is hidden
    text = cli("schedule", "show", "1", "--next", "2", home=home).stdout
    assert "Next 2 fire time(s), Europe/Berlin and UTC:" in text
    assert text.count(" 09:00 CE") == 2 and text.count(":00 UTC") == 2

    assert cli("schedule", "pause", "1", home=home).stdout == "Schedule 1 (DA morning) paused.\n"
    assert json.loads(cli("schedule", "list", "--json", home=home).stdout)[0]["paused"] is True
    assert "resumed" in cli("schedule", "resume", "1", home=home).stdout
    assert "deleted" in cli("schedule", "delete", "1", home=home).stdout
    assert "No schedules yet" in cli("schedule", "list", home=home).stdout

    sb = Sandbox(home=home)
    try:
        actions = [e.action for e in sb.audit(object_id="1") if e.object_type == "schedule"]
    finally:
        sb.close()
    assert actions == [
        "schedule_delete",
        "schedule_resume",
        "schedule_pause",
        "schedule_create",
    ]


def test_refused_requests_say_why_and_store_nothing(home: Path) -> None:
    cases = [
        (["DMO", "--cron", "0 9 * *"], "must have 5 fields"),
        (["DMO", "--cron", "0 25 * * *"], "Bad hour"),
        (["DMO", "--cron", "0 9 * * *", "--tz", "Mars/Olympus"], "unknown time zone"),
        (["XYZ", "--cron", "0 9 * * *"], "unknown model type 'XYZ'"),
        (["42", "--cron", "0 9 * * *"], "no model with id 42"),
        (["DMO", "--cron", "0 9 * * *", "--deadline", "-5"], "positive number of minutes"),
        (["DMO", "--cron", "0 9 * * *", "--notify", "bogus://x"], "is not a URL Apprise"),
        (["DMO", "--cron", "0 9 * * *", "--data-source", "latest:XYZ"], "unknown model type"),
        (["DMO", "--cron", "0 9 * * *", "--notify-on", "oops"], "unknown notification event"),
    ]
    for args, message in cases:
        done = cli("schedule", "add", *args, home=home)
        assert (done.returncode, done.stdout) == (1, ""), args
        assert done.stderr.startswith("Error: ") and message in done.stderr, done.stderr
    usage = cli("schedule", "add", "DMO", home=home)  # neither --cron nor --preset
    assert usage.returncode == 2
    assert "one of the arguments --cron --preset is required" in usage.stderr
    assert cli("schedule", "show", "7", home=home).stderr == "Error: no schedule with id 7\n"
    assert "No schedules yet" in cli("schedule", "list", home=home).stdout


def test_scheduler_once_fires_what_is_due_and_jobs_filter_by_schedule(home: Path) -> None:
    assert cli("upload", str(script("fast_exit.py")), "--type", "SO", home=home).returncode == 0
    added = cli("schedule", "add", "SO", "--cron", "* * * * *", "--tz", "UTC", home=home)
    schedule_id = added.stdout.strip()
    # A clock 600 times faster: by the time the process looks, fire times are due (and the
    # lease is 10 real seconds long).
    env = {"SANDBOX_SCHEDULER_CLOCK": f"600@{time.time()}", "SANDBOX_SCHEDULER_LEASE_S": "6000"}
    once = cli("scheduler", "--once", home=home, env=env)
    assert once.returncode == 0, once.stderr
    assert "leading" in once.stderr
    assert "run(s) started" in once.stderr and once.stderr.rstrip().endswith("stopped")
    assert "one pass:" in (home / "logs" / "scheduler.log").read_text()
    runs = json.loads(cli("jobs", "--schedule", schedule_id, "--json", home=home).stdout)
    assert len(runs) == 1
    assert runs[0]["schedule_id"] == int(schedule_id)
    assert runs[0]["started_by"] == f"schedule:{schedule_id}"
    assert {"deadline_at", "deadline_missed", "notifications"} <= set(runs[0])
    manual = cli("run", "SO", "--wait", home=home)
    assert manual.returncode == 0
    assert (
        json.loads(cli("status", manual.stdout.strip(), "--json", home=home).stdout)["schedule_id"]
        is None
    )
    assert len(json.loads(cli("jobs", "--schedule", schedule_id, "--json", home=home).stdout)) == 1
    text = cli("schedule", "show", schedule_id, home=home).stdout
    assert runs[0]["id"] in text
