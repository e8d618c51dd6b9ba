"""CLI latency: ``models``, ``jobs``, ``status`` and ``logs`` on a home with a few jobs.

Each command is a fresh process, as from a shell or cron. Baselines measured in the same run:
a bare ``python -c pass`` and ``python -c "import sqlalchemy.orm"`` (the registry's floor).
Wall time is the figure; the CPU time of the child is printed too, as it suffers less when
other work shares the machine.

Target (issue 9): each command answers within 300 ms (median).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import median, model_file, scratch

ROUNDS = 10
TARGET_MS = 300
SOURCE = "for i in range(50):\n    print(f'line {i}')\n"


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def median_ms(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Median wall and CPU milliseconds over ``ROUNDS`` runs, after one to warm caches."""
    timed(argv, env)  # the page cache and the bytecode cache
    runs = [timed(argv, env) for _ in range(ROUNDS)]
    return median([w for w, _ in runs]) * 1000, median([c for _, c in runs]) * 1000


def main() -> None:
    sb, home = scratch()
    model = sb.upload(model_file(home, "lines.py", SOURCE), "DMO")
    jobs = [sb.run(model.id) for _ in range(3)]
    for job in jobs:
        job.wait(timeout=60)
    sb.close()
    env = {**os.environ, "SANDBOX_HOME": str(home)}
    # As installed: bytecode cached (pip compiles it), not recompiled on every call.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    script = Path(sys.executable).with_name("sandbox-kit")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "sandbox_kit"]

    bare, bare_cpu = median_ms([sys.executable, "-c", "pass"], env)
    orm, orm_cpu = median_ms([sys.executable, "-c", "import sqlalchemy.orm"], env)
    print(
        f"cli: baselines (median of {ROUNDS}): python -c pass {bare:.0f} ms "
        f"(cpu {bare_cpu:.0f}), import sqlalchemy.orm {orm:.0f} ms (cpu {orm_cpu:.0f})"
    )
    job_id = jobs[-1].id
    worst = 0.0
    for args in (["models"], ["jobs"], ["status", job_id], ["logs", job_id]):
        ms, cpu = median_ms([*cli, *args], env)
        worst = max(worst, ms)
        print(
            f"cli: {args[0]:7} {ms:4.0f} ms (cpu {cpu:3.0f}), ratio {ms / orm:.2f} to import "
            f"sqlalchemy.orm (target < {TARGET_MS} ms)"
        )
    print(f"cli: slowest {worst:.0f} ms (target < {TARGET_MS} ms)")


if __name__ == "__main__":
    main()
