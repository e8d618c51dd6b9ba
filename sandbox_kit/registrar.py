"""The supervisor's thread that talks to the database: the start, heartbeats, the cancel flag.

The supervisor's main loop never touches the database (a locked or unreachable database must
not stop it from copying output and acting on deadlines); this thread does, retrying with
backoff through an outage. It records the start once the model runs, beats every
``heartbeat_s`` seconds (fenced by the job's attempt), and raises :attr:`Registrar.cancel`
when a cancel was asked for, or :attr:`Registrar.gone` when the job ended elsewhere.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sandbox_kit.lifecycle import CANCEL, GONE

if TYPE_CHECKING:
    from sandbox_kit.supervisor import Supervisor


class Registrar:
    """The supervisor's thread that talks to the database: start, heartbeats, cancel flag."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.cancel = threading.Event()
        self.gone = threading.Event()
        self.announced = False
        self._started = datetime.now(UTC)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, started: datetime) -> None:
        """Begin recording in the background (the model is already running)."""
        self._started = started
        self._thread = threading.Thread(target=self._run, name="registrar", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Beat now (a cancel may be waiting), not at the next period."""
        self._wake.set()

    def stop(self) -> None:
        """Stop beating; returns once the thread is idle."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def lifecycle(self) -> Any:
        """A lifecycle on a fresh connection, for the supervisor's final writes."""
        from sandbox_kit.dbapi import Connection
        from sandbox_kit.lifecycle import Lifecycle

        job = self.supervisor.job_id
        return Lifecycle(Connection(self.supervisor.spec["db_url"], name=f"sandbox-kit job {job}"))

    def _run(self) -> None:
        from sandbox_kit.dbapi import TransientError

        sup = self.supervisor
        spec = sup.spec
        lifecycle = self.lifecycle()
        failing_since: float | None = None
        delay = 0.1
        while not self._stop.is_set():
            try:
                if not self.announced and sup.proc is not None:
                    beat = self.announce(lifecycle)
                else:
                    beat = lifecycle.heartbeat(sup.job_id, attempt=sup.attempt)
            except TransientError as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                    sup.oplog.warning("job %s: heartbeat failed (%s); retrying", sup.job_id, exc)
                self._pause(delay)
                delay = min(delay * 2, spec["heartbeat_s"])
                continue
            except Exception:
                sup.oplog.exception("job %s: heartbeat failed", sup.job_id)
                self._pause(spec["heartbeat_s"])
                continue
            if failing_since is not None:
                sup.oplog.warning(
                    "job %s: database back after %.1f s",
                    sup.job_id,
                    time.monotonic() - failing_since,
                )
                failing_since, delay = None, 0.1
            if beat == GONE:
                self.gone.set()  # ended elsewhere (e.g. marked lost): stop the model
            elif beat == CANCEL:
                self.cancel.set()
            self._pause(spec["heartbeat_s"])
        lifecycle.conn.close()

    def announce(self, lifecycle: Any) -> str | None:
        """Record that the model runs (pid, host, isolation, ...); returns the first beat."""
        from sandbox_kit.executor import create_time

        sup = self.supervisor
        assert sup.proc is not None
        beat: str | None = lifecycle.started(
            sup.job_id,
            started=self._started,
            model_pid=sup.proc.pid,
            model_started=create_time(sup.proc.pid),
            python_version=sup.spec["python_version"],
            supervisor_pid=os.getpid(),
            supervisor_started=create_time(os.getpid()),
            isolation=sup.isolation,
            attempt=sup.attempt,
        )
        self.announced = True
        return beat

    def _pause(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()
