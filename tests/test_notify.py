"""Notifications through Apprise, to a real local SMTP server (aiosmtpd) and a real local HTTP
server receiving JSON (issue 10)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from sandbox_kit import Sandbox
from sandbox_kit.errors import ValidationError
from sandbox_kit.notify import (
    Message,
    Notifier,
    check_events,
    check_targets,
    compose,
    deliver,
    event_of,
    log_tail,
    redact,
)
from tests.conftest import script
from tests.scheduling import Mailbox, mailbox, text_of, wait_for

__all__ = ["mailbox"]  # the fixture, imported for the tests below

MESSAGE = Message(
    "[sandbox_kit] DMO job X failed", "Job: X\nStatus: failed\n\nline 1\nline 2", True
)


def test_a_mail_reaches_a_real_smtp_server(mailbox: Mailbox) -> None:
    result = deliver(mailbox.url(), MESSAGE, backoff_s=0.01)
    assert (result.delivered, result.attempts, result.error) == (True, 1, None)
    (mail,) = mailbox.messages
    assert mail["Subject"] == MESSAGE.title
    assert mail["To"] == "ops@example.com"
    assert text_of(mail).replace("\r\n", "\n").strip() == MESSAGE.body  # lines kept as lines


def test_json_reaches_a_real_http_server(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    result = deliver(f"json://localhost:{httpserver.port}/hook", MESSAGE, backoff_s=0.01)
    assert result.delivered
    ((request, _),) = httpserver.log
    posted = json.loads(request.get_data())
    assert (posted["title"], posted["message"], posted["type"]) == (
        MESSAGE.title,
        MESSAGE.body,
        "failure",
    )


def test_a_failing_target_is_retried_three_times_with_backoff(httpserver: HTTPServer) -> None:
    for status in (503, 500, 502):
        httpserver.expect_ordered_request("/flaky").respond_with_data("busy", status=status)
    httpserver.expect_ordered_request("/flaky").respond_with_data("ok")
    pauses: list[float] = []
    result = deliver(
        f"json://localhost:{httpserver.port}/flaky", MESSAGE, backoff_s=0.5, sleep=pauses.append
    )
    assert (result.delivered, result.attempts) == (True, 4)
    assert pauses == [0.5, 1.0, 2.0]
    assert len(httpserver.log) == 4


def test_a_target_that_never_answers_is_an_error_after_four_attempts() -> None:
    from tests.scheduling import free_port

    result = deliver(f"json://localhost:{free_port()}/gone", MESSAGE, sleep=lambda _: None)
    assert (result.delivered, result.attempts) == (False, 4)
    assert result.error is not None and "Connection error" in result.error


def test_a_notification_is_claimed_once_per_subject_event_and_target(
    sandbox: Sandbox, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/once", method="POST").respond_with_data("ok")
    url = f"json://localhost:{httpserver.port}/once"
    sandbox.upload(script("nonzero_exit.py"), "DMO")
    job = sandbox.run("DMO").wait(timeout=60)
    first = Notifier(sandbox.lifecycle.conn, log=logging.getLogger("t"), backoff_s=0.01)
    second = Notifier(sandbox.lifecycle.conn, log=logging.getLogger("t"), backoff_s=0.01)
    try:
        claim = first.claim(subject=job.id, event="failed", url=url, job_id=job.id)
        assert claim is not None
        assert second.claim(subject=job.id, event="failed", url=url, job_id=job.id) is None
        assert first.claim(subject=job.id, event="deadline", url=url, job_id=job.id) is not None
        first.send(claim, MESSAGE)
        assert first.drain(30)
    finally:
        first.close()
        second.close()
    notes = {n.event: n for n in sandbox.job_info(job.id).notifications}
    assert notes["failed"].status == "delivered"
    assert notes["deadline"].status == "sending"  # claimed, never handed over
    assert notes["failed"].target == url and notes["failed"].target_kind == "json"


def test_the_message_carries_the_job_and_its_last_20_log_lines(lite: Sandbox) -> None:
    lite.upload(script("slow_lines.py"), "SO")
    info = lite.run("SO", config={"lines": 30, "every": 0}).wait(timeout=60)
    lines = log_tail(info.log_path)
    assert lines == [f"tick {i}" for i in range(10, 30)]
    message = compose(info, "success", lines, dashboard_url="http://127.0.0.1:8866/")
    assert message.title == f"[sandbox_kit] SO job {info.id} succeeded"
    assert not message.failure
    for expected in (
        f"Job: {info.id}",
        "Model: SO slow_lines v1",
        "Status: success",
        "Outcome: -",
        "Duration: ",
        "Dashboard: http://127.0.0.1:8866/",
        "Last 20 log lines:\ntick 10\n",
    ):
        assert expected in message.body
    assert "tick 9\n" not in message.body


@pytest.mark.parametrize(
    ("status", "outcome", "event"),
    [
        ("failed", None, "failed"),
        ("timeout", "time_limit", "timeout"),
        ("lost", None, "lost"),
        ("success", "optimal", "success"),
        ("success", None, "success"),
        ("success", "infeasible", "infeasible"),
        ("success", "error", "error"),
        ("cancelled", None, None),
        ("running", None, None),
    ],
)
def test_events_of_job_ends(status: str, outcome: str | None, event: str | None) -> None:
    assert event_of(status, outcome) == event


def test_targets_and_events_are_checked() -> None:
    assert check_targets(["json://localhost:1/x", " ", "json://localhost:1/x"]) == (
        "json://localhost:1/x",
    )
    with pytest.raises(ValidationError, match=r"notification target bogus://\.\.\. is not a URL"):
        check_targets(["bogus://user:secret@host/path"])
    with pytest.raises(ValidationError, match="unknown notification event 'sucess'"):
        check_events(["failed", "sucess"])
    assert check_events(["Failed", "success", "failed"]) == ("failed", "success")


def test_secrets_are_hidden_in_shown_targets() -> None:
    shown = redact("mailto://user:hunter2@mail.example.com?to=ops@example.com")
    assert "hunter2" not in shown and "mail.example.com" in shown
    assert "TokenB" not in redact("slack://TokenA/TokenB/TokenC/#ops")
    assert redact("not a url") == "(not a URL)"


def test_without_apprise_the_extra_is_named(
    lite: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # as if not installed
    with pytest.raises(ValidationError, match=r"pip install 'sandbox_kit\[notify\]'"):
        lite.add_schedule("DMO", preset="day-ahead", notify=["json://localhost:1/x"])
    assert lite.schedules() == []
    result = deliver("json://localhost:1/x", MESSAGE)
    assert not result.delivered
    assert result.error is not None and "sandbox_kit[notify]" in result.error


def test_job_ends_reach_both_kinds_of_target(
    lite: Sandbox, mailbox: Mailbox, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/both", method="POST").respond_with_data("ok")
    lite.upload(script("nonzero_exit.py"), "DMO")
    info = lite.run("DMO").wait(timeout=60)
    notifier = Notifier(lite.lifecycle.conn, log=logging.getLogger("t"), backoff_s=0.01)
    try:
        message = compose(info, "failed", log_tail(info.log_path), dashboard_url=None)
        for url in (mailbox.url(), f"json://localhost:{httpserver.port}/both"):
            claim = notifier.claim(subject=info.id, event="failed", url=url, job_id=info.id)
            assert claim is not None
            notifier.send(claim, message)
        assert notifier.drain(30)
    finally:
        notifier.close()
    (mail,) = wait_for(lambda: mailbox.messages, what="the mail")
    assert info.id in mail["Subject"]
    assert "ValueError: model blew up" in text_of(mail)
    kinds = {n.target_kind: n.status for n in lite.job_info(info.id).notifications}
    assert kinds == {"mailto": "delivered", "json": "delivered"}
