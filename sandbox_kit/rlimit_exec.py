"""Apply resource limits to the current process, then ``exec`` the model.

Run as a script (``python -I -S rlimit_exec.py AS CPU FSIZE NOFILE -- cmd ...``) by the job
supervisor: a fresh single-threaded process, so setting limits here is safe, unlike
``preexec_fn`` in a threaded parent (pitfalls reference, §6). Each limit is in bytes, seconds or
a count; ``0`` leaves that limit as inherited. A limit is never raised above what this process
was given: the model runs under the lower of the two.

Stdlib only, and no imports from sandbox_kit: it runs without ``site``.
"""

from __future__ import annotations

import os
import resource
import sys

_ORDER = (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE, resource.RLIMIT_NOFILE)


def lower(wanted: int, soft: int, hard: int) -> int:
    """``wanted``, or the inherited soft or hard limit when that is lower."""
    return min([wanted, *(v for v in (soft, hard) if v != resource.RLIM_INFINITY)])


def main(argv: list[str]) -> None:
    """Set the limits named on the command line and exec the rest of it."""
    split = argv.index("--")
    values = [int(v) for v in argv[:split]]
    for which, wanted in zip(_ORDER, values, strict=True):
        if wanted <= 0:
            continue
        soft, hard = resource.getrlimit(which)
        new_soft = new_hard = lower(wanted, soft, hard)
        if which == resource.RLIMIT_CPU:
            # SIGXCPU at the soft limit (reported as "CPU time limit"), SIGKILL a bit later.
            inf = resource.RLIM_INFINITY
            new_hard = new_soft + 5 if hard == inf else min(new_soft + 5, hard)
        resource.setrlimit(which, (new_soft, new_hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cmd = argv[split + 1 :]
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
