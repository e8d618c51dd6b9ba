"""CLI latency: ``models``, ``jobs``, ``status`` and ``logs`` on a home with a few jobs.

Each command is a fresh process, as from a shell or cron. Baselines measured in the same run:
a bare ``python -c pass`` and ``python -c "import sqlalchemy.orm"`` (what the registry's ORM
alone costs a process, its exit included; the CLI freezes what it imported, so it exits faster).
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
    job_id = jobs[-1].id
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import sqlalchemy.orm": [sys.executable, "-c", "import sqlalchemy.orm"],
        "models": [*cli, "models"],
        "jobs": [*cli, "jobs"],
        "status": [*cli, "status", job_id],
        "logs": [*cli, "logs", job_id],
    }
    for argv in commands.values():
        timed(argv, env)  # warm the page cache and the bytecode cache
    # Round-robin, so that other work on the machine weighs on baselines and commands alike.
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(ROUNDS):
        for name, argv in commands.items():
            runs[name].append(timed(argv, env))
    wall = {name: median([w for w, _ in r]) * 1000 for name, r in runs.items()}
    cpu = {name: median([c for _, c in r]) * 1000 for name, r in runs.items()}

    orm = wall["import sqlalchemy.orm"]
    print(
        f"cli: baselines (median of {ROUNDS}): python -c pass {wall['python -c pass']:.0f} ms, "
        f"import sqlalchemy.orm {orm:.0f} ms (cpu {cpu['import sqlalchemy.orm']:.0f})"
    )
    for name in ("models", "jobs", "status", "logs"):
        print(
            f"cli: {name:7} {wall[name]:4.0f} ms (cpu {cpu[name]:3.0f}), ratio "
            f"{wall[name] / orm:.2f} to import sqlalchemy.orm (target < {TARGET_MS} ms)"
        )
    worst = max(wall[name] for name in ("models", "jobs", "status", "logs"))
    print(f"cli: slowest {worst:.0f} ms (target < {TARGET_MS} ms)")


if __name__ == "__main__":
    main()
