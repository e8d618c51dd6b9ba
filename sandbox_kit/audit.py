"""Who did what: the audit trail, and who "who" is.

Every upload, activation, archive, restore, delete, run and cancel writes one entry to the
``audit`` table (migration 0004), **in the same transaction as the change it records**: there
is never a change without its entry, nor an entry for a change that was rolled back. The table
is append-only, enforced by the database itself (triggers refuse ``UPDATE`` and ``DELETE``).
Other features record theirs with :func:`record` (or :func:`write`, inside their own
transaction), e.g. schedules (issue 10) as ``schedule_create``/``schedule_update``/
``schedule_delete`` on object type ``schedule``.

The actor is, first that applies:

1. a label given explicitly: ``sandbox-kit --as NAME``, ``Sandbox(actor=NAME)``; meant for
   automation (``--as nightly-dmo`` in a crontab). It is a label, not authentication: whoever
   can run the CLI can choose it.
2. the JupyterHub user (``JUPYTERHUB_USER``): JupyterHub sets it for each user's server, whose
   kernels (notebooks, the dashboard under the hub) inherit it.
3. the Jupyter Server identity, for code that runs inside a Jupyter Server that knows who is
   asking: a request handler passes ``server_user=handler.current_user`` to
   :func:`resolve_actor`. Its username is used unless the server only knows an anonymous
   token holder (standalone Voilà with a shared token cannot tell users apart).
4. the OS user of the process: the CLI's, cron's, or the server's for a standalone dashboard.

Like :mod:`sandbox_kit.lifecycle`, this module imports no SQLAlchemy at load time (the
lifecycle records runs and cancels through it, on the supervisor's light path).
"""

from __future__ import annotations

import getpass
import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox_kit.errors import ValidationError
from sandbox_kit.records import AuditEntry

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sandbox_kit.dbapi import Connection, Statements

#: The actions sandbox_kit itself records.
ACTIONS = ("upload", "activate", "archive", "restore", "delete", "run", "cancel")
_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_SPAN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MAX_ACTOR = 200


def resolve_actor(
    label: str | None = None,
    *,
    server_user: object | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The name the audit trail records for this process's actions (see the module doc).

    Args:
        label: an explicit name (``--as``); wins over everything else.
        server_user: a Jupyter Server ``User`` (``handler.current_user``), when called from
            inside a server.
        environ: the environment to read (default: this process's).

    Raises:
        ValidationError: ``label`` is empty once control characters and blanks are removed.
    """
    if label is not None:
        return clean_actor(label)
    env = os.environ if environ is None else environ
    hub_user = env.get("JUPYTERHUB_USER", "").strip()
    if hub_user:
        return clean_actor(hub_user)
    server_name = _server_username(server_user)
    if server_name:
        return clean_actor(server_name)
    return os_user()


def os_user() -> str:
    """The login name of this process's user (``uid:N`` when the system has no name for it)."""
    try:
        return clean_actor(getpass.getuser())
    except (KeyError, OSError, ValidationError):
        return f"uid:{os.getuid()}"


def clean_actor(name: str) -> str:
    """``name`` without control characters and surrounding blanks, at most 200 characters.

    Raises:
        ValidationError: nothing is left.
    """
    cleaned = _CONTROL.sub(" ", str(name)).strip()[:_MAX_ACTOR].strip()
    if not cleaned:
        raise ValidationError(f"actor name {name!r} is empty")
    return cleaned


def write(
    st: Statements,
    *,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry, inside the caller's write transaction (plain SQL, no ORM)."""
    st.run(
        "INSERT INTO audit (at, actor, action, object_type, object_id, details) "
        "VALUES (:at, :actor, :action, :object_type, :object_id, :details)",
        _values(
            at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details,
        ),
    )


def add(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry through an ORM session, in the session's transaction (the registry)."""
    from sandbox_kit.db import AuditRow, utcnow

    values = _values(
        utcnow(),
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )
    session.add(AuditRow(**values))


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry in a transaction of its own.

    For a feature whose change is not in a transaction this module can join; prefer
    :func:`write` inside the change's own transaction where there is one.
    """
    with conn.write() as st:
        write(
            st,
            at=datetime.now(UTC),
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details,
        )


def entries(
    conn: Connection,
    *,
    since: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    object_id: str | int | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """Entries, newest first, optionally from ``since`` on, by one actor, of one action or on
    one object."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": int(limit)}
    for column, value in (("actor", actor), ("action", action), ("object_id", object_id)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = str(value)
    if since is not None:
        where.append("at >= :since")
        params["since"] = since
    sql = "SELECT id, at, actor, action, object_type, object_id, details FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY at DESC, id DESC LIMIT :limit"
    with conn.read() as st:
        rows = st.run(sql, params).all()
        return [
            AuditEntry(
                id=int(row_id),
                at=st.moment(at) or datetime.now(UTC),
                actor=str(who),
                action=str(what),
                object_type=str(kind),
                object_id=str(obj),
                details=_details(text),
            )
            for row_id, at, who, what, kind, obj, text in rows
        ]


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """A moment typed by a user: an ISO date or time (UTC unless it says otherwise), or a span
    back from now such as ``90m``, ``12h``, ``7d`` or ``2w``.

    Raises:
        ValidationError: neither.
    """
    value = text.strip()
    span = _SPAN.fullmatch(value.lower())
    if span:
        seconds = float(span.group(1)) * _SPAN_UNITS[span.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"--since {text!r} is neither an ISO date or time (2025-06-30, "
            "2025-06-30T14:00) nor a span back from now (90m, 12h, 7d, 2w)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _values(
    at: datetime,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    details: Mapping[str, Any] | None,
) -> dict[str, Any]:
    for what, name, longest in (("action", action, 32), ("object type", object_type, 16)):
        if not _NAME.fullmatch(name) or len(name) > longest:
            raise ValueError(f"audit {what} {name!r}: lowercase letters, digits and _.- only")
    return {
        "at": at,
        "actor": clean_actor(actor),
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id)[:200],
        "details": json.dumps(dict(details or {}), sort_keys=True, default=str),
    }


def _details(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {"raw": str(text)}
    return value if isinstance(value, dict) else {"value": value}


def _server_username(user: object | None) -> str | None:
    if user is None:
        return None
    if isinstance(user, str):
        return user or None
    name = getattr(user, "name", "") or ""
    if str(name).startswith("Anonymous "):  # jupyter_server's stand-in for a token holder
        return None
    username = getattr(user, "username", None)
    return str(username) if username else None
