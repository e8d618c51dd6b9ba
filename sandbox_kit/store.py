"""The store: where results and data sets travel between hosts (issue 12).

With the Dask executor a job runs on a worker that shares no filesystem with the dashboard's
host, so what a job reads (``DATA_SOURCE_DIR``) and what it writes (``result.json``, tables,
files) goes through a store: an fsspec URL, ``SANDBOX_STORE``. A folder by default
(``$SANDBOX_HOME/store``); ``s3://bucket/prefix`` for object storage (the ``s3`` extra), with
credentials and endpoint from the usual AWS settings (``AWS_ACCESS_KEY_ID``/``AWS_PROFILE``,
``AWS_ENDPOINT_URL`` for an S3-compatible server); fsspec's ``FSSPEC_S3_*`` variables work too.

Layout under the URL::

    <key>                  bytes stored with put_bytes
    <key>/<path>           the files of a tree stored with put_dir
    <key>@tree.json        the tree's manifest (its files and sizes), written last

A key is ``/``-joined names of letters, digits, ``.``, ``_`` and ``-`` (never ``.`` or ``..``),
at most 512 characters, e.g. ``results/DMO_1764331200000_k3f9qa``. A key must not lie inside
another key's tree. The manifest's ``@`` is in no key, so no key can overwrite it.

A tree without its manifest is absent: readers never see a half-written tree. In a folder a
tree is written under ``~staging/`` and renamed into place before its manifest is written; in
an object store it is written in place and its manifest last. Readers download the files the
manifest names, so objects left by an interrupted upload are never read.

This module imports fsspec, which only the Dask executor's code paths need (the ``dask``
extra); the local executor never imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sandbox_kit.errors import SandboxKitError, StoreError, ValidationError, reason_of

if TYPE_CHECKING:
    from sandbox_kit.config import Paths, Settings

MAX_KEY_CHARS = 512
_KEY = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*\Z")
_MANIFEST = "@tree.json"
_STAGING = "~staging"  # a folder store's work area; "~" is in no key
_CHUNK = 1024 * 1024
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")
_LOCAL_PROTOCOLS = ("file", "local")


def result_key(job_id: str, attempt: int) -> str:
    """Where an attempt's results are in the store: a dead attempt that comes back late
    writes beside the newer one's, never over them."""
    return f"results/{job_id}/{attempt}"


