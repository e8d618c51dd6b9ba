"""The results protocol: what a model leaves in ``$SANDBOX_RESULT_DIR/result.json``.

All keys are optional: ``outcome`` (``optimal``, ``feasible``, ``infeasible``, ``unbounded``,
``time_limit``, ``interrupted``, ``error``), ``objective`` (a number), ``metrics`` (name ->
number), ``tables`` (name -> file in the result folder) and ``message``. ``time_limit`` and
``interrupted`` (a cancel) come with the best solution found so far, when there is one: a job
that the sandbox stopped keeps its status (``timeout``, ``cancelled``) and this result
(issue 15).

A model is untrusted, so reading its result is bounded (issue 9): a file over the size limit
is not read at all, at most ``max_metrics`` metric names are kept, names are cut, and values that
are not finite numbers are dropped. :func:`summarize` never raises; what it dropped comes back
as one-line warnings for the job's log.

This module is stdlib-only: the job supervisor calls :func:`summarize` when a job ends.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox_kit.errors import ValidationError
from sandbox_kit.humanize import size

RESULT_FILE = "result.json"
#: The version of this protocol; part of the result cache's key (issue 11), so a change to what
#: is read from a result never reuses results recorded under the old rules.
PROTOCOL_VERSION = 1
OUTCOMES = (
    "optimal",
    "feasible",
    "infeasible",
    "unbounded",
    "time_limit",
    "interrupted",
    "error",
)
RESULT_MAX_BYTES = 1 << 20  # default of Settings.result_max_bytes
MAX_METRICS = 200  # default of Settings.max_metrics
NAME_MAX = 200  # characters kept of a metric name
OUTCOME_MAX = 32  # the registry's outcome column is VARCHAR(32)
_NAMES_LISTED = 5  # metric names quoted in one warning line


@dataclass(frozen=True, slots=True)
class ResultSummary:
    """What a job records from its ``result.json``, cleaned up and bounded.

    Attributes:
        outcome: the model's outcome; ``"error"`` when the result could not be used; None when
            the model wrote no result (or no outcome).
        objective: the objective value, when it is a finite number.
        metrics: at most ``max_metrics`` finite metrics, name -> value, in the file's order.
        warnings: one line per thing that was dropped or cut, for the job's log.
        error: why the result could not be used (a sentence), else None.
    """

    outcome: str | None = None
    objective: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    error: str | None = None


def read_result(
    result_dir: str | Path, *, max_bytes: int = RESULT_MAX_BYTES
) -> dict[str, Any] | None:
    """The parsed ``result.json`` of a result folder, or None when the model wrote none.

    The size is checked before anything is read, so a huge file costs no memory.

    Args:
        result_dir: the job's result folder.
        max_bytes: larger files are refused unread.

    Raises:
        ValidationError: the file is over ``max_bytes``, is not a regular file (a symlink, a
            FIFO), or is not a JSON object.
    """
    path = Path(result_dir) / RESULT_FILE
    text = _read_capped(path, max_bytes)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"invalid JSON: {exc.msg}", filename=str(path), line=exc.lineno, column=exc.colno
        ) from exc
    except ValueError as exc:  # e.g. an integer over Python's 4300-digit limit
        raise ValidationError(f"invalid JSON: {exc}", filename=str(path)) from None
    except RecursionError:  # "[[[[..." a million deep fits in 1 MB
        raise ValidationError("JSON nested too deeply", filename=str(path)) from None
    if not isinstance(data, dict):
        raise ValidationError("result must be a JSON object", filename=str(path))
    return data


def summarize(
    result_dir: str | Path, *, max_bytes: int = RESULT_MAX_BYTES, max_metrics: int = MAX_METRICS
) -> ResultSummary:
    """Read and clean up a job's ``result.json``; never raises.

    An unreadable, oversized or invalid result gives outcome ``"error"`` with :attr:`error`
    set; a missing one gives an empty summary.

    Args:
        result_dir: the job's result folder.
        max_bytes: larger files are not read.
        max_metrics: metric names kept; the rest are dropped with a warning.
    """
    try:
        result = read_result(result_dir, max_bytes=max_bytes)
    except ValidationError as exc:
        return ResultSummary(outcome="error", error=str(exc))
    except (OSError, ValueError) as exc:  # anything else the file system throws at us
        return ResultSummary(outcome="error", error=f"{RESULT_FILE} could not be read: {exc}")
    if result is None:
        return ResultSummary()
    warnings: list[str] = []
    outcome = _outcome(result.get("outcome"), warnings)
    objective = _objective(result.get("objective"), warnings)
    metrics = _metrics(result.get("metrics"), max_metrics, warnings)
    return ResultSummary(outcome, objective, metrics, tuple(warnings))


def _read_capped(path: Path, max_bytes: int) -> str | None:
    """The file's text, read only if it is a regular file of at most ``max_bytes``."""
    try:
        # O_NOFOLLOW: a link could point the (unjailed) reader at files the model cannot read;
        # O_NONBLOCK: a FIFO named result.json must not hang the supervisor in open().
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValidationError(f"{RESULT_FILE} is a symbolic link; it was not read") from None
        raise ValidationError(f"cannot read result: {exc.strerror}", filename=str(path)) from exc
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValidationError(f"{RESULT_FILE} is not a regular file; it was not read")
        if info.st_size > max_bytes:
            raise _too_big(info.st_size, max_bytes)
        data = fh.read(max_bytes + 1)  # the file may grow after the stat
    if len(data) > max_bytes:
        raise _too_big(len(data), max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"not UTF-8 text: {exc.reason}", filename=str(path)) from None


