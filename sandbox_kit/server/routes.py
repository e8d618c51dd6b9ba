"""The HTTP API's routes, written as OpenAPI path templates under ``/sandbox/api``."""

from __future__ import annotations

import re
from typing import Any

from jupyter_server.utils import url_path_join
from tornado import web

from sandbox_kit.server.base import ApiError, ApiHandler
from sandbox_kit.server.events import EventsSocket
from sandbox_kit.server.jobs import (
    CancelHandler,
    ExecuteHandler,
    JobHandler,
    JobsHandler,
    LogsHandler,
)
from sandbox_kit.server.models import (
    ModelActionHandler,
    ModelHandler,
    ModelsHandler,
    UploadHandler,
)
from sandbox_kit.server.openapi import PREFIX, OpenApiHandler

#: (path template, handler, handler arguments); ``{name}`` matches one path segment.
ROUTES: list[tuple[str, type[web.RequestHandler], dict[str, Any]]] = [
    ("/upload", UploadHandler, {}),
    ("/models", ModelsHandler, {}),
    ("/models/{modelId}", ModelHandler, {}),
    ("/models/{modelId}/activate", ModelActionHandler, {"action": "activate"}),
    ("/models/{modelId}/archive", ModelActionHandler, {"action": "archive"}),
    ("/models/{modelId}/restore", ModelActionHandler, {"action": "restore"}),
    ("/execute", ExecuteHandler, {}),
    ("/jobs", JobsHandler, {}),
    ("/jobs/{jobId}", JobHandler, {}),
    ("/jobs/{jobId}/cancel", CancelHandler, {}),
    ("/jobs/{jobId}/logs", LogsHandler, {}),
    ("/events", EventsSocket, {}),
    ("/openapi.json", OpenApiHandler, {}),
]


class NoRouteHandler(ApiHandler):
    """Anything else under ``/sandbox/api/``: 404 as JSON (after authentication)."""

    @web.authenticated
    def get(self, path: str) -> None:
        """No such route."""
        raise ApiError(404, f"no such API route: /{PREFIX}/{path}; see /{PREFIX}/openapi.json")

    post = put = patch = delete = get


def handlers(base_url: str) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """The tornado handlers of the API under a server's ``base_url``."""
    found = [
        (url_path_join(base_url, PREFIX, _pattern(template)), handler, kwargs)
        for template, handler, kwargs in ROUTES
    ]
    found.append((url_path_join(base_url, PREFIX, "(.*)"), NoRouteHandler, {}))
    return found


def _pattern(template: str) -> str:
    """``/models/{modelId}`` -> ``models/([^/]+)/?`` (literal parts escaped)."""
    parts = re.split(r"\{\w+\}", template.lstrip("/"))
    return "([^/]+)".join(re.escape(part) for part in parts) + "/?"
