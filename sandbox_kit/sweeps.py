"""Scenario sweeps: one model over a grid of configurations, one job per scenario (issue 11).

A sweep is a row in ``sweeps`` plus ordinary jobs that carry its id and their scenario's index,
so the queue limits, cancel, logs, results and the cache all work on them as on any job. The
scenarios are the cartesian product of a grid (``{"load_scale": [0.9, 1.0], "reserve_fraction":
[0.05, 0.1]}``, in the order the keys are given) or an explicit list of cases (JSON lines, one
configuration each), each laid over a base configuration.

>>> sweep = sb.sweep("DMO", grid={"load_scale": [0.9, 1.0, 1.1]}, cache=True)
>>> sweep.wait()
>>> sweep.table()  # a pandas DataFrame: parameters, job, status, outcome, objective, metrics
"""

from __future__ import annotations

import itertools
import json
import secrets
import string
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from sandbox_kit import audit
from sandbox_kit.db import Database, JobRow, SweepRow, utcnow
from sandbox_kit.errors import NotFoundError, ValidationError
from sandbox_kit.records import (
    JobStatus,
    ModelType,
    Scenario,
    SweepInfo,
    dumps_config,
)

if TYPE_CHECKING:
    import pandas as pd

    from sandbox_kit.jobs import Job
    from sandbox_kit.sandbox import Sandbox

_ID_ALPHABET = string.ascii_lowercase + string.digits
_RESULT_COLUMNS = ("job_id", "status", "outcome", "objective", "cached_from")


@dataclass(frozen=True, slots=True)
class Plan:
    """The scenarios of a sweep, checked: each one's parameters and full configuration."""

    params: tuple[str, ...]
    scenarios: list[dict[str, Any]]
    configs: list[dict[str, Any]]


def new_sweep_id() -> str:
    """``sweep_<unix ms>_<6 random chars>``, e.g. ``sweep_1764331200000_k3f9qa``."""
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
    return f"sweep_{int(time.time() * 1000)}_{suffix}"


def plan(
    *,
    grid: dict[str, Any] | None,
    cases: Iterable[dict[str, Any]] | None,
    base_config: dict[str, Any] | None,
    max_scenarios: int,
) -> Plan:
    """Expand a grid (or take the cases) over the base configuration, checking everything.

    Raises:
        ValidationError: no grid and no cases (or both), a grid value that is not a non-empty
            list, a case that is not an object, a configuration that is not JSON, or more
            scenarios than ``max_scenarios``.
    """
    base = {} if base_config is None else base_config
    if not isinstance(base, dict):
        raise ValidationError("the base config must be a JSON object")
    if (grid is None) == (cases is None):
        raise ValidationError("give a grid (key -> list of values) or a list of cases, not both")
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            raise ValidationError('the grid must be a non-empty JSON object, like {"x": [1, 2]}')
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ValidationError(
                    f"grid entry {name!r} must be a non-empty list of values, not "
                    f"{json.dumps(values)[:60]}"
                )
        count = 1
        for values in grid.values():
            count *= len(values)
        _check_count(count, max_scenarios)
        params = tuple(str(k) for k in grid)
        scenarios = [
            dict(zip(params, combo, strict=True)) for combo in itertools.product(*grid.values())
        ]
    else:
        assert cases is not None
        scenarios = list(cases)
        if not scenarios:
            raise ValidationError("the list of cases is empty")
        _check_count(len(scenarios), max_scenarios)
        for i, case in enumerate(scenarios, 1):
            if not isinstance(case, dict):
                raise ValidationError(f"case {i} must be a JSON object")
        params = tuple(dict.fromkeys(k for case in scenarios for k in case))
    configs = []
    for i, scenario in enumerate(scenarios, 1):
        config = {**base, **scenario}
        try:
            dumps_config(config)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"scenario {i} is not JSON-serialisable: {exc}") from None
        configs.append(config)
    return Plan(params, scenarios, configs)


