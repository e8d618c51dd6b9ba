"""Errors raised by sandbox_kit.

Every error is a :class:`SandboxKitError`; catch the subclass that matches the reaction you
need. ``str(err)`` is always one sentence naming the offending thing, ready for a user.

::

    SandboxKitError
    ├── ValidationError      bad input: an upload, a config, a name; nothing was written
    ├── NotFoundError        no model or job with that id
    ├── ConflictError        the request clashes with current state (delete while running, ...)
    └── RunError             a run could not be started (no active model, missing interpreter)
"""

from __future__ import annotations


class SandboxKitError(Exception):
    """Root of every error sandbox_kit raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ValidationError(SandboxKitError):
    """Input was rejected before anything was written.

    Attributes:
        filename: the file the problem is in, when there is one.
        line: 1-based line of the problem, for syntax errors.
        column: 1-based column of the problem, for syntax errors.
        reason: the bare reason, without the file/line prefix.
    """

    def __init__(
        self,
        reason: str,
        *,
        filename: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.filename = filename
        self.line = line
        self.column = column
        self.reason = reason
        where = [p for p in (filename, _at("line", line), _at("column", column)) if p]
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


class NotFoundError(SandboxKitError):
    """No object with the given id exists.

    Attributes:
        kind: ``"model"`` or ``"job"``.
        ident: the id that was looked up.
    """

    def __init__(self, kind: str, ident: object) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"no {kind} with id {ident}")


class ConflictError(SandboxKitError):
    """The request is valid but clashes with the current state.

    Attributes:
        model_id: the model concerned, when there is one.
        job_id: the job concerned, when there is one.
    """

    def __init__(
        self, message: str, *, model_id: int | None = None, job_id: str | None = None
    ) -> None:
        self.model_id = model_id
        self.job_id = job_id
        super().__init__(message)


class RunError(SandboxKitError):
    """A run could not be started.

    Attributes:
        model_type: the model type asked for, when there is one.
    """

    def __init__(self, message: str, *, model_type: str | None = None) -> None:
        self.model_type = model_type
        super().__init__(message)


def _at(word: str, value: int | None) -> str | None:
    return None if value is None else f"{word} {value}"