def _too_big(n: int, max_bytes: int) -> ValidationError:
    return ValidationError(
        f"{RESULT_FILE} is {size(n)}, over the {size(max_bytes)} limit; it was not read"
    )


def _outcome(value: Any, warnings: list[str]) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())  # one line
    if len(text) > OUTCOME_MAX:
        warnings.append(f"result outcome cut to {OUTCOME_MAX} characters: {_quote(text)}")
        text = text[:OUTCOME_MAX]
    return text


def _objective(value: Any, warnings: list[str]) -> float | None:
    if value is None:
        return None
    number = _number(value)
    if number is None:
        kind = "not finite" if _is_number(value) else "not a number"
        warnings.append(f"result objective dropped: {_quote(repr(value))} is {kind}")
    return number


def _metrics(raw: Any, max_metrics: int, warnings: list[str]) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        warnings.append(f"result metrics ignored: expected an object, got {type(raw).__name__}")
        return {}
    metrics: dict[str, float] = {}
    non_finite: list[str] = []
    not_numbers: list[str] = []
    cut = over = 0
    for key, value in raw.items():
        name = " ".join(str(key).split())
        number = _number(value)
        if number is None:
            (non_finite if _is_number(value) else not_numbers).append(name)
            continue
        if len(metrics) >= max_metrics:
            over += 1
            continue
        if len(name) > NAME_MAX:
            name, cut = name[:NAME_MAX], cut + 1
        metrics.setdefault(name, number)
    if non_finite:
        warnings.append(f"metrics dropped, not finite: {_listing(non_finite)}")
    if not_numbers:
        warnings.append(f"metrics dropped, not numbers: {_listing(not_numbers)}")
    if over:
        warnings.append(f"{over} metrics dropped: only the first {max_metrics} are kept")
    if cut:
        warnings.append(f"{cut} metric names cut to {NAME_MAX} characters")
    return metrics


def _listing(names: list[str]) -> str:
    shown = ", ".join(_quote(n) for n in names[:_NAMES_LISTED])
    more = len(names) - _NAMES_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _quote(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    if not _is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int with a thousand digits
        return None
    return number if math.isfinite(number) else None
