"""The event hub: one look at the registry per tick, shared by every event-stream client.

While at least one client is connected, the hub reads the jobs that are queued or running and
the newest few (to see jobs that were created already finished, e.g. cache hits) every
``interval`` seconds, on a worker thread, and publishes them as a numbered
:class:`Snapshot`. Clients wake on each new snapshot and read their jobs' durable logs
themselves, at their own pace (:mod:`sandbox_kit.server.events`): the registry is queried
once per tick however many clients there are, and a slow client holds up nobody.

Jobs appear whoever started them (CLI, dashboard, scheduler, another server): the hub reads
the registry, never the process that started a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandbox_kit.records import JobInfo

if TYPE_CHECKING:
    from sandbox_kit.server.context import ApiContext

_NEWEST = 100  # jobs created already finished are seen when fewer than this per tick
_ACTIVE_MAX = 100_000
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The jobs the hub saw in one look.

    Attributes:
        version: 1, 2, 3, ... per look.
        jobs: job id -> record, for jobs queued or running and the newest few.
    """

    version: int
    jobs: dict[str, JobInfo] = field(default_factory=dict)


class Hub:
    """Looks at the registry every ``interval`` seconds while anyone listens.

    Args:
        context: the API's context (its sandbox and worker threads).
        interval: seconds between two looks.
    """

    def __init__(self, context: ApiContext, *, interval: float) -> None:
        self._ctx = context
        self._interval = interval
        self._listeners = 0
        self._snapshot = Snapshot(0)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def snapshot(self) -> Snapshot:
        """The newest snapshot (version 0 before the first look)."""
        return self._snapshot

    def subscribe(self) -> None:
        """Count a listener; the first one starts the looks."""
        self._listeners += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unsubscribe(self) -> None:
        """Stop counting a listener; the looks stop after the last one leaves."""
        self._listeners = max(0, self._listeners - 1)

    async def wait(self, after: int, timeout: float | None = None) -> Snapshot:
        """The first snapshot newer than version ``after`` (the newest one at ``timeout``)."""
        if self._snapshot.version > after:
            return self._snapshot
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)
        return self._snapshot

    def close(self) -> None:
        """Stop looking."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        failing = False
        while self._listeners > 0:
            try:
                jobs = await self._ctx.call(self._look)
            except Exception as exc:  # the registry may be down for a while: say so, go on
                if not failing:
                    _log.warning("sandbox_kit events: cannot read the job registry: %s", exc)
                failing = True
            else:
                failing = False
                self._publish(jobs)
            await asyncio.sleep(self._interval)

    def _publish(self, jobs: dict[str, JobInfo]) -> None:
        self._snapshot = Snapshot(self._snapshot.version + 1, jobs)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _look(self) -> dict[str, JobInfo]:
        sandbox = self._ctx.sandbox()
        found = {info.id: info for info in sandbox.jobs(limit=_NEWEST)}
        # Later reads win: a job seen queued, then running, is running.
        for status in ("queued", "running"):
            found.update((i.id, i) for i in sandbox.jobs(status=status, limit=_ACTIVE_MAX))
        return found
