"""The OpenAPI document (issue 16): it validates, it lists exactly the routes the server has,
and what a real server answers validates against its schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from tornado import web

from sandbox_kit.server.openapi import document
from sandbox_kit.server.routes import ROUTES
from tests.server.conftest import Server, execute, follow, upload, wait

_METHODS = ("get", "put", "post", "delete", "patch", "head")


def _implemented(handler: type[web.RequestHandler]) -> set[str]:
    return {
        m for m in _METHODS if getattr(handler, m) is not web.RequestHandler._unimplemented_method
    }


def _checker(doc: dict[str, Any]) -> Any:
    """``check(instance, "Model")`` validates against one of the document's schemas."""
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:sandbox-api", resource)

    def check(instance: Any, name: str) -> None:
        schema = {"$ref": f"urn:sandbox-api#/components/schemas/{name}"}
        Draft202012Validator(schema, registry=registry).validate(instance)

    return check


def test_the_served_document_validates(server: Server) -> None:
    with server.client() as client:
        doc = client.get("openapi.json").json()
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": "/sandbox/api"}]
    assert doc == json.loads(json.dumps(document("/sandbox/api", doc_cookie(doc))))


def doc_cookie(doc: dict[str, Any]) -> str:
    """The login cookie name the served document names."""
    name = doc["components"]["securitySchemes"]["cookie"]["name"]
    assert isinstance(name, str) and name.startswith("username-")
    return name


def test_the_document_lists_exactly_the_routes() -> None:
    doc = document()
    documented = {path: {m for m in item if m in _METHODS} for path, item in doc["paths"].items()}
    implemented = {template: _implemented(handler) for template, handler, _ in ROUTES}
    assert documented == implemented


def test_a_wrong_document_would_fail() -> None:
    doc = document()
    doc["paths"]["/jobs"]["get"]["responses"]["200"] = {"content": {}}  # no description
    with pytest.raises(Exception, match="description"):
        validate(doc, cls=OpenAPIV31SpecValidator)


def test_the_answers_match_the_schemas(jupyter: Server) -> None:
    with jupyter.client() as client:
        doc = client.get("openapi.json").json()
        check = _checker(doc)
        model = upload(client, "levels.py", "SO", name="schema", activate=False)
        check(model, "Model")
        assert set(model) == set(doc["components"]["schemas"]["Model"]["properties"])
        for item in client.get("models").json():
            check(item, "Model")
        accepted = client.post("execute", json={"modelId": model["id"]}).json()
        check(accepted, "ExecuteAccepted")
        job = wait(client, accepted["jobId"])
        check(job, "Job")
        assert set(job) == set(doc["components"]["schemas"]["Job"]["properties"])
        for item in client.get("jobs").json():
            check(item, "Job")
        lines = [json.loads(t) for t in client.get(f"jobs/{job['id']}/logs").text.splitlines()]
        for line in lines:
            check(line, "LogLine")
        assert set(lines[0]) == set(doc["components"]["schemas"]["LogLine"]["properties"])
        for answer in (
            client.get("models/999999"),
            client.post("execute", content=b"{", headers={"Content-Type": "application/json"}),
            client.get("jobs", params={"limit": 0}),
        ):
            check(answer.json(), "Error")
        events = follow(jupyter, job["id"])
        failed = execute(client, modelId=upload(client, "exit_code.py", "SO", activate=False)["id"])
        events += follow(jupyter, failed)
    for message in events:
        check(message, "Event")
    kinds = {m["event"] for m in events}
    assert {"optimization:started", "optimization:log", "optimization:completed"} <= kinds
    assert "optimization:failed" in kinds
