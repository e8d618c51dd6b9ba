"""The original spec's testing checklist, over HTTP alone, against ``sandbox-kit serve``'s
Voilà server (issue 16); and JupyterLab serving the same API.

Upload DMO, RMO and SO models (the shipped samples), execute each, watch the logs live over
the event stream, check each status after completion, view the model list, archive and
delete a model: no Python API, no CLI, only HTTP and a WebSocket.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.server.conftest import Server, environment, free_port, seqs, start, stop, upload

EXAMPLES = ROOT / "models" / "examples"

pytestmark = pytest.mark.slow


def test_the_original_checklist_over_http(voila: Server) -> None:
    with voila.client() as client:
        models = {
            kind: upload(client, EXAMPLES / f"{kind.lower()}.py", kind, name=f"spec-{kind}")
            for kind in ("DMO", "RMO", "SO")
        }
        assert all(m["status"] == "active" for m in models.values())
        jobs = {}
        for kind in models:  # execute by type, as the control panel does
            answer = client.post("execute", json={"modelType": kind, "config": {}})
            assert answer.status_code == 202, answer.text
            jobs[kind] = answer.json()["jobId"]
        for kind, job_id in jobs.items():
            with voila.events(f"jobId={job_id}") as ws:  # watch the logs as they come
                messages = []
                while (
                    not messages
                    or messages[-1]["event"] == "optimization:log"
                    or (messages[-1]["event"] == "optimization:started")
                ):
                    messages.append(json.loads(ws.recv(timeout=300)))
            assert messages[0]["event"] == "optimization:started"
            assert messages[-1]["event"] == "optimization:completed", messages[-3:]
            lines = seqs(messages)
            assert lines == list(range(1, len(lines) + 1)) and len(lines) > 3
            status = client.get("execute", params={"jobId": job_id}).json()
            assert (status["status"], status["model_type"]) == ("success", kind)
            assert status["model_id"] == models[kind]["id"]
            assert status["outcome"] == "optimal" and status["objective"] is not None
        listed = {m["id"]: m for m in client.get("models").json()}
        assert {m["id"] for m in models.values()} <= set(listed)
        assert len(client.get("jobs", params={"modelType": "SO"}).json()) >= 1
        archived = client.post(f"models/{models['RMO']['id']}/archive")
        assert (archived.status_code, archived.json()["status"]) == (200, "archived")
        refused = client.post("execute", json={"modelType": "RMO"})
        assert refused.status_code == 409  # its type has no active model now
        assert client.delete(f"models/{models['SO']['id']}").status_code == 204
        assert client.get(f"jobs/{jobs['SO']}").status_code == 404  # its jobs went with it
        assert models["SO"]["id"] not in {m["id"] for m in client.get("models").json()}


def test_jupyterlab_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={tmp_path}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    lab = start("jupyterlab", tmp_path, command, environment(tmp_path), port)
    try:
        with lab.client() as client:
            assert client.get("models").json() == []
            assert client.get(f"{lab.base}lab").status_code == 200  # and it is JupyterLab
        with lab.client(auth=False) as anonymous:
            assert anonymous.get("models").status_code == 403
    finally:
        stop(lab)
