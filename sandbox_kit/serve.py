"""``sandbox-kit serve``: set up the home folder and serve the dashboard with Voilà.

Set-up is idempotent: the database is migrated, and the shipped sample models are registered
when the registry is empty, so ``make serve`` on a fresh clone, or ``sandbox-kit serve`` in any
folder after ``pip install sandbox_kit``, shows models ready to run. The notebook and the
samples are package data (:mod:`sandbox_kit.assets`). Kernels whose page is gone are shut down
within ``--cull-after`` seconds (:mod:`sandbox_kit.culling`).

A scheduler process (:mod:`sandbox_kit.scheduler`) is started beside Voilà, unless
``--no-scheduler``, so the default set-up fires schedules. It is a child of this process, which
then becomes Voilà (``execve`` keeps the pid): it stops when Voilà does (Ctrl-C reaches both;
otherwise it notices its parent is gone within a second).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from sandbox_kit import assets
from sandbox_kit.culling import DEFAULT_CULL_AFTER_S, CullPlan
from sandbox_kit.errors import SandboxKitError, ValidationError
from sandbox_kit.records import Model
from sandbox_kit.sandbox import Sandbox

NOTEBOOK = assets.dashboard_notebook()
EXAMPLES = assets.examples_folder()
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


def voila_command(
    notebook: Path, *, host: str, port: int, cull: CullPlan | None = None
) -> list[str]:
    """The Voilà command line: token auth, fixed port, no tracebacks, no sources, and the
    culling of kernels whose page is gone when ``cull`` is given.

    It runs Voilà with the HTTP API under ``/sandbox/api/`` (:mod:`sandbox_kit.server.voila`;
    Voilà 0.5 loads no Jupyter Server extensions itself).

    The token itself is not on it (``ps`` shows every command line to every user): Voilà
    reads it from ``JUPYTER_TOKEN`` in its environment, which only its own user can read.
    """
    return [
        sys.executable, "-m", "sandbox_kit.server.voila", str(notebook), "--no-browser",
        f"--port={port}", f"--Voila.ip={host}", "--Voila.port_retries=0",
        "--Voila.auto_token=True",
        "--show_tracebacks=False", "--strip_sources=True",
        f"--Voila.tornado_settings={{'websocket_max_message_size': {_WEBSOCKET_MAX}}}",
        *(cull.voila_options() if cull is not None else []),
    ]  # fmt: skip


def start_scheduler(home: Path, *, dashboard_url: str) -> subprocess.Popen[bytes]:
    """Start ``sandbox-kit scheduler`` as a child that stops when this process (about to
    become Voilà) is gone; its log goes to this terminal and ``logs/scheduler.log``."""
    env = {**os.environ, "SANDBOX_HOME": str(home)}
    env.setdefault("SANDBOX_DASHBOARD_URL", dashboard_url)  # linked from notifications
    env.pop("JUPYTER_TOKEN", None)
    command = [sys.executable, "-m", "sandbox_kit", "--home", str(home), "scheduler"]
    command += ["--parent-pid", str(os.getpid())]
    print("Scheduler started (logs/scheduler.log); --no-scheduler to go without.", flush=True)
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)


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
    *,
    home: str | None,
    host: str,
    port: int,
    token: str | None,
    examples: bool = True,
    cull_after: int = DEFAULT_CULL_AFTER_S,
    actor: str | None = None,
    scheduler: bool = True,
) -> int:
    """Prepare ``home``, start the scheduler and replace this process with the Voilà server.

    Args:
        cull_after: seconds within which a kernel whose page is gone is shut down (0: never).
        actor: who registers the sample models, in the audit trail (default: the OS user).
        scheduler: start a scheduler process beside Voilà (issue 10).
    """
    try:
        cull = CullPlan(cull_after)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    sandbox = Sandbox(home=home, actor=actor)
    if examples:
        for model in register_examples(sandbox):
            print(f"Registered sample {model.model_type.value} model {model.label}.")
    sandbox.close()
    check_port(host, port)
    token = token or secrets.token_urlsafe(24)
    env = {**os.environ, "SANDBOX_HOME": str(sandbox.home), "JUPYTER_TOKEN": token}
    # The kernels inherit it: their views listen for the page's heartbeat (issue 13).
    env["SANDBOX_CULL_AFTER"] = str(cull.after_s)
    notebook = assets.dashboard_notebook()
    print(f"sandbox_kit dashboard: http://{host}:{port}/?token={token}", flush=True)
    if cull.enabled:
        print(f"Kernels of closed pages are shut down within {cull.after_s} s.", flush=True)
    cmd = voila_command(notebook, host=host, port=port, cull=cull)
    if scheduler:
        start_scheduler(sandbox.home, dashboard_url=f"http://{host}:{port}/")
    os.execve(sys.executable, cmd, env)
    return 0  # pragma: no cover - execve does not return