def read_cases(text: str, *, filename: str) -> list[dict[str, Any]]:
    """Cases from JSON lines (one object per line; blank lines skipped).

    Raises:
        ValidationError: a line that is not a JSON object, naming the line and column.
    """
    cases: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"invalid JSON: {exc.msg}", filename=filename, line=number, column=exc.colno
            ) from None
        if not isinstance(value, dict):
            raise ValidationError("each line must be a JSON object", filename=filename, line=number)
        cases.append(value)
    return cases


class SweepStore:
    """Reads and writes sweep rows; scenarios are read from their jobs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        sweep_id: str,
        *,
        target: str,
        model: Any,
        params: tuple[str, ...],
        base_config: dict[str, Any],
        data_source_id: str | None,
        cache: bool,
        total: int,
        actor: str | None = None,
    ) -> None:
        """Record a new sweep (its jobs are submitted next); ``sweep`` in the audit trail."""
        with self.db.write() as s:
            if actor is not None:
                audit.add(
                    s,
                    actor=actor,
                    action="sweep",
                    object_type="sweep",
                    object_id=sweep_id,
                    details={"model_id": model.id, "params": list(params), "total": total},
                )
            s.add(
                SweepRow(
                    id=sweep_id,
                    target=target,
                    model_id=model.id,
                    model_type=model.model_type.value,
                    model_name=model.name,
                    model_version=model.version,
                    params=json.dumps(list(params)),
                    base_config=dumps_config(base_config),
                    data_source_id=data_source_id,
                    cache=cache,
                    total=total,
                    created_at=utcnow(),
                )
            )

    def shorten(self, sweep_id: str, total: int) -> None:
        """Make a sweep hold only its first ``total`` scenarios (the others were never queued)."""
        with self.db.write() as s:
            row = s.get(SweepRow, sweep_id)
            if row is not None:
                row.total = total

    def get(self, sweep_id: str) -> SweepInfo:
        """A sweep with its progress.

        Raises:
            NotFoundError: no sweep with this id.
        """
        with self.db.read() as s:
            row = s.get(SweepRow, sweep_id)
            if row is None:
                raise NotFoundError("sweep", sweep_id)
            counts = _counts(s, [sweep_id]).get(sweep_id, Counter())
            return _info(row, counts)

    def recent(self, limit: int = 50) -> list[SweepInfo]:
        """Sweeps, newest first, with their progress."""
        with self.db.read() as s:
            rows = list(
                s.scalars(
                    select(SweepRow)
                    .order_by(SweepRow.created_at.desc(), SweepRow.id.desc())
                    .limit(limit)
                )
            )
            counts = _counts(s, [row.id for row in rows])
            return [_info(row, counts.get(row.id, Counter())) for row in rows]

    def scenarios(self, info: SweepInfo) -> list[Scenario]:
        """One row per scenario, in scenario order."""
        query = (
            select(
                JobRow.sweep_index,
                JobRow.id,
                JobRow.config,
                JobRow.status,
                JobRow.outcome,
                JobRow.objective,
                JobRow.metrics,
                JobRow.cached_from,
            )
            .where(JobRow.sweep_id == info.id)
            .order_by(JobRow.sweep_index, JobRow.created_at)
        )
        with self.db.read() as s:
            rows = s.execute(query).all()
        found = []
        for index, job_id, config, status, outcome, objective, metrics, cached_from in rows:
            config_value = json.loads(config or "{}")
            found.append(
                Scenario(
                    index=int(index or 0),
                    params={name: config_value.get(name) for name in info.params},
                    config=config_value,
                    job_id=job_id,
                    status=JobStatus(status),
                    outcome=outcome,
                    objective=objective,
                    metrics=json.loads(metrics or "{}"),
                    cached_from=cached_from,
                )
            )
        return found


class Sweep:
    """A handle on one sweep: progress, its jobs, a table of results, cancel.

    Attributes:
        info: the last snapshot (:meth:`refresh` reads a new one).
    """

    def __init__(self, sandbox: Sandbox, info: SweepInfo) -> None:
        self._sandbox = sandbox
        self.info = info

    def __repr__(self) -> str:
        return f"<Sweep {self.id} {self.info.done}/{self.info.total} done>"

    @property
    def id(self) -> str:
        """The sweep id, ``sweep_<unix ms>_<6 chars>``."""
        return self.info.id

    def refresh(self) -> Sweep:
        """Read the sweep's current progress; returns self."""
        self.info = self._sandbox.sweep_info(self.id)
        return self

    def rows(self) -> list[Scenario]:
        """One row per scenario: parameters, configuration, job, status and results."""
        return self._sandbox.sweep_rows(self.id)

    def jobs(self) -> list[Job]:
        """The scenarios' jobs, in scenario order."""
        return [self._sandbox.job(row.job_id) for row in self.rows()]

    def wait(self, timeout: float | None = None, *, poll: float = 0.25) -> SweepInfo:
        """Block until every scenario's job has ended; returns the final snapshot.

        Raises:
            TimeoutError: some jobs were still queued or running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().info.finished:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"sweep {self.id}: {self.info.done} of {self.info.total} scenarios done "
                    f"after {timeout} s"
                )
            time.sleep(poll)
        return self.info

    def cancel(self) -> int:
        """Cancel the scenarios that have not finished; returns how many were asked to stop."""
        count = self._sandbox.cancel_sweep(self.id)
        self.refresh()
        return count

    def table(self) -> pd.DataFrame:
        """The scenarios as a pandas DataFrame: one column per parameter, then ``job_id``,
        ``status``, ``outcome``, ``objective``, ``cached_from`` and one column per metric."""
        import pandas as pd

        return pd.DataFrame(table_records(self.info, self.rows()))

    def to_dict(self) -> dict[str, Any]:
        """The sweep and its rows as plain JSON-ready data (``sweep show --json``)."""
        return {**self.info.to_dict(), "rows": [row.to_dict() for row in self.rows()]}


def table_records(info: SweepInfo, rows: list[Scenario]) -> list[dict[str, Any]]:
    """The rows of :meth:`Sweep.table` as plain dicts (metrics as columns).

    A parameter whose name is also a result column (``objective``, a metric) is shown as
    ``config.<name>``.
    """
    metric_names = list(dict.fromkeys(name for row in rows for name in row.metrics))
    taken = {*_RESULT_COLUMNS, *metric_names}
    shown = {name: f"config.{name}" if name in taken else name for name in info.params}
    records = []
    for row in rows:
        record: dict[str, Any] = {shown[name]: row.params.get(name) for name in info.params}
        record.update(
            job_id=row.job_id,
            status=row.status.value,
            outcome=row.outcome,
            objective=row.objective,
            cached_from=row.cached_from,
        )
        record.update({name: row.metrics.get(name) for name in metric_names})
        records.append(record)
    return records


def _check_count(count: int, max_scenarios: int) -> None:
    if count > max_scenarios:
        raise ValidationError(
            f"the sweep has {count} scenarios, more than the limit of {max_scenarios} "
            "(SANDBOX_SWEEP_MAX)"
        )


def _counts(s: Any, sweep_ids: list[str]) -> dict[str, Counter[str]]:
    if not sweep_ids:
        return {}
    found: dict[str, Counter[str]] = {}
    rows = s.execute(
        select(JobRow.sweep_id, JobRow.status, func.count())
        .where(JobRow.sweep_id.in_(sweep_ids))
        .group_by(JobRow.sweep_id, JobRow.status)
    ).all()
    for sweep_id, status, count in rows:
        found.setdefault(sweep_id, Counter())[status] = int(count)
    return found


def _info(row: SweepRow, counts: Counter[str]) -> SweepInfo:
    done = sum(n for status, n in counts.items() if JobStatus(status).terminal)
    # Deleting the model deletes its jobs: their scenarios will never end, so count them done.
    missing = max(0, row.total - sum(counts.values())) if row.model_id is None else 0
    return SweepInfo(
        id=row.id,
        target=row.target,
        model_id=row.model_id,
        model_type=ModelType(row.model_type),
        model_name=row.model_name,
        model_version=row.model_version,
        params=tuple(json.loads(row.params)),
        base_config=json.loads(row.base_config),
        data_source_id=row.data_source_id,
        cache=bool(row.cache),
        total=row.total,
        created_at=row.created_at,
        done=done + missing,
        counts=dict(counts),
    )
