"""``GET /sandbox/api/events``: the live event stream, a WebSocket (the original spec's
Socket.IO events; messages in :mod:`sandbox_kit.server.streams`).

Query parameters:

- ``jobId``: follow one job to its end, then the server closes the socket (code 1000). With
  ``since=SEQ`` the stream starts after line ``SEQ``: a client that lost its connection
  reconnects with the last ``seq`` it got and misses nothing, receives nothing twice. A slow
  client is sent every line anyway, at its own pace, from the job's durable log.
- without ``jobId``: every job (``modelType`` filters), as it happens, until the client
  leaves; a client that falls far behind gets ``resync`` (see :class:`~.streams.AllJobsStream`).

The stream is one way; messages from the client are ignored. Each client's log reading runs
on the API's worker threads, and each batch is flushed to the client before the next is read,
so a slow client costs a file offset per job and one batch of memory, and delays nobody.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web, websocket
from tornado.iostream import IOStream, StreamClosedError

from sandbox_kit.dbapi import TransientError
from sandbox_kit.errors import SandboxKitError
from sandbox_kit.records import ModelType
from sandbox_kit.server.base import (
    AUTH_RESOURCE,
    ApiError,
    JsonErrors,
    context_of,
    reply_for,
    whole_number,
)
from sandbox_kit.server.context import ApiContext
from sandbox_kit.server.streams import AllJobsStream, JobStream

_INTERNAL = 1011


class EventsSocket(WebSocketMixin, websocket.WebSocketHandler, JsonErrors):
    """The WebSocket of ``/sandbox/api/events`` (see the module doc)."""

    auth_resource = AUTH_RESOURCE
    _stream: JobStream | AllJobsStream
    _task: asyncio.Task[None] | None = None
    _closed = False

    @property
    def ctx(self) -> ApiContext:
        """The API's shared context."""
        return context_of(self)

    def set_default_headers(self) -> None:
        """No page headers (content security policy, ...) on a WebSocket handshake."""

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Check the filters (400 or 404 as JSON, before the upgrade), then upgrade."""
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)
        )
        if not allowed:
            raise web.HTTPError(403, log_message="not allowed to read the sandbox's events")
        self._stream = await self._open_stream()
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Start sending."""
        super().open()  # the keep-alive pings
        self._task = asyncio.get_running_loop().create_task(self._pump())

    def on_message(self, message: str | bytes) -> None:
        """The stream is one way: what the client sends is ignored."""

    def on_close(self) -> None:
        """Stop sending."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()

    async def _open_stream(self) -> JobStream | AllJobsStream:
        job_id = self.get_query_argument("jobId", None) or None
        since_text = self.get_query_argument("since", None)
        kind_text = self.get_query_argument("modelType", None) or None
        try:
            kind = None if kind_text is None else ModelType.parse(kind_text)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        if job_id is None:
            if since_text:
                raise ApiError(400, "since needs a jobId: it counts one job's log lines")
            return AllJobsStream(kind, lag_bytes=self.ctx.config.events_max_lag_bytes)
        since = whole_number("since", since_text, minimum=0) if since_text else 0
        ctx = self.ctx
        info = await ctx.call(lambda: ctx.sandbox().job_info(job_id))
        return JobStream(info, since)

    async def _pump(self) -> None:
        ctx, stream = self.ctx, self._stream
        hub = ctx.hub
        patience = 4 * ctx.config.poll_interval  # look anyway, should the hub stall
        hub.subscribe()
        try:
            snapshot = await hub.wait(0)
            while not self._closed:
                step = await ctx.call(stream.step, snapshot, ctx.sandbox)
                if step.messages:
                    await self._send(step.messages)  # a slow client slows only its own stream
                if step.done:
                    self.close(1000, "the job has ended")
                    return
                if step.more:
                    snapshot = hub.snapshot
                else:
                    snapshot = await hub.wait(snapshot.version, timeout=patience)
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            pass
        except (SandboxKitError, TransientError) as exc:  # e.g. the job was deleted
            self._fail(reply_for(exc)[1]["error"])
        except Exception:
            self.log.exception("sandbox_kit event stream failed")
            self._fail("internal error; the server log has the details")
        finally:
            hub.unsubscribe()

    async def _send(self, texts: list[str]) -> None:
        """Send each text as a message of its own, and wait until all are flushed.

        The frames of a whole batch go to the socket in one write: ``write_message`` costs a
        task and a system call per message, which made a flood of log lines cost the server
        ~40 us of CPU per line with its event loop held meanwhile. Text frames from a server
        are unmasked and, as this handler negotiates no compression, plain (RFC 6455, 5.2).
        """
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            raise websocket.WebSocketClosedError()
        stream = getattr(connection, "stream", None)
        if not isinstance(stream, IOStream):  # not the protocol this was written for
            for text in texts[:-1]:
                self.write_message(text)
            await self.write_message(texts[-1])
            return
        try:
            await stream.write(b"".join(map(_text_frame, texts)))
        except StreamClosedError:
            raise websocket.WebSocketClosedError() from None

    def _fail(self, sentence: str) -> None:
        if self._closed:
            return
        try:
            self.write_message(json.dumps({"event": "error", "error": sentence}))
            self.close(_INTERNAL, sentence[:120])
        except websocket.WebSocketClosedError:
            pass


def _text_frame(text: str) -> bytes:
    """One unfragmented, unmasked text frame (RFC 6455, section 5.2)."""
    data = text.encode("utf-8")
    size = len(data)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + data
    if size <= 0xFFFF:
        return struct.pack("!BBH", 0x81, 126, size) + data
    return struct.pack("!BBQ", 0x81, 127, size) + data
