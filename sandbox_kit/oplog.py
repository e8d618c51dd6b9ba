"""The operator's log: what the sandbox itself did wrong, for whoever runs it.

Job output goes to each job's durable log; this is for the sandbox's own troubles (a failed
dispatch, a database outage survived by a supervisor). Records go to
``$SANDBOX_HOME/logs/sandbox.log`` and to stderr when the process has one to show them on
(a CLI call, ``sandbox-kit serve``, a supervisor's ``supervisor.log``); never to a notebook
cell.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(message)s"
_loggers: dict[tuple[str, bool], logging.Logger] = {}
_lock = threading.Lock()


def logger(
    home: str | os.PathLike[str] | None = None, *, stderr: bool | None = None
) -> logging.Logger:
    """The operator's logger of one sandbox home, writing to ``<home>/logs/sandbox.log``.

    Args:
        home: the sandbox home; without one, only stderr (if any) gets records.
        stderr: also write to stderr (default: when this process has a real stderr and is not
            a notebook kernel).
    """
    to_stderr = _real_stderr() if stderr is None else stderr
    key = (str(Path(home).resolve()) if home is not None else "", to_stderr)
    with _lock:
        if key in _loggers:
            return _loggers[key]
        log = logging.getLogger(f"sandbox_kit.oplog.{len(_loggers)}")
        log.setLevel(logging.INFO)
        log.propagate = False
        formatter = logging.Formatter(_FORMAT)
        handlers: list[logging.Handler] = []
        if home is not None:
            try:
                folder = Path(home) / "logs"
                folder.mkdir(parents=True, exist_ok=True)
                handlers.append(logging.FileHandler(folder / "sandbox.log", encoding="utf-8"))
            except OSError:
                pass  # an unwritable home must not stop a job; stderr still tells
        if to_stderr:
            handlers.append(_Stderr())
        for handler in handlers:
            handler.setFormatter(formatter)
            log.addHandler(handler)
        _loggers[key] = log
        return log


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (it may be replaced)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def _real_stderr() -> bool:
    if "ipykernel" in sys.modules:
        return False  # a kernel's stderr would put our records in a user's cell
    try:
        return sys.stderr is not None and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        return False
