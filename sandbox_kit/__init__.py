"""sandbox_kit: upload, version, run and watch DMO, RMO and SO optimization models.

>>> from sandbox_kit import Sandbox
>>> sb = Sandbox(home="work")
>>> model = sb.upload("dmo.py", "DMO")
>>> job = sb.run("DMO", config={"load_scale": 1.1})
>>> for event in job.follow():
...     print(event.kind, event.line.text if event.line else "")

In a notebook, ``%load_ext sandbox_kit`` adds the ``%%sandbox`` cell magic, which runs a
cell's code as a throw-away model in the sandbox (:mod:`sandbox_kit.magic`).

Names are imported lazily, so ``python -m sandbox_kit.supervisor`` (one per job) starts
without loading the database layer or any widget code before the model is running.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox_kit.config import Limits, Settings
    from sandbox_kit.errors import (
        ClusterError,
        ConflictError,
        DatabaseError,
        NotFoundError,
        RunError,
        SandboxKitError,
        SchemaVersionError,
        StoreError,
        ValidationError,
    )
    from sandbox_kit.jobs import Event, Job
    from sandbox_kit.records import (
        AuditEntry,
        DataSet,
        JobInfo,
        JobStatus,
        LogLine,
        Model,
        ModelStatus,
        ModelType,
        Notification,
        Scenario,
        Schedule,
        ScheduleFire,
        SweepInfo,
    )
    from sandbox_kit.sandbox import Sandbox
    from sandbox_kit.sweeps import Sweep
    from sandbox_kit.widgets import dashboard

__version__ = "0.1.0"

_WHERE = {
    "AuditEntry": "sandbox_kit.records",
    "ClusterError": "sandbox_kit.errors",
    "ConflictError": "sandbox_kit.errors",
    "DataSet": "sandbox_kit.records",
    "DatabaseError": "sandbox_kit.errors",
    "Event": "sandbox_kit.jobs",
    "Job": "sandbox_kit.jobs",
    "JobInfo": "sandbox_kit.records",
    "JobStatus": "sandbox_kit.records",
    "Limits": "sandbox_kit.config",
    "LogLine": "sandbox_kit.records",
    "Model": "sandbox_kit.records",
    "ModelStatus": "sandbox_kit.records",
    "ModelType": "sandbox_kit.records",
    "NotFoundError": "sandbox_kit.errors",
    "Notification": "sandbox_kit.records",
    "RunError": "sandbox_kit.errors",
    "Sandbox": "sandbox_kit.sandbox",
    "Scenario": "sandbox_kit.records",
    "Schedule": "sandbox_kit.records",
    "ScheduleFire": "sandbox_kit.records",
    "SandboxKitError": "sandbox_kit.errors",
    "SchemaVersionError": "sandbox_kit.errors",
    "Settings": "sandbox_kit.config",
    "StoreError": "sandbox_kit.errors",
    "Sweep": "sandbox_kit.sweeps",
    "SweepInfo": "sandbox_kit.records",
    "ValidationError": "sandbox_kit.errors",
    "dashboard": "sandbox_kit.widgets",
}

__all__ = [
    "AuditEntry",
    "ClusterError",
    "ConflictError",
    "DataSet",
    "DatabaseError",
    "Event",
    "Job",
    "JobInfo",
    "JobStatus",
    "Limits",
    "LogLine",
    "Model",
    "ModelStatus",
    "ModelType",
    "NotFoundError",
    "Notification",
    "RunError",
    "Sandbox",
    "SandboxKitError",
    "Scenario",
    "Schedule",
    "ScheduleFire",
    "SchemaVersionError",
    "Settings",
    "StoreError",
    "Sweep",
    "SweepInfo",
    "ValidationError",
    "dashboard",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%%sandbox`` cell magic: ``%load_ext sandbox_kit`` (see
    :mod:`sandbox_kit.magic`; imported only then, so ``import sandbox_kit`` stays light)."""
    from sandbox_kit.magic import SandboxMagics

    ipython.register_magics(SandboxMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Close the sandboxes the magic opened (``%reload_ext sandbox_kit`` calls this first)."""
    magics = ipython.magics_manager.registry.get("SandboxMagics")
    if magics is not None:
        magics.close()


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'sandbox_kit' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
