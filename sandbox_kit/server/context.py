"""What the HTTP API's handlers share in one server: the sandbox, worker threads, the hub.

The sandbox is opened on the first request, not when the server starts: JupyterLab loads the
extension wherever it is started, and opening a sandbox creates its database and folders.
Every blocking call (the database, a log file) runs on the worker threads, never on the
server's event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from traitlets import Float, Int, Unicode
from traitlets.config import Configurable

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox
    from sandbox_kit.server.hub import Hub

T = TypeVar("T")

#: Where the context lives in the tornado application's settings.
SETTINGS_KEY = "sandbox_kit_api"


class SandboxApi(Configurable):
    """Settings of the HTTP API (``c.SandboxApi.<name>`` in a Jupyter config file, or
    ``--SandboxApi.<name>=...`` on the server's command line)."""

    home = Unicode(
        "",
        help="The sandbox home the API serves (default: $SANDBOX_HOME, else the server's "
        "working directory).",
    ).tag(config=True)
    workers = Int(4, help="Threads that run database calls and read logs.").tag(config=True)
    poll_interval = Float(
        0.25, help="Seconds between two looks at the registry for the event stream."
    ).tag(config=True)
    events_max_lag_bytes = Int(
        4 * 1024 * 1024,
        help="A client of the all-jobs event stream that falls further behind a job's log "
        "than this is sent a 'resync' message and skipped to the newest lines (a stream of "
        "one job, with jobId, never skips).",
    ).tag(config=True)


class ApiContext:
    """The sandbox, the worker threads and the event hub of one server.

    Args:
        config: the API's settings.
        opener: opens the sandbox (default: ``Sandbox(home=config.home or None)``).
    """

    def __init__(self, config: SandboxApi, opener: Callable[[], Sandbox] | None = None) -> None:
        self.config = config
        self._opener = opener or self._open
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, config.workers), thread_name_prefix="sandbox-api"
        )
        self._hub: Hub | None = None

    def sandbox(self) -> Sandbox:
        """The sandbox, opened on first use (blocking: call it from a worker thread)."""
        with self._lock:
            if self._sandbox is None:
                self._sandbox = self._opener()
            return self._sandbox

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking function on a worker thread and wait for it."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @property
    def hub(self) -> Hub:
        """The event hub (created on first use, on the running event loop)."""
        if self._hub is None:
            from sandbox_kit.server.hub import Hub

            self._hub = Hub(self, interval=self.config.poll_interval)
        return self._hub

    def close(self) -> None:
        """Stop the hub, the worker threads and the sandbox's connections."""
        if self._hub is not None:
            self._hub.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None

    def _open(self) -> Sandbox:
        from sandbox_kit.sandbox import Sandbox

        return Sandbox(home=self.config.home or None)
