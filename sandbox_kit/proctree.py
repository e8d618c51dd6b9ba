"""A job's process tree, as its supervisor sees it: adopt orphans, find, reap, and wait.

The supervisor is a child subreaper, so a grandchild that escaped with ``setsid`` is
re-parented to it and stays in its tree (:func:`become_subreaper`); :func:`tree` lists the
job's processes, :func:`living` says whether any is still alive, :func:`reap_adopted` collects
the zombies the supervisor adopted. Linux only; psutil is imported on first use.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Any

PR_SET_CHILD_SUBREAPER = 36


def pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (None on an old kernel)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None  # an old kernel: the loop's tick still notices the exit


def become_subreaper() -> None:
    """Adopt this process's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``)."""
    # Orphaned descendants (a grandchild that called setsid() and whose parent exited) are
    # re-parented to us instead of init, so the tree can always be found and killed.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def tree(me: Any) -> list[Any]:
    """This job's processes: every descendant except the supervisors this process started
    for other jobs (``executor.start_supervisor`` after a chained dispatch) and their trees.

    Without the exception, a supervisor whose dispatch claimed two jobs (two slots freed at
    once) killed the one it started for the second job when its own job ended: that job was
    later marked ``lost`` (seen in 100-scenario sweeps, issue 11).
    """
    import psutil

    from sandbox_kit.executor import started_supervisors

    others: set[int] = set()
    for pid in started_supervisors():
        with contextlib.suppress(psutil.Error):
            others |= {pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))}
    return [p for p in me.children(recursive=True) if p.pid not in others]


def reap_adopted(model_pid: int) -> None:
    """Reap adopted children that exited, except the model (its ``Popen`` reaps it)."""
    import psutil

    for child in psutil.Process().children():
        if child.pid == model_pid:
            continue  # Popen reaps the model itself, so its exit code is not lost
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(child.pid, os.WNOHANG)


def living(procs: list[Any]) -> bool:
    """True while any of ``procs`` is alive and not a zombie."""
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                return True
    return False
