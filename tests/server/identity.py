"""A Jupyter Server identity provider that names the token holder, as JupyterHub's does.

Jupyter Server's own provider calls whoever holds the shared token an anonymous user; a hub
(or any real identity provider) knows a name. The HTTP API records actions under that name.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User

USERNAME = "ada"


class NamedTokenHolder(IdentityProvider):
    """The token's holder is ``ada``."""

    def generate_anonymous_user(self, handler: Any) -> User:
        """Ada, instead of a random anonymous name."""
        return User(username=USERNAME, name="Ada Lovelace", display_name="Ada Lovelace")
