"""The model registry: versioned uploads, activation, archive, restore and delete.

Files live under ``$SANDBOX_HOME/models/`` with generated names; rows live in the ``models``
table. Every operation validates first and then writes the file and the row as one unit, so a
failure leaves neither behind. Each one also appends its entry to the audit trail in the same
transaction (:mod:`sandbox_kit.audit`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from sandbox_kit import audit
from sandbox_kit.config import Paths
from sandbox_kit.db import Database, JobRow, LogChunkRow, ModelRow, utcnow
from sandbox_kit.errors import ConflictError, NotFoundError, StoreError, ValidationError
from sandbox_kit.records import Model, ModelStatus, ModelType
from sandbox_kit.store import Store, result_key
from sandbox_kit.validation import ValidatedSource, safe_filename

_ACTIVE_JOB_STATUSES = ("queued", "running")

#: The name of every scratch version (the code of a ``%%sandbox`` cell; issue 14). No upload
#: can take it: uploaded names are sanitised, and ``%`` does not survive that.
SCRATCH_NAME = "%%sandbox"


class Registry:
    """Model versions stored in a database and a folder."""

    def __init__(
        self, db: Database, paths: Paths, store: Callable[[], Store] | None = None
    ) -> None:
        self.db = db
        self.paths = paths
        # Opened only to delete the results of jobs that ran on a Dask worker (issue 12).
        self.store = store

    def upload(
        self,
        source: ValidatedSource,
        model_type: ModelType,
        *,
        name: str | None = None,
        description: str = "",
        activate: bool = True,
        actor: str | None = None,
        scratch: bool = False,
    ) -> Model:
        """Store a validated source as the next version of ``name`` for ``model_type``.

        Identical content already stored under the same name and type is returned instead of a
        duplicate (and made active when ``activate`` is true). ``actor`` (default: this
        process's, :func:`~sandbox_kit.audit.resolve_actor`) is recorded as ``created_by`` and
        in the audit trail.

        A ``scratch`` version (a ``%%sandbox`` cell) is stored under :data:`SCRATCH_NAME`
        whatever ``name`` says, never made active, and left out of :meth:`models`; identical
        cells share one version.
        """
        who = actor if actor is not None else audit.resolve_actor()
        model_name = SCRATCH_NAME if scratch else _model_name(name, source)
        activate = activate and not scratch
        suffix = ".ipynb" if source.filename.lower().endswith(".ipynb") else ".py"
        stored_name = (
            f"{model_type.value.lower()}-{source.sha256[:12]}-{secrets.token_hex(4)}{suffix}"
        )
        target = self.paths.models / stored_name
        try:
            with self.db.write() as s:
                same = s.scalars(
                    select(ModelRow).where(
                        ModelRow.model_type == model_type.value,
                        ModelRow.name == model_name,
                        ModelRow.sha256 == source.sha256,
                    )
                ).first()
                if same is not None:
                    _record(s, who, "upload", same, existing=True)
                    if activate and same.status != ModelStatus.ACTIVE.value:
                        _record(s, who, "activate", same, previous=_make_active(s, same))
                    return _view(same, self.paths)
                latest = s.scalar(
                    select(func.max(ModelRow.version)).where(
                        ModelRow.model_type == model_type.value, ModelRow.name == model_name
                    )
                )
                row = ModelRow(
                    model_type=model_type.value,
                    name=model_name,
                    version=(latest or 0) + 1,
                    status=ModelStatus.INACTIVE.value,
                    sha256=source.sha256,
                    description=description.strip(),
                    original_filename=source.filename,
                    stored_name=stored_name,
                    size=source.size,
                    created_at=utcnow(),
                    created_by=who,
                    threads=source.declarations.threads,
                    tokens="+".join(source.declarations.tokens),
                    scratch=scratch,
                )
                s.add(row)
                s.flush()
                marks = {"scratch": True} if scratch else {}
                _record(s, who, "upload", row, filename=source.filename, **marks)
                if activate:
                    _record(s, who, "activate", row, previous=_make_active(s, row))
                # The file is written inside the transaction: if writing fails the row is rolled
                # back, and if the commit fails the file is removed below.
                target.write_bytes(source.data)
                # Stored models are read-only and the sandbox's (issue 8); the supervisor also
                # checks the sha256 right before each run.
                target.chmod(0o444)
                view = _view(row, self.paths)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return view

    def models(
        self, model_type: ModelType | None = None, status: ModelStatus | None = None
    ) -> list[Model]:
        """All model versions but scratch ones, newest first, optionally filtered."""
        query = (
            select(ModelRow)
            .where(ModelRow.scratch.is_(False))
            .order_by(ModelRow.model_type, ModelRow.name, ModelRow.version.desc())
        )
        if model_type is not None:
            query = query.where(ModelRow.model_type == model_type.value)
        if status is not None:
            query = query.where(ModelRow.status == status.value)
        with self.db.read() as s:
            return [_view(row, self.paths) for row in s.scalars(query)]

    def model(self, model_id: int) -> Model:
        """The model with this id."""
        with self.db.read() as s:
            return _view(_get(s, model_id), self.paths)

    def active(self, model_type: ModelType) -> Model | None:
        """The active version of a type, if any."""
        with self.db.read() as s:
            row = s.scalars(
                select(ModelRow).where(
                    ModelRow.model_type == model_type.value,
                    ModelRow.status == ModelStatus.ACTIVE.value,
                )
            ).first()
            return None if row is None else _view(row, self.paths)

    def activate(self, model_id: int, *, actor: str | None = None) -> Model:
        """Make this version the one its type runs (any other becomes inactive)."""
        who = actor if actor is not None else audit.resolve_actor()
        with self.db.write() as s:
            row = _get(s, model_id)
            if row.status == ModelStatus.ARCHIVED.value:
                raise ConflictError(
                    f"model {model_id} ({row.name} v{row.version}) is archived; restore it first",
                    model_id=model_id,
                )
            if row.scratch:
                raise ConflictError(
                    f"model {model_id} is the code of a %%sandbox cell and cannot be active; "
                    "store it under a name with %%sandbox --save NAME, then activate that",
                    model_id=model_id,
                )
            was_active = row.status == ModelStatus.ACTIVE.value
            previous = _make_active(s, row)
            if not was_active:
                _record(s, who, "activate", row, previous=previous)
            return _view(row, self.paths)

    def archive(self, model_id: int, *, actor: str | None = None) -> Model:
        """Hide a version from runs; an archived active version leaves its type without one."""
        who = actor if actor is not None else audit.resolve_actor()
        with self.db.write() as s:
            row = _get(s, model_id)
            if row.status != ModelStatus.ARCHIVED.value:
                _record(s, who, "archive", row, was=row.status)
            row.status = ModelStatus.ARCHIVED.value
            return _view(row, self.paths)

    def restore(self, model_id: int, *, actor: str | None = None) -> Model:
        """Bring an archived version back as ``inactive``."""
        who = actor if actor is not None else audit.resolve_actor()
        with self.db.write() as s:
            row = _get(s, model_id)
            if row.status == ModelStatus.ARCHIVED.value:
                row.status = ModelStatus.INACTIVE.value
                _record(s, who, "restore", row)
            return _view(row, self.paths)

    def delete(self, model_id: int, *, actor: str | None = None) -> Model:
        """Remove a version, its file, and its jobs' records, logs and result folders (in the
        store too, for jobs that ran on a Dask worker).

        Raises:
            ConflictError: one of its jobs is queued or running (nothing was deleted); or the
                records were deleted but some files could not be removed (the message names
                the first, after every file was tried).
        """
        who = actor if actor is not None else audit.resolve_actor()
        with self.db.write() as s:
            row = _get(s, model_id)
            busy = s.scalars(
                select(JobRow.id).where(
                    JobRow.model_id == model_id, JobRow.status.in_(_ACTIVE_JOB_STATUSES)
                )
            ).first()
            if busy is not None:
                raise ConflictError(
                    f"model {model_id} ({row.name} v{row.version}) has job {busy} queued or "
                    "running; cancel it or wait for it to finish before deleting",
                    model_id=model_id,
                    job_id=busy,
                )
            jobs = s.execute(
                select(JobRow.id, JobRow.log_path, JobRow.executor, JobRow.attempt).where(
                    JobRow.model_id == model_id
                )
            ).all()
            view = _view(row, self.paths)
            _record(s, who, "delete", row, jobs_deleted=len(jobs))
            # A remote job's shipped log goes with it (issue 12).
            s.execute(delete(LogChunkRow).where(LogChunkRow.job_id.in_([j.id for j in jobs])))
            s.execute(delete(JobRow).where(JobRow.model_id == model_id))
            s.delete(row)
        # Files go after the commit: a failed commit must not have removed anything.
        failures: list[OSError] = []
        for path in [Path(view.path), *(Path(job.log_path) for job in jobs)]:
            _try(os.unlink, path, failures)
        for job in jobs:
            failures += _remove_tree(self.paths.jobs / job.id)
        remote = [(job.id, job.attempt or 1) for job in jobs if job.executor == "dask"]
        if remote and self.store is not None:
            failures += _remove_results(self.store(), remote)
        if failures:
            first = failures[0]
            raise ConflictError(
                f"model {model_id} ({view.name} v{view.version}) was deleted, but "
                f"{len(failures)} of its files or folders could not be removed, first "
                f"{first.filename}: {first.strerror or first}; remove them by hand",
                model_id=model_id,
            ) from first
        return view


def _remove_results(store: Store, jobs: list[tuple[str, int]]) -> list[OSError]:
    """Delete every attempt's results of remote jobs from the store; returns the failures
    (each as an OSError naming the key, like the local files')."""
    failures: list[OSError] = []
    for job_id, attempts in jobs:
        for attempt in range(1, attempts + 1):
            key = result_key(job_id, attempt)
            try:
                store.delete(key)
            except StoreError as exc:
                failures.append(OSError(0, str(exc), f"{store.public_url}/{key}"))
    return failures


def _remove_tree(folder: Path) -> list[OSError]:
    """Remove a job's folder, though the supervisor made its results read-only; returns the
    errors (every entry is tried, so one stuck file does not keep the rest).

    Deleting an entry needs write permission on its folder, which a finished job's result
    folders no longer have (``DATA_SOURCE_DIR`` is frozen), so write and search permission are
    restored on every folder first: only root could remove them without it. Symlinks are
    removed, never followed. Before issue 9 the errors were suppressed and, for any user but
    root, the folders stayed behind.
    """
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            mode = current.lstat().st_mode
            if not stat.S_ISDIR(mode):
                continue
            # Before listing it: a folder without read or search permission cannot be listed.
            with contextlib.suppress(PermissionError):  # not ours: removal below will say so
                os.chmod(current, stat.S_IMODE(mode) | stat.S_IRWXU)
            with os.scandir(current) as entries:
                stack.extend(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue  # gone (or never made), or unreadable: the removal below reports it
    errors: list[OSError] = []
    if not folder.exists():
        return errors
    for parent, folders, files in os.walk(folder, topdown=False, onerror=errors.append):
        for name in files:
            _try(os.unlink, Path(parent, name), errors)
        for name in folders:
            path = Path(parent, name)
            _try(os.unlink if path.is_symlink() else os.rmdir, path, errors)
    _try(os.rmdir, folder, errors)
    return errors


def _try(remove: Callable[[Path], None], path: Path, errors: list[OSError]) -> None:
    try:
        remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        errors.append(exc)


def _model_name(name: str | None, source: ValidatedSource) -> str:
    if name is None:
        return source.stem
    cleaned = safe_filename(f"{name.strip()}.py")[: -len(".py")]
    if not cleaned.strip("_"):
        raise ValidationError(f"model name {name!r} is empty after sanitising")
    return cleaned


def _record(s: Session, actor: str, action: str, row: ModelRow, **details: object) -> None:
    """Append ``actor``'s ``action`` on a model version to the audit trail, in ``s``'s
    transaction; the details always identify the version (it may be deleted later)."""
    audit.add(
        s,
        actor=actor,
        action=action,
        object_type="model",
        object_id=row.id,
        details={
            "model_type": row.model_type,
            "name": row.name,
            "version": row.version,
            "sha256": row.sha256,
            **details,
        },
    )


def _make_active(s: Session, row: ModelRow) -> int | None:
    """Make ``row`` its type's active version; returns the id of the one it replaced."""
    current = s.scalars(
        select(ModelRow).where(
            ModelRow.model_type == row.model_type,
            ModelRow.status == ModelStatus.ACTIVE.value,
            ModelRow.id != row.id,
        )
    ).all()
    for other in current:
        other.status = ModelStatus.INACTIVE.value
    s.flush()  # the partial unique index allows one active row per type: demote first
    row.status = ModelStatus.ACTIVE.value
    return current[0].id if current else None


def _get(s: Session, model_id: int) -> ModelRow:
    row = s.get(ModelRow, model_id)
    if row is None:
        raise NotFoundError("model", model_id)
    return row


def _view(row: ModelRow, paths: Paths) -> Model:
    return Model(
        id=row.id,
        model_type=ModelType(row.model_type),
        name=row.name,
        version=row.version,
        status=ModelStatus(row.status),
        sha256=row.sha256,
        description=row.description,
        original_filename=row.original_filename,
        size=row.size,
        created_at=row.created_at,
        path=str(paths.models / row.stored_name),
        created_by=row.created_by,
        threads=row.threads or 1,
        tokens=tuple(t for t in (row.tokens or "").split("+") if t),
        scratch=bool(row.scratch),
    )
