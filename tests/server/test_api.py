"""The REST half of the HTTP API (issue 16): every endpoint, each error code, authentication
and XSRF, on a real Jupyter Server and on the Voilà server of ``sandbox-kit serve``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from sandbox_kit import Sandbox
from sandbox_kit.audit import os_user
from tests.conftest import ROOT, script
from tests.server.conftest import TOKEN, Server, execute, upload, wait
from tests.server.identity import USERNAME

EXAMPLES = ROOT / "models" / "examples"
ENDPOINTS = [
    ("GET", "models"),
    ("GET", "models/1"),
    ("DELETE", "models/1"),
    ("POST", "models/1/activate"),
    ("POST", "models/1/archive"),
    ("POST", "models/1/restore"),
    ("POST", "upload"),
    ("POST", "execute"),
    ("GET", "execute?jobId=x"),
    ("GET", "jobs"),
    ("GET", "jobs/x"),
    ("POST", "jobs/x/cancel"),
    ("GET", "jobs/x/logs"),
    ("GET", "openapi.json"),
    ("GET", "no/such/route"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_requests_without_the_token_are_refused(server: Server, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "token wrong"}):
        answer = httpx.request(method, server.api + path, headers=headers, timeout=60)
        assert answer.status_code == 403, answer.text
        assert "not authenticated" in answer.json()["error"]


def test_an_unauthenticated_websocket_is_refused(server: Server) -> None:
    with pytest.raises(InvalidStatus) as refused:
        server.events(auth=False)
    assert refused.value.response.status_code == 403


def test_cookie_requests_need_the_xsrf_token(server: Server) -> None:
    with server.client() as client:
        model = upload(client, script("exit_code.py"), "RMO", name="xsrf", activate=False)
    with httpx.Client(base_url=server.api, timeout=60) as browser:
        # Signing in with the token in the URL leaves the login cookie (and _xsrf) behind.
        assert browser.get("models", params={"token": TOKEN}).status_code == 200
        assert browser.get("models").status_code == 200  # the cookie alone signs in
        xsrf = browser.cookies.get("_xsrf")
        assert xsrf
        refused = browser.post(f"models/{model['id']}/archive")
        assert refused.status_code == 403, refused.text
        assert "xsrf" in refused.json()["error"].lower()
        bad = browser.post(f"models/{model['id']}/archive", headers={"X-XSRFToken": "bad"})
        assert bad.status_code == 403
        done = browser.post(f"models/{model['id']}/archive", headers={"X-XSRFToken": xsrf})
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "archived"


def test_upload_list_show_and_change_models(server: Server, tmp_path: Path) -> None:
    sb = Sandbox(home=server.home)
    changed = tmp_path / "rmo.py"
    changed.write_bytes((EXAMPLES / "rmo.py").read_bytes() + b"# version 2\n")
    with server.client() as client:
        first = upload(client, EXAMPLES / "rmo.py", "RMO", name="api-rmo")
        assert first == sb.model(first["id"]).to_dict()  # the keys of `models --json`
        assert (first["model_type"], first["status"], first["version"]) == ("RMO", "active", 1)
        second = upload(client, changed, "rmo", name="api-rmo", activate=False)
        assert (second["version"], second["status"]) == (2, "inactive")
        listed = client.get("models", params={"modelType": "RMO"}).json()
        assert [m["id"] for m in listed if m["name"] == "api-rmo"][:1] == [second["id"]]
        assert all(m["model_type"] == "RMO" for m in listed)
        active = client.get("models", params={"status": "active"}).json()
        assert first["id"] in [m["id"] for m in active]
        assert client.get(f"models/{second['id']}").json() == sb.model(second["id"]).to_dict()

        def act(action: str, model_id: int) -> dict[str, object]:
            answer = client.post(f"models/{model_id}/{action}")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert isinstance(body, dict)
            return body

        assert act("activate", second["id"])["status"] == "active"
        assert client.get(f"models/{first['id']}").json()["status"] == "inactive"
        assert act("archive", first["id"])["status"] == "archived"
        assert act("restore", first["id"])["status"] == "inactive"
        deleted = client.delete(f"models/{first['id']}")
        assert (deleted.status_code, deleted.content) == (204, b"")
        assert client.get(f"models/{first['id']}").status_code == 404
    sb.close()


def test_actions_are_recorded_under_the_server_identity(server: Server) -> None:
    with server.client() as client:
        model = upload(client, script("exit_code.py"), "SO", name="who", activate=False)
    expected = USERNAME if server.name == "jupyter" else os_user()  # Voilà: anonymous token
    assert model["created_by"] == expected
    sb = Sandbox(home=server.home)
    (entry,) = sb.audit(action="upload", object_id=model["id"])
    sb.close()
    assert entry.actor == expected


def test_execute_status_list_and_logs(server: Server) -> None:
    sb = Sandbox(home=server.home)
    with server.client() as client:
        model = upload(client, "levels.py", "SO", name="levels", activate=False)
        answer = client.post("execute", json={"modelId": model["id"], "config": {"k": 1}})
        assert answer.status_code == 202, answer.text
        body = answer.json()
        job_id = body["jobId"]
        assert body["job"]["id"] == job_id and body["status"] in ("queued", "running")
        assert answer.headers["Location"].endswith(f"/sandbox/api/jobs/{job_id}")
        done = wait(client, job_id)
        assert done["status"] == "success" and done["config"] == {"k": 1}
        expected = sb.job_info(job_id).to_dict()  # the keys of `status --json`
        assert done == expected
        assert client.get("execute", params={"jobId": job_id}).json() == expected
        listed = client.get("jobs", params={"modelId": model["id"], "limit": 5}).json()
        assert [j["id"] for j in listed] == [job_id]
        assert (
            client.get("jobs", params={"modelType": "SO", "status": "success"}).status_code == 200
        )
        assert len(client.get("jobs", params={"limit": 1}).json()) == 1

        lines = [line.to_dict() for line in sb.job(job_id).logs()]
        got = [json.loads(t) for t in client.get(f"jobs/{job_id}/logs").text.splitlines()]
        assert got == lines and len(lines) > 5
        since = client.get(f"jobs/{job_id}/logs", params={"since": 3})
        assert since.headers["Content-Type"].startswith("application/x-ndjson")
        assert [json.loads(t)["seq"] for t in since.text.splitlines()] == [
            line["seq"] for line in lines if line["seq"] > 3
        ]
        errors = client.get(f"jobs/{job_id}/logs", params={"level": "error"}).text.splitlines()
        assert [json.loads(t)["text"] for t in errors] == [
            line["text"] for line in lines if line["level"] == "ERROR"
        ]
    sb.close()


def test_cancel(server: Server) -> None:
    with server.client() as client:
        model = upload(client, "hang.py", "DMO", name="hang", activate=False)
        job_id = execute(client, modelId=model["id"])
        answer = client.post(f"jobs/{job_id}/cancel")
        assert answer.status_code == 202, answer.text
        assert answer.json()["id"] == job_id
        assert wait(client, job_id)["status"] == "cancelled"
        again = client.post(f"jobs/{job_id}/cancel")  # a finished job stays as it is
        assert (again.status_code, again.json()["status"]) == (202, "cancelled")


def _error(answer: httpx.Response, status: int) -> dict[str, object]:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in answer.text
    assert isinstance(body, dict)
    return body


def _multipart(name: str, data: bytes, **fields: str) -> dict[str, object]:
    return {"files": {"file": (name, data, "text/x-python")}, "data": fields}


def test_upload_errors(server: Server) -> None:
    with server.client() as client:
        syntax = client.post("upload", **_multipart("bad.py", b"x = 1\ny = (\n", modelType="DMO"))
        body = _error(syntax, 400)
        assert (body["filename"], body["line"]) == ("bad.py", 2)
        assert isinstance(body["column"], int)
        _error(client.post("upload", **_multipart("m.py", b"x = 1\n")), 400)  # no modelType
        _error(client.post("upload", **_multipart("m.py", b"x = 1\n", modelType="XYZ")), 400)
        _error(client.post("upload", data={"modelType": "DMO"}, files={"x": ("a", b"")}), 400)
        _error(client.post("upload", **_multipart("m.py", b"x=1\n", modelType="SO", x="1")), 400)
        bad_flag = _multipart("m.py", b"x = 1\n", modelType="SO", activate="maybe")
        _error(client.post("upload", **bad_flag), 400)
        _error(client.post("upload", **_multipart("m.txt", b"x = 1\n", modelType="SO")), 400)
        _error(client.post("upload", json={"modelType": "DMO"}), 415)
        # Over the 1 MiB limit: by a little (the facade says why), and by far (refused before
        # the body is read).
        just_over = b"x = 1\n" + b"#" * (1024 * 1024)
        body = _error(
            client.post("upload", **_multipart("big.py", just_over, modelType="DMO")), 413
        )
        assert body["filename"] == "big.py" and body["limit"] == 1024 * 1024
        huge = b"#" * (3 * 1024 * 1024)
        _error(client.post("upload", **_multipart("huge.py", huge, modelType="DMO")), 413)
    sb = Sandbox(home=server.home)
    assert not {m.name for m in sb.models()} & {"bad", "m", "big", "huge"}  # nothing stored
    sb.close()


def test_model_errors(server: Server) -> None:
    with server.client() as client:
        missing = _error(client.get("models/999999"), 404)
        assert (missing["kind"], missing["id"]) == ("model", "999999")
        _error(client.get("models/abc"), 400)
        _error(client.get("models/0"), 400)
        _error(client.post("models/999999/activate"), 404)
        _error(client.delete("models/999999"), 404)
        _error(client.get("models", params={"status": "bogus"}), 400)
        _error(client.get("models", params={"modelType": "bogus"}), 400)
        # Deleting a model while its job runs: 409; running an archived model: 409.
        model = upload(client, "hang.py", "RMO", name="busy", activate=False)
        job_id = execute(client, modelId=model["id"])
        conflict = _error(client.delete(f"models/{model['id']}"), 409)
        assert conflict.get("modelId") == model["id"] or conflict.get("jobId") == job_id
        client.post(f"jobs/{job_id}/cancel")
        wait(client, job_id)
        assert client.post(f"models/{model['id']}/archive").status_code == 200
        archived = _error(client.post("execute", json={"modelId": model["id"]}), 409)
        assert "archived" in str(archived["error"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('{"modelType": "DMO",', 400),  # not JSON: line and column
        ("[1, 2]", 400),  # not an object
        ('{"modelType": "DMO", "timeout": NaN}', 400),
        ('{"modelid": 1}', 400),  # unknown field
        ("{}", 400),  # neither modelId nor modelType
        ('{"modelId": "x"}', 400),
        ('{"modelId": 1.5}', 400),
        ('{"modelId": true}', 400),
        ('{"modelType": 7}', 400),
        ('{"modelType": "XYZ"}', 400),
        ('{"modelId": 999999}', 404),
        ('{"modelType": "DMO", "config": [1]}', 400),
        ('{"modelType": "DMO", "timeout": "soon"}', 400),
        ('{"modelType": "DMO", "timeout": -1}', 400),
        ('{"modelType": "DMO", "cache": "yes"}', 400),
        ('{"modelType": "DMO", "dataSourceId": 5}', 400),
        ('{"modelType": "DMO", "dataSourceId": "data:no-such-set"}', 404),
    ],
)
def test_execute_errors(jupyter: Server, body: str, status: int) -> None:
    with jupyter.client() as client:
        upload(client, "exit_code.py", "DMO", name="execute-errors")  # DMO has an active model
        answer = client.post("execute", content=body, headers={"Content-Type": "application/json"})
        error = _error(answer, status)
        if body.endswith(","):
            assert (error["line"], error["column"]) == (1, 21)


def test_execute_refuses_a_model_of_another_type(jupyter: Server) -> None:
    with jupyter.client() as client:
        model = upload(client, "exit_code.py", "DMO", name="typed", activate=False)
        answer = client.post("execute", json={"modelId": model["id"], "modelType": "RMO"})
        assert "DMO" in str(_error(answer, 400)["error"])


def test_job_errors(server: Server) -> None:
    with server.client() as client:
        missing = _error(client.get("jobs/NOPE"), 404)
        assert (missing["kind"], missing["id"]) == ("job", "NOPE")
        _error(client.get("execute", params={"jobId": "NOPE"}), 404)
        _error(client.get("execute"), 400)
        _error(client.post("jobs/NOPE/cancel"), 404)
        _error(client.get("jobs/NOPE/logs"), 404)
        _error(client.get("jobs", params={"limit": "0"}), 400)
        _error(client.get("jobs", params={"limit": "many"}), 400)
        _error(client.get("jobs", params={"status": "bogus"}), 400)
        _error(client.get("jobs", params={"modelId": "x"}), 400)
        model = upload(client, "exit_code.py", "SO", name="logs-errors", activate=False)
        job_id = execute(client, modelId=model["id"])
        _error(client.get(f"jobs/{job_id}/logs", params={"since": "-1"}), 400)
        _error(client.get(f"jobs/{job_id}/logs", params={"level": "LOUD"}), 400)
        wait(client, job_id)


def test_unknown_routes_and_methods(server: Server) -> None:
    with server.client() as client:
        body = _error(client.get("no/such/route"), 404)
        assert "openapi.json" in str(body["error"])
        _error(client.put("models"), 405)
        _error(client.delete("jobs"), 405)
