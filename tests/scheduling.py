"""Helpers of the schedule and notification tests: an injected clock, a local SMTP server and
waiting for what a scheduler did (issue 10)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


class FakeClock:
    """The scheduler's clock, moved by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def minute_now() -> datetime:
    """The current real time, on the minute (fake clocks start near real time so deadlines
    compare sensibly with real job end times)."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], *, timeout: float = 60, what: str = "it") -> T:
    """Poll ``check`` until it returns something truthy."""
    end = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@dataclass
class Mailbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 and the mails it received."""

    port: int
    messages: list[Message] = field(default_factory=list)

    def url(self, to: str = "ops@example.com") -> str:
        """An Apprise URL that sends to this server, without TLS or login."""
        return f"mailto://localhost:{self.port}?from=sandbox@example.com&to={to}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"


def text_of(mail: Message) -> str:
    """The plain-text part of a mail."""
    for part in mail.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A local SMTP server for the test."""
    from aiosmtpd.controller import Controller

    box = Mailbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()
