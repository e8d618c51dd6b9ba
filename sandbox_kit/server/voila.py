"""Voilà with the HTTP API: the server ``sandbox-kit serve`` runs.

Voilà 0.5's standalone server is a tornado application of its own, not a Jupyter Server: it
loads no server extensions (``--ServerApp.jpserver_extensions`` means nothing to it). This
subclass adds the API's handlers ahead of Voilà's catch-all notebook route, with Voilà's own
identity provider, authorizer and cookie secret behind them, so the dashboard and the API
share one port, one token and one login. Run it as ``python -m sandbox_kit.server.voila``
with Voilà's arguments.
"""

from __future__ import annotations

from typing import Any, ClassVar

import tornado.web
from voila.app import Voila
from voila.tornado.handler import TornadoVoilaHandler

from sandbox_kit.server.context import SETTINGS_KEY, ApiContext, SandboxApi


class SandboxVoila(Voila):  # type: ignore[misc]
    """Voilà serving the dashboard and ``/sandbox/api/``."""

    classes: ClassVar[list[type]] = [*Voila.classes, SandboxApi]
    _api: ApiContext | None = None

    def init_settings(self) -> dict[str, Any]:
        """Voilà's tornado settings, and the API's context."""
        settings: dict[str, Any] = super().init_settings()
        self._api = ApiContext(SandboxApi(parent=self))
        settings[SETTINGS_KEY] = self._api
        return settings

    def init_handlers(self) -> list[Any]:
        """The API's handlers first: Voilà's last route takes every path."""
        from sandbox_kit.server.routes import handlers

        voila = [
            (route[0], _PageHandler, *route[2:]) if route[1] is TornadoVoilaHandler else route
            for route in super().init_handlers()
        ]
        return [*handlers(self.server_url or self.base_url), *voila]

    def stop(self) -> None:
        """Stop the API's threads, then Voilà."""
        if self._api is not None:
            self._api.close()
        super().stop()


class _PageHandler(TornadoVoilaHandler):  # type: ignore[misc]
    """Voilà's page, which also sets the ``_xsrf`` cookie.

    The page's unload beacon (``POST /voila/api/shutdown/<kernel>``) sends the ``_xsrf``
    cookie's value, but Voilà's page never sets that cookie, so every shutdown on close or
    reload was refused (403, voila#1458) and the kernel lived on until culled, or for ever
    without culling (issue 13).
    """

    @tornado.web.authenticated
    async def get(self, path: str | None = None) -> None:
        """Set the cookie (before the first byte is flushed), then render as Voilà does."""
        _ = self.xsrf_token
        await super().get(path)


main = SandboxVoila.launch_instance

if __name__ == "__main__":
    main()
