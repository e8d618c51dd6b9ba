"""``GET /sandbox/api/openapi.json``: the HTTP API described as an OpenAPI 3.1 document.

The document is written out here, next to nothing else, so a reader sees the whole API in one
place; tests keep it true: it validates, its paths and methods are exactly the routes', and
the answers of a real server validate against its schemas.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

import sandbox_kit
from sandbox_kit.records import JobStatus, ModelStatus, ModelType
from sandbox_kit.server.base import ApiHandler

PREFIX = "sandbox/api"
_TYPES = [t.value for t in ModelType]
_MODEL_STATUSES = [s.value for s in ModelStatus]
_JOB_STATUSES = [s.value for s in JobStatus]
_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    names = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict"}
    names |= {413: "TooLarge", 415: "UnsupportedMediaType", 503: "Unavailable"}
    return {str(code): {"$ref": f"#/components/responses/{names[code]}"} for code in codes}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _path(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **more}


_MODEL_ID = _path("modelId", "A model version's id.", {"type": "integer", "minimum": 1})
_JOB_ID = _path("jobId", "A job id, e.g. DMO_1764331200000_k3f9qa.", {"type": "string"})
_TYPE_QUERY = _query("modelType", {"type": "string", "enum": _TYPES}, "Only this model type.")

_MODEL = {
    "type": "object",
    "description": "One stored version of a model (the keys of `sandbox-kit models --json`).",
    "required": ["id", "model_type", "name", "version", "status", "active", "sha256"],
    "properties": {
        "id": {"type": "integer"},
        "model_type": {"type": "string", "enum": _TYPES},
        "name": {"type": "string"},
        "version": {"type": "integer"},
        "status": {"type": "string", "enum": _MODEL_STATUSES},
        "active": {"type": "boolean"},
        "sha256": {"type": "string"},
        "description": {"type": "string"},
        "original_filename": {"type": "string"},
        "size": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "created_by": _nullable("string", description="Who uploaded it (audit trail)."),
        "threads": {"type": "integer", "description": "CPU slots a run takes."},
        "tokens": {"type": "array", "items": {"type": "string"}, "description": "Licence pools."},
        "scratch": {
            "type": "boolean",
            "description": "The code of a %%sandbox cell: never active, not in model lists.",
        },
    },
}

_JOB = {
    "type": "object",
    "description": "A job's record (the keys of `sandbox-kit status --json`).",
    "required": ["id", "model_type", "status", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "model_id": _nullable("integer"),
        "model_type": {"type": "string", "enum": _TYPES},
        "model_name": {"type": "string"},
        "model_version": {"type": "integer"},
        "status": {"type": "string", "enum": _JOB_STATUSES},
        "exit_code": _nullable("integer"),
        "signal": _nullable("integer"),
        "reason": _nullable("string"),
        "config": {"type": "object"},
        "data_source_id": _nullable("string"),
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": _nullable("string", format="date-time"),
        "finished_at": _nullable("string", format="date-time"),
        "duration_s": _nullable("number"),
        "log_path": {"type": "string"},
        "result_dir": {"type": "string"},
        "truncated": {"type": "boolean"},
        "attempt": {"type": "integer"},
        "python_version": _nullable("string"),
        "host": _nullable("string"),
        "outcome": _nullable("string", description="What the model reported: optimal, ..."),
        "objective": _nullable("number"),
        "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
        "isolation": _nullable("string"),
        "data_source": _nullable("string"),
        "data_source_sha256": _nullable("string"),
        "cached_from": _nullable("string"),
        "cache_miss_reason": _nullable("string"),
        "sweep_id": _nullable("string"),
        "started_by": _nullable("string"),
        "threads": {"type": "integer"},
        "tokens": {"type": "array", "items": {"type": "string"}},
        "best_found": _nullable("string"),
        "schedule_id": _nullable("integer", description="The schedule that started it."),
        "deadline_at": _nullable("string", format="date-time"),
        "deadline_missed": _nullable("boolean"),
        "executor": {"type": "string", "enum": ["local", "dask"]},
        "worker": _nullable("string", description="The Dask worker that ran it."),
        "retries": {"type": "integer", "description": "Lost attempts queued again, at most."},
        "notifications": {
            "type": "array",
            "description": "Deliveries of notifications about this job.",
            "items": {
                "type": "object",
                "properties": {
                    "event": {"type": "string"},
                    "target_kind": {"type": "string"},
                    "target": {"type": "string", "description": "Secrets hidden."},
                    "status": {"type": "string", "enum": ["sending", "delivered", "error"]},
                    "delivered": {"type": "boolean"},
                    "attempts": {"type": "integer"},
                    "error": _nullable("string"),
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
}

_LOG_LINE = {
    "type": "object",
    "description": "One line of a job's log (the keys of `sandbox-kit logs --json`).",
    "required": ["seq", "ts", "stream", "level", "text"],
    "properties": {
        "seq": {"type": "integer", "minimum": 1},
        "ts": {"type": "string", "format": "date-time"},
        "stream": {"type": "string", "enum": ["stdout", "stderr"]},
        "level": {"type": "string", "enum": _LEVELS},
        "text": {"type": "string"},
    },
}

_ERROR = {
    "type": "object",
    "description": "Every error: one sentence, and the fields that locate it.",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "filename": {"type": "string"},
        "line": {"type": "integer"},
        "column": {"type": "integer"},
        "kind": {"type": "string", "description": "What was not found: model or job."},
        "id": {"type": "string"},
        "modelId": {"type": "integer"},
        "jobId": {"type": "string"},
        "modelType": {"type": "string"},
        "limit": {"type": "integer", "description": "The upload limit in bytes (413)."},
    },
}

_EXECUTE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "modelId": {"type": "integer", "description": "The version to run."},
        "modelType": {
            "type": "string",
            "enum": _TYPES,
            "description": "Run this type's active version (when modelId is not given).",
        },
        "dataSourceId": {
            "type": "string",
            "description": "data:NAME[@VERSION], job:JOB_ID, latest:TYPE, or any name.",
        },
        "config": {"type": "object", "description": "What the model reads from $CONFIG."},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds."},
        "cache": {"type": "boolean", "description": "Reuse an identical earlier run."},
    },
}

_ACCEPTED = {
    "type": "object",
    "required": ["jobId", "status", "job"],
    "properties": {
        "jobId": {"type": "string"},
        "status": {"type": "string", "enum": _JOB_STATUSES},
        "job": _ref("Job"),
    },
}

_EVENT = {
    "type": "object",
    "description": (
        "A message of the events WebSocket. `optimization:log` carries seq, ts, level, stream "
        "and text; `optimization:started`, `optimization:completed` and `optimization:failed` "
        "carry status and job (failed also reason; its status is failed, timeout, cancelled "
        "or lost); `optimization:progress` carries stream and text; `resync` carries since "
        "and message; `error` carries error."
    ),
    "required": ["event"],
    "properties": {
        "event": {
            "type": "string",
            "enum": [
                "optimization:started",
                "optimization:log",
                "optimization:progress",
                "optimization:completed",
                "optimization:failed",
                "resync",
                "error",
            ],
        },
        "jobId": {"type": "string"},
        "modelType": {"type": "string", "enum": _TYPES},
        "seq": {"type": "integer"},
        "ts": {"type": "string", "format": "date-time"},
        "level": {"type": "string", "enum": _LEVELS},
        "stream": {"type": "string", "enum": ["stdout", "stderr"]},
        "text": {"type": "string"},
        "status": {"type": "string", "enum": _JOB_STATUSES},
        "reason": _nullable("string"),
        "job": _ref("Job"),
        "since": {"type": "integer"},
        "message": {"type": "string"},
        "error": {"type": "string"},
    },
}

_MODEL_OK = _json(_ref("Model"), "The model.")
_JOB_OK = _json(_ref("Job"), "The job.")
_ACTIONS = {
    "activate": "Make this version the one its type runs (rollback included).",
    "archive": "Hide this version from runs until it is restored.",
    "restore": "Bring an archived version back, as inactive.",
}

PATHS: dict[str, dict[str, Any]] = {
    "/upload": {
        "post": {
            "summary": "Upload a model file as the next version of its name and type.",
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file", "modelType"],
                            "properties": {
                                "file": {"type": "string", "contentMediaType": "text/x-python"},
                                "modelType": {"type": "string", "enum": _TYPES},
                                "description": {"type": "string"},
                                "name": {"type": "string", "description": "Default: file stem."},
                                "activate": {"type": "boolean", "default": True},
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": _json(_ref("Model"), "Stored."),
                **_errors(400, 403, 413, 415, 503),
            },
        }
    },
    "/models": {
        "get": {
            "summary": "Model versions, grouped by type and name, newest version first.",
            "parameters": [
                _TYPE_QUERY,
                _query("status", {"type": "string", "enum": _MODEL_STATUSES}, "Only this status."),
            ],
            "responses": {
                "200": _json({"type": "array", "items": _ref("Model")}, "The models."),
                **_errors(400, 403, 503),
            },
        }
    },
    "/models/{modelId}": {
        "parameters": [_MODEL_ID],
        "get": {
            "summary": "One model version.",
            "responses": {"200": _MODEL_OK, **_errors(400, 403, 404, 503)},
        },
        "delete": {
            "summary": "Remove a version with its file and its jobs' records and logs.",
            "responses": {"204": {"description": "Deleted."}, **_errors(400, 403, 404, 409, 503)},
        },
    },
    **{
        f"/models/{{modelId}}/{action}": {
            "parameters": [_MODEL_ID],
            "post": {
                "summary": summary,
                "responses": {"200": _MODEL_OK, **_errors(400, 403, 404, 409, 503)},
            },
        }
        for action, summary in _ACTIONS.items()
    },
    "/execute": {
        "post": {
            "summary": "Start (or queue) a run; it outlives the request.",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("ExecuteRequest")}},
            },
            "responses": {
                "202": _json(_ref("ExecuteAccepted"), "Started or queued."),
                **_errors(400, 403, 404, 409, 503),
            },
        },
        "get": {
            "summary": "A job's status (as GET /jobs/{jobId}).",
            "parameters": [{**_query("jobId", {"type": "string"}, "The job."), "required": True}],
            "responses": {"200": _JOB_OK, **_errors(400, 403, 404, 503)},
        },
    },
    "/jobs": {
        "get": {
            "summary": "Job records, newest first.",
            "parameters": [
                _TYPE_QUERY,
                _query("status", {"type": "string", "enum": _JOB_STATUSES}, "Only this status."),
                _query("modelId", {"type": "integer", "minimum": 1}, "Only this version's."),
                _query("limit", {"type": "integer", "minimum": 1, "default": 100}, "At most."),
            ],
            "responses": {
                "200": _json({"type": "array", "items": _ref("Job")}, "The jobs."),
                **_errors(400, 403, 503),
            },
        }
    },
    "/jobs/{jobId}": {
        "parameters": [_JOB_ID],
        "get": {"summary": "One job.", "responses": {"200": _JOB_OK, **_errors(403, 404, 503)}},
    },
    "/jobs/{jobId}/cancel": {
        "parameters": [_JOB_ID],
        "post": {
            "summary": "Stop the job and its whole process tree (a finished job stays as it is).",
            "responses": {
                "202": _json(_ref("Job"), "Cancel requested; the record as it stands."),
                **_errors(403, 404, 503),
            },
        },
    },
    "/jobs/{jobId}/logs": {
        "parameters": [_JOB_ID],
        "get": {
            "summary": "The log lines written so far, as JSON lines (streamed).",
            "parameters": [
                _query("since", {"type": "integer", "minimum": 0, "default": 0}, "After seq."),
                _query("level", {"type": "string", "enum": _LEVELS}, "Only this level."),
            ],
            "responses": {
                "200": {
                    "description": "One LogLine object per line.",
                    "content": {"application/x-ndjson": {"schema": _ref("LogLine")}},
                },
                **_errors(400, 403, 404, 503),
            },
        },
    },
    "/events": {
        "get": {
            "summary": "The live event stream: a WebSocket of Event messages.",
            "description": (
                "With jobId: that job from line since+1 to its end, every line in order, then "
                "the server closes the socket. Without: every job (of modelType) as it "
                "happens; a client that falls far behind gets `resync`."
            ),
            "parameters": [
                _query("jobId", {"type": "string"}, "Follow this job to its end."),
                _query("since", {"type": "integer", "minimum": 0}, "With jobId: after seq."),
                _TYPE_QUERY,
            ],
            "responses": {
                "101": {
                    "description": "Switching to the WebSocket protocol; messages are Event.",
                    "content": {"application/json": {"schema": _ref("Event")}},
                },
                **_errors(400, 403, 404),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document.",
            "responses": {
                "200": _json({"type": "object"}, "The OpenAPI document."),
                **_errors(403),
            },
        }
    },
}

_RESPONSES = {
    "BadRequest": "Bad input (a validation error names the file, line and column).",
    "Forbidden": "Not authenticated, not allowed, or a cookie request without its XSRF token.",
    "NotFound": "No such model, job or route.",
    "Conflict": "The request clashes with the current state (e.g. no active model).",
    "TooLarge": "The upload is over the limit.",
    "UnsupportedMediaType": "The body is not multipart/form-data.",
    "Unavailable": "The sandbox's database cannot be reached; try again.",
}


def document(server_url: str = "/" + PREFIX, cookie: str = "username-HOST-PORT") -> dict[str, Any]:
    """The OpenAPI 3.1 document.

    Args:
        server_url: the API's root URL on the server that answers.
        cookie: the name of that server's login cookie.
    """
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sandbox_kit HTTP API",
            "version": sandbox_kit.__version__,
            "description": (
                "Upload, list, run and watch DMO, RMO and SO optimization models. Every "
                "request is authenticated by the Jupyter Server that hosts the API; browser "
                "(cookie) requests that change something also send the _xsrf cookie's value "
                "in X-XSRFToken."
            ),
        },
        "servers": [{"url": server_url}],
        "security": [{"token": []}, {"tokenQuery": []}, {"cookie": []}],
        "paths": PATHS,
        "components": {
            "schemas": {
                "Model": _MODEL,
                "Job": _JOB,
                "LogLine": _LOG_LINE,
                "Error": _ERROR,
                "ExecuteRequest": _EXECUTE,
                "ExecuteAccepted": _ACCEPTED,
                "Event": _EVENT,
            },
            "responses": {name: _json(_ref("Error"), text) for name, text in _RESPONSES.items()},
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "'token <the server's token>'",
                },
                "tokenQuery": {"type": "apiKey", "in": "query", "name": "token"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": cookie},
            },
        },
    }


class OpenApiHandler(ApiHandler):
    """``GET /openapi.json``."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The document, its server URL under this server's base URL."""
        cookie = self.identity_provider.get_cookie_name(self)
        self.reply(document(url_path_join(self.base_url, PREFIX), cookie))
