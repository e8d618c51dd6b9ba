"""A tiny helper a model may import to speak the sandbox's results protocol.

Four calls cover what a model reports:

- :func:`metric` prints a live metric line, ``::metric name=value [name2=value2 ...]``, that the
  sandbox turns into points while the job runs (see :mod:`sandbox_kit.telemetry`);
- :func:`outcome` records the answer (outcome, objective, message, final metrics) in
  ``$SANDBOX_RESULT_DIR/result.json``;
- :func:`save_table` writes a CSV into the result folder and registers it under ``tables``;
- :func:`on_stop` registers a callback that saves what the model has when the sandbox stops
  the job (timeout or cancel: SIGTERM, then SIGKILL after the grace period).

>>> from sandbox_kit.model_api import metric, outcome, save_table
>>> metric(gap=0.01, nodes=12)
>>> save_table("prices", [{"hour": 0, "price": 31.2}])
>>> outcome("optimal", objective=1078867.5, metrics={"solve_time_s": 1.04})

This module is standard-library only and imports nothing from the rest of ``sandbox_kit``: a
model run by another interpreter (``Settings.interpreters``) can use a copy of this file placed
next to it, or simply print the same lines and write the same JSON itself.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import numbers
import os
import re
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol, cast

__all__ = [
    "METRIC_PREFIX",
    "OUTCOMES",
    "STOP_EXIT_STATUS",
    "STOP_FILE",
    "SupportsToCsv",
    "metric",
    "on_stop",
    "outcome",
    "result_dir",
    "save_table",
    "stop_reason",
]

METRIC_PREFIX = "::metric"
OUTCOMES = (
    "optimal",
    "feasible",
    "infeasible",
    "unbounded",
    "time_limit",
    "interrupted",
    "error",
)
RESULT_FILE = "result.json"
#: Written by the job's supervisor into ``$SANDBOX_JOB_DIR`` just before it sends SIGTERM:
#: ``timeout`` or ``cancel`` (issue 15). Read with :func:`stop_reason`.
STOP_FILE = ".sandbox_stop"
#: The exit status after the :func:`on_stop` callbacks ran: 128 + SIGTERM, as a shell reports a
#: process that SIGTERM ended.
STOP_EXIT_STATUS = 128 + signal.SIGTERM

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
# outcome() and save_table() both read, change and replace result.json; a model calling them
# from several threads must not lose one of the updates.
_RESULT_LOCK = threading.Lock()
_STOP_CALLBACKS: list[Callable[[str], object]] = []
_STOP_SETUP = threading.Lock()  # on_stop() calls
_STOP_RUN = threading.Lock()  # held by the one thread that runs the callbacks
# Set when a watcher thread wakes on SIGTERM (even while the main thread is in C code).
_STOP_WATCHER = threading.Event()


class SupportsToCsv(Protocol):
    """Anything that writes itself as CSV to a path, like a pandas DataFrame."""

    def to_csv(self, path_or_buf: str, /) -> object:
        """Write the table as CSV to ``path_or_buf``."""
        ...


if TYPE_CHECKING:
    # Only for type checkers: a copy of this file must also run on interpreters that cannot
    # evaluate ``X | Y`` at run time.
    TableRows = Iterable[Mapping[str, object]] | Iterable[Sequence[object]] | SupportsToCsv


def result_dir() -> Path:
    """The folder results go to: ``$SANDBOX_RESULT_DIR``, else ``./result`` (created)."""
    folder = Path(os.environ.get("SANDBOX_RESULT_DIR") or "result")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def metric(name: str | None = None, value: float | None = None, **more: float) -> None:
    """Print one live metric line, ``::metric name=value [name2=value2 ...]``, and flush.

    Args:
        name: a metric name (``[A-Za-z_][A-Za-z0-9_.]*``), given with ``value``.
        value: its value, a finite number.
        **more: further ``name=value`` pairs on the same line (same point in time).

    Raises:
        ValueError: no pair given, a name given without a value (or the reverse), a name that
            does not match the pattern, or a value that is not a finite number.

    >>> metric("mip.gap", 0.0036)      # ::metric mip.gap=0.0036
    >>> metric(nodes=12, bound=104.5)  # ::metric nodes=12 bound=104.5
    """
    pairs: list[tuple[str, object]] = []
    if name is not None or value is not None:
        if name is None or value is None:
            raise ValueError("metric() needs both a name and a value, e.g. metric('gap', 0.01)")
        pairs.append((name, value))
    pairs.extend(more.items())
    if not pairs:
        raise ValueError("metric() needs at least one name=value pair")
    text = " ".join(f"{_check_name(k)}={_format(_check_number(k, v))}" for k, v in pairs)
    sys.stdout.write(f"{METRIC_PREFIX} {text}\n")
    sys.stdout.flush()


def outcome(
    outcome: str,
    *,
    objective: float | None = None,
    message: str | None = None,
    metrics: Mapping[str, float] | None = None,
) -> None:
    """Record the model's answer in ``result.json``, merged with what is already there.

    The file is replaced atomically (written to a temporary file, then renamed), so a reader
    never sees half of it. Keys already present and not given here are kept; ``metrics`` are
    merged name by name.

    Args:
        outcome: ``optimal``, ``feasible``, ``infeasible``, ``unbounded``, ``time_limit``,
            ``interrupted`` (stopped by a cancel) or ``error``.
        objective: the objective value, a finite number.
        message: one line for people, e.g. why the case is infeasible.
        metrics: final metrics, name -> finite number.

    Raises:
        ValueError: an unknown outcome, or a value that is not a finite number.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    update: dict[str, Any] = {"outcome": outcome}
    if objective is not None:
        update["objective"] = _check_number("objective", objective)
    if message is not None:
        if not isinstance(message, str):
            raise ValueError(f"message must be a string, not {type(message).__name__}")
        update["message"] = message
    checked: dict[str, float] = {}
    for key, val in (metrics or {}).items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"metric names must be non-empty strings, not {key!r}")
        checked[key] = _check_number(key, val)
    with _RESULT_LOCK:
        folder = result_dir()
        result = _read(folder)
        result.update(update)
        if checked:
            old = result.get("metrics")
            result["metrics"] = {**(old if isinstance(old, dict) else {}), **checked}
        _write_json(folder / RESULT_FILE, result)


