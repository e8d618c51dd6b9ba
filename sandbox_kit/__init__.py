"""sandbox_kit: upload, version, run and watch DMO, RMO and SO optimization models.

>>> from sandbox_kit import Sandbox
>>> sb = Sandbox(home="work")
>>> model = sb.upload("dmo.py", "DMO")
>>> job = sb.run("DMO", config={"load_scale": 1.1})
>>> for event in job.follow():
...     print(event.kind, event.line.text if event.line else "")

Names are imported lazily, so ``python -m sandbox_kit.supervisor`` (one per job) starts
without loading the database layer or any widget code before the model is running.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox_kit.config import Limits, Settings
    from sandbox_kit.errors import (
        ConflictError,
        DatabaseError,
        NotFoundError,
        RunError,
        SandboxKitError,
        SchemaVersionError,
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
    "Sweep": "sandbox_kit.sweeps",
    "SweepInfo": "sandbox_kit.records",
    "ValidationError": "sandbox_kit.errors",
    "dashboard": "sandbox_kit.widgets",
}

__all__ = [
    "AuditEntry",
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
    "Sweep",
    "SweepInfo",
    "ValidationError",
    "dashboard",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'sandbox_kit' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
