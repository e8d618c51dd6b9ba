"""The results protocol: what a model leaves in ``$SANDBOX_RESULT_DIR/result.json``.

All keys are optional: ``outcome`` (``optimal``, ``feasible``, ``infeasible``, ``unbounded``,
``time_limit``, ``error``), ``objective`` (a number), ``metrics`` (name -> number), ``tables``
(name -> file in the result folder) and ``message``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sandbox_kit.errors import ValidationError

RESULT_FILE = "result.json"
OUTCOMES = ("optimal", "feasible", "infeasible", "unbounded", "time_limit", "error")


def read_result(result_dir: str | Path) -> dict[str, Any] | None:
    """The parsed ``result.json`` of a result folder, or None when the model wrote none.

    Raises:
        ValidationError: the file exists but is not a JSON object.
    """
    path = Path(result_dir) / RESULT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read result: {exc}", filename=str(path)) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"invalid JSON: {exc.msg}", filename=str(path), line=exc.lineno, column=exc.colno
        ) from exc
    if not isinstance(data, dict):
        raise ValidationError("result must be a JSON object", filename=str(path))
    return data


def summary(result: dict[str, Any] | None) -> tuple[str | None, float | None, dict[str, float]]:
    """The ``(outcome, objective, metrics)`` a job records from its result, cleaned up."""
    if not result:
        return None, None, {}
    outcome = result.get("outcome")
    outcome = str(outcome) if outcome is not None else None
    objective = _number(result.get("objective"))
    raw = result.get("metrics")
    metrics = {}
    if isinstance(raw, dict):
        metrics = {str(k): v for k, val in raw.items() if (v := _number(val)) is not None}
    return outcome, objective, metrics


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
