"""A run's data source, resolved to a fixed identity when the job is created (issue 11).

What a caller may give (``run --data-source``, ``Sandbox.run(data_source_id=...)``):

==========================  ==============================================================
``data:NAME[@VERSION]``     a stored data set version (the newest when no version is given)
``job:JOB_ID``              an earlier successful job's result folder
``JOB_ID``                  the same (a bare job id, as before issue 11)
``latest:TYPE``             the newest successful job of ``TYPE`` (outcome ``optimal``,
                            ``feasible`` or none), pinned to ``job:ID`` at creation
anything else               an outside name the sandbox cannot see: passed on as
                            ``DATA_SOURCE_ID`` only, with no folder (and never cached)
==========================  ==============================================================

A resolved source has a label (``data:NAME@V``, ``job:ID``), the sha256 of its content (the
same hash as a data set's, over the job's result folder for a job) and the folder the job gets,
read-only, as ``DATA_SOURCE_DIR``. The label and the hash are recorded on the job, so a later
version of the data set or a newer job never changes what an existing job used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import or_, select

from sandbox_kit.datasets import DataStore, content_sha256
from sandbox_kit.db import JobRow, ModelRow
from sandbox_kit.errors import NotFoundError, ValidationError
from sandbox_kit.records import ModelType

_JOB_ID = re.compile(r"(DMO|RMO|SO)_\d+_[a-z0-9]{6}\Z")
_LATEST_OUTCOMES = ("optimal", "feasible")


@dataclass(frozen=True, slots=True)
class Source:
    """A data source pinned to what it is now.

    Attributes:
        asked: what the caller gave.
        label: ``data:NAME@VERSION``, ``job:JOB_ID``, or ``asked`` for an outside name.
        sha256: the content identity, or None for an outside name (its content is unknown).
        directory: the folder a job gets as ``DATA_SOURCE_DIR``, or None.
        env_id: the job's ``DATA_SOURCE_ID``: the label, except that a bare job id or an
            outside name is passed on as given.
    """

    asked: str
    label: str
    sha256: str | None
    directory: str | None
    env_id: str

    @property
    def visible(self) -> bool:
        """True when the sandbox knows the content (it can be part of a cache key)."""
        return self.sha256 is not None


def resolve(store: DataStore, asked: str | None) -> Source | None:
    """Pin a data source; None when none was given.

    Raises:
        NotFoundError: no such data set (version) or job.
        ValidationError: a malformed source, or a job that did not succeed.
    """
    if asked is None or not str(asked).strip():
        return None
    text = str(asked).strip()
    kind, colon, rest = text.partition(":")
    if colon and kind == "data":
        found = store.get(rest)
        return Source(text, found.source, found.sha256, found.path, found.source)
    if colon and kind == "job":
        return _job(store, rest.strip(), text, bare=False)
    if colon and kind == "latest":
        return _latest(store, rest.strip(), text)
    if _JOB_ID.match(text) or _job_exists(store, text):
        return _job(store, text, text, bare=True)
    # An outside name (a forecast id, a file name on a share): the model decides what it means.
    return Source(text, text, None, None, text)


def _job(store: DataStore, job_id: str, asked: str, *, bare: bool) -> Source:
    with store.db.read() as s:
        row = s.get(JobRow, job_id)
        if row is None:
            raise NotFoundError("job", job_id)
        status, result_dir = row.status, row.result_dir
    if status != "success":
        raise ValidationError(
            f"data source job {job_id} is {status}; only a successful job's results can be a "
            "data source"
        )
    label = f"job:{job_id}"
    try:
        digest = content_sha256(result_dir)
    except OSError:
        # The folder is gone (removed by hand): nothing to mount, and nothing to cache.
        return Source(asked, label, None, None, job_id if bare else label)
    return Source(asked, label, digest, result_dir, job_id if bare else label)


def _latest(store: DataStore, kind: str, asked: str) -> Source:
    try:
        model_type = ModelType.parse(kind)
    except ValueError as exc:
        raise ValidationError(f"data source {asked!r}: {exc}") from None
    with store.db.read() as s:
        job_id = s.scalars(
            select(JobRow.id)
            .where(
                JobRow.model_type == model_type.value,
                JobRow.status == "success",
                or_(JobRow.outcome.is_(None), JobRow.outcome.in_(_LATEST_OUTCOMES)),
                # A %%sandbox cell's experiment never feeds another run unasked.
                or_(
                    JobRow.model_id.is_(None),
                    JobRow.model_id.not_in(select(ModelRow.id).where(ModelRow.scratch)),
                ),
            )
            .order_by(JobRow.finished_at.desc(), JobRow.id.desc())
            .limit(1)
        ).first()
    if job_id is None:
        raise ValidationError(
            f"data source {asked}: no successful {model_type.value} job yet to take results from"
        )
    return _job(store, job_id, asked, bare=False)


def _job_exists(store: DataStore, job_id: str) -> bool:
    with store.db.read() as s:
        return s.get(JobRow, job_id) is not None