def save_table(
    name: str,
    rows: TableRows,
    *,
    columns: list[str] | None = None,
    filename: str | None = None,
) -> str:
    """Write a table as CSV into the result folder and register it under ``tables``.

    Args:
        name: the table's name in ``result.json`` (``[A-Za-z_][A-Za-z0-9_.]*``).
        rows: a list of dicts (columns: ``columns``, else the keys in order of appearance), a
            list of sequences (``columns`` required), or an object with a ``to_csv(path)``
            method such as a pandas DataFrame (an unnamed index, which holds no data, is left
            out).
        columns: the header, in order.
        filename: the file's path inside the result folder (default ``<name>.csv``): relative,
            without ``..`` or hidden (dot) names; its folders are created.

    Returns:
        The file's path relative to the result folder, as registered.

    Raises:
        ValueError: a bad name or filename, sequences without ``columns``, a row whose length
            differs from ``columns``, a dict row with a key not in ``columns``, or rows of mixed
            kinds.
    """
    _check_name(name, "table")
    relative = _check_filename(filename if filename is not None else f"{name}.csv")
    with _RESULT_LOCK:
        folder = result_dir()
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        to_csv = getattr(rows, "to_csv", None)
        if callable(to_csv):
            _replace_with(target, lambda tmp: _frame_to_csv(rows, tmp))
        else:
            header, body = _table(cast("Iterable[Any]", rows), columns)
            _replace_with(target, lambda tmp: _write_csv(tmp, header, body))
        result = _read(folder)
        tables = result.get("tables")
        result["tables"] = {**(tables if isinstance(tables, dict) else {}), name: relative}
        _write_json(folder / RESULT_FILE, result)
    return relative


def on_stop(callback: Callable[[str], object]) -> Callable[[str], object]:
    """Run ``callback(reason)`` when the sandbox stops the job, to save what the model has.

    A timeout or a cancel sends the model SIGTERM and, after the grace period
    (``SANDBOX_KILL_GRACE_S``, 5 s by default), SIGKILL. With a callback registered, SIGTERM
    runs the callbacks (in the order registered, each at most once; one that raises is reported
    on stderr and the next still runs), then ends the process with status 143 (128 + SIGTERM).
    ``reason`` is ``"timeout"``, ``"cancel"``, or ``"signal"`` for a SIGTERM the sandbox did not
    send (see :func:`stop_reason`). A callback typically writes the best solution found so far
    and calls :func:`outcome` with ``time_limit`` (timeout) or ``interrupted`` (cancel).

    The callbacks run on a watcher thread woken through :func:`signal.set_wakeup_fd`, so they
    run even while the main thread is inside a solver's C code, provided that code releases the
    GIL (HiGHS's ``highspy`` does while it solves). If the process already has a wakeup fd (an
    asyncio loop's), they run in the main thread's signal handler instead, which Python calls
    between bytecodes only. They should take well under the grace period and must not wait for
    locks the main thread may hold.

    Args:
        callback: a function of one argument, the reason.

    Returns:
        ``callback`` itself, so this works as a decorator.

    Raises:
        TypeError: ``callback`` is not callable.
        ValueError: the first call is not made from the main thread (Python installs signal
            handlers there only).
    """
    if not callable(callback):
        raise TypeError(f"on_stop() needs a callable, not {type(callback).__name__}")
    with _STOP_SETUP:
        if not _STOP_CALLBACKS:
            signal.signal(signal.SIGTERM, _on_sigterm)
            if _start_watcher():
                _STOP_WATCHER.set()
        _STOP_CALLBACKS.append(callback)
    return callback


