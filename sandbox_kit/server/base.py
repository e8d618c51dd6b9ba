"""The base of every HTTP API handler: JSON replies, errors as JSON, calls to the facade.

Errors are ``{"error": "<sentence>", ...fields}`` with the status that fits (issue 16)::

    ValidationError        400  filename, line, column when known
    (not authenticated)    403  (Jupyter Server's answer for APIs; a browser is not redirected)
    NotFoundError          404  kind, id
    ConflictError          409  modelId, jobId when known
    RunError               409  modelType when known (no active model, an archived one)
    (too large)            413
    DatabaseError          503  (the registry cannot be reached; try again)
    anything else          500  one generic sentence; the traceback goes to the server log only

Handlers call the :class:`~sandbox_kit.Sandbox` facade and nothing else, on a worker thread
(:meth:`ApiHandler.facade`); actions are recorded under the request's user.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web

from sandbox_kit.dbapi import TransientError
from sandbox_kit.errors import (
    ConflictError,
    DatabaseError,
    NotFoundError,
    RunError,
    SandboxKitError,
    ValidationError,
)
from sandbox_kit.server.context import SETTINGS_KEY, ApiContext

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox

T = TypeVar("T")

#: The resource Jupyter Server's authorizer is asked about (JupyterHub maps it to scopes).
AUTH_RESOURCE = "sandbox"
_INTERNAL = "internal error; the server log has the details"
_NOT_SIGNED_IN = (
    "not authenticated: send the server's token (header 'Authorization: token ...') or its "
    "login cookie"
)


class ApiError(web.HTTPError):
    """An error of the HTTP layer itself (a malformed parameter, a body too large).

    Args:
        status: the HTTP status.
        message: the sentence for the ``error`` key.
        fields: more keys of the JSON reply.
    """

    def __init__(self, status: int, message: str, **fields: Any) -> None:
        super().__init__(status, log_message=message.replace("%", "%%"))
        self.message = message
        self.fields = {k: v for k, v in fields.items() if v is not None}


def reply_for(exc: BaseException | None, status: int = 500) -> tuple[int, dict[str, Any]]:
    """The status and JSON body that answer an exception (see the module doc)."""
    if isinstance(exc, ApiError):
        return exc.status_code, {"error": exc.message, **exc.fields}
    if isinstance(exc, ValidationError):
        where = {"filename": exc.filename, "line": exc.line, "column": exc.column}
        return 400, {"error": str(exc), **{k: v for k, v in where.items() if v is not None}}
    if isinstance(exc, NotFoundError):
        return 404, {"error": str(exc), "kind": exc.kind, "id": str(exc.ident)}
    if isinstance(exc, ConflictError):
        ids = {"modelId": exc.model_id, "jobId": exc.job_id}
        return 409, {"error": str(exc), **{k: v for k, v in ids.items() if v is not None}}
    if isinstance(exc, RunError):
        kind = {"modelType": exc.model_type} if exc.model_type else {}
        return 409, {"error": str(exc), **kind}
    if isinstance(exc, DatabaseError | TransientError):
        return 503, {"error": f"the sandbox's database is unavailable: {exc}"}
    if isinstance(exc, SandboxKitError):
        return 400, {"error": str(exc)}
    if isinstance(exc, web.HTTPError):
        code = exc.status_code
        text = exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message
        return code, {"error": text or _phrase(code)}
    if exc is None and status != 500:
        return status, {"error": _phrase(status)}
    return 500, {"error": _INTERNAL}


def context_of(handler: web.RequestHandler) -> ApiContext:
    """The API's shared context, from the application's settings."""
    ctx = handler.settings[SETTINGS_KEY]
    assert isinstance(ctx, ApiContext)
    return ctx


class JsonErrors(JupyterHandler):
    """Errors as ``{"error": ...}`` with the status that fits; never a traceback."""

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """Answer with the status that fits the exception (see the module doc)."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SandboxKitError | TransientError):
            status_code = reply_for(exc)[0]
        super().send_error(status_code, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The error as ``{"error": ...}``; never a traceback."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        _, body = reply_for(exc, status_code)
        if status_code == 403 and getattr(self, "_jupyter_current_user", None) is None:
            body["error"] = _NOT_SIGNED_IN
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, ensure_ascii=False))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """One line for the errors a client caused; the traceback only for our own bugs."""
        if isinstance(value, SandboxKitError | TransientError | web.HTTPError):
            status = reply_for(value)[0]
            self.log.info("%s %s: %s %s", self.request.method, self.request.path, status, value)
            return
        super().log_exception(typ, value, tb)


class ApiHandler(JsonErrors, APIHandler):
    """JSON in, JSON out, errors as JSON (never a traceback), behind Jupyter Server's auth."""

    auth_resource = AUTH_RESOURCE

    @property
    def ctx(self) -> ApiContext:
        """The API's shared context."""
        return context_of(self)

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate (Jupyter Server), and hand cookie clients their XSRF cookie."""
        await super().prepare()
        if self.request.method in ("GET", "HEAD") and self.current_user:
            # A browser client signed in with the login cookie needs the _xsrf cookie to send
            # it back in X-XSRFToken on POST and DELETE; reading the token sets the cookie.
            _ = self.xsrf_token

    async def facade(self, work: Callable[[Sandbox], T], *, acting: bool = False) -> T:
        """Run ``work(sandbox)`` on a worker thread.

        Args:
            acting: the call changes something: record it under the request's user (the
                Jupyter Server identity; see :meth:`Sandbox.acting_as`).
        """
        ctx = self.ctx
        user = self.current_user

        def run() -> T:
            sandbox = ctx.sandbox()
            return work(sandbox.acting_as(server_user=user) if acting else sandbox)

        return await ctx.call(run)

    def reply(self, data: Any, status: int = 200) -> None:
        """Finish with ``data`` as JSON."""
        self.set_status(status)
        self.finish(json.dumps(data, ensure_ascii=False))

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object (400 naming line and column when it is not)."""
        text = self.request.body.decode("utf-8", "replace")
        if not text.strip():
            return {}
        try:
            value = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise ApiError(
                400, f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno
            ) from None
        if not isinstance(value, dict):
            raise ApiError(400, "the body must be a JSON object")
        return value

    def text_arg(self, name: str) -> str | None:
        """A query parameter, None when absent or empty."""
        value = self.get_query_argument(name, None)
        return value or None

    def int_arg(self, name: str, default: int, *, minimum: int = 0) -> int:
        """A whole-number query parameter (400 when it is not one, or below ``minimum``)."""
        value = self.get_query_argument(name, None)
        if value is None or value == "":
            return default
        return whole_number(name, value, minimum=minimum)


def whole_number(name: str, value: Any, *, minimum: int = 0) -> int:
    """``value`` (a string or a JSON number) as an int; 400 naming ``name`` otherwise."""
    if isinstance(value, bool):
        raise ApiError(400, f"{name} must be a whole number, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} must be a whole number, not {value!r}") from None
    if isinstance(value, float) and number != value:
        raise ApiError(400, f"{name} must be a whole number, not {value!r}")
    if number < minimum:
        raise ApiError(400, f"{name} must be at least {minimum}, not {number}")
    return number


def _no_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and a run's config must not.
    raise ApiError(400, f"invalid JSON: {name} is not a JSON number")


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return f"HTTP {status}"