class Store:
    """Trees of files and small blobs under keys, in a folder or an object store.

    Args:
        url: a folder (a path or ``file://``) or any fsspec URL, e.g. ``s3://bucket/prefix``.

    Attributes:
        url: the URL as used (a folder's path made absolute); may hold credentials, so
            messages show :attr:`public_url`.

    Raises:
        StoreError: the URL's protocol needs a package that is not installed.
    """

    def __init__(self, url: str) -> None:
        if not url.strip():
            raise ValidationError("the store URL is empty")
        try:
            import fsspec
            from fsspec.core import split_protocol
        except ImportError as exc:
            raise StoreError(
                f"the store at {_public(url)} needs fsspec, which is not installed; "
                "install it with: pip install 'sandbox_kit[dask]'",
                url=_public(url),
                reason=str(exc),
            ) from None
        protocol, path = split_protocol(url)
        self._local = protocol in (None, *_LOCAL_PROTOCOLS)
        self.url = str(Path(path).expanduser().absolute()) if protocol is None else url
        self._shown = _public(self.url)
        try:
            if self._local:
                self._fs: Any = fsspec.filesystem("file", auto_mkdir=True)
                self._root = str(Path(path).expanduser().absolute())
            else:
                # A fresh instance, never a cached one: the endpoint and credentials are read
                # when it is made. No listings cache: other hosts write here too.
                self._fs, root = fsspec.core.url_to_fs(
                    url, skip_instance_cache=True, use_listings_cache=False
                )
                self._root = str(root).rstrip("/")
        except ImportError as exc:
            extra = "s3" if protocol in ("s3", "s3a") else "dask"
            raise StoreError(
                f"the store at {self._shown} needs a package that is not installed ({exc}); "
                f"install it with: pip install 'sandbox_kit[{extra}]'",
                url=self._shown,
                reason=str(exc),
            ) from None
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"the store URL {self._shown} is not usable: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings, paths: Paths) -> Store:
        """The store ``settings.store`` names, else the folder ``paths.store`` (created, 0700)."""
        if settings.store:
            return cls(settings.store)
        paths.store.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(str(paths.store))

    def __repr__(self) -> str:
        return f"Store({self._shown!r})"

    @property
    def public_url(self) -> str:
        """The URL without credentials (a user part) or query string, for messages."""
        return self._shown

    # -- trees ---------------------------------------------------------------------------------

    def put_dir(self, local: Path, key: str) -> int:
        """Upload the regular files under ``local`` as the tree ``key``, replacing whatever was
        there; symbolic links and special files are skipped, never followed.

        Returns:
            The bytes uploaded (file contents).

        Raises:
            ValidationError: a bad key, or ``local`` is not a folder (or is a symbolic link).
            StoreError: the store cannot be written.
        """
        _check(key)
        try:
            root_fd = os.open(local, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise ValidationError(
                f"{local} is not a folder (a symbolic link is not followed): {exc.strerror}"
            ) from None
        try:
            if self._local:
                return self._put_dir_local(root_fd, key)
            with self._failing(f"write {key}"):
                self._remove(self._manifest(key))
                self._remove(self._path(key), recursive=True)
                files = self._upload(root_fd, self._path(key))
                self._fs.pipe_file(self._manifest(key), _manifest_of(files))
                return sum(size for _, size in files)
        finally:
            os.close(root_fd)

    def get_dir(self, key: str, local: Path) -> bool:
        """Download the tree ``key`` into ``local`` (created; existing files of the same names
        are replaced).

        Returns:
            False when there is no tree ``key`` (nothing is written then).

        Raises:
            ValidationError: a bad key.
            StoreError: the store cannot be read, or the tree names a file that would land
                outside ``local`` (then nothing is written).
        """
        _check(key)
        with self._failing(f"read {key}"):
            data = self._read(self._manifest(key))
        if data is None:
            return False
        files = self._entries(key, data, local)
        local.mkdir(parents=True, exist_ok=True)
        target = local.resolve()
        with self._failing(f"read {key}"):
            for relative, size in files:
                dest = _local_file(target, relative)
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
                with (
                    self._fs.open(f"{self._path(key)}/{relative}", "rb") as src,
                    os.fdopen(os.open(dest, flags, 0o644), "wb") as out,
                ):
                    copied = _copy(src, out)
                if copied != size:
                    raise OSError(f"{relative} has {copied} bytes, its manifest says {size}")
        return True

    # -- blobs ---------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing whatever was there."""
        _check(key)
        with self._failing(f"write {key}"):
            if self._local:
                staged = self._staging()
                Path(staged).write_bytes(data)
                self._commit_local(staged, key)
            else:
                self._remove(self._manifest(key))
                self._remove(self._path(key), recursive=True)
                self._fs.pipe_file(self._path(key), data)

    def get_bytes(self, key: str) -> bytes | None:
        """The bytes stored under ``key``; None when absent (or when ``key`` is a tree)."""
        _check(key)
        with self._failing(f"read {key}"):
            return self._read(self._path(key))

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds bytes or a complete tree."""
        _check(key)
        with self._failing(f"read {key}"):
            return self._is_file(self._manifest(key)) or self._is_file(self._path(key))

    def delete(self, key: str) -> None:
        """Delete the tree or bytes under ``key``; nothing there is fine."""
        _check(key)
        with self._failing(f"delete {key}"):
            # The manifest first: from then on the tree is absent, however far the rest gets.
            self._remove(self._manifest(key))
            if self._local:
                target = self._path(key)
                if os.path.lexists(target):
                    aside = self._staging()
                    os.rename(target, aside)
                    _remove_local(aside)
            else:
                self._remove(self._path(key), recursive=True)

    # -- internals -----------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def _manifest(self, key: str) -> str:
        return f"{self._root}/{key}{_MANIFEST}"

    def _staging(self) -> str:
        """A fresh name in a folder store's work area (on the same filesystem, for renames)."""
        area = Path(self._root, _STAGING)
        Path(self._root).mkdir(mode=0o700, parents=True, exist_ok=True)
        area.mkdir(mode=0o700, exist_ok=True)
        return str(area / secrets.token_hex(8))

    def _put_dir_local(self, root_fd: int, key: str) -> int:
        with self._failing(f"write {key}"):
            staged = self._staging()
            try:
                Path(staged).mkdir(mode=0o700)
                files = self._upload(root_fd, staged)
                Path(staged + _MANIFEST).write_bytes(_manifest_of(files))
                self._commit_local(staged, key, manifest=staged + _MANIFEST)
            finally:
                _remove_local(staged)
                _remove_local(staged + _MANIFEST)
            return sum(size for _, size in files)

    def _commit_local(self, staged: str, key: str, *, manifest: str | None = None) -> None:
        """Rename ``staged`` to ``key``'s place (and its manifest after it), moving anything
        there aside first."""
        target = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._manifest(key))
        Path(target).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        aside = None
        # A file replaces a file in one rename; a folder cannot replace anything that way.
        if os.path.lexists(target) and (os.path.isdir(staged) or _is_folder(target)):
            aside = self._staging()
            os.rename(target, aside)
        os.rename(staged, target)
        if manifest is not None:
            os.rename(manifest, self._manifest(key))
        if aside is not None:
            _remove_local(aside)

    def _upload(self, root_fd: int, dest: str) -> list[tuple[str, int]]:
        """Copy the regular files under ``root_fd`` to ``dest``: (relative path, size) each."""
        files: list[tuple[str, int]] = []
        for relative, dir_fd, name in _walk(root_fd, ""):
            source = _open_regular(dir_fd, name)
            if source is None:
                continue
            with source, self._fs.open(f"{dest}/{relative}", "wb") as out:
                files.append((relative, _copy(source, out)))
        return files

    def _entries(self, key: str, data: bytes, local: Path) -> list[tuple[str, int]]:
        """The manifest's files, each checked to land inside ``local``."""
        try:
            entries = json.loads(data)["files"]
            files = [(str(e["path"]), int(e["size"])) for e in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise self._error(f"read {key}", f"its manifest is not readable ({exc})") from None
        for relative, _ in files:
            # "" catches a leading "/" (an absolute path), "//" and a trailing "/".
            if "\x00" in relative or any(p in ("", ".", "..") for p in relative.split("/")):
                raise self._error(
                    f"read {key}",
                    f"the entry {relative!r} would land outside {local}; nothing was written",
                )
        return files

    def _read(self, path: str) -> bytes | None:
        try:
            return bytes(self._fs.cat_file(path))
        except IsADirectoryError:
            return None
        except Exception as exc:
            if _absent(exc):
                return None
            raise

    def _is_file(self, path: str) -> bool:
        try:
            return bool(self._fs.info(path)["type"] == "file")
        except Exception as exc:
            if _absent(exc):
                return False
            raise

    def _remove(self, path: str, *, recursive: bool = False) -> None:
        try:
            if recursive:
                self._fs.rm(path, recursive=True)
            else:
                self._fs.rm_file(path)
        except Exception as exc:
            if not _absent(exc):
                raise

    @contextlib.contextmanager
    def _failing(self, doing: str) -> Iterator[None]:
        """Turn the backend's errors (network, credentials, missing bucket) into StoreError."""
        try:
            yield
        except SandboxKitError:
            raise
        except Exception as exc:
            raise self._error(doing, reason_of(exc)) from exc

    def _error(self, doing: str, reason: str) -> StoreError:
        return StoreError(
            f"cannot {doing} in the store at {self._shown}: {reason}",
            url=self._shown,
            reason=reason,
        )


def _check(key: object) -> None:
    if (
        not isinstance(key, str)
        or len(key) > MAX_KEY_CHARS
        or not _KEY.match(key)
        or any(part in (".", "..") for part in key.split("/"))
    ):
        raise ValidationError(
            f"{key!r} is not a store key: use names of letters, digits, '.', '_' and '-' "
            f"joined by '/', none of them '.' or '..', at most {MAX_KEY_CHARS} characters"
        )


def _walk(dir_fd: int, prefix: str) -> Iterator[tuple[str, int, str]]:
    """(relative path, parent folder's fd, name) of the regular files under ``dir_fd``, in
    name order; symbolic links are neither followed nor listed."""
    with os.scandir(dir_fd) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            try:
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                sub = os.open(entry.name, flags, dir_fd=dir_fd)
            except OSError:  # replaced by a link or removed since it was listed
                continue
            try:
                yield from _walk(sub, f"{prefix}{entry.name}/")
            finally:
                os.close(sub)
        elif entry.is_file(follow_symlinks=False):
            yield f"{prefix}{entry.name}", dir_fd, entry.name


def _open_regular(dir_fd: int, name: str) -> BinaryIO | None:
    """The file ``name`` opened for reading, or None when it is no longer a regular file
    (the folder's owner may change it between listing and opening: a link is not followed, a
    FIFO does not block)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _manifest_of(files: list[tuple[str, int]]) -> bytes:
    entries = [{"path": path, "size": size} for path, size in files]
    return json.dumps({"files": entries, "bytes": sum(size for _, size in files)}).encode()


def _is_folder(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _local_file(root: Path, relative: str) -> Path:
    """``root/relative``, its folders created; refused when a folder on the way is a link."""
    current = root
    parts = relative.split("/")
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise OSError(f"{current} is in the way of {relative} (a link or a file)")
        current.mkdir(exist_ok=True)
    return current / parts[-1]


def _copy(source: Any, out: Any) -> int:
    total = 0
    while chunk := source.read(_CHUNK):
        out.write(chunk)
        total += len(chunk)
    return total


def _remove_local(path: str) -> None:
    if _is_folder(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _absent(exc: BaseException) -> bool:
    """A "no such file" from the backend; a missing bucket is an error, not an absent key."""
    if not isinstance(exc, FileNotFoundError):
        return False
    cause: BaseException | None = exc
    while cause is not None:
        response = getattr(cause, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") == "NoSuchBucket":
            return False
        cause = cause.__cause__ or cause.__context__
    return True


def _public(url: str) -> str:
    """``url`` without credentials (a user part) or query string."""
    return _CREDENTIALS.sub(r"\1", url.split("?", 1)[0].split("#", 1)[0])
