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

from voila.app import Voila

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

        return [*handlers(self.server_url or self.base_url), *super().init_handlers()]

    def stop(self) -> None:
        """Stop the API's threads, then Voilà."""
        if self._api is not None:
            self._api.close()
        super().stop()


main = SandboxVoila.launch_instance

if __name__ == "__main__":
    main()
