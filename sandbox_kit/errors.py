"""Errors raised by sandbox_kit.

Every error is a :class:`SandboxKitError`; catch the subclass that matches the reaction you
need. ``str(err)`` is always one sentence naming the offending thing, ready for a user.

::

    SandboxKitError
    ├── ValidationError      bad input: an upload, a config, a name; nothing was written
    ├── NotFoundError        no model or job with that id
    ├── ConflictError        the request clashes with current state (delete while running, ...)
    ├── RunError             a run could not be started (no active model, missing interpreter)
    ├── DatabaseError        the database cannot be reached or its URL is unusable
    │   └── SchemaVersionError   the database's schema is newer than (or unknown to) this code
    ├── StoreError           the store (results and data sets between hosts) cannot be used
    └── ClusterError         the Dask cluster cannot be reached or does not fit the settings
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


class DatabaseError(SandboxKitError):
    """The database cannot be used: unreachable, refused, or its URL names no usable driver.

    Attributes:
        url: the database URL with any password replaced by ``***``.
        reason: the underlying error, on one line.
    """

    def __init__(self, message: str, *, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(message)


class SchemaVersionError(DatabaseError):
    """The database was migrated by another version of sandbox_kit than this one knows.

    Attributes:
        revision: the database's schema revision.
        head: the newest revision this sandbox_kit knows.
    """

    def __init__(self, *, url: str, revision: str, head: str) -> None:
        self.revision = revision
        self.head = head
        newer = revision.isdigit() and head.isdigit() and int(revision) > int(head)
        what = "newer than" if newer else "unknown to"
        super().__init__(
            f"the database at {url} is at schema revision {revision}, {what} this sandbox_kit "
            f"({head}); upgrade sandbox_kit",
            url=url,
            reason=f"schema revision {revision}",
        )


class StoreError(SandboxKitError):
    """The store cannot be read or written: unreachable, refused, no credentials, no bucket.

    Attributes:
        url: the store's URL, without credentials.
        reason: the underlying error, on one line.
    """

    def __init__(self, message: str, *, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(message)


class ClusterError(SandboxKitError):
    """The Dask cluster cannot be used: the scheduler does not answer, dask is not installed,
    or the settings do not fit the cluster (a SQLite registry with workers on other hosts).

    Attributes:
        address: the Dask scheduler's address, when there is one.
    """

    def __init__(self, message: str, *, address: str | None = None) -> None:
        self.address = address
        super().__init__(message)


def reason_of(exc: BaseException) -> str:
    """An underlying error's message on one line (its first), or its type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _at(word: str, value: int | None) -> str | None:
    return None if value is None else f"{word} {value}"
