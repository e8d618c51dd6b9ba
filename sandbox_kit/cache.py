"""Result caching: reuse an identical earlier run, or say field by field why not (issue 11).

The key of a run is the sha256 of:

- the model type and the model file's sha256,
- the canonical CONFIG (sorted keys, no whitespace),
- the data source's content identity (:mod:`sandbox_kit.datasource`),
- the interpreter's Python version and the fingerprint of its installed packages
  (:mod:`sandbox_kit.fingerprint`),
- the results protocol version (:data:`sandbox_kit.results.PROTOCOL_VERSION`).

Every job records its key and the parts it was made of (``cache_key``, ``cache_parts``),
whether or not it asked for the cache, so a run with ``cache=True`` can reuse any earlier run.
Only a ``success`` whose outcome is ``optimal``, ``feasible`` or ``infeasible`` is reused: never
a failed, timed-out, cancelled or lost job, nor an outcome of ``error``, ``time_limit`` or
``unbounded``, nor a run whose data source the sandbox cannot see (an outside name). A hit is a
job of its own (:meth:`sandbox_kit.lifecycle.Lifecycle.create_cached`). A miss records
``cache_miss_reason``: what differs from the closest earlier reusable run of the same model
name and type, e.g. ``config.load_scale: 1.0 -> 1.05; scipy 1.14.1 -> 1.15.0``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from sandbox_kit import audit
from sandbox_kit.datasource import Source
from sandbox_kit.db import Database, JobRow, utcnow
from sandbox_kit.fingerprint import Environment, packages
from sandbox_kit.records import Model
from sandbox_kit.results import PROTOCOL_VERSION

REUSABLE_OUTCOMES = ("optimal", "feasible", "infeasible")
_CANDIDATES = 200  # earlier runs compared to explain a miss
_PACKAGES_NAMED = 5


@dataclass(frozen=True, slots=True)
class Key:
    """A run's cache key and the parts it was made of.

    Attributes:
        digest: the key, or None when the run can never be cached (``why_not`` says why).
        parts: what went into it, in readable form (recorded on the job to explain misses).
    """

    digest: str | None
    parts: dict[str, Any]
    why_not: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """The earlier job whose result a run reuses."""

    job_id: str


def make_key(
    model: Model, config: dict[str, Any], source: Source | None, env: Environment | None
) -> Key:
    """The key of running ``model`` with ``config`` on ``source`` under ``env``."""
    parts: dict[str, Any] = {
        "model": {
            "type": model.model_type.value,
            "name": model.name,
            "version": model.version,
            "sha256": model.sha256,
        },
        "config": config,
        "data": None if source is None else {"label": source.label, "sha256": source.sha256},
        "python": None if env is None else env.python_version,
        "packages": None if env is None else env.fingerprint,
        "protocol": PROTOCOL_VERSION,
    }
    if source is not None and not source.visible:
        why = (
            f"the data source {source.label!r} is outside the sandbox; its content cannot be "
            "compared, so the run is not cached"
        )
        return Key(None, parts, why)
    if env is None:
        return Key(None, parts, "the interpreter could not be inspected; the run is not cached")
    material = {
        "type": model.model_type.value,
        "model": model.sha256,
        "config": config,
        "data": None if source is None else source.sha256,
        "python": env.python_version,
        "packages": env.fingerprint,
        "protocol": PROTOCOL_VERSION,
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return Key(hashlib.sha256(text.encode()).hexdigest(), parts)


def lookup(db: Database, key: Key) -> Hit | None:
    """The newest earlier run of the same model version with this key that may be reused."""
    if key.digest is None:
        return None
    model = key.parts["model"]
    with db.read() as s:
        rows = s.execute(
            select(JobRow.id, JobRow.result_dir)
            .where(
                JobRow.cache_key == key.digest,
                # Same type, name and sha256: the same model version, so deleting it deletes
                # the hit together with the job whose log and results the hit hands out.
                JobRow.model_type == model["type"],
                JobRow.model_name == model["name"],
                JobRow.cached_from.is_(None),
                JobRow.status == "success",
                JobRow.outcome.in_(REUSABLE_OUTCOMES),
            )
            .order_by(JobRow.finished_at.desc(), JobRow.id.desc())
            .limit(5)
        ).all()
    for job_id, result_dir in rows:
        if os.path.isdir(result_dir):  # its results must still be there to be handed out
            return Hit(job_id)
    return None


def miss_reason(db: Database, key: Key) -> str:
    """Why a run that asked for the cache was not served from it, as one line."""
    if key.digest is None:
        return key.why_not or "the run is not cached"
    model = key.parts["model"]
    with db.read() as s:
        same = s.execute(
            select(JobRow.id, JobRow.status, JobRow.outcome)
            .where(JobRow.cache_key == key.digest, JobRow.cached_from.is_(None))
            .order_by(JobRow.created_at.desc())
            .limit(1)
        ).first()
        rows = s.execute(
            select(JobRow.id, JobRow.cache_parts)
            .where(
                JobRow.model_type == model["type"],
                JobRow.model_name == model["name"],
                JobRow.cache_key.is_not(None),
                JobRow.cache_parts.is_not(None),
                JobRow.cached_from.is_(None),
                JobRow.status == "success",
                JobRow.outcome.in_(REUSABLE_OUTCOMES),
            )
            .order_by(JobRow.created_at.desc(), JobRow.id.desc())
            .limit(_CANDIDATES)
        ).all()
    if same is not None:
        job_id, status, outcome = same
        if status in ("queued", "running"):
            return f"the same run {job_id} is still {status}; its result is not there yet"
        ended = status
        if status == "success":
            ended += f" with outcome {outcome}" if outcome else " without an outcome"
        return (
            f"the same run {job_id} ended {ended}; only a success with outcome "
            f"{', '.join(REUSABLE_OUTCOMES)} is reused"
        )
    best: list[str] | None = None
    for _, text in rows:
        try:
            earlier = json.loads(text or "{}")
        except ValueError:
            continue
        found = differences(earlier, key.parts)
        if found and (best is None or len(found) < len(best)):
            best = found
    if best is None:
        return f"no earlier reusable run of {model['type']} model {model['name']}"
    return "; ".join(_expand(best, db))


def differences(
    before: dict[str, Any],
    after: dict[str, Any],
    packages_of: Callable[[str], dict[str, str] | None] | None = None,
) -> list[str]:
    """What differs between two runs' key parts, one readable item per difference.

    Package changes are one item (``packages <old> -> <new>``) unless ``packages_of`` gives
    the package lists of both fingerprints, which names each changed package.
    """
    found: list[str] = []
    old_model, new_model = before.get("model") or {}, after.get("model") or {}
    if old_model.get("sha256") != new_model.get("sha256"):
        old_name, new_name = old_model.get("name"), new_model.get("name")
        if old_name == new_name:
            found.append(
                f"model {new_name} v{old_model.get('version')} -> v{new_model.get('version')}"
            )
        else:
            found.append(
                f"model {old_name} v{old_model.get('version')} -> "
                f"{new_name} v{new_model.get('version')}"
            )
    found += _config_changes(before.get("config") or {}, after.get("config") or {})
    found += _data_change(before.get("data"), after.get("data"))
    if before.get("python") != after.get("python"):
        found.append(f"python {before.get('python')} -> {after.get('python')}")
    old_fp, new_fp = before.get("packages"), after.get("packages")
    if old_fp != new_fp and before.get("python") == after.get("python"):
        found.append(f"packages {old_fp} -> {new_fp}")
    if before.get("protocol") != after.get("protocol"):
        found.append(f"results protocol {before.get('protocol')} -> {after.get('protocol')}")
    if packages_of is not None:
        found = _expand(found, packages_of)
    return found


def clear(
    db: Database,
    *,
    model_type: str | None = None,
    older_than_days: float | None = None,
    now: Callable[[], datetime] = utcnow,
    actor: str | None = None,
) -> int:
    """Make finished runs unavailable for reuse (their records stay); returns how many.

    With ``actor``, the clearing is recorded in the audit trail (``cache_clear``)."""
    query = update(JobRow).where(
        JobRow.cache_key.is_not(None), JobRow.status.not_in(("queued", "running"))
    )
    if model_type is not None:
        query = query.where(JobRow.model_type == model_type)
    if older_than_days is not None:
        cutoff = now() - timedelta(days=older_than_days)
        query = query.where(JobRow.finished_at < cutoff)
    with db.write() as s:
        cleared = int(s.execute(query.values(cache_key=None)).rowcount)  # type: ignore[attr-defined]
        if actor is not None:
            audit.add(
                s,
                actor=actor,
                action="cache_clear",
                object_type="cache",
                object_id=model_type or "all",
                details={"older_than_days": older_than_days, "cleared": cleared},
            )
        return cleared


def _config_changes(before: Any, after: Any, prefix: str = "config") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for name in [*before, *(k for k in after if k not in before)]:
            found += _config_changes(
                before.get(name, _UNSET), after.get(name, _UNSET), f"{prefix}.{name}"
            )
        return found
    if before == after and type(before) is type(after):
        return []
    return [f"{prefix}: {_shown(before)} -> {_shown(after)}"]


def _data_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    old_label = None if before is None else before.get("label")
    new_label = None if after is None else after.get("label")
    old_sha = None if before is None else before.get("sha256")
    new_sha = None if after is None else after.get("sha256")
    if old_label == new_label:
        return [] if old_sha == new_sha else [f"data source {new_label} changed content"]
    if old_sha is not None and old_sha == new_sha:
        return []  # another name for the same content
    old_set, new_set = _data_set(old_label), _data_set(new_label)
    if old_set and new_set and old_set[0] == new_set[0]:
        return [f"data source {new_set[0]} v{old_set[1]} -> v{new_set[1]}"]
    return [f"data source {old_label or '(none)'} -> {new_label or '(none)'}"]


def _data_set(label: str | None) -> tuple[str, str] | None:
    if not label or not label.startswith("data:") or "@" not in label:
        return None
    name, _, version = label[len("data:") :].partition("@")
    return name, version


def _expand(
    found: list[str], source: Database | Callable[[str], dict[str, str] | None]
) -> list[str]:
    """Replace ``packages A -> B`` by the packages that changed, when both lists are known."""
    lookup_packages = (lambda fp: packages(source, fp)) if isinstance(source, Database) else source
    out: list[str] = []
    for item in found:
        if not item.startswith("packages "):
            out.append(item)
            continue
        old_fp, _, new_fp = item[len("packages ") :].partition(" -> ")
        old, new = lookup_packages(old_fp), lookup_packages(new_fp)
        if old is None or new is None:
            out.append("installed packages changed")
            continue
        changes = [
            f"{name} {old.get(name, '(none)')} -> {new.get(name, '(none)')}"
            for name in sorted(set(old) | set(new))
            if old.get(name) != new.get(name)
        ]
        if len(changes) > _PACKAGES_NAMED:
            more = len(changes) - _PACKAGES_NAMED
            changes = [*changes[:_PACKAGES_NAMED], f"and {more} more package change(s)"]
        out += changes or ["installed packages changed"]
    return out


class _Unset:
    def __repr__(self) -> str:
        return "(unset)"


_UNSET = _Unset()


def _shown(value: Any) -> str:
    if value is _UNSET:
        return "(unset)"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
