"""``sandbox-kit serve``: set up the home folder and serve the dashboard with Voilà.

Set-up is idempotent: the database is migrated, and the shipped sample models are registered
when the registry is empty, so ``make serve`` on a fresh clone shows models ready to run.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

from sandbox_kit.errors import SandboxKitError
from sandbox_kit.records import Model
from sandbox_kit.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "dashboard.ipynb"
EXAMPLES = ROOT / "models" / "examples"
_EXAMPLE_TYPES = {"dmo.py": "DMO", "rmo.py": "RMO", "so.py": "SO"}
# FileUpload sends the whole file as one websocket message; tornado's default (10 MiB) would
# drop the connection for a file just over the upload limit instead of letting us say why.
_WEBSOCKET_MAX = 100 * 1024 * 1024


def register_examples(sandbox: Sandbox, folder: Path = EXAMPLES) -> list[Model]:
    """Upload the shipped sample models when the registry has no model at all."""
    if sandbox.models():
        return []
    return [
        sandbox.upload(folder / name, kind, description="Sample model shipped with sandbox_kit")
        for name, kind in _EXAMPLE_TYPES.items()
        if (folder / name).is_file()
    ]


def voila_command(notebook: Path, *, host: str, port: int) -> list[str]:
    """The Voilà command line: token auth, fixed port, no tracebacks, no sources.

    The token itself is not on it (``ps`` shows every command line to every user): Voilà
    reads it from ``JUPYTER_TOKEN`` in its environment, which only its own user can read.
    """
    return [
        sys.executable, "-m", "voila", str(notebook), "--no-browser",
        f"--port={port}", f"--Voila.ip={host}", "--Voila.port_retries=0",
        "--Voila.auto_token=True",
        "--show_tracebacks=False", "--strip_sources=True",
        f"--Voila.tornado_settings={{'websocket_max_message_size': {_WEBSOCKET_MAX}}}",
    ]  # fmt: skip


def check_port(host: str, port: int) -> None:
    """Raise when the port is taken: Voilà would silently move to another one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SandboxKitError(
                f"port {port} on {host} is busy ({exc.strerror}); pick another with "
                "--port (make serve PORT=...)"
            ) from None


def serve(
    *, home: str | None, host: str, port: int, token: str | None, examples: bool = True
) -> int:
    """Prepare ``home`` and replace this process with the Voilà server."""
    sandbox = Sandbox(home=home)
    if examples:
        for model in register_examples(sandbox):
            print(f"Registered sample {model.model_type.value} model {model.label}.")
    sandbox.close()
    check_port(host, port)
    token = token or secrets.token_urlsafe(24)
    env = {**os.environ, "SANDBOX_HOME": str(sandbox.home), "JUPYTER_TOKEN": token}
    print(f"sandbox_kit dashboard: http://{host}:{port}/?token={token}", flush=True)
    cmd = voila_command(NOTEBOOK, host=host, port=port)
    os.execve(sys.executable, cmd, env)
    return 0  # pragma: no cover - execve does not return
