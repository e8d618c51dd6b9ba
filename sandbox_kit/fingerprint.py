"""What an interpreter runs with: its Python version and installed packages, as a fingerprint.

Part of the result cache's key (issue 11): a run under another scipy is not the same run. Listing
the packages means starting the interpreter (~0.1-0.3 s), so it is done once per interpreter
and remembered: in this process, and in the registry (``interpreters``: which fingerprint an
interpreter had, with a *stamp* of the modification times of the interpreter and of every
folder on its ``sys.path``; ``environments``: the package list of each fingerprint, which also
lets a cache miss name the packages that changed). Installing, removing or upgrading a package
changes its ``site-packages`` folder's time, so the stamp tells when to look again; checking it
costs a few ``stat`` calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from dataclasses import dataclass

from sandbox_kit.db import Database, EnvironmentRow, InterpreterRow, utcnow

_BASIC_PATH = "/usr/local/bin:/usr/bin:/bin"
# Run in the interpreter as a model would be (no PYTHON* variables, no user site): the Python
# version, every installed distribution (normalised name -> version) and the sys.path folders.
_PROBE = """
import json, os, platform, re, sys
from importlib import metadata
packages = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        packages[re.sub(r"[-_.]+", "-", name).lower()] = dist.version
site = sorted({p for p in sys.path if p and os.path.isdir(p)})
print(json.dumps({"python": platform.python_version(), "packages": packages, "site": site}))
"""


@dataclass(frozen=True, slots=True)
class Environment:
    """An interpreter's Python version and packages.

    Attributes:
        fingerprint: sha256 of the version and the sorted ``name==version`` list.
        packages: normalised distribution name -> version.
    """

    interpreter: str
    python_version: str
    fingerprint: str
    packages: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Known:
    stamp: str
    site_dirs: tuple[str, ...]
    environment: Environment


_known: dict[str, _Known] = {}  # interpreter path -> what it had at that stamp
_recorded: set[tuple[str, str, str]] = set()  # (database url, interpreter, stamp) written
_lock = threading.Lock()


def environment(db: Database, interpreter: str) -> Environment | None:
    """The interpreter's environment, looked at again only when its stamp changed.

    Returns None when the interpreter cannot be run (a run of it fails anyway, and is never
    cached).
    """
    path = os.path.abspath(interpreter)
    with _lock:
        known = _known.get(path)
    if known is None or _stamp(path, known.site_dirs) != known.stamp:
        known = _from_registry(db, path) or _probe(path)
        if known is None:
            return None
        with _lock:
            _known[path] = known
    if (db.url, path, known.stamp) not in _recorded:
        _record(db, path, known)
        with _lock:
            _recorded.add((db.url, path, known.stamp))
    return known.environment


def packages(db: Database, fingerprint: str) -> dict[str, str] | None:
    """The package list recorded for a fingerprint, or None when it is unknown."""
    with db.read() as s:
        row = s.get(EnvironmentRow, fingerprint)
        return None if row is None else dict(json.loads(row.packages))


def fingerprint_of(python_version: str, installed: dict[str, str]) -> str:
    """sha256 of a Python version and a package list (order does not matter)."""
    text = "\n".join([python_version, *(f"{k}=={v}" for k, v in sorted(installed.items()))])
    return hashlib.sha256(text.encode()).hexdigest()


def _stamp(path: str, site_dirs: tuple[str, ...]) -> str:
    parts = []
    for item in (os.path.realpath(path), *site_dirs):
        try:
            info = os.stat(item)
        except OSError:
            parts.append(f"{item}:-")
            continue
        parts.append(f"{item}:{info.st_mtime_ns}:{info.st_size}")
    return "\n".join(parts)


def _from_registry(db: Database, path: str) -> _Known | None:
    with db.read() as s:
        row = s.get(InterpreterRow, path)
        if row is None:
            return None
        site_dirs = tuple(json.loads(row.site_dirs))
        if _stamp(path, site_dirs) != row.stamp:
            return None
        env = s.get(EnvironmentRow, row.fingerprint)
        if env is None:
            return None
        installed = dict(json.loads(env.packages))
        found = Environment(path, env.python_version, env.fingerprint, installed)
        return _Known(row.stamp, site_dirs, found)


def _probe(path: str) -> _Known | None:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return None
    try:
        done = subprocess.run(
            [path, "-E", "-s", "-c", _PROBE],
            capture_output=True,
            timeout=60,
            check=True,
            env={"PATH": _BASIC_PATH, "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
        )
        found = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        python = str(found["python"])
        installed = {str(k): str(v) for k, v in found["packages"].items()}
        site_dirs = tuple(str(p) for p in found["site"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError, TypeError):
        return None
    stamp = _stamp(path, site_dirs)
    env = Environment(path, python, fingerprint_of(python, installed), installed)
    return _Known(stamp, site_dirs, env)


def _record(db: Database, path: str, known: _Known) -> None:
    env = known.environment
    with db.write() as s:
        if s.get(EnvironmentRow, env.fingerprint) is None:
            s.add(
                EnvironmentRow(
                    fingerprint=env.fingerprint,
                    python_version=env.python_version,
                    packages=json.dumps(env.packages, sort_keys=True),
                )
            )
        row = s.get(InterpreterRow, path)
        if row is not None and (row.stamp, row.fingerprint) == (known.stamp, env.fingerprint):
            return  # as recorded: ``checked_at`` stays the time it was last listed
        if row is None:
            row = InterpreterRow(path=path)
            s.add(row)
        row.stamp = known.stamp
        row.site_dirs = json.dumps(list(known.site_dirs))
        row.fingerprint = env.fingerprint
        row.checked_at = utcnow()
