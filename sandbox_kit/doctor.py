"""``sandbox-kit doctor``: what this machine and this sandbox offer, and why not where not.

Plain (label, value) rows, so the CLI can print them as a table or as JSON: the isolation
available (and why a stronger level is not, from :func:`sandbox_kit.jail.doctor_report`), the
isolation and network settings, the database, the interpreter of each model type, and the
executor: with ``dask``, the cluster (from :func:`sandbox_kit.cluster.report`) and the store.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from sandbox_kit import jail
from sandbox_kit.db import public_url
from sandbox_kit.launcher import python_version
from sandbox_kit.records import ModelType

if TYPE_CHECKING:
    from sandbox_kit.sandbox import Sandbox


def report(sandbox: Sandbox) -> list[tuple[str, str]]:
    """The rows ``sandbox-kit doctor`` prints, in order."""
    settings = sandbox.settings
    rows = [("home", str(sandbox.home)), ("running as", f"uid {os.geteuid()}")]
    for label, value in jail.doctor_report():
        if label == "job identity" and jail.probe().root:
            rows.append((label, f"a dedicated uid per slot ({settings.job_uid_base} + slot)"))
        else:
            rows.append((label, value))
    mode = settings.isolation
    if mode == "required" and not jail.probe().isolated:
        mode += " (every job will fail to start: no isolation here)"
    elif mode == "off":
        mode += " (jobs run with the sandbox's own rights: trusted code only)"
    rows.append(("isolation setting", mode))
    networks = ", ".join(f"{t.value} {settings.network_for(t.value)}" for t in ModelType)
    rows.append(("network", networks))
    rows.append(("database", f"{public_url(sandbox.db.url)} (schema {sandbox.db.revision()})"))
    for kind in ModelType:
        interpreter = settings.interpreters.get(kind.value) or sys.executable
        rows.append((f"python {kind.value}", f"{interpreter} ({python_version(interpreter)})"))
    rows.append(("executor", settings.executor))
    if settings.executor == "dask":
        rows.extend(_cluster_rows(sandbox))
    return rows


def _cluster_rows(sandbox: Sandbox) -> list[tuple[str, str]]:
    """The Dask cluster (issue 12): reachable, versions, workers, registry; then the store."""
    # Imported here: the local executor never loads dask or fsspec.
    from sandbox_kit import cluster
    from sandbox_kit.errors import ClusterError, StoreError
    from sandbox_kit.store import Store

    try:
        address = cluster.scheduler_address(sandbox.settings)
    except ClusterError as exc:
        rows = [("dask scheduler", str(exc))]
    else:
        rows = cluster.report(address, db_url=sandbox.db.url)
    try:
        store = Store.from_settings(sandbox.settings, sandbox.paths)
        store.exists("doctor")  # reaches the store: a folder, or a bucket with credentials
        rows.append(("store", f"{store.public_url} (reachable from here)"))
    except StoreError as exc:
        rows.append(("store", str(exc)))
    return rows
