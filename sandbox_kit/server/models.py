"""Handlers for models: upload, list, show, delete, activate, archive, restore.

Answers carry the same keys as ``sandbox-kit models --json`` (:meth:`Model.to_dict`).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import httputil, web

from sandbox_kit.errors import ValidationError
from sandbox_kit.server.base import ApiError, ApiHandler, whole_number

# Room for the multipart envelope and the small fields around the file itself.
_ENVELOPE = 64 * 1024
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_UPLOAD_FIELDS = {"file", "modelType", "description", "name", "activate"}


def model_id(value: str) -> int:
    """A model id from the path (400 when it is not a whole number)."""
    return whole_number("model id", value, minimum=1)


@web.stream_request_body
class UploadHandler(ApiHandler):
    """``POST /upload``: a multipart form with ``file``, ``modelType``, ``description``, and
    optionally ``name`` and ``activate``; 201 and the stored model.

    The body is received in pieces and refused with 413 past the upload limit, so a huge
    request never sits in the server's memory.
    """

    _limit = 0
    _received = 0
    _too_large = False

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate before a byte of the body is accepted; refuse an oversized one."""
        self._chunks: list[bytes] = []
        await super().prepare()
        if not self.current_user:
            raise web.HTTPError(403)
        self._limit = await self.facade(lambda sb: sb.settings.max_upload_bytes)
        declared = self.request.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self._cap:
            raise ApiError(
                413,
                f"the request is {int(declared)} bytes; a model file may be at most "
                f"{self._limit} bytes",
                limit=self._limit,
            )

    @property
    def _cap(self) -> int:
        return self._limit + _ENVELOPE

    def data_received(self, chunk: bytes) -> None:
        """Keep the body up to the cap; past it, only count (the answer will be 413)."""
        self._received += len(chunk)
        if self._received > self._cap:
            self._too_large = True
            self._chunks.clear()
        else:
            self._chunks.append(chunk)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Validate and store the uploaded model."""
        if self._too_large:
            raise ApiError(
                413,
                f"the request is over {self._cap} bytes; a model file may be at most "
                f"{self._limit} bytes",
                limit=self._limit,
            )
        fields, data, filename = self._form()
        model_type = fields.get("modelType")
        if not model_type:
            raise ApiError(400, "missing form field modelType (DMO, RMO or SO)")
        activate = _flag(fields.get("activate", "true"))

        def upload(sb: Any) -> dict[str, Any]:
            return dict(
                sb.upload(
                    data,
                    model_type,
                    name=fields.get("name") or None,
                    description=fields.get("description", ""),
                    activate=activate,
                    filename=filename,
                ).to_dict()
            )

        try:
            model = await self.facade(upload, acting=True)
        except ValidationError as exc:
            if len(data) > self._limit:  # the facade said why; HTTP has a code for it
                raise ApiError(413, str(exc), filename=exc.filename, limit=self._limit) from None
            raise
        location = url_path_join(self.base_url, "sandbox/api/models", str(model["id"]))
        self.set_header("Location", location)
        self.reply(model, 201)

    def _form(self) -> tuple[dict[str, str], bytes, str]:
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(
                415, f"send a multipart/form-data body with a file field, not {content_type!r}"
            )
        arguments: dict[str, list[bytes]] = {}
        files: dict[str, list[httputil.HTTPFile]] = {}
        body = b"".join(self._chunks)
        self._chunks.clear()
        httputil.parse_body_arguments(content_type, body, arguments, files)
        unknown = sorted((set(arguments) | set(files)) - _UPLOAD_FIELDS)
        if unknown:
            raise ApiError(400, f"unknown form field {unknown[0]!r}")
        uploaded = files.get("file", [])
        if len(uploaded) != 1:
            raise ApiError(400, "send exactly one file, in the form field 'file'")
        fields: dict[str, str] = {}
        for name, values in arguments.items():
            try:
                fields[name] = values[-1].decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, f"form field {name!r} is not UTF-8 text") from None
        return fields, uploaded[0].body, uploaded[0].filename or "model.py"


class ModelsHandler(ApiHandler):
    """``GET /models?modelType=&status=``: model versions, by type and name, newest first."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the models."""
        kind, status = self.text_arg("modelType"), self.text_arg("status")
        models = await self.facade(lambda sb: [m.to_dict() for m in sb.models(kind, status)])
        self.reply(models)


class ModelHandler(ApiHandler):
    """``GET /models/{modelId}`` shows a version; ``DELETE`` removes it with its jobs' records
    and logs (204)."""

    @web.authenticated
    @authorized
    async def get(self, ident: str) -> None:
        """Show one model version."""
        number = model_id(ident)
        self.reply(await self.facade(lambda sb: sb.model(number).to_dict()))

    @web.authenticated
    @authorized
    async def delete(self, ident: str) -> None:
        """Delete one model version."""
        number = model_id(ident)
        await self.facade(lambda sb: sb.delete(number), acting=True)
        self.set_status(204)
        self.finish()


class ModelActionHandler(ApiHandler):
    """``POST /models/{modelId}/activate`` (or ``archive``, ``restore``): 200 and the model."""

    def initialize(self, action: str) -> None:
        """Which facade method this route calls."""
        assert action in ("activate", "archive", "restore")
        self.action = action

    @web.authenticated
    @authorized
    async def post(self, ident: str) -> None:
        """Change the version's status."""
        number = model_id(ident)
        action = self.action
        model = await self.facade(lambda sb: getattr(sb, action)(number).to_dict(), acting=True)
        self.reply(model)


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ApiError(400, f"activate must be true or false, not {value!r}")
