"""Real servers with the HTTP API on free ports, and the clients that drive them.

- ``jupyter``: a plain ``jupyter server`` (JupyterLab's server, with every installed extension).
  Nothing on its command line names sandbox_kit: the API is there because installing the
  package enabled it (``etc/jupyter/jupyter_server_config.d/sandbox_kit.json``). Its identity
  provider names the token holder ``ada`` (as JupyterHub's names its users), and its
  all-jobs stream lets a client fall at most 256 KiB behind a log.
- ``voila``: the Voilà server of ``sandbox-kit serve`` (the same command line).

Both take the token from ``JUPYTER_TOKEN`` in their environment, never the command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from sandbox_kit import Sandbox
from sandbox_kit.serve import NOTEBOOK, voila_command
from tests.conftest import ROOT, script

TOKEN = "api-test-token"
AUTH = {"Authorization": f"token {TOKEN}"}
LAG_BYTES = 256 * 1024
TERMINAL = {"success", "failed", "cancelled", "timeout", "lost"}


@dataclass
class Server:
    """A running server with the API."""

    name: str
    base: str  # http://127.0.0.1:PORT/
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def api(self) -> str:
        """The API's root URL."""
        return f"{self.base}sandbox/api/"

    def client(self, *, auth: bool = True) -> httpx.Client:
        """An HTTP client of the API (with the token unless ``auth`` is False)."""
        return httpx.Client(base_url=self.api, headers=AUTH if auth else {}, timeout=120)

    def events(self, query: str = "", *, auth: bool = True, **options: Any) -> ClientConnection:
        """A WebSocket client of the event stream."""
        url = self.api.replace("http://", "ws://") + "events" + (f"?{query}" if query else "")
        headers = AUTH if auth else {}
        return connect(url, additional_headers=headers, open_timeout=60, max_size=None, **options)


def free_port() -> int:
    """A TCP port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(name: str, tmp: Path, command: list[str], env: dict[str, str], port: int) -> Server:
    """Run a server; return once its API answers (fail, with its log, if it does not)."""
    home = Path(env["SANDBOX_HOME"])
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home)
    server = Server(name, f"http://127.0.0.1:{port}/", home, proc, log)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(server)
            pytest.fail(f"{name} did not start:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            answer = httpx.get(f"{server.api}openapi.json", headers=AUTH, timeout=5)
            if answer.status_code == 200:
                return server
            if answer.status_code == 404:
                stop(server)
                pytest.fail(
                    f"{name} answers without the sandbox_kit API: is the package installed "
                    "(pip install -e .)? It installs jupyter_server_config.d/sandbox_kit.json"
                )
        time.sleep(0.3)


def stop(server: Server) -> None:
    """Cancel the server's jobs, then stop it."""
    with contextlib.suppress(Exception):
        sb = Sandbox(home=server.home)
        for info in sb.jobs(status="running") + sb.jobs(status="queued"):
            sb.cancel(info.id)
        sb.close()
    server.proc.terminate()
    try:
        server.proc.wait(30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def environment(tmp: Path) -> dict[str, str]:
    """A server's environment: a fresh migrated home, the token, nothing of ours leaking in."""
    home = tmp / "home"
    home.mkdir()
    Sandbox(home=home).close()  # migrated before the server opens it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDBOX_", "JUPYTERHUB"))}
    return env | {
        "SANDBOX_HOME": str(home),
        "SANDBOX_MAX_RUNNING": "4",
        "SANDBOX_MAX_UPLOAD_MB": "1",
        "JUPYTER_TOKEN": TOKEN,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "PYTHONPATH": str(ROOT),  # the identity provider of tests/server/identity.py
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="package")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A Jupyter Server with every installed extension, the API included."""
    tmp = tmp_path_factory.mktemp("jupyter")
    port = free_port()
    command = [
        sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={tmp}",
        "--ServerApp.identity_provider_class=tests.server.identity.NamedTokenHolder",
        f"--SandboxApi.events_max_lag_bytes={LAG_BYTES}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    server = start("jupyter", tmp, command, environment(tmp), port)
    yield server
    stop(server)


@pytest.fixture(scope="package")
def voila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The Voilà server of ``sandbox-kit serve``."""
    tmp = tmp_path_factory.mktemp("voila")
    port = free_port()
    command = voila_command(NOTEBOOK, host="127.0.0.1", port=port)
    server = start("voila", tmp, command, environment(tmp), port)
    yield server
    stop(server)


@pytest.fixture(params=["jupyter", "voila"])
def server(request: pytest.FixtureRequest) -> Server:
    """Each server in turn."""
    found = request.getfixturevalue(request.param)
    assert isinstance(found, Server)
    return found


# -- what the tests do over HTTP -------------------------------------------------------------


def upload(
    client: httpx.Client,
    path: Path | str,
    model_type: str,
    *,
    name: str | None = None,
    activate: bool = True,
) -> dict[str, Any]:
    """Upload a model file (a path, or the name of a script under tests/scripts)."""
    path = Path(path) if Path(path).is_file() else script(str(path))
    fields = {"modelType": model_type, "description": f"{path.name} over HTTP"}
    fields["activate"] = "true" if activate else "false"
    if name is not None:
        fields["name"] = name
    files = {"file": (path.name, path.read_bytes(), "text/x-python")}
    answer = client.post("upload", data=fields, files=files)
    assert answer.status_code == 201, answer.text
    model = answer.json()
    assert isinstance(model, dict)
    return model


def execute(client: httpx.Client, **body: Any) -> str:
    """Start a run; its job id."""
    answer = client.post("execute", json=body)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["jobId"]
    assert isinstance(job_id, str)
    return job_id


def wait(client: httpx.Client, job_id: str, timeout: float = 240) -> dict[str, Any]:
    """Poll a job's status until it ends."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            assert isinstance(job, dict)
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.2)


def receive_all(ws: ClientConnection, timeout: float = 240) -> list[dict[str, Any]]:
    """Every message until the server closes the socket."""
    found = []
    with contextlib.suppress(Exception):
        while True:
            found.append(json.loads(ws.recv(timeout=timeout)))
    assert ws.close_code == 1000, (ws.close_code, ws.close_reason, found[-3:])
    return found


def follow(server: Server, job_id: str, since: int = 0) -> list[dict[str, Any]]:
    """A job's messages from the event stream, to its end."""
    with server.events(f"jobId={job_id}&since={since}") as ws:
        return receive_all(ws)


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    """The ``seq`` of the log messages, in order."""
    return [m["seq"] for m in messages if m["event"] == "optimization:log"]