def stop_reason() -> str:
    """Why the sandbox is stopping the job: ``"timeout"``, ``"cancel"``, or ``"signal"``.

    The supervisor writes the reason to ``$SANDBOX_JOB_DIR/.sandbox_stop`` (:data:`STOP_FILE`)
    before it sends SIGTERM; ``"signal"`` means no such note (SIGTERM came from elsewhere, e.g.
    ``kill`` in a terminal).
    """
    folder = Path(os.environ.get("SANDBOX_JOB_DIR") or ".")
    try:
        text = (folder / STOP_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return "signal"
    return text if text in ("timeout", "cancel") else "signal"


def _start_watcher() -> bool:
    """Have a thread run the callbacks when SIGTERM arrives; False when it cannot."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main thread: signal.signal() above has refused already
        previous = -2
    if previous != -1:
        # Someone else's wakeup fd (asyncio's): give it back; the handler does the work.
        if previous >= 0:
            signal.set_wakeup_fd(previous)
        os.close(read_fd)
        os.close(write_fd)
        return False
    thread = threading.Thread(target=_watch, args=(read_fd,), name="sandbox-on-stop", daemon=True)
    thread.start()
    return True


def _watch(read_fd: int) -> None:
    # The C-level signal handler writes the signal's number here at once, whatever the main
    # thread is doing; Python's own handler runs only when the main thread runs bytecode.
    while True:
        try:
            data = os.read(read_fd, 64)
        except InterruptedError:
            continue
        if not data:
            return
        if signal.SIGTERM in data:
            _run_stop_callbacks()


def _on_sigterm(signum: int, frame: object) -> None:
    if _STOP_WATCHER.is_set():
        return  # the watcher thread runs the callbacks; blocking here could deadlock them
    _run_stop_callbacks()


def _run_stop_callbacks() -> None:
    if not _STOP_RUN.acquire(blocking=False):
        return  # already running (a second SIGTERM): the first run ends the process
    try:
        reason = stop_reason()
        for callback in list(_STOP_CALLBACKS):
            try:
                callback(reason)
            except BaseException:  # report it; the next callback still saves its part
                traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(STOP_EXIT_STATUS)


def _check_name(name: object, what: str = "metric") -> str:
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ValueError(
            f"bad {what} name {name!r}: a letter or '_', then letters, digits, '_' or '.'"
        )
    return name


def _check_number(name: str, value: object) -> float:
    # numbers.Real admits numpy's scalars (registered there) and refuses str; bool is an int
    # but never a measurement.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, not {number}")
    # Counts stay ints, so they print and serialise exactly ("12", not "12.0").
    return int(value) if isinstance(value, numbers.Integral) else number


def _format(value: float) -> str:
    # repr() is the shortest text that reads back to the same float; ints stay exact.
    return str(value) if isinstance(value, int) else repr(float(value))


def _check_filename(filename: str) -> str:
    path = PurePosixPath(filename.replace("\\", "/"))
    if (
        not filename
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in path.parts)
        or path.name.startswith(".")
    ):
        raise ValueError(f"bad table filename {filename!r}: use a relative path inside the folder")
    return path.as_posix()


def _table(
    rows: Iterable[Any], columns: list[str] | None
) -> tuple[list[str] | None, list[list[object]]]:
    items = list(rows)
    header = None if columns is None else [str(c) for c in columns]
    if all(isinstance(row, Mapping) for row in items):
        dicts: list[Mapping[str, object]] = items
        if header is None:
            seen: dict[str, None] = {}
            for row in dicts:
                seen.update(dict.fromkeys(str(k) for k in row))
            header = list(seen) if seen else None
        known = set(header or ())
        for row in dicts:
            extra = [k for k in row if str(k) not in known]
            if extra:
                raise ValueError(f"row has keys not in columns: {extra}")
        return header, [[_cell(row.get(c)) for c in header or ()] for row in dicts]
    # A tuple, not ``str | bytes``: a copy of this file may run on an older interpreter.
    if any(isinstance(row, (Mapping, str, bytes)) for row in items):
        raise ValueError("rows must be all dicts or all sequences (a string is not a row)")
    if header is None:
        raise ValueError("rows that are sequences need columns=[...]")
    body: list[list[object]] = []
    for number, row in enumerate(items):
        values = list(row)
        if len(values) != len(header):
            raise ValueError(f"row {number} has {len(values)} values for {len(header)} columns")
        body.append([_cell(v) for v in values])
    return header, body


def _cell(value: object) -> object:
    return "" if value is None else value


def _write_csv(path: str, header: list[str] | None, body: list[list[object]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if header is not None:
            writer.writerow(header)
        writer.writerows(body)


def _frame_to_csv(frame: object, path: str) -> None:
    writer: Any = frame
    index = getattr(frame, "index", None)
    names = getattr(index, "names", None)
    if names is not None and all(n is None for n in names):
        # pandas writes an unnamed RangeIndex as a leading column of row numbers: noise.
        writer.to_csv(path, index=False)
    else:
        writer.to_csv(path)


def _replace_with(target: Path, write: Callable[[str], None]) -> None:
    """Have ``write(tmp_path)`` fill a temporary file next to ``target``, then rename it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); results are meant to be read by others.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    _replace_with(path, write)


def _read(folder: Path) -> dict[str, Any]:
    """The current result.json as a dict; a missing or unusable file counts as empty."""
    try:
        data = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
