"""Handlers for jobs: execute, status, list, cancel, and the log as JSON lines.

Job answers carry the same keys as ``sandbox-kit status --json`` (:meth:`JobInfo.to_dict`),
log lines those of ``sandbox-kit logs --json`` (:meth:`LogLine.to_dict`).
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from sandbox_kit.server.base import ApiError, ApiHandler, whole_number

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sandbox_kit.records import LogLine
    from sandbox_kit.sandbox import Sandbox

_EXECUTE_FIELDS = {"modelId", "modelType", "dataSourceId", "config", "timeout", "cache"}
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LINES_PER_WRITE = 2000  # lines read on a worker thread, then sent, before reading more
_NDJSON = "application/x-ndjson; charset=utf-8"


class ExecuteHandler(ApiHandler):
    """``POST /execute`` starts (or queues) a run: 202 and ``{"jobId": ...}``;
    ``GET /execute?jobId=`` is the job's status (the original spec's pair)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Start a run of a model id, or of a type's active model."""
        body = self.json_body()
        unknown = sorted(set(body) - _EXECUTE_FIELDS)
        if unknown:
            raise ApiError(400, f"unknown field {unknown[0]!r}")
        target = _target(body)
        config = body.get("config")
        if config is not None and not isinstance(config, dict):
            raise ApiError(400, 'config must be a JSON object, like {"load_scale": 1.1}')
        source = _optional(body, "dataSourceId", str, "a string")
        timeout = _optional(body, "timeout", (int, float), "a number of seconds")
        cache = _optional(body, "cache", bool, "true or false")
        kind = body.get("modelType")

        def run(sb: Sandbox) -> dict[str, Any]:
            if isinstance(target, int) and kind is not None:
                model = sb.model(target)
                if model.model_type.value != str(kind).upper():
                    raise ApiError(
                        400,
                        f"model {target} is a {model.model_type.value} model, not {kind}",
                        modelId=target,
                    )
            job = sb.run(target, config=config, data_source_id=source, timeout=timeout, cache=cache)
            return job.info.to_dict()

        info = await self.facade(run, acting=True)
        self.set_header("Location", url_path_join(self.base_url, "sandbox/api/jobs", info["id"]))
        self.reply({"jobId": info["id"], "status": info["status"], "job": info}, 202)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """A job's status, as ``GET /jobs/{jobId}``."""
        job_id = self.text_arg("jobId")
        if job_id is None:
            raise ApiError(400, "missing query parameter jobId")
        self.reply(await self.facade(lambda sb: sb.job_info(job_id).to_dict()))


class JobsHandler(ApiHandler):
    """``GET /jobs?modelType=&status=&modelId=&limit=``: job records, newest first."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the jobs."""
        kind, status = self.text_arg("modelType"), self.text_arg("status")
        model = self.text_arg("modelId")
        number = None if model is None else whole_number("modelId", model, minimum=1)
        limit = self.int_arg("limit", 100, minimum=1)
        jobs = await self.facade(
            lambda sb: [j.to_dict() for j in sb.jobs(kind, status, number, limit)]
        )
        self.reply(jobs)


class JobHandler(ApiHandler):
    """``GET /jobs/{jobId}``: the job's status and record."""

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Show one job."""
        self.reply(await self.facade(lambda sb: sb.job_info(job_id).to_dict()))


class CancelHandler(ApiHandler):
    """``POST /jobs/{jobId}/cancel``: stop the job and its whole process tree; 202 and the
    record as it stands (the job ends ``cancelled`` shortly; a finished job stays as it is)."""

    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        """Cancel one job."""

        def cancel(sb: Sandbox) -> dict[str, Any]:
            sb.cancel(job_id)
            return sb.job_info(job_id).to_dict()

        self.reply(await self.facade(cancel, acting=True), 202)


class LogsHandler(ApiHandler):
    """``GET /jobs/{jobId}/logs?since=&level=``: the log lines written so far, as JSON lines.

    The log is read and sent a few thousand lines at a time, each batch flushed before the
    next is read, so a gigabyte log costs the server constant memory.
    """

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Stream the job's log lines with ``seq > since``."""
        since = self.int_arg("since", 0)
        level = self.text_arg("level")
        if level is not None and level.upper() not in _LEVELS:
            raise ApiError(400, f"level must be one of {', '.join(_LEVELS)}, not {level!r}")
        wanted = None if level is None else level.upper()
        lines: Iterator[LogLine] = await self.facade(lambda sb: sb.job(job_id).iter_logs(since))
        self.set_header("Content-Type", _NDJSON)
        try:
            while True:
                batch = await self.ctx.call(_encode, lines, wanted)
                if batch is None:
                    break
                if batch:
                    self.write(batch)
                    await self.flush()  # sent before the next batch is read
        except StreamClosedError:
            return  # the client went away
        self.finish(set_content_type=_NDJSON)


def _encode(lines: Iterator[LogLine], level: str | None) -> bytes | None:
    """The next batch of lines as JSON lines (b"" when all were filtered out), None at the
    end."""
    batch = list(itertools.islice(lines, _LINES_PER_WRITE))
    if not batch:
        return None
    text = "".join(
        json.dumps(line.to_dict(), ensure_ascii=False) + "\n"
        for line in batch
        if level is None or line.level == level
    )
    return text.encode("utf-8")


def _target(body: dict[str, Any]) -> int | str:
    model = body.get("modelId")
    kind = body.get("modelType")
    if model is not None:
        return whole_number("modelId", model, minimum=1)
    if kind is None:
        raise ApiError(400, "give modelId (a model version) or modelType (its active model)")
    if not isinstance(kind, str):
        raise ApiError(400, f"modelType must be DMO, RMO or SO, not {kind!r}")
    return kind


def _optional(body: dict[str, Any], name: str, kind: Any, what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ApiError(400, f"{name} must be {what}, not {json.dumps(value)}")
    return value
