"""Versioned data sets: input files a run gets, read-only, as ``DATA_SOURCE_DIR`` (issue 11).

A data set is a name with numbered versions. Adding a file, a folder or a zip (stored
extracted) makes the next version, unless the same name already holds identical content, which
is then returned. Content is addressed by its sha256: the hash of every file's relative path,
size and sha256, so a zip and the folder it was made from are the same content. Files live
under ``$SANDBOX_HOME/data/<sha256>/``, owned by the sandbox, world-readable and read-only
(``0444`` files, ``0555`` folders): a job runs as another uid and reads them through a
read-only mount.

Everything is checked before anything is kept: the name, every path (no absolute paths, no
``..``, no control characters), the kinds of entry (no symbolic links, devices or FIFOs; in a
zip, no link entries and no encryption), the size (``Settings.data_max_bytes``, a zip counted
extracted and checked again while extracting) and the number of files. The files are written
to a private staging folder first and moved into place in the transaction that writes the row,
so a rejected data set leaves no file and no row.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from sqlalchemy import delete, func, select

from sandbox_kit import audit
from sandbox_kit.config import Paths
from sandbox_kit.db import Database, DataSetRow, JobRow, utcnow
from sandbox_kit.errors import ConflictError, NotFoundError, ValidationError
from sandbox_kit.humanize import size as human_size
from sandbox_kit.records import DataSet

MAX_FILES = 100_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"[A-Za-z]:(/|\Z)")
_CHUNK = 1 << 20
_BUSY = ("queued", "running")


def check_name(name: str) -> str:
    """A data set name, or a :class:`ValidationError` saying what is allowed."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"data set name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit, at most 100 characters"
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME``, ``NAME@VERSION`` or ``data:NAME[@VERSION]`` -> (name, version or None)."""
    text = ref.strip()
    text = text.removeprefix("data:")
    name, at, version = text.partition("@")
    check_name(name)
    if not at:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ValidationError(f"data set version in {ref!r} must be a whole number from 1")
    return name, int(version)


def content_sha256(folder: str | os.PathLike[str]) -> str:
    """The content identity of a folder: sha256 over each entry's relative path and content.

    Symbolic links are hashed as their target text, never followed (a job's result folder may
    hold some; a stored data set never does).
    """
    return _digest(_manifest(Path(folder)))


@dataclass(frozen=True, slots=True)
class _Staged:
    folder: Path
    kind: str
    files: int
    size: int
    sha256: str


class DataStore:
    """The data sets of one sandbox: rows in ``datasets``, files under ``data/``.

    Args:
        db: the registry.
        paths: the sandbox's folders.
        max_bytes: largest data set, all files together.
    """

    def __init__(self, db: Database, paths: Paths, *, max_bytes: int) -> None:
        self.db = db
        self.paths = paths
        self.max_bytes = max_bytes

    def add(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        name: str,
        description: str = "",
        filename: str | None = None,
        actor: str | None = None,
    ) -> tuple[DataSet, bool]:
        """Store a file, folder or zip as the next version of ``name``.

        Args:
            source: a path, or a file's content as bytes (then ``filename`` names it; a name
                ending in ``.zip`` is extracted).
            actor: recorded in the audit trail (``data_add``) with the new version.

        Returns:
            The data set version, and True when it was made now (False: identical content was
            already stored under this name).

        Raises:
            ValidationError: the name, a path, an entry or the size was refused; nothing was
                stored.
        """
        check_name(name)
        staging = self.paths.data / f".staging-{secrets.token_hex(8)}"
        staging.mkdir(mode=0o700, parents=True)
        target: Path | None = None
        try:
            staged = _stage(source, filename, staging, self.max_bytes)
            _freeze(staging)
            with self.db.write() as s:
                same = s.scalars(
                    select(DataSetRow).where(
                        DataSetRow.name == name, DataSetRow.sha256 == staged.sha256
                    )
                ).first()
                if same is not None:
                    return self._view(same), False
                latest = s.scalar(
                    select(func.max(DataSetRow.version)).where(DataSetRow.name == name)
                )
                row = DataSetRow(
                    name=name,
                    version=(latest or 0) + 1,
                    sha256=staged.sha256,
                    kind=staged.kind,
                    original_name=_shown_name(source, filename),
                    description=description.strip(),
                    files=staged.files,
                    size=staged.size,
                    created_at=utcnow(),
                )
                s.add(row)
                s.flush()
                if actor is not None:
                    details = {"sha256": row.sha256, "files": row.files, "size": row.size}
                    audit.add(
                        s,
                        actor=actor,
                        action="data_add",
                        object_type="dataset",
                        object_id=f"{name}@{row.version}",
                        details=details,
                    )
                stored = self.paths.data / staged.sha256
                if not stored.exists():  # identical content under another name is shared
                    os.rename(staging, stored)
                    target = stored
                view = self._view(row)
        except BaseException:
            if target is not None:
                _remove(target)
            raise
        finally:
            if staging.exists():
                _remove(staging)
        return view, True

    def versions(self, name: str | None = None) -> list[DataSet]:
        """Data set versions by name, newest version first."""
        query = select(DataSetRow).order_by(DataSetRow.name, DataSetRow.version.desc())
        if name is not None:
            query = query.where(DataSetRow.name == check_name(name))
        with self.db.read() as s:
            return [self._view(row) for row in s.scalars(query)]

    def get(self, ref: str) -> DataSet:
        """The version ``NAME@VERSION`` names, or the newest one of ``NAME``.

        Raises:
            NotFoundError: no such data set or version.
        """
        name, version = parse_ref(ref)
        query = select(DataSetRow).where(DataSetRow.name == name)
        if version is None:
            query = query.order_by(DataSetRow.version.desc())
        else:
            query = query.where(DataSetRow.version == version)
        with self.db.read() as s:
            row = s.scalars(query.limit(1)).first()
            if row is None:
                raise NotFoundError("data set", name if version is None else f"{name}@{version}")
            return self._view(row)

    def files(self, data_set: DataSet, *, limit: int = 1000) -> list[tuple[str, int]]:
        """The first ``limit`` files of a version: (relative path, bytes), sorted."""
        root = Path(data_set.path)
        found = []
        for path, info in _walk(root):
            if stat.S_ISREG(info.st_mode):
                found.append((path.relative_to(root).as_posix(), info.st_size))
        found.sort()
        return found[:limit]

    def delete(self, ref: str, *, actor: str | None = None) -> list[DataSet]:
        """Delete one version (``NAME@VERSION``) or every version of ``NAME`` (each recorded
        as ``data_delete`` in the audit trail when ``actor`` is given).

        Raises:
            NotFoundError: no such data set or version.
            ConflictError: a queued or running job uses one of them; nothing was deleted.
        """
        name, version = parse_ref(ref)
        query = select(DataSetRow).where(DataSetRow.name == name)
        if version is not None:
            query = query.where(DataSetRow.version == version)
        with self.db.write() as s:
            rows = list(s.scalars(query))
            if not rows:
                raise NotFoundError("data set", name if version is None else f"{name}@{version}")
            views = [self._view(row) for row in rows]
            busy = s.execute(
                select(JobRow.id, JobRow.data_source).where(
                    JobRow.data_source.in_([v.source for v in views]),
                    JobRow.status.in_(_BUSY),
                )
            ).first()
            if busy is not None:
                job_id, used = busy
                raise ConflictError(
                    f"data set {str(used).removeprefix('data:')} is used by job {job_id}, which "
                    "is queued or running; cancel it or wait for it to finish before deleting",
                    job_id=job_id,
                )
            s.execute(delete(DataSetRow).where(DataSetRow.id.in_([v.id for v in views])))
            for view in views:
                if actor is not None:
                    audit.add(
                        s,
                        actor=actor,
                        action="data_delete",
                        object_type="dataset",
                        object_id=view.label,
                        details={"sha256": view.sha256},
                    )
            digests = {v.sha256 for v in views}
            still = set(s.scalars(select(DataSetRow.sha256).where(DataSetRow.sha256.in_(digests))))
        # Files go after the commit; a folder another name still holds stays.
        for digest in digests - still:
            _remove(self.paths.data / digest)
        return views

    def _view(self, row: DataSetRow) -> DataSet:
        return DataSet(
            id=row.id,
            name=row.name,
            version=row.version,
            sha256=row.sha256,
            kind=row.kind,
            original_name=row.original_name,
            description=row.description,
            files=row.files,
            size=row.size,
            created_at=row.created_at,
            path=str(self.paths.data / row.sha256),
        )


# -- staging ----------------------------------------------------------------------------------


def _stage(
    source: str | os.PathLike[str] | bytes, filename: str | None, staging: Path, max_bytes: int
) -> _Staged:
    """Check and copy what was given into ``staging``; nothing outside it is written."""
    if isinstance(source, bytes | bytearray):
        shown = filename or "data"
        name = _entry_name(shown, shown)
        if name.lower().endswith(".zip"):
            return _stage_zip(io.BytesIO(bytes(source)), shown, staging, max_bytes)
        _check_total(shown, len(source), max_bytes)
        _write(staging / name, io.BytesIO(bytes(source)), shown, len(source))
        return _staged(staging, "file")
    path = Path(source)
    shown = str(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise ValidationError("no such file or folder", filename=shown) from None
    except OSError as exc:
        raise ValidationError(f"cannot read it: {exc.strerror}", filename=shown) from None
    if stat.S_ISLNK(info.st_mode):
        raise ValidationError("is a symbolic link; give the file or folder itself", filename=shown)
    if stat.S_ISDIR(info.st_mode):
        _stage_folder(path, staging, max_bytes)
        return _staged(staging, "folder")
    if not stat.S_ISREG(info.st_mode):
        raise ValidationError("is not a regular file or a folder", filename=shown)
    name = _entry_name(path.name, shown)
    with _open_source(path) as handle:
        if name.lower().endswith(".zip"):
            return _stage_zip(handle, shown, staging, max_bytes)
        _check_total(shown, info.st_size, max_bytes)
        _write(staging / name, handle, shown, info.st_size)
    return _staged(staging, "file")


def _stage_folder(folder: Path, staging: Path, max_bytes: int) -> None:
    entries: list[tuple[Path, str, int]] = []
    total = 0
    try:
        listed = list(_walk(folder))
    except OSError as exc:
        raise ValidationError(f"cannot be read: {exc.strerror}", filename=str(folder)) from None
    for path, info in listed:
        relative = path.relative_to(folder).as_posix()
        shown = f"{folder.name}/{relative}"
        _entry_name(relative, shown)
        if stat.S_ISLNK(info.st_mode):
            raise ValidationError(
                "is a symbolic link; data sets hold only files and folders", filename=shown
            )
        if stat.S_ISDIR(info.st_mode):
            continue
        if not stat.S_ISREG(info.st_mode):
            raise ValidationError("is not a regular file", filename=shown)
        total += info.st_size
        entries.append((path, relative, info.st_size))
        if len(entries) > MAX_FILES:
            raise ValidationError(f"holds more than {MAX_FILES} files", filename=str(folder))
        _check_total(str(folder), total, max_bytes)
    if not entries:
        raise ValidationError("holds no files", filename=str(folder))
    for path, relative, expected in entries:
        with _open_source(path) as handle:
            _write(staging / relative, handle, f"{folder.name}/{relative}", expected)


def _stage_zip(handle: BinaryIO, shown: str, staging: Path, max_bytes: int) -> _Staged:
    import zipfile

    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ValidationError(f"is not a readable zip file ({exc})", filename=shown) from None
    with archive:
        members = []
        seen: set[str] = set()
        total = 0
        for info in archive.infolist():
            where = f"{shown}: {info.filename}"
            name = _entry_name(info.filename.rstrip("/"), where) if info.filename else ""
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise ValidationError(
                    "is a symbolic link; data sets hold only files and folders", filename=where
                )
            if info.is_dir():
                continue
            if kind not in (0, stat.S_IFREG):
                raise ValidationError("is not a regular file", filename=where)
            if info.flag_bits & 0x1:
                raise ValidationError("is encrypted", filename=where)
            if name in seen:
                raise ValidationError("appears twice in the archive", filename=where)
            seen.add(name)
            total += info.file_size
            _check_total(shown, total, max_bytes, extracted=True)
            members.append((info, name))
        if len(members) > MAX_FILES:
            raise ValidationError(f"holds more than {MAX_FILES} files", filename=shown)
        if not members:
            raise ValidationError("holds no files", filename=shown)
        for info, name in members:
            where = f"{shown}: {info.filename}"
            try:
                with archive.open(info) as member:
                    _write(staging / name, member, where, info.file_size)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise ValidationError(f"cannot be extracted ({exc})", filename=where) from None
    return _staged(staging, "zip")


def _entry_name(name: str, shown: str) -> str:
    """A relative path that stays inside its folder, or a :class:`ValidationError`."""
    if not name:
        raise ValidationError("has an empty name", filename=shown)
    if _CONTROL.search(name) or "\\" in name:
        raise ValidationError("has a control character or a backslash in its name", filename=shown)
    if name.startswith("/") or _DRIVE.match(name):
        raise ValidationError("is an absolute path", filename=shown)
    parts = PurePosixPath(name).parts
    if any(part in ("..", ".") for part in name.split("/")) or not parts:
        raise ValidationError("leads out of its folder ('..' or '.')", filename=shown)
    if len(name) > 1024 or any(len(os.fsencode(part)) > 255 for part in parts):
        raise ValidationError("has a name that is too long", filename=shown)
    return "/".join(parts)


def _check_total(shown: str, total: int, max_bytes: int, *, extracted: bool = False) -> None:
    if total > max_bytes:
        what = "extracts to" if extracted else "is"
        raise ValidationError(
            f"{what} more than the data set limit of {human_size(max_bytes)} (SANDBOX_DATA_MAX_MB)",
            filename=shown,
        )


def _write(target: Path, source: IO[bytes], shown: str, expected: int) -> None:
    """Copy ``source`` to a new file, refusing more bytes than ``expected`` (a lying zip)."""
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise ValidationError("appears twice", filename=shown) from None
    except OSError as exc:  # a file where a folder is needed, or the other way round
        raise ValidationError(f"cannot be stored: {exc.strerror}", filename=shown) from None
    written = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > expected:
                raise ValidationError(
                    f"holds more bytes than it declares ({expected})", filename=shown
                )
            out.write(chunk)


def _staged(staging: Path, kind: str) -> _Staged:
    manifest = _manifest(staging)
    files = sum(1 for line in manifest if line[1] == "f")
    total = sum(line[2] for line in manifest)
    return _Staged(staging, kind, files, total, _digest(manifest))


def _manifest(root: Path) -> list[tuple[str, str, int, str]]:
    """(relative path, ``f`` or ``l``, size, sha256 or link target) of every file and link."""
    entries = []
    for path, info in _walk(root):
        relative = path.relative_to(root).as_posix()
        if stat.S_ISLNK(info.st_mode):
            entries.append((relative, "l", 0, os.readlink(path)))
        elif stat.S_ISREG(info.st_mode):
            digest = hashlib.sha256()
            with _open_source(path) as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            entries.append((relative, "f", info.st_size, digest.hexdigest()))
    entries.sort()
    return entries


def _digest(manifest: list[tuple[str, str, int, str]]) -> str:
    digest = hashlib.sha256()
    for relative, kind, length, content in manifest:
        line = f"{relative}\0{kind}\0{length}\0{content}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry below ``root`` with its ``lstat``, never following a symbolic link."""
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                path = Path(entry.path)
                info = entry.stat(follow_symlinks=False)
                yield path, info
                if stat.S_ISDIR(info.st_mode):
                    stack.append(path)


@contextlib.contextmanager
def _open_source(path: Path) -> Iterator[BinaryIO]:
    # O_NOFOLLOW: a file swapped for a link after it was checked is not followed.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ValidationError(f"cannot read it: {exc.strerror}", filename=str(path)) from None
    with os.fdopen(fd, "rb") as handle:
        yield handle


def _freeze(root: Path) -> None:
    """World-readable, nobody-writable: files ``0444``, folders ``0555`` (the root last)."""
    for path, info in _walk(root):
        if stat.S_ISREG(info.st_mode):
            os.chmod(path, 0o444)
    folders = [path for path, info in _walk(root) if stat.S_ISDIR(info.st_mode)]
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        os.chmod(folder, 0o555)
    os.chmod(root, 0o555)


def _remove(folder: Path) -> None:
    # Read-only folders: the registry's removal restores write permission first.
    from sandbox_kit.registry import _remove_tree

    _remove_tree(folder)


def _shown_name(source: str | os.PathLike[str] | bytes, filename: str | None) -> str:
    if isinstance(source, bytes | bytearray):
        return (filename or "data")[:255]
    return (filename or Path(source).name or str(source))[:255]
