"""One leader among any number of schedulers: a lease in the database (issue 10).

The ``scheduler_lease`` table has one row: who holds the lease, until when, and a fencing
token that grows by one each time the lease changes hands. A scheduler leads while it holds an
unexpired lease; it renews the lease well before expiry, and a scheduler that finds it expired
takes it over with the next token. Every write a leader makes (claiming a fire time, submitting
its job, claiming a notification) first calls :meth:`Lease.check` **inside the same
transaction**: that transaction holds the registry's write lock, so a leader that stalled
(paused, swapped out, cut off) past its expiry and was replaced finds a newer token and
changes nothing, however late it wakes up.

The expiry is judged on each scheduler's clock: hosts sharing a database must keep their
clocks in step (NTP) to well within the lease (30 s by default).
"""

from __future__ import annotations

import os
import platform
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from sandbox_kit.dbapi import Connection, Statements
from sandbox_kit.lifecycle import utcnow

_NAME = "scheduler"


class LeaseLost(Exception):
    """This process no longer leads: another scheduler holds the lease (or it expired)."""


class Lease:
    """This process's claim on the leadership.

    Args:
        conn: the registry.
        ttl_s: how long the lease lasts without renewal (on ``clock``).
        clock: the scheduler's clock (UTC); tests inject a fast or fixed one.
        holder: this process's name in the table (default: host, pid and a random part).
    """

    def __init__(
        self,
        conn: Connection,
        *,
        ttl_s: float,
        clock: Callable[[], datetime] = utcnow,
        holder: str | None = None,
    ) -> None:
        self.conn = conn
        self.ttl = timedelta(seconds=ttl_s)
        self.clock = clock
        self.holder = holder or f"{platform.node()}:{os.getpid()}:{secrets.token_hex(3)}"
        #: The fencing token while this process leads, else None.
        self.token: int | None = None

    @property
    def leading(self) -> bool:
        """True while this process believes it leads (:meth:`check` decides in a write)."""
        return self.token is not None

    def acquire(self) -> bool:
        """Take or renew the lease if it is free, expired or ours; True when we lead."""
        now = self.clock()
        with self.conn.write() as st:
            row = st.run(
                "SELECT holder, token, expires_at FROM scheduler_lease WHERE name = :n",
                {"n": _NAME},
            ).one()
            if row is None:
                st.run(
                    "INSERT INTO scheduler_lease (name, holder, token, acquired_at, expires_at, "
                    "notify_since) VALUES (:n, :h, 1, :now, :exp, :since)",
                    {
                        "n": _NAME,
                        "h": self.holder,
                        "now": now,
                        "exp": now + self.ttl,
                        # Real time: jobs' end times are, whatever the scheduler's clock.
                        "since": utcnow(),
                    },
                )
                self.token = 1
                return True
            holder, token, expires = row[0], int(row[1]), st.moment(row[2])
            if holder == self.holder and token == self.token:
                st.run(
                    "UPDATE scheduler_lease SET expires_at = :exp WHERE name = :n",
                    {"exp": now + self.ttl, "n": _NAME},
                )
                return True
            if expires is not None and expires > now:
                self.token = None
                return False
            st.run(
                "UPDATE scheduler_lease SET holder = :h, token = :t, acquired_at = :now, "
                "expires_at = :exp WHERE name = :n AND token = :old",
                {
                    "h": self.holder,
                    "t": token + 1,
                    "now": now,
                    "exp": now + self.ttl,
                    "n": _NAME,
                    "old": token,
                },
            )
            self.token = token + 1
            return True

    def check(self, st: Statements) -> None:
        """Fencing: raise :class:`LeaseLost` unless this process still holds an unexpired
        lease with its token. Call it inside the write transaction it protects."""
        if self.token is None:
            raise LeaseLost("this scheduler does not lead")
        row = st.run(
            "SELECT holder, token, expires_at FROM scheduler_lease WHERE name = :n",
            {"n": _NAME},
        ).one()
        expires = None if row is None else st.moment(row[2])
        if (
            row is None
            or row[0] != self.holder
            or int(row[1]) != self.token
            or expires is None
            or expires <= self.clock()
        ):
            self.token = None
            raise LeaseLost("the lease passed to another scheduler or expired")

    def release(self) -> None:
        """Give the lease up now (on a clean exit), so another scheduler leads at once."""
        if self.token is None:
            return
        with self.conn.write() as st:
            st.run(
                "UPDATE scheduler_lease SET expires_at = :now WHERE name = :n AND holder = :h "
                "AND token = :t",
                {"now": self.clock(), "n": _NAME, "h": self.holder, "t": self.token},
            )
        self.token = None

    def notify_since(self) -> datetime | None:
        """From when job ends are looked at for notifications (real time)."""
        with self.conn.read() as st:
            row = st.run(
                "SELECT notify_since FROM scheduler_lease WHERE name = :n", {"n": _NAME}
            ).one()
            return None if row is None else st.moment(row[0])

    def advance_notify_since(self, moment: datetime) -> None:
        """Move the notification watermark forward (never back), fenced."""
        with self.conn.write() as st:
            self.check(st)
            st.run(
                "UPDATE scheduler_lease SET notify_since = :m WHERE name = :n "
                "AND notify_since < :m",
                {"m": moment, "n": _NAME},
            )
