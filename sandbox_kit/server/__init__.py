"""The HTTP API and live event stream, as a Jupyter Server extension (issue 16).

Everything lives under ``<base_url>/sandbox/api/`` behind the hosting server's authentication
(token, identity provider, JupyterHub) and XSRF protection; ``GET /sandbox/api/openapi.json``
describes it. The handlers are one more client of the :class:`~sandbox_kit.Sandbox` facade,
like the CLI and the widgets.

Installing the package enables the extension for every Jupyter Server (JupyterLab included)
through ``etc/jupyter/jupyter_server_config.d/sandbox_kit.json``; ``sandbox-kit serve`` runs
Voilà with the same handlers (:mod:`sandbox_kit.server.voila`), as Voilà 0.5's own server
loads no extensions.

::

    context   the sandbox (opened on first use), worker threads, settings (SandboxApi)
    base      JSON replies and errors, facade calls on worker threads
    models    upload, list, show, delete, activate, archive, restore
    jobs      execute, status, list, cancel, logs
    hub       one look at the registry per tick for every event-stream client
    streams   what one client follows, as the original spec's messages
    events    the WebSocket
    openapi   the OpenAPI 3.1 document
    routes    path templates -> handlers
    voila     Voilà with the API, for ``sandbox-kit serve``
"""

from __future__ import annotations

from typing import Any

from tornado import web

from sandbox_kit.server.context import SETTINGS_KEY, ApiContext, SandboxApi

__all__ = ["ApiContext", "SandboxApi", "install"]


def install(app: web.Application, *, base_url: str, config: SandboxApi) -> ApiContext:
    """Serve the API from ``app`` (a Jupyter Server's tornado application) under
    ``base_url``; returns its context (close it when the server stops)."""
    from sandbox_kit.server.routes import handlers

    ctx = ApiContext(config)
    app.settings[SETTINGS_KEY] = ctx
    app.add_handlers(".*$", handlers(base_url))
    return ctx


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "sandbox_kit.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    install(serverapp.web_app, base_url=serverapp.base_url, config=SandboxApi(parent=serverapp))
    serverapp.log.info("sandbox_kit HTTP API at %ssandbox/api/", serverapp.base_url)


def _unload_jupyter_server_extension(serverapp: Any) -> None:
    ctx = serverapp.web_app.settings.pop(SETTINGS_KEY, None)
    if isinstance(ctx, ApiContext):
        ctx.close()
